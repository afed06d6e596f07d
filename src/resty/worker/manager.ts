/**
 * resty.worker.manager: tells nginx code what happens to its node (start,
 * reload, stop, a worker crashing and respawning) through callbacks
 * `cb(id, n_prev, n_mine, n_next)` run one at a time under a node-wide lock.
 * See README.md for the lifecycle table; this file only orchestrates:
 * phase checks, the lock, the registry and the callbacks.
 */

import * as registry from "./manager/registry";
import * as lock from "./manager/lock";
import * as liveness from "./manager/liveness";
import * as reports from "./manager/reports";
import * as listeners from "./manager/listeners";
import * as reasons from "./manager/exit_reason";
import * as missed_beats from "./manager/missed_beats";
import * as resume from "./manager/resume";
import * as singletons from "./manager/singletons";
import * as fleet from "./manager/cluster/fleet";
import * as cluster_options from "./manager/cluster/options";
import * as leases from "./manager/cluster/leases";
import { run, inside } from "./manager/callbacks";
import { log } from "./manager/log";
import { free_dead_shm_mutex, pause, process_type, terminating, testing_config } from "./manager/host";
import { status as read_status } from "./manager/status";
import type {
    Callback, ClusterOptions, CrashCallback, EveryOptions, ExitReason, FleetCallback, FleetNode, LeaveReason,
    MasterCallback, Options, OptionsWithCrash, RedisOptions, SingletonFn, SingletonJob, SingletonJobWithStop,
    SingletonScope, SingletonStart, SingletonStop, Status, StopReason, WorkerCallback,
} from "resty.worker.manager";
import type { ClusterConfig } from "./manager/cluster/options";

const [ERR, WARN, NOTICE, INFO] = [ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO];
const [get_phase, now, update_time, sleep, shared] = [ngx.get_phase, ngx.now, ngx.update_time, ngx.sleep, ngx.shared];
const timer_every = ngx.timer.every;
const [worker_pid, worker_exiting, worker_id, worker_count] =
    [ngx.worker.pid, ngx.worker.exiting, ngx.worker.id, ngx.worker.count];

const DEFAULT_INTERVAL = 10;
const DEFAULT_FAILED = 5;
/** Bounds of interval and failed (a year at most: failed is also how long a stop may wait). */
const MIN_SECONDS = 0.001;
const MAX_SECONDS = 31536000;
/** Longest singleton name, in bytes (it is part of shm keys). */
const MAX_NAME = 128;
/** What the module's own singletons' names start with (the fleet agent). */
const RESERVED = "[worker-manager]";
/** Step of the wait that tells a reload from a stop (timer context only). */
const UNDECIDED_STEP = 0.05;
/**
 * How long a fast stop's exit may wait for a newer generation's first worker
 * (nginx sends KILL ~1.5 s after TERM), and in which steps (blocking).
 */
const FAST_STOP_WAIT = 0.5;
const FAST_STOP_STEP = 0.01;


/** What init_by_lua set up; inherited by every worker through fork. */
interface Node {
    shm: string;
    dict: NgxSharedDict;
    interval: number;
    failed: number;
    /** This configuration load's generation; nil when the shm refused to count it. */
    gen: number | undefined;
    master_start: Callback | undefined;
    master_exit: Callback | undefined;
    on_crash: Callback | undefined;
    /** opts.cluster: this node is a member of a fleet. */
    cluster: ClusterConfig | undefined;
}

/** This worker process, once on_init_worker_by_lua counted it. */
interface Worker {
    /** The generation it is counted in. */
    gen: number;
    /** The generation of the configuration it was forked with (resume.ts: they may differ). */
    config: number;
    slot: number;
    pid: number;
    id: string;
    exit: Callback | undefined;
    /** Its exit began (graceful path or exit hook). */
    exited: boolean;
    /** Its worker exit was counted and reported. */
    reported: boolean;
    /** Its exit is complete, master exit included where it was the last. */
    done: boolean;
    /** Advances every heartbeat: which slot of each generation to look at. */
    turn: number;
    /** It was counted once (false while its keys never fitted in a full shm). */
    counted: boolean;
    /** Why it exits, once its exit began (exit_reason.ts). */
    reason: ExitReason | undefined;
    /** It was the last of its generation and left it idle (its master keeps the configuration). */
    left_idle: boolean;
    /** When its heartbeat last ran. */
    last_beat: number;
    /** It said already that its heartbeat missed runs (once is enough). */
    said_missed: boolean;
}

let node: Node | undefined = undefined;
let worker_hooked = false;
let worker: Worker | undefined = undefined;

