/**
 * Declarations of resty.worker.manager for OpenResty code written in
 * TypeScript (TypeScriptToLua). Install the package (npm) and list it in
 * your tsconfig's "types" (or add this file to "include"), then
 * `import * as manager from "resty.worker.manager"`; it compiles to
 * `local manager = require("resty.worker.manager")`.
 * `make test` checks that these declarations match the implementation.
 */
/** @noResolution */
declare module "resty.worker.manager" {
    /**
     * Any of the module's callbacks: `cb(id, n_prev, n_mine, n_next)`. `id` is
     * the generation (a number) for master callbacks and a worker id
     * "<generation>-<pid>" (a string) for worker and crash callbacks.
     * `n_prev`: workers in older generations, nil in generation 1. `n_mine`:
     * workers in the callback's own generation. `n_next`: workers in newer
     * generations, nil when none exists. A function of this type fits every
     * slot; the precise types below say more.
     */
    type Callback = (this: void, id: number | string, n_prev: number | undefined, n_mine: number,
                     n_next: number | undefined) => void;

    /** Master start and master exit: `id` is the generation, `n_mine` is always 0. */
    type MasterCallback = (this: void, id: number, n_prev: number | undefined, n_mine: 0,
                           n_next: number | undefined) => void;

    /** Worker start and worker exit: `id` is this worker's "<generation>-<pid>"; `n_mine` counts it. */
    type WorkerCallback = (this: void, id: string, n_prev: number | undefined, n_mine: number,
                           n_next: number | undefined) => void;

    /** opts.on_crash: `id` is the dead worker's "<generation>-<pid>"; `n_mine` is taken after the drop. */
    type CrashCallback = (this: void, id: string, n_prev: number | undefined, n_mine: number,
                          n_next: number | undefined) => void;

    interface Options {
        /** Name of the lua_shared_dict holding the node's state. */
        shm: string;
        /** Seconds between heartbeats. Default 10. */
        interval?: number;
        /** Seconds a heartbeat may be overdue before its worker counts as crashed. Default 5. */
        failed?: number;
        /** This node is a member of a fleet kept in Redis. */
        cluster?: ClusterOptions;
    }

    /**
     * on_join(node, n_nodes) and on_leave(node, n_nodes, reason): a member
     * joined or left the fleet; `n_nodes` counts the members after it.
     */
    type FleetCallback = (this: void, node: string, n_nodes: number, reason?: LeaveReason) => void;

    /** Why a member left: its graceful stop, or its presence ran out. */
    type LeaveReason = "stopped" | "lost";

    /** Where the fleet's Redis is: host and port, a unix socket, or Sentinels and a master name. */
    interface RedisOptions {
        host?: string;
        /** Default 6379. */
        port?: number;
        /** A unix socket: "unix:/path" or "/path". */
        path?: string;
        sentinels?: { host: string; port?: number }[];
        master_name?: string;
        username?: string;
        password?: string;
        /** Default 0. */
        database?: number;
        /** lua-resty-redis 0.28 or newer. */
        ssl?: boolean;
        ssl_verify?: boolean;
        server_name?: string;
        /** Seconds, default 1. */
        connect_timeout?: number;
        /** Seconds, default 1. */
        read_timeout?: number;
        /** Connections kept per worker, default 4. */
        pool_size?: number;
    }

    /** A member of the fleet, as manager.nodes() returns it. */
    interface FleetNode {
        node: string;
        /** When it joined (seconds, Redis's clock). */
        started: number;
        /** Its newest generation and that generation's workers, at its last refresh. */
        generation: number;
        workers: number;
        /** Its last refresh (seconds, Redis's clock). */
        seen: number;
    }

    interface ClusterOptions {
        redis: RedisOptions;
        /** This node's name in the fleet. Default: hostname and nginx prefix. */
        node?: string;
        /** Redis key prefix, one hash tag. Default "wm". */
        prefix?: string;
        /** Seconds between presence refreshes. Default 2. */
        interval?: number;
        /** Seconds presence may be late before the node is lost. Default 3. */
        failed?: number;
        on_join?: FleetCallback;
        on_leave?: FleetCallback;
    }

    /** Options with a crash callback (a type of its own, so that the compiler checks that callback: see below). */
    interface OptionsWithCrash extends Options {
        /** Called, under the lock, for each worker found dead (with the dead worker's id). */
        on_crash: CrashCallback;
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

    interface SingletonStatus {
        name: string;
        /** The holding worker's id, "<generation>-<pid>"; nil while nobody holds the name. */
        holder: string | undefined;
        /** The holding's token; while nobody holds the name, the last one handed out (0: none yet). */
        token: number;
        /** When the holding began; nil while nobody holds the name. */
        since: number | undefined;
        /** The node is stopping: the last holder stopped the job, and nobody takes it again. */
        stopped: boolean;
    }

