/**
 * Declarations of resty.worker.manager for OpenResty code written in
 * TypeScript (TypeScriptToLua). Add this file to your project's "include"
 * (or "types") and `import * as manager from "resty.worker.manager"`; it
 * compiles to `local manager = require("resty.worker.manager")`.
 * `make test` checks that these declarations match the implementation.
 */
/** @noResolution */
declare module "resty.worker.manager" {
    /**
     * A lifecycle callback. `id` is the generation (master_id, a number) for
     * master callbacks and the worker id "<master_id>-<pid>" for worker and
     * crash callbacks. `n_prev`: workers in older generations, nil in
     * generation 1. `n_mine`: workers in the callback's own generation.
     * `n_next`: workers in newer generations, nil when none exists.
     */
    type Callback = (this: void, id: number | string, n_prev: number | undefined, n_mine: number,
                     n_next: number | undefined) => void;

    interface Options {
        /** Name of the lua_shared_dict holding the node's state. */
        shm: string;
        /** Seconds between heartbeats. Default 10. */
        interval?: number;
        /** Seconds a heartbeat may be overdue before its worker counts as crashed. Default 5. */
        failed?: number;
        /** Called, under the lock, for each worker found dead (with the dead worker's id). */
        on_crash?: Callback;
    }

    interface WorkerStatus {
        /** "<generation>-<pid>" */
        id: string;
        pid: number;
        /** ngx.worker.id() of that worker. */
        slot: number;
        /** When its worker start ran (ngx.now()). */
        started: number | undefined;
        /** Its last heartbeat. */
        heartbeat: number | undefined;
    }

    interface GenerationStatus {
        /** The generation's number (master_id). */
        id: number;
        /** When its master start ran. */
        started: number | undefined;
        /** Workers counted now, in slot order. */
        workers: WorkerStatus[];
        /** Workers that reached init_worker but wait to be counted. */
        starting: number;
        /** Pids dropped for a late heartbeat whose process still ran then. */
        stalled: number[];
        /**
         * No worker runs, but the master keeps this configuration: its last
         * worker is being replaced, or WINCH held the workers back.
         */
        idle: boolean;
    }

    interface CrashStatus {
        id: string;
        pid: number;
        slot: number;
        at: number;
        cause: string;
    }

    interface Status {
        /** The newest generation (the configuration now loaded); nil before any. */
        generation: number | undefined;
        /** Generations with records, oldest first. */
        generations: GenerationStatus[];
        /** Workers found dead since the node started. */
        crashes: number;
        last_crash: CrashStatus | undefined;
        /** False when the lock could not be had in time and the view may be torn. */
        consistent: boolean;
    }

    /** From init_by_lua*: runs master start for this configuration load before returning. */
    function on_init_by_lua(this: void, opts: Options, master_start?: Callback, master_exit?: Callback): true;

    /** From init_worker_by_lua*: counts this worker and runs worker start before returning. */
    function on_init_worker_by_lua(this: void, worker_start?: Callback, worker_exit?: Callback): true;

    /** From exit_worker_by_lua*: tracks exits on fast shutdown (TERM), where nginx fires no timers. */
    function on_exit_worker_by_lua(this: void): true;

    /** The node's current view; any phase after init_by_lua. */
    function status(this: void): LuaMultiReturn<[Status] | [undefined, string]>;

    /**
     * Why this worker exits: a newer generation took over ("reload"), the
     * node stops ("stop"), or nginx goes on with this configuration without
     * this worker ("replace": a signal sent to the worker itself, WINCH).
     */
    type ExitReason = "reload" | "stop" | "replace";

    /** In this worker's exit (its callbacks, or later): why it exits; nil before its exit began. */
    function exit_reason(this: void): ExitReason | undefined;

    const _VERSION: string;
}