/** `level`: where the error is reported, counted from here (3: the caller of the function that checks). */
function check_phase(fn: string, phase: NgxPhase, directive: string, level = 3): void {
    if (inside()) {
        // Its own work is under way in the callback's caller, which holds
        // the node lock: run again from here it would nest inside that
        // work and free the lock under it.
        error(fn + " must not be called from inside a callback of resty.worker.manager", level);
    }
    const current = get_phase();
    if (current !== phase) {
        error(fn + " must be called from " + directive + ", not in phase '" + current + "'", level);
    }
}

function check_callback(name: string, cb: unknown): Callback | undefined {
    if (cb !== undefined && type(cb) !== "function") {
        error(name + " must be a function or nil, got " + type(cb), 3);
    }
    return cb as Callback | undefined;
}

/** How a bad value reads in an error: type, then the value where it says something. */
function describe(value: unknown): string {
    if (typeof value === "string") {
        return "string " + string.format("%q", value);
    }
    if (typeof value === "number" || typeof value === "boolean") {
        return type(value) + " " + tostring(value);
    }
    return type(value);
}

function check_seconds(name: string, value: unknown, fallback: number, level = 4): number {
    if (value === undefined) {
        return fallback;
    }
    // ngx.timer.at counts whole milliseconds in an unsigned 64-bit number:
    // under half a millisecond rounds to 0 and a huge delay wraps around,
    // and either way the heartbeat would fire at once, forever. NaN fails
    // both comparisons.
    if (typeof value !== "number" || !(value >= MIN_SECONDS && value <= MAX_SECONDS)) {
        error(name + " must be a number of seconds from " + MIN_SECONDS + " to " + MAX_SECONDS + ", got "
              + describe(value), level);
    }
    return value;
}

function check_options(opts: unknown): LuaMultiReturn<[string, NgxSharedDict, number, number, Callback | undefined,
                                                       ClusterConfig | undefined]> {
    if (type(opts) !== "table") {
        error("opts must be a table, got " + type(opts), 3);
    }
    const o = opts as { shm?: unknown; interval?: unknown; failed?: unknown; on_crash?: unknown; cluster?: unknown };
    if (typeof o.shm !== "string") {
        error("opts.shm must be the name of a lua_shared_dict, got " + type(o.shm), 3);
    }
    const dict = shared[o.shm];
    if (dict === undefined) {
        error("unknown shm '" + o.shm + "' (no such lua_shared_dict)", 3);
    }
    const interval = check_seconds("opts.interval", o.interval, DEFAULT_INTERVAL);
    const failed = check_seconds("opts.failed", o.failed, DEFAULT_FAILED);
    if (o.on_crash !== undefined && type(o.on_crash) !== "function") {
        error("opts.on_crash must be a function or nil, got " + type(o.on_crash), 3);
    }
    const cluster = cluster_options.check(o.cluster, 4);
    return $multi(o.shm, dict, interval, failed, o.on_crash as Callback | undefined, cluster);
}

/**
 * Registers the master callbacks and runs master start for this configuration
 * load (a new generation). Call once, from init_by_lua*.
 * @param opts `{ shm = "name", interval = 10, failed = 5 }`
 * @param master_start `cb(master_id, n_prev, 0, nil)`, run before returning
 * @param master_exit `cb(master_id, n_prev, 0, n_next)`, run by the generation's last exiting worker
 * @return true
 */
function on_init_by_lua(opts: Options | OptionsWithCrash, master_start?: MasterCallback, master_exit?: MasterCallback): true {
    check_phase("on_init_by_lua", "init", "init_by_lua*");
    if (node !== undefined) {
        error("on_init_by_lua was called twice in this configuration load", 2);
    }
    const [shm, dict, interval, failed, on_crash, cluster] = check_options(opts);
    const start_cb = check_callback("master_start callback", master_start);
    const exit_cb = check_callback("master_exit callback", master_exit);
    const created: Node = {
        shm, dict, interval, failed, gen: undefined, master_start: start_cb, master_exit: exit_cb, on_crash, cluster,
    };
    node = created;
    fleet.setup(cluster, dict);

    const kind = process_type();
    if (kind === "signaller" || testing_config()) {
        // Old lua-nginx-module versions run init_by_lua in `nginx -s` and
        // `nginx -t` processes, with a private shm: they are no part of the node.
        return true;
    }
    if (kind === "worker" || kind === "helper" || kind === "privileged agent") {
        // With lua_code_cache off, lua-nginx-module runs init_by_lua again
        // in a fresh Lua VM for every request, inside the worker. That is
        // no configuration load: only status() needs what is set up above.
        return true;
    }

    // On a reload a worker killed inside a shm call may still hold the
    // zone's mutex: nginx frees it only once this returns.
    free_dead_shm_mutex(dict);
    const hold = lock.acquire(dict, false);
    update_time();
    registry.sweep(dict, now(), failed);
    const g = registry.begin_generation(dict, now());
    if (g === undefined) {
        lock.release(dict, hold);
        log(ERR, "could not start a generation in shm '", shm, "'; this configuration is not tracked");
        return true;
    }
    created.gen = g;
    const [n_prev] = registry.neighbours(dict, g, now(), failed);
    run("master start", start_cb, g, n_prev, 0, undefined);
    lock.release(dict, hold);
    return true;
}

