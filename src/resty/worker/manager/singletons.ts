/**
 * Singletons in this worker: the jobs it registered (manager.singleton and
 * manager.every), which of them it holds, and the timers that run their
 * code. Who holds what is decided in the shm under the node lock
 * (holding.ts); user code (start, stop, fn) always runs outside the lock, in
 * a timer of the holder, except a stop for a fast exit, which runs in the
 * exit hook.
 *
 * A worker looks at its jobs when the epoch moves (a holding ended, a newer
 * generation registered a name), with one shm read per WATCH seconds when
 * nothing moves, and at every heartbeat. A holding ends only after its stop
 * returned, so the next start of the name always begins after it, unless
 * the holder died or was dropped as stalled (then no stop can run first).
 */

import * as holding from "./holding";
import * as registry from "./registry";
import * as lock from "./lock";
import { pid_alive } from "./host";
import { log } from "./log";
import { run_job } from "./callbacks";
import type { ExitReason, SingletonFn, SingletonStart, SingletonStop, StopReason } from "resty.worker.manager";

const [ERR, NOTICE] = [ngx.ERR, ngx.NOTICE];
const [now, update_time, sleep] = [ngx.now, ngx.update_time, ngx.sleep];
const [timer_at, timer_every] = [ngx.timer.at, ngx.timer.every];
const worker_exiting = ngx.worker.exiting;

/** Seconds between two looks at the epoch: how soon a freed job is taken up. */
const WATCH = 0.01;
/** Step of an exiting holder's wait for its running start or fn to return. */
const BUSY_STEP = 0.001;

/** What a singleton is, node or cluster: singleton() gives start and stop, every() fn and interval. */
interface JobSpec {
    name: string;
    start: SingletonStart | undefined;
    stop: SingletonStop | undefined;
    /** every(): the function run every `interval` seconds while held. */
    fn: SingletonFn | undefined;
    interval: number;
}

/** A job registered in this worker. */
interface Job extends JobSpec {
    /** The token of this worker's holding, while it holds the name (or believes it does). */
    token: number | undefined;
    /** Its start (or fn) began: a stop is owed. */
    started: boolean;
    /** Its start or fn runs now, in a timer of this worker. */
    busy: boolean;
    /** A stop asked for while it was busy: it runs once that returns. */
    pending: StopReason | undefined;
    /** Its stop runs now (or ran, for an exit that releases it next). */
    stopping: boolean;
    /** The exit of this worker ran its stop: the exit releases it. */
    stopped_for_exit: boolean;
    /** every(): a timer for the next run is armed. */
    armed: boolean;
    /** every(): when the next run is due. */
    due: number;
}

/** This worker, as the node counts it. */
interface ThisWorker {
    dict: NgxSharedDict;
    gen: number;
    slot: number;
    pid: number;
    id: string;
    /** When it started: a tombstone older than that is of a stop that did not come. */
    started: number;
}

const jobs: Job[] = [];
const by_name: { [name: string]: Job | undefined } = {};
let me: ThisWorker | undefined = undefined;
/** The epoch this worker last looked at its jobs for. */
let seen = -1;
/** A job of this worker waits for a holder of an older generation: look at every tick. */
let waiting = false;
/** Its names are in the shm's registry. */
let registered = false;
let exiting = false;
/** A look is under way (it may yield, waiting for the lock). */
let looking = false;

/** Runs user code protected; an error is logged with the name, token and worker id. */
function call(what: string, job: Job, token: number, f: SingletonStop, reason?: StopReason): void {
    run_job("singleton", what, job.name, me?.id ?? "?", token, f, reason);
}

/**
 * Whether `name` belongs to generation `g`: no newer generation with
 * counted workers registered it.
 */
function belongs_to(dict: NgxSharedDict, name: string, g: number): boolean {
    const newest = holding.registered_by(dict, name);
    return newest === undefined || newest <= g || registry.count(dict, newest) <= 0;
}

/**
 * Whether `w` may take a name held as `h`: nobody holds it, its holder
 * died, or it is a tombstone of a stop that did not come (its holder is
 * gone and this worker started since: nginx went on).
 */
function free_for(w: ThisWorker, h: holding.Holder | undefined): boolean {
    if (h === undefined) {
        return true;
    }
    if (h.pid === w.pid) {
        return false;
    }
    if (h.stopped) {
        return w.started > h.since && !pid_alive(h.pid);
    }
    return !pid_alive(h.pid);
}

