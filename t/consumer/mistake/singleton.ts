// The same mistake with a singleton: a plain function as its start (a
// `self` first at run time, so the name would arrive as the token). The
// declarations make it a compile error.
import * as manager from "resty.worker.manager";

function start(name: string, token: number): void {
    ngx.log(ngx.NOTICE, "singleton ", name, " token ", token);
}

export function init_worker(this: void): void {
    manager.singleton("job", { start });
}