function finder_for(n: Node, w: Worker, stopping: boolean): liveness.Finder {
    return {
        pid: w.pid, overdue: n.interval + n.failed, failed: n.failed, stopping,
        on_crash: n.on_crash, master_exit: n.master_exit,
    };
}

/**
 * The last worker of generation `g` is gone: its master exit runs, unless
 * nginx's master goes on with the configuration (`reason` "replace", and the
 * listening sockets still open now: a stop may have come since), which
 * leaves the generation idle until a worker joins it again, a newer one
 * takes over or the node stops.
 */
function end_or_suspend(n: Node, w: Worker, reason: ExitReason, known: boolean, failed: number): void {
    const dict = n.dict;
    update_time();
    if (reason === "replace" && reasons.closed_now(dict, w.gen) !== true) {
        registry.suspend(dict, w.gen, now());
        w.left_idle = true;
        log(NOTICE, "generation ", w.gen, " has no worker now, but its master keeps its listening sockets: nginx ",
            "replaces the worker, or holds its workers back (WINCH); no master exit while it may run them again");
        return;
    }
    w.done = true;
    reports.end_with_master_exit(dict, n.master_exit, w.gen, w.pid, now(), failed);
    resume.note_end(dict, w.config, w.gen, reason === "stop" && !known);
}

/** Its heartbeat timer no longer runs: while it waits, it beats here, or its siblings would count it as crashed. */
function beat_while_waiting(dict: NgxSharedDict, w: Worker): () => void {
    return () => {
        update_time();
        registry.heartbeat(dict, w.gen, w.slot, w.pid, now());
    };
}

/**
 * Waits while a newer generation's workers have not shown up: either a
 * reload in progress or one nginx rolled back, and waiting tells them apart.
 * nginx forks a reload's workers before it handles a stop signal, so on a
 * fast stop they show up within moments, unless it was rolled back. Returns
 * the `failed` seconds to judge generations by: 0 once a fast stop's wait
 * ran out (the newer one counts as rolled back).
 */
function wait_for_newer(n: Node, w: Worker, can_yield: boolean, waiting: () => void): number {
    const dict = n.dict;
    update_time();
    if (can_yield) {
        // Siblings nginx forked that have not reached init_worker yet (slow
        // user code before this module's hook) would otherwise start after
        // this generation's master exit: they may, until it is `failed` s old.
        while (registry.newer_undecided(dict, w.gen, now(), n.failed)
               || registry.unarrived(dict, w.gen, now(), n.failed)) {
            sleep(UNDECIDED_STEP);
            waiting();
        }
        return n.failed;
    }
    const began = now();
    while (registry.newer_undecided(dict, w.gen, now(), n.failed)) {
        if (now() - began >= FAST_STOP_WAIT) {
            return 0;
        }
        pause(FAST_STOP_STEP);
        waiting();
    }
    return n.failed;
}

/**
 * The lock for the exit's work. In the exit hook, a timer of this very
 * process that the fast stop abandoned may still hold it: that timer will
 * never run again, so its hold is ours. (In a timer, another timer's hold
 * is not.)
 */
function lock_for_exit(dict: NgxSharedDict, can_yield: boolean): lock.Hold {
    if (!can_yield) {
        const abandoned = lock.mine();
        if (abandoned !== undefined) {
            return abandoned;
        }
    }
    return lock.acquire(dict, can_yield);
}

/**
 * Under the lock: uncounts this worker and runs its worker exit with the
 * counts, after dropping siblings that died (so that the last one really
 * alive runs the master exit). The hold (renewed after the callback) and
 * the reason, which the counts may correct.
 */
function report_exit(n: Node, w: Worker, hold: lock.Hold, reason: ExitReason, known: boolean, failed: number,
                     can_yield: boolean): LuaMultiReturn<[lock.Hold, ExitReason, boolean]> {
    const dict = n.dict;
    const finder = finder_for(n, w, reason === "stop");
    update_time();
    liveness.settle(dict, finder, liveness.look_in(dict, finder, w.gen, now()), now(), w.gen);
    const [n_prev, n_next] = registry.neighbours(dict, w.gen, now(), failed);
    [reason, known] = reasons.agree(reason, known, n_next);
    w.reason = reason;
    const [counted, remaining] = registry.uncount(dict, w.gen, w.slot, w.pid);
    if (!counted) {
        if (registry.clear_uncounted(dict, w.gen, w.slot, w.pid)) {
            log(WARN, "worker ", w.id, " exits after it was dropped for a late heartbeat");
        } else {
            log(WARN, "worker ", w.id, " exits while not counted (its keys were lost from shm '", n.shm,
                "' or never fitted in it)");
        }
    }
    w.reported = true;
    run("worker exit", w.exit, w.id, n_prev, remaining + 1, n_next);
    const renewed = lock.renew(dict, hold, can_yield);
    // A sibling may have died while that callback ran (no respawn during
    // a stop): drop it now, or nobody would close the generation.
    update_time();
    liveness.settle(dict, finder, liveness.look_in(dict, finder, w.gen, now()), now(), w.gen);
    return $multi(renewed, reason, known);
}

