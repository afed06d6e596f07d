/**
 * Running user callbacks: an error in one is logged with its traceback and
 * goes no further, so the lock is still released and the counts stay right.
 */

import { log } from "./log";
import type { Callback, SingletonStop, StopReason } from "resty.worker.manager";

const ERR = ngx.ERR;
const traceback = debug.traceback;
const running_thread = coroutine.running;

/** Stands for the main Lua thread (init, init_worker, exit_worker), where coroutine.running() is nil. */
const MAIN_THREAD = "main";

/**
 * The Lua thread a callback runs in, while it runs. A thread, not a depth
 * count: ngx.exit() in a callback run from a timer ends that timer's thread
 * for good, and a count would then stay up forever.
 */
let callback_thread: LuaThread | string | undefined = undefined;

function current_thread(): LuaThread | string {
    return running_thread() ?? MAIN_THREAD;
}

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
    callback_thread = current_thread();
    const [ok, err] = xpcall(cb, on_error, id, n_prev, n_mine, n_next);
    callback_thread = undefined;
    if (!ok) {
        log(ERR, name, " callback for ", id, " failed: ", err);
    }
}

/** True when the caller runs inside one of the module's callbacks (in this Lua thread). */
function inside(): boolean {
    return callback_thread !== undefined && callback_thread === current_thread();
}

/**
 * Runs a singleton's start, stop or fn (`what`) protected: an error is
 * logged with its traceback, the job's name, the worker and the token.
 * `kind`: "singleton" or "cluster singleton".
 */
function run_job(kind: string, what: string, name: string, worker: string | number, token: number,
                 f: SingletonStop, reason?: StopReason): void {
    const [ok, err] = xpcall(f, on_error, name, token, reason as StopReason);
    if (!ok) {
        log(ERR, kind, " '", name, "' ", what, " failed in worker ", worker, " (token ", token, "): ", err);
    }
}

export { run, run_job, inside, on_error };