    interface Status {
        /** The newest generation (the configuration now loaded); nil before any. */
        generation: number | undefined;
        /** Generations with records, oldest first. */
        generations: GenerationStatus[];
        /** Workers found dead since the node started. */
        crashes: number;
        last_crash: CrashStatus | undefined;
        /** Every singleton name registered in the node, in the order they were first registered. */
        singletons: SingletonStatus[];
        /** False when the lock could not be had in time and the view may be torn. */
        consistent: boolean;
    }

    // The callbacks are taken by overloads, never as optional parameters:
    // TypeScriptToLua checks that a function passed where a `this: void`
    // function is expected has no `this` of its own only when the parameter
    // is not optional. Without that check, a callback compiled the ordinary
    // way (a consumer project without "noImplicitSelf") would get `self`
    // first and all its arguments shifted by one at run time.

    /** From init_by_lua*: runs master start for this configuration load before returning. */
    function on_init_by_lua(this: void, opts: OptionsWithCrash): true;
    function on_init_by_lua(this: void, opts: OptionsWithCrash, master_start: MasterCallback): true;
    function on_init_by_lua(this: void, opts: OptionsWithCrash, master_start: MasterCallback,
                            master_exit: MasterCallback): true;
    function on_init_by_lua(this: void, opts: OptionsWithCrash, master_start: undefined, master_exit: MasterCallback): true;
    function on_init_by_lua(this: void, opts: Options): true;
    function on_init_by_lua(this: void, opts: Options, master_start: MasterCallback): true;
    function on_init_by_lua(this: void, opts: Options, master_start: MasterCallback, master_exit: MasterCallback): true;
    function on_init_by_lua(this: void, opts: Options, master_start: undefined, master_exit: MasterCallback): true;

    /** From init_worker_by_lua*: counts this worker and runs worker start before returning. */
    function on_init_worker_by_lua(this: void): true;
    function on_init_worker_by_lua(this: void, worker_start: WorkerCallback): true;
    function on_init_worker_by_lua(this: void, worker_start: WorkerCallback, worker_exit: WorkerCallback): true;
    function on_init_worker_by_lua(this: void, worker_start: undefined, worker_exit: WorkerCallback): true;

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

    /**
     * Why a singleton's stop runs: the job moves to a newer generation
     * ("reload"), the node stops ("stop"), this worker was dropped as
     * stalled and another took the job ("lost"), or this worker alone exits
     * or is replaced while its generation goes on ("exit").
     */
    type StopReason = "reload" | "stop" | "lost" | "exit";

    /** A singleton's start: runs in a timer of the worker that now holds `name`. */
    type SingletonStart = (this: void, name: string, token: number) => void;
    /** A singleton's stop: the holding ends once it returns. */
    type SingletonStop = (this: void, name: string, token: number, reason: StopReason) => void;
    /** every()'s function: one run of the periodic job, in the holder. */
    type SingletonFn = (this: void, name: string, token: number) => void;

    /** "node" (the default): one worker of this node; "cluster": one worker of the whole fleet (opts.cluster). */
    type SingletonScope = "node" | "cluster";

    interface SingletonJob {
        start: SingletonStart;
        scope?: SingletonScope;
    }

    /** every()'s options. */
    interface EveryOptions {
        scope?: SingletonScope;
    }

    /** A job with a stop (a type of its own, so that the compiler checks that callback, as for on_crash). */
    interface SingletonJobWithStop extends SingletonJob {
        stop: SingletonStop;
    }

    /**
     * From init_worker_by_lua*, after on_init_worker_by_lua, in every worker:
     * one worker of the node runs `job.start(name, token)`, the job moves
     * through reloads, crashes and stalls, and `job.stop(name, token,
     * reason)` runs when a holding ends.
     */
    function singleton(this: void, name: string, job: SingletonJobWithStop): true;
    function singleton(this: void, name: string, job: SingletonJob): true;

    /** A periodic singleton: `fn(name, token)` runs in the holder at once, then every `interval` seconds. */
    function every(this: void, name: string, interval: number, fn: SingletonFn, opts?: EveryOptions): true;

    /** Whether this worker holds `name` now, and the holding's token (a fencing token). */
    function holds(this: void, name: string): LuaMultiReturn<[true, number] | [false, undefined]>;

    /**
     * The fleet as this node last saw it (opts.cluster): one entry per member,
     * read from the node's shm, no network call. Any phase after init_by_lua.
     */
    function nodes(this: void): FleetNode[];

    const _VERSION: string;
}
