/** The module's one logging entry: every line is prefixed so users can grep it. */

const ngx_log = ngx.log;

const PREFIX = "[worker-manager] ";

function log(level: NgxLogLevel, ...args: unknown[]): void {
    // A tail call: ngx.log then names the module function that logged, not this one.
    return ngx_log(level, PREFIX, ...args);
}

export { log };
