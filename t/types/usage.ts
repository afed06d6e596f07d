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

// Singletons: a job with start and stop, a periodic one, and holds() as
// a fencing token.
export function singletons(): void {
    manager.singleton("cache-warmer", {
        start: (name, token) => ngx.log(ngx.NOTICE, name, " held with token ", token),
        stop: (name, token, reason: manager.StopReason) => ngx.log(ngx.NOTICE, name, " ", token, " ", reason),
    });
    manager.singleton("no-stop", { start: (name, token) => ngx.log(ngx.NOTICE, name, token) });
    manager.every("cleanup", 60, (name, token) => ngx.log(ngx.NOTICE, name, token));
}

// The fleet: opts.cluster with its callbacks, cluster singletons, nodes().
export function fleet(): void {
    manager.on_init_by_lua({
        shm: "worker_manager",
        cluster: {
            redis: { sentinels: [{ host: "10.0.0.6", port: 26379 }], master_name: "mymaster", password: "s" },
            node: "edge-1",
            interval: 2,
            failed: 3,
            on_join: (node, n_nodes) => ngx.log(ngx.NOTICE, node, " joined, ", n_nodes, " members"),
            on_leave: (node, n_nodes, reason?: manager.LeaveReason) => ngx.log(ngx.NOTICE, node, " ", reason, n_nodes),
        },
    });
    manager.singleton("leader", { scope: "cluster", start: (name, token) => ngx.log(ngx.NOTICE, name, token) });
    manager.every("report", 60, (name, token) => ngx.log(ngx.NOTICE, name, token), { scope: "cluster" });
}

function members(this: void): string[] {
    return manager.nodes().map((m: manager.FleetNode) => m.node + " gen " + m.generation + " x" + m.workers);
}

function fencing_token(this: void): number | undefined {
    const [held, token] = manager.holds("cache-warmer");
    return held ? token : undefined;
}

function holder_of(this: void, name: string): string | undefined {
    const [st] = manager.status();
    const found = st?.singletons.find((s) => s.name === name);
    return found?.holder;
}

export { declared, implemented, node_goes_on, fencing_token, holder_of, members };
