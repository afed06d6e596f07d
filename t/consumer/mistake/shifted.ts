// The mistake that shifted every argument at run time: a plain function
// (compiled with a `self` first, as this project has no noImplicitSelf)
// passed as a callback. The declarations make it a compile error.
import * as manager from "resty.worker.manager";

function master_start(g: number, n_prev: number | undefined): void {
    ngx.log(ngx.NOTICE, "generation ", g, " ", tostring(n_prev));
}

export function init(this: void): void {
    manager.on_init_by_lua({ shm: "wm" }, master_start);
}