/**
 * The exit of this worker: worker exit, then master exit if it was the last of
 * its generation. Runs once, from whichever path notices the exit first. A
 * fast stop (TERM) during a graceful exit abandons the timer that ran it; the
 * exit hook then finishes what it left, without repeating any callback.
 */
function leave(can_yield: boolean): void {
    const w = worker;
    const n = node;
    if (w === undefined || n === undefined || w.done || (w.exited && can_yield)) {
        return;
    }
    w.exited = true;
    const dict = n.dict;
    const waiting = beat_while_waiting(dict, w);
    const failed = wait_for_newer(n, w, can_yield, waiting);
    // Decided before its callback runs, which may ask (exit_reason()). The
    // exit hook also runs after a graceful exit whose timer never ran it,
    // and after one that a TERM cut short (which counts as fast).
    update_time();
    const graceful = can_yield || (worker_exiting() && terminating() === false);
    let [reason, known] = reasons.find(dict, w.gen, registry.newest(dict, now(), failed), graceful, can_yield,
                                       can_yield ? n.failed : FAST_STOP_WAIT, waiting);
    w.reason = reason;
    // The stops of the singletons it holds run now, outside the lock, after
    // their running start or fn returned; the holdings end under the lock.
    singletons.stop_for_exit(reason, can_yield);

    let hold = lock_for_exit(dict, can_yield);
    if (!w.reported) {
        [hold, reason, known] = report_exit(n, w, hold, reason, known, failed, can_yield);
    }
    singletons.release_for_exit(dict, reason === "stop");
    let node_stopped = false;
    if (liveness.over(dict, w.gen, reason === "stop")) {
        end_or_suspend(n, w, reason, known, failed);
        node_stopped = reason === "stop" && known && !w.left_idle;
    }
    w.done = true;
    lock.release(dict, hold);
    if (node_stopped && can_yield) {
        // outside the lock: a call to Redis may take its timeouts
        fleet.leave_on_stop();
    }
}

/**
 * This worker left its generation idle, and by the time it exits the node
 * stops after all, while the worker drained: nginx's master closed the
 * listening sockets, or this worker was told to terminate, which counts as a
 * stop that is only assumed. Nobody else may be left to run the master exit.
 */
function end_idle_on_stop(): void {
    const w = worker;
    const n = node;
    if (w === undefined || n === undefined || !w.left_idle) {
        return;
    }
    const dict = n.dict;
    const assumed = terminating() === true;
    if (!assumed && reasons.closed_now(dict, w.gen) !== true) {
        return;
    }
    w.left_idle = false;
    const hold = lock.acquire(dict, false);
    update_time();
    liveness.settle(dict, finder_for(n, w, true), [], now());
    if (!registry.recorded(dict, w.gen)) {
        resume.note_end(dict, w.config, w.gen, assumed);
    }
    lock.release(dict, hold);
}

/**
 * The lock for a heartbeat's work, or nil when this worker's exit began while
 * the beat waited for it: nginx fires the next beat early on QUIT and HUP and
 * does not wait for this one, and the exit (which looks around itself) has
 * done the work; restoring this worker now would count an exited worker.
 */
function lock_for_beat(w: Worker, dict: NgxSharedDict): lock.Hold | undefined {
    const hold = lock.acquire(dict, true);
    if (w.exited) {
        lock.release(dict, hold);
        return undefined;
    }
    return hold;
}

/** Records the listening sockets of `g`, which this worker holds, unless they are (listeners.ts). */
function note_listeners(dict: NgxSharedDict, g: number): void {
    if (registry.listeners(dict, g) !== undefined) {
        return;
    }
    const inodes = listeners.held();
    if (inodes !== undefined) {
        registry.note_listeners(dict, g, inodes);
    }
}