/** This worker is counted in its slot (not dropped as stalled meanwhile). */
function counted(w: ThisWorker): boolean {
    const [pid] = registry.occupant(w.dict, w.gen, w.slot);
    return pid === w.pid;
}

/** The holding `job` believes it has is no longer this worker's (it was dropped meanwhile). */
function is_lost(w: ThisWorker, job: Job): boolean {
    const h = holding.holder(w.dict, job.name);
    return h === undefined || h.pid !== w.pid || h.token !== job.token || h.stopped;
}

/** Ends `job`'s holding here: its stop (if its start ran), then, unless lost, the record. */
function stop_now(job: Job, reason: StopReason): void {
    const w = me;
    const token = job.token;
    if (w === undefined || token === undefined || job.stopping) {
        return;
    }
    job.stopping = true;
    job.pending = undefined;
    if (job.started && job.stop !== undefined) {
        call("stop", job, token, job.stop, reason);
    }
    if (reason !== "lost") {
        const hold = lock.acquire(w.dict, true);
        update_time();
        holding.release(w.dict, job.name, w.pid, token, now(), false);
        lock.release(w.dict, hold);
    }
    job.token = undefined;
    job.started = false;
    job.stopping = false;
}

function on_stop_timer(premature: boolean, job: Job, token: number, reason: StopReason): void {
    // premature: this worker exits, and its exit runs the stop
    if (!premature && job.token === token) {
        stop_now(job, reason);
    }
}

/** Asks `job` to stop: now in a timer of its own, or once its running start or fn returns. */
function request_stop(job: Job, reason: StopReason): void {
    if (job.token === undefined || job.stopping) {
        return;
    }
    if (job.busy) {
        if (job.pending === undefined || reason === "lost") {
            job.pending = reason;
        }
        return;
    }
    job.pending = reason;
    const [ok, err] = timer_at(0, on_stop_timer, job, job.token, reason);
    if (!ok) {
        log(ERR, "could not start a timer for the stop of singleton '", job.name, "': ", err, "; stopping it here");
        stop_now(job, reason);
    }
}

/**
 * Runs the stop of every job whose holding this worker lost (it was dropped
 * for an overdue heartbeat and another worker took the job), here and now:
 * every entry into this worker's singleton code calls it first, so that such
 * a stop runs before any other of its callbacks.
 */
function check_lost(): void {
    const w = me;
    if (w === undefined) {
        return;
    }
    for (const job of jobs) {
        if (job.token !== undefined && !job.stopping && job.pending !== "lost" && is_lost(w, job)) {
            log(NOTICE, "worker ", w.id, " lost singleton '", job.name, "' (token ", job.token,
                ") while it did not beat: another worker took it over");
            if (job.busy) {
                job.pending = "lost";
            } else {
                stop_now(job, "lost");
            }
        }
    }
}

/** After a start or fn returned: the stop asked for meanwhile. */
function after_busy(job: Job): void {
    job.busy = false;
    const reason = job.pending;
    if (reason !== undefined && !exiting) {
        stop_now(job, reason);
    }
}

type FnTimer = (this: void, premature: boolean, job: Job, token: number) => void;

/** Arms the timer of the next run of an every() job, `interval` after `began`. */
function arm(job: Job, token: number, began: number, on_timer: FnTimer): void {
    update_time();
    job.due = began + job.interval;
    const [ok, err] = timer_at(math.max(0, job.due - now()), on_timer, job, token);
    job.armed = ok === true;
    if (!ok) {
        log(ERR, "could not start the timer of singleton '", job.name, "' in worker ", me?.id ?? "?", ": ", err,
            "; it runs at the next heartbeat instead");
    }
}

/**
 * One run of an every() job: when it began if a next run is due, nil if the
 * job ended meanwhile or this worker exits.
 */
function run_fn(job: Job, token: number): number | undefined {
    const fn = job.fn;
    if (fn === undefined) {
        return undefined;
    }
    update_time();
    const began = now();
    job.busy = true;
    job.started = true;
    call("fn", job, token, fn as SingletonStop);
    after_busy(job);
    // (nginx refuses new timers once the worker exits; its exit stops the job)
    if (job.token !== token || job.stopping || exiting || worker_exiting()) {
        return undefined;
    }
    return began;
}

