// A singleton's scope spelt wrong: at run time an error at init_worker;
// the declarations make it a compile error.
import * as manager from "resty.worker.manager";

export function init_worker_scope(this: void): void {
    manager.singleton("leader", { scope: "clustr", start: (name, token) => ngx.log(ngx.NOTICE, name, token) });
}