/** The heartbeat: proves this worker alive and looks for workers that died. */
function beat(w: Worker, n: Node): void {
    const dict = n.dict;
    // a stalled worker that runs again: its lost singletons stop first
    singletons.check_lost();
    update_time();
    const [pid] = registry.occupant(dict, w.gen, w.slot);
    if (pid !== w.pid || !registry.recorded(dict, w.gen)) {
        // This worker is alive and not exiting, so it must be counted: it was
        // dropped while it stalled, or the shm lost the module's keys.
        const hold = lock_for_beat(w, dict);
        if (hold === undefined) {
            return;
        }
        update_time();
        const [restored, recounted] = registry.restore(dict, w.gen, w.slot, w.pid, worker_count(), now());
        if (recounted && !w.counted) {
            log(WARN, "worker ", w.id, " is counted now: its keys did not fit in shm '", n.shm, "' when it started");
        } else if (recounted) {
            log(WARN, "worker ", w.id, " is alive but was not counted (it stalled over ", n.interval + n.failed,
                "s, or the shm lost the module's keys): restored ", restored);
        } else if (restored !== undefined) {
            log(WARN, "worker ", w.id, " found records of generation ", w.gen, " missing from shm '", n.shm,
                "' (lost, or not written while it was full): restored ", restored);
        }
        w.counted = w.counted || recounted;
        if (restored !== undefined) {
            note_listeners(dict, w.gen);
        }
        lock.release(dict, hold);
    }
    registry.heartbeat(dict, w.gen, w.slot, w.pid, now());
    w.turn = w.turn + 1;
    const finder = finder_for(n, w, false);
    const [suspects, closing] = liveness.look(dict, finder, w.gen, w.slot, w.turn, now());
    if (suspects.length > 0 || closing) {
        const hold = lock_for_beat(w, dict);
        if (hold === undefined) {
            return;
        }
        update_time();
        liveness.settle(dict, finder, suspects, now());
        // Callbacks run by settle may have taken a while, and may have
        // yielded to this worker's exit: a beat after it would leave a key
        // of its ended generation behind.
        update_time();
        if (!w.exited) {
            registry.heartbeat(dict, w.gen, w.slot, w.pid, now());
        }
        lock.release(dict, hold);
    }
    if (!w.exited) {
        singletons.on_beat();
    }
}

/** Says once why this worker's heartbeat missed runs, if it did (missed_beats.ts). */
function note_missed_beats(w: Worker, n: Node, at: number): void {
    const gap = at - w.last_beat;
    w.last_beat = at;
    const missed = missed_beats.missing(gap, n.interval);
    if (missed > 0 && !w.said_missed) {
        w.said_missed = true;
        log(WARN, missed_beats.explain(w.id, missed, gap, n.interval));
    }
}

/**
 * An ngx.timer.every timer: nginx arms the next run before it runs this
 * one, so neither a run it drops (lua_max_running_timers all busy) nor a
 * slow callback run by a beat ends the heartbeat.
 */
function on_beat(premature: boolean): void {
    const w = worker;
    const n = node;
    if (w === undefined || n === undefined || w.exited) {
        return;
    }
    if (premature) {
        // nginx fires pending timers early when this worker is told to quit
        // gracefully (QUIT, or HUP for the old generation).
        leave(true);
        return;
    }
    update_time();
    note_missed_beats(w, n, now());
    beat(w, n);
}

/**
 * The generation a starting worker of configuration `config` joins, under
 * the lock: that configuration's own, or the one that carries it since
 * (resume.ts), opened here, master start included, when nginx starts the
 * worker after the configuration's master exit ran on an assumed stop.
 * Also whether it opened one (its master start ran).
 */
function join(n: Node, config: number, pid: number): LuaMultiReturn<[number, boolean]> {
    const dict = n.dict;
    const carrier = resume.carrier(dict, config);
    if (carrier !== undefined || !resume.resumable(dict, config)) {
        return $multi(carrier ?? config, false);
    }
    update_time();
    const g = resume.open(dict, config, now());
    if (g === undefined) {
        return $multi(config, false);
    }
    log(NOTICE, "worker ", pid, " starts from the configuration of generation ", config, " after its master exit ",
        "ran on a fast exit (a stop, or a worker recycled with TERM): it opens generation ", g, " for it");
    const [n_prev] = registry.neighbours(dict, g, now(), n.failed);
    run("master start", n.master_start, g, n_prev, 0, undefined);
    return $multi(g, true);
}

/**
 * The configuration's generation and the slot of this process, nil when it
 * is no tracked worker (logged): the privileged agent, cache processes and
 * single-process mode run init_worker too, and a configuration the shm
 * refused to count has no generation.
 */
function tracked(n: Node): LuaMultiReturn<[number, number] | [undefined, undefined]> {
    const config = n.gen;
    const slot = worker_id();
    const kind = process_type();
    if (config === undefined || slot === undefined || kind !== "worker") {
        log(INFO, "process ", worker_pid(), " (", kind, ") is not a tracked worker");
        return $multi(undefined, undefined);
    }
    return $multi(config, slot);
}