/** The timer of an every() job: one run, then the next one armed. */
function on_fn_timer(premature: boolean, job: Job, token: number): void {
    job.armed = false;
    if (premature || exiting) {
        return;
    }
    check_lost();
    if (job.token !== token || job.stopping || job.pending !== undefined || job.busy) {
        return;
    }
    const began = run_fn(job, token);
    if (began !== undefined) {
        arm(job, token, began, on_fn_timer);
    }
}

/** Runs an every() job now and arms its next run. */
function run_fn_and_arm(job: Job, token: number): void {
    const began = run_fn(job, token);
    if (began !== undefined) {
        arm(job, token, began, on_fn_timer);
    }
}

function on_start_timer(premature: boolean, job: Job, token: number): void {
    // premature: this worker exits before the start ran; its exit frees the
    // name without a stop (nothing was started)
    if (premature || exiting) {
        return;
    }
    check_lost();
    if (job.token !== token || job.stopping || job.pending !== undefined) {
        return;
    }
    if (job.fn !== undefined) {
        run_fn_and_arm(job, token);
        return;
    }
    const start = job.start;
    job.busy = true;
    job.started = true;
    if (start !== undefined) {
        call("start", job, token, start as SingletonStop);
    }
    after_busy(job);
}

/** The holding of `job` began: its start (or first run) in a timer of its own. */
function begin(job: Job, token: number): void {
    const [ok, err] = timer_at(0, on_start_timer, job, token);
    if (!ok) {
        log(ERR, "could not start a timer for singleton '", job.name, "' in worker ", me?.id ?? "?", ": ", err,
            "; starting it here");
        on_start_timer(false, job, token);
    }
}

/** Under the lock: registers this worker's names (once) and claims those free for it. */
function claim_free(w: ThisWorker): Job[] {
    const dict = w.dict;
    const claimed: Job[] = [];
    if (!registered) {
        registered = true;
        for (const job of jobs) {
            holding.register(dict, job.name, w.gen);
        }
    }
    if (exiting || !counted(w)) {
        return claimed;
    }
    update_time();
    for (const job of jobs) {
        if (job.token === undefined && belongs_to(dict, job.name, w.gen)) {
            const h = holding.holder(dict, job.name);
            if (free_for(w, h)) {
                if (h !== undefined) {
                    log(NOTICE, "singleton '", job.name, "' (token ", h.token, ") was held by worker ", h.gen, "-",
                        h.pid, ", which is gone", h.stopped ? " after it stopped the job for a stop that did not come"
                                                          : "", ": worker ", w.id, " takes it over");
                    holding.free_name(dict, job.name);
                }
                const token = holding.claim(dict, job.name, w, now());
                if (token !== undefined) {
                    job.token = token;
                    job.started = false;
                    job.pending = undefined;
                    claimed.push(job);
                }
            }
        }
    }
    return claimed;
}

/**
 * Looks at this worker's jobs: gives up those that belong to a newer
 * generation now, and takes those free for it (under the lock, only when
 * there is one to take).
 */
function look(): void {
    const w = me;
    if (w === undefined || exiting || looking) {
        return;
    }
    looking = true;
    check_lost();
    const dict = w.dict;
    seen = holding.epoch(dict);
    let wanted = !registered;
    let blocked = false;
    for (const job of jobs) {
        if (job.token !== undefined) {
            if (!job.stopping && job.pending === undefined && !belongs_to(dict, job.name, w.gen)) {
                request_stop(job, "reload");
            }
        } else if (belongs_to(dict, job.name, w.gen)) {
            const h = holding.holder(dict, job.name);
            if (free_for(w, h)) {
                wanted = true;
            } else if (h !== undefined && !h.stopped && h.gen < w.gen) {
                // an older holder about to give it up, or dead without a word
                blocked = true;
            }
        }
    }
    waiting = blocked;
    if (wanted) {
        const hold = lock.acquire(dict, true);
        const claimed = claim_free(w);
        lock.release(dict, hold);
        for (const job of claimed) {
            begin(job, job.token as number);
        }
    }
    looking = false;
}

function on_watch(premature: boolean): void {
    const w = me;
    if (premature || w === undefined || exiting) {
        return;
    }
    if (waiting || holding.epoch(w.dict) !== seen) {
        look();
    }
}

