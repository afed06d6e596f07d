/**
 * Running user callbacks: an error in one is logged with its traceback and
 * goes no further, so the lock is still released and the counts stay right.
 */

import { log } from "./log";
import type { Callback } from "resty.worker.manager";

const ERR = ngx.ERR;
const traceback = debug.traceback;


function on_error(err: unknown): string {
    return traceback(tostring(err), 2);
}

/**
 * Runs `cb` protected. `entering`, if given, is called right before the
 * callback itself: from then on the callback counts as run, even if this
 * process dies inside it.
 */
function run(name: string, cb: Callback | undefined, id: number | string, n_prev: number | undefined,
             n_mine: number, n_next: number | undefined, entering?: () => void): void {
    if (cb === undefined) {
        return;
    }
    if (entering !== undefined) {
        entering();
    }
    const [ok, err] = xpcall(cb, on_error, id, n_prev, n_mine, n_next);
    if (!ok) {
        log(ERR, name, " callback for ", id, " failed: ", err);
    }
}

export { run };

