// The consumer's nginx code, written as the README tells TypeScript users:
// ordinary functions (no `this: void`), the module's precise callback types,
// and the recipe "Run something once per node, or once per reload".
import * as manager from "resty.worker.manager";
import { record } from "./record";

function master_start(g: number, n_prev: number | undefined): void {
    record("master_start", g, n_prev, 0, undefined);
    if (n_prev === undefined) {
        // generation 1: nginx was started (or restarted), not reloaded
        ngx.shared["app"]?.set("node_started", ngx.now());
    } else {
        ngx.log(ngx.NOTICE, "configuration reloaded as generation ", g);
    }
}

const master_exit: manager.MasterCallback = (g, n_prev, n_mine, n_next) => {
    record("master_exit", g, n_prev, n_mine, n_next);
};

const on_crash: manager.CrashCallback = (wid, n_prev, n_mine, n_next) => {
    record("crash", wid, n_prev, n_mine, n_next);
};

function warm_up(this: void, premature: boolean): void {
    ngx.log(ngx.NOTICE, "warm up, premature: ", premature);
}

export function init(this: void): void {
    // (an arrow function or a `this: void` function: a plain `function`
    // declaration passed directly must declare `this: void`, see mistake/)
    manager.on_init_by_lua({ shm: "wm", interval: 1, failed: 2, on_crash },
                           (g, n_prev) => master_start(g, n_prev), master_exit);
}

export function init_worker(this: void): void {
    manager.on_init_worker_by_lua(
        (wid, n_prev, n_mine, n_next) => {
            record("worker_start", wid, n_prev, n_mine, n_next);
            if (n_prev === undefined && n_mine === 1) {
                ngx.timer.at(0, warm_up);    // the node's first worker
            }
        },
        (wid, n_prev, n_mine, n_next) => record("worker_exit", wid, n_prev, n_mine, n_next),
    );
}

// A singleton and a periodic one, with the README's recipe shape: the
// callbacks as arrow functions (or `this: void` functions)
function sj(edge: string, kind: string, name: string, token: number, reason?: manager.StopReason): void {
    const [held, held_token] = manager.holds(name);
    ngx.log(ngx.WARN, "WMSJ-", edge, " ", kind, " name=", name, " token=", token, " pid=", ngx.worker.pid(),
            " phase=", ngx.get_phase(), " reason=", tostring(reason), " held=", tostring(held), ":",
            tostring(held_token), " types=", type(name), ",", type(token), ",", type(reason));
}

export function singletons(this: void): void {
    manager.singleton("job", {
        start: (name, token) => {
            sj("ENTER", "start", name, token);
            sj("LEAVE", "start", name, token);
        },
        stop: (name, token, reason) => {
            sj("ENTER", "stop", name, token, reason);
            sj("LEAVE", "stop", name, token, reason);
        },
    });
    manager.every("tick", 0.5, (name, token) => {
        sj("ENTER", "fn", name, token);
        sj("LEAVE", "fn", name, token);
    });
}

export function exit_worker(this: void): void {
    manager.on_exit_worker_by_lua();
}