function on_ready(premature: boolean): void {
    if (!premature) {
        look();
    }
}

/** This worker is counted: its jobs may be held from now on. */
function attach(w: ThisWorker): void {
    me = w;
}

/** Whether `name` is registered in this worker already. */
function has(name: string): boolean {
    return by_name[name] !== undefined;
}

/**
 * Registers a job in this worker (init_worker); the first one also starts
 * the look after init_worker and the watch.
 */
function add(name: string, start: SingletonStart | undefined, stop: SingletonStop | undefined,
             fn: SingletonFn | undefined, interval: number): void {
    const job: Job = {
        name, start, stop, fn, interval, token: undefined, started: false, busy: false, pending: undefined,
        stopping: false, stopped_for_exit: false, armed: false, due: 0,
    };
    jobs.push(job);
    by_name[name] = job;
    if (jobs.length > 1 || me === undefined) {
        return;
    }
    let [ok, err] = timer_at(0, on_ready);
    if (ok) {
        [ok, err] = timer_every(WATCH, on_watch);
    }
    if (!ok) {
        log(ERR, "could not start the timers of the singletons of worker ", me.id, ": ", err,
            "; they are taken up at its heartbeats only");
    }
}

/**
 * Whether this worker holds `name` and may go on with it: no stop asked for
 * or under way, not exiting, not lost. For the module's own long runs.
 */
function keeps(name: string): boolean {
    const w = me;
    const job = by_name[name];
    return w !== undefined && job !== undefined && job.token !== undefined && job.pending === undefined
        && !job.stopping && !exiting && !worker_exiting() && !is_lost(w, job);
}

/** Whether this worker holds `name` now, and the holding's token. */
function holds(name: string): LuaMultiReturn<[boolean, number | undefined]> {
    const w = me;
    const job = by_name[name];
    if (w === undefined || job === undefined || job.token === undefined || job.pending === "lost"
        || is_lost(w, job)) {
        return $multi(false, undefined);
    }
    return $multi(true, job.token);
}

/**
 * At each heartbeat, after check_lost: a look (in case the watch could not
 * start), and every() runs whose timer could not be armed.
 */
function on_beat(): void {
    if (jobs.length === 0) {
        return; // a worker without singletons reads nothing of theirs
    }
    look();
    update_time();
    for (const job of jobs) {
        const token = job.token;
        if (token !== undefined && job.fn !== undefined && job.started && !job.armed && !job.busy && !job.stopping
            && job.pending === undefined && !exiting && now() >= job.due) {
            run_fn_and_arm(job, token);
        }
    }
}

/**
 * This worker exits: no more claims or runs; the stop of each job it holds
 * runs here (after its running start or fn returned, where this can wait),
 * with the exit's reason; the holdings end under the exit's lock
 * (release_for_exit).
 */
function stop_for_exit(reason: ExitReason, can_yield: boolean): void {
    const w = me;
    exiting = true;
    if (w === undefined) {
        return;
    }
    check_lost();
    const why: StopReason = reason === "replace" ? "exit" : reason;
    for (const job of jobs) {
        while (can_yield && job.busy && job.token !== undefined) {
            sleep(BUSY_STEP);
        }
        const token = job.token;
        if (token !== undefined && !job.stopping) {
            if (job.pending === "lost" || is_lost(w, job)) {
                stop_now(job, "lost");
            } else {
                job.stopping = true;
                job.stopped_for_exit = true;
                if (job.started && job.stop !== undefined) {
                    call("stop", job, token, job.stop, why);
                }
            }
        }
    }
}

/** Under the exit's lock: ends the holdings whose stop the exit ran; a stop of the node leaves tombstones. */
function release_for_exit(dict: NgxSharedDict, node_stops: boolean): void {
    const w = me;
    if (w === undefined) {
        return;
    }
    update_time();
    for (const job of jobs) {
        const token = job.token;
        if (token !== undefined && job.stopped_for_exit) {
            holding.release(dict, job.name, w.pid, token, now(), node_stops);
            job.token = undefined;
            job.stopped_for_exit = false;
        }
    }
}

export { attach, has, add, holds, keeps, check_lost, on_beat, stop_for_exit, release_for_exit, WATCH };
export type { JobSpec };
