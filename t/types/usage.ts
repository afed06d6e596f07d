// Compile test for types/resty.worker.manager.d.ts (run by `make typecheck`):
// a TypeScript user's init code, and a proof that the declared module and
// the implementation in src/ have the same shape.
import * as manager from "resty.worker.manager";
import * as implementation from "../../src/resty/worker/manager";

const declared: typeof manager = implementation;
const implemented: typeof implementation = manager;

function log_event(this: void, id: number | string, n_prev: number | undefined, n_mine: number,
                   n_next: number | undefined): void {
    ngx.log(ngx.NOTICE, "event ", id, " ", n_prev, " ", n_mine, " ", n_next);
}

export function init(): void {
    manager.on_init_by_lua({ shm: "worker_manager", interval: 10, on_crash: log_event }, log_event, log_event);
}

export function init_worker(): void {
    manager.on_init_worker_by_lua(log_event, log_event);
}

// In a worker exit callback: a stop, a reload, or nginx replacing the worker.
function node_goes_on(this: void): boolean {
    const reason: manager.ExitReason | undefined = manager.exit_reason();
    return reason === "replace" || reason === "reload";
}

export { declared, implemented, node_goes_on };