/**
 * Noted before the lock wait, so that a death while waiting is seen: the
 * generation a starting worker arrives in early (nil for a worker of an
 * ended configuration: it is noted where it joins) and the pid it finds
 * there in its slot, a predecessor that died before it was counted.
 */
function arrive_early(dict: NgxSharedDict, config: number, slot: number,
                      pid: number): LuaMultiReturn<[number | undefined, number | undefined]> {
    let early = resume.carrier(dict, config);
    if (early === undefined && !registry.ended(dict, config)) {
        early = config;
    }
    if (early === undefined) {
        return $multi(undefined, undefined);
    }
    return $multi(early, registry.arrive(dict, early, slot, pid, worker_count()));
}

/** Whether the worker's keys fitted in the shm; a counted one records its listening sockets. */
function note_counted(n: Node, w: Worker, counted: boolean): void {
    w.counted = counted;
    if (!counted) {
        log(ERR, "worker ", w.id, " could not be counted (no room for its keys in shm '", n.shm,
            "'); its heartbeat counts it once there is room");
        return;
    }
    note_listeners(n.dict, w.gen);
}

/**
 * The start callback still counts the dead predecessor in this slot, as the
 * contract promises, but the shm drops it now: if this worker is killed in
 * its callback too, the next respawn must not find two to drop. Returns the
 * predecessor when its report could not be queued (shm full).
 */
function drop_predecessor(dict: NgxSharedDict, w: Worker, dead: number | undefined): number | undefined {
    if (dead === undefined) {
        return undefined;
    }
    const queued = registry.replace_dead(dict, w.gen, w.slot, dead, w.pid);
    liveness.free_singletons(dict, w.gen, dead, "crashed");
    if (queued) {
        return undefined;
    }
    return dead;
}

/** Runs the worker start callback with the counts; the hold, renewed after it. */
function run_worker_start(n: Node, w: Worker, start_cb: Callback | undefined, mine: number,
                          hold: lock.Hold): lock.Hold {
    const dict = n.dict;
    const [n_prev, n_next] = registry.neighbours(dict, w.gen, now(), n.failed);
    run("worker start", start_cb, w.id, n_prev, mine, n_next);
    const renewed = lock.renew(dict, hold, false);
    update_time();
    // A slow start callback must not make this worker look dead.
    registry.heartbeat(dict, w.gen, w.slot, w.pid, now());
    return renewed;
}

/**
 * The crashes of this slot's predecessors: normally just the one it
 * replaced; more when a respawned worker was killed in its own start
 * callback before it could report its predecessor; and `lost`, one killed
 * while it waited for the lock in generation `early`.
 */
function report_crashes_before(n: Node, w: Worker, unqueued: number | undefined, early: number | undefined,
                               lost: number | undefined): void {
    const dict = n.dict;
    let extra: { dead: number; by: number } | undefined = undefined;
    if (unqueued !== undefined) {
        extra = { dead: unqueued, by: w.pid };
    }
    reports.report_replaced(dict, n.on_crash, n.failed, w.gen, w.slot, now(), extra);
    if (lost === undefined || early === undefined) {
        return;
    }
    // Never counted, so nothing to drop, but the crash is still reported.
    log(ERR, "worker ", early, "-", lost, " (pid ", lost, ", slot ", w.slot, ") crashed while starting, before it ",
        "was counted: nginx respawned its slot as ", w.id);
    reports.announce_crash(dict, n.on_crash, n.failed, early, lost, w.slot, "crashed while starting",
                           registry.count(dict, early), now());
}

/** After the lock: this worker's singletons, the fleet agent, the heartbeat. */
function start_jobs(n: Node, w: Worker): void {
    const dict = n.dict;
    const g = w.gen;
    singletons.attach({ dict, gen: g, slot: w.slot, pid: w.pid, id: w.id, started: now() });
    if (n.cluster !== undefined) {
        // the node's fleet agent: a node singleton like the users' own
        fleet.attach(() => $multi(g, registry.count(dict, g)));
        leases.setup(n.cluster, dict, fleet.holder_id);
        singletons.add(fleet.AGENT, undefined, undefined, fleet.agent, n.cluster.interval);
    }

    w.last_beat = now();
    const [ok, err] = timer_every(n.interval, on_beat);
    if (!ok) {
        log(ERR, "could not start the heartbeat of worker ", w.id, ": ", err,
            "; its exit is tracked only through on_exit_worker_by_lua");
    }
}

/**
 * Counts this worker and runs its worker start callback before returning.
 * Call once, from init_worker_by_lua*, after on_init_by_lua ran in init_by_lua*.
 * @param worker_start `cb(worker_id, n_prev, n_mine, n_next)`, n_mine counting this worker
 * @param worker_exit `cb(worker_id, n_prev, n_mine, n_next)`, n_mine counting this worker
 * @return true
 */
function on_init_worker_by_lua(worker_start?: WorkerCallback, worker_exit?: WorkerCallback): true {
    check_phase("on_init_worker_by_lua", "init_worker", "init_worker_by_lua*");
    if (worker_hooked) {
        error("on_init_worker_by_lua was called twice in this worker", 2);
    }
    const start_cb = check_callback("worker_start callback", worker_start);
    const exit_cb = check_callback("worker_exit callback", worker_exit);
    const n = node;
    if (n === undefined) {
        error("on_init_worker_by_lua needs a successful on_init_by_lua in init_by_lua* first", 2);
    }
    worker_hooked = true;
    const [config, slot] = tracked(n);
    if (config === undefined || slot === undefined) {
        return true;
    }
    const dict = n.dict;
    const pid = worker_pid();
    const [early, lost] = arrive_early(dict, config, slot, pid);

    let hold = lock.acquire(dict, false);
    update_time();
    registry.sweep(dict, now(), n.failed);
    const [g, opened] = join(n, config, pid);
    if (g !== early) {
        registry.arrive(dict, g, slot, pid, worker_count());
    }
    if (opened) {
        hold = lock.renew(dict, hold, false);
        update_time();
    }
    const w: Worker = {
        gen: g, config, slot, pid, id: g + "-" + pid, exit: exit_cb, exited: false, reported: false, done: false,
        turn: 0, counted: false, reason: undefined, left_idle: false, last_beat: now(), said_missed: false,
    };
    const [mine, dead, counted] = registry.register(dict, g, slot, pid, worker_count(), now());
    if (mine === undefined) {
        lock.release(dict, hold);
        log(WARN, "worker ", w.id, " reached init_worker after generation ", g, " ended (its other workers ",
            "exited and its master exit ran): it is not tracked, no callback runs for it");
        return true;
    }
    note_counted(n, w, counted);
    const unqueued = drop_predecessor(dict, w, dead);
    worker = w;
    hold = run_worker_start(n, w, start_cb, mine, hold);
    report_crashes_before(n, w, unqueued, early, lost);
    lock.release(dict, hold);
    start_jobs(n, w);
    return true;
}

/**
 * Runs this worker's exit (and the master exit if it is the last) if no
 * graceful path ran it yet: needed for fast shutdown (TERM, `nginx -s stop`),
 * where nginx fires no timers. Call from exit_worker_by_lua*.
 * @return true
 */
function on_exit_worker_by_lua(): true {
    check_phase("on_exit_worker_by_lua", "exit_worker", "exit_worker_by_lua*");
    leave(false);
    end_idle_on_stop();
    return true;
}

/**
 * Why this worker exits, for its exit callback (or anything that runs after
 * its exit began): "reload" (a newer generation took over: n_next is a
 * number), "stop" (the node stops) or "replace" (nginx goes on with this
 * configuration without this worker: a signal sent to the worker itself,
 * or WINCH). Nil while this worker is not exiting, or is not tracked.
 */
function exit_reason(): ExitReason | undefined {
    const w = worker;
    if (w === undefined || !w.exited) {
        return undefined;
    }
    return w.reason;
}

/** Checks a singleton's name: part of shm keys and log lines. */
function check_name(fn: string, name: unknown, level: number): string {
    if (typeof name !== "string" || name === "" || name.length > MAX_NAME
        || string.find(name, "%c")[0] !== undefined) {
        error(fn + ": name must be a non-empty string of at most " + MAX_NAME + " bytes without control "
              + "characters, got " + describe(name), level);
    }
    if (string.sub(name, 1, RESERVED.length) === RESERVED) {
        error(fn + ": names starting with \"" + RESERVED + "\" are the module's own, got " + describe(name), level);
    }
    return name;
}

/** What singleton() and every() check first: phase, order, name (errors at their caller's line). */
function check_registration(fn: string, name: unknown): string {
    check_phase(fn, "init_worker", "init_worker_by_lua*", 4);
    const checked = check_name(fn, name, 4);
    if (!worker_hooked) {
        error(fn + " needs on_init_worker_by_lua in init_worker_by_lua* first", 3);
    }
    if (singletons.has(checked) || leases.has(checked)) {
        error(fn + ": singleton '" + checked + "' is registered twice in this worker", 3);
    }
    return checked;
}

/** A singleton's scope: "node" (the default) or "cluster", which needs opts.cluster. */
function check_scope(fn: string, what: string, scope: unknown): SingletonScope {
    if (scope === undefined || scope === "node") {
        return "node";
    }
    if (scope !== "cluster") {
        error(fn + ": " + what + " must be \"node\" or \"cluster\", got " + describe(scope), 4);
    }
    if (node?.cluster === undefined) {
        error(fn + ": scope \"cluster\" needs opts.cluster in on_init_by_lua", 4);
    }
    return "cluster";
}

/** A cluster singleton: a node singleton competes for its lease in Redis (cluster/leases.ts). */
function add_cluster(name: string, start: SingletonStart | undefined, stop: SingletonStop | undefined,
                     fn: SingletonFn | undefined, seconds: number): void {
    const n = node as Node;
    const internal = leases.add(name, start, stop, fn, seconds);
    singletons.add(internal, undefined, leases.on_node_stop, leases.round, (n.cluster as ClusterConfig).interval);
}

/**
 * Registers a singleton: one worker of the node runs `job.start(name,
 * token)`, and `job.stop(name, token, reason)` when its holding ends; the job
 * moves through reloads, crashes and stalls. Call in every worker, from
 * init_worker_by_lua*, after on_init_worker_by_lua.
 * @return true
 */
function singleton(name: string, job: SingletonJob | SingletonJobWithStop): true {
    const checked = check_registration("singleton", name);
    if (type(job) !== "table") {
        error("singleton: job must be a table with a start function, got " + type(job), 2);
    }
    const j = job as { start?: unknown; stop?: unknown; scope?: unknown };
    if (type(j.start) !== "function") {
        error("singleton: job.start must be a function, got " + type(j.start), 2);
    }
    if (j.stop !== undefined && type(j.stop) !== "function") {
        error("singleton: job.stop must be a function or nil, got " + type(j.stop), 2);
    }
    const scope = check_scope("singleton", "job.scope", j.scope);
    if (worker === undefined) {
        return true;
    }
    if (scope === "cluster") {
        add_cluster(checked, j.start as SingletonStart, j.stop as SingletonStop | undefined, undefined, 0);
    } else {
        singletons.add(checked, j.start as SingletonStart, j.stop as SingletonStop | undefined, undefined, 0);
    }
    return true;
}

/**
 * Registers a periodic singleton: `fn(name, token)` runs in the worker that
 * holds `name`, at once, then every `interval` seconds; runs never overlap,
 * also when the job moves. Call like singleton().
 * @return true
 */
function every(name: string, interval: number, fn: SingletonFn, opts?: EveryOptions): true {
    const checked = check_registration("every", name);
    const seconds = check_seconds("every: interval", interval, 0, 3);
    if (type(fn) !== "function") {
        error("every: fn must be a function, got " + type(fn), 2);
    }
    if (opts !== undefined && type(opts) !== "table") {
        error("every: opts must be a table or nil, got " + type(opts), 2);
    }
    const scope = check_scope("every", "opts.scope", opts?.scope);
    if (worker === undefined) {
        return true;
    }
    if (scope === "cluster") {
        add_cluster(checked, undefined, undefined, fn, seconds);
    } else {
        singletons.add(checked, undefined, undefined, fn, seconds);
    }
    return true;
}

/**
 * Whether this worker holds the singleton `name` now, and the holding's
 * token; false (and nil) otherwise. Any phase after init_worker.
 */
function holds(name: string): LuaMultiReturn<[true, number] | [false, undefined]> {
    check_name("holds", name, 3);
    if (leases.has(name)) {
        return leases.holds(name) as LuaMultiReturn<[true, number] | [false, undefined]>;
    }
    return singletons.holds(name) as LuaMultiReturn<[true, number] | [false, undefined]>;
}

/**
 * The node's current view: generations with their workers, the newest
 * generation, crashes seen. Read-only; any phase after init_by_lua.
 * @return the view, or nil and an error when the module is not set up here
 */
function status(): LuaMultiReturn<[Status] | [undefined, string]> {
    const n = node;
    if (n === undefined) {
        return $multi(undefined, "on_init_by_lua was not called in this nginx configuration");
    }
    return $multi(read_status(n.dict, n.failed));
}

/**
 * The fleet as this node last saw it: each member's name, when it joined,
 * its generation and workers, when it was last seen. Read from the node's
 * shm (no network call); empty without opts.cluster or before the first
 * refresh. Any phase after init_by_lua.
 */
function nodes(): FleetNode[] {
    return fleet.nodes();
}

const _VERSION: string = "0.1.0";

export {
    _VERSION, on_init_by_lua, on_init_worker_by_lua, on_exit_worker_by_lua, status, exit_reason, singleton, every,
    holds, nodes,
};
export type {
    Options, OptionsWithCrash, Callback, MasterCallback, WorkerCallback, CrashCallback, Status, ExitReason,
    SingletonJob, SingletonJobWithStop, SingletonStart, SingletonStop, SingletonFn, StopReason, ClusterOptions,
    RedisOptions, FleetCallback, FleetNode, LeaveReason, SingletonScope, EveryOptions,
};
