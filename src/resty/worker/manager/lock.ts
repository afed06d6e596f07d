/**
 * The node-wide lock: one shm key, taken with add(key, owner, exptime) and
 * released with delete(key), the same protocol as lua-resty-lock, so users can
 * take it with resty.lock too. Unlike resty.lock it records its owner ("pid:n")
 * and releases only its own hold, and it can wait where ngx.sleep is disabled
 * (init_by_lua, init_worker_by_lua, exit_worker_by_lua) by blocking briefly.
 */

import { log } from "./log";
import { LOCK } from "./keys";
import { pause, pid_alive, free_dead_shm_mutex } from "./host";

const [ERR, WARN, NOTICE] = [ngx.ERR, ngx.WARN, ngx.NOTICE];
const [now, update_time, sleep] = [ngx.now, ngx.update_time, ngx.sleep];
const worker_pid = ngx.worker.pid;

/** Seconds a hold lasts unless renewed: a hung holder cannot block the node forever. */
const EXPTIME = 30;
/** Seconds a waiter tries before it gives up and goes on unlocked (logged). */
const MAX_WAIT = EXPTIME + 5;
/** Steps of a waiter that blocks (usleep has microseconds). */
const FIRST_STEP = 0.0002;
const MAX_STEP = 0.001;
/**
 * The step of a waiter that yields: nginx's timers count whole
 * milliseconds, and ngx.sleep of less sleeps 0 ms, with a warning in the
 * error log on nginx builds without OpenResty's delayed-events patch.
 */
const YIELD_STEP = 0.001;
/** Seconds of life a dead hold must have left for a takeover to delete it. */
const TAKEOVER_MARGIN = 1;
/** Seconds between two checks that the same holder still lives. */
const CHECK_HOLDER_AFTER = 0.005;

/**
 * A key of the lock key's size (same slab class) kept allocated: when the shm
 * is full and the lock key finds no room, deleting it makes that room, so
 * callbacks still run one at a time. Put back after every release.
 */
const RESERVE = LOCK + ":reserve";

/** What a hold is: the token written as the key's value. UNLOCKED when we gave up waiting. */
type Hold = string;
const UNLOCKED: Hold = "";

let taken = 0;
/** This process's hold, while it has one. */
let current: Hold | undefined = undefined;

/** The pid in a holder token "pid:n"; nil for holders that are not ours (resty.lock writes true). */
function holder_pid(holder: unknown): number | undefined {
    if (typeof holder !== "string") {
        return undefined;
    }
    const [digits] = string.match(holder, "^(%d+):");
    if (digits === undefined) {
        return undefined;
    }
    return tonumber(digits);
}

/** The holder a waiter last looked at, and when it last asked whether it lives. */
interface Watch {
    holder: unknown;
    checked_at: number;
}

/**
 * Deletes the hold of a holder that died without releasing (kill -9,
 * segfault): its pid is gone, so waiting for the expiry would only stall the
 * node. True when the caller should try to take the lock again at once.
 */
function take_over_if_dead(dict: NgxSharedDict, watch: Watch): boolean {
    const [holder] = dict.get(LOCK);
    // Whether the holder lives is asked when a hold is first seen, then
    // every CHECK_HOLDER_AFTER: it costs a syscall and a /proc read, and
    // dozens of workers starting at once would otherwise ask it at every
    // step of their wait.
    const t = now();
    if (holder === watch.holder && t - watch.checked_at < CHECK_HOLDER_AFTER) {
        return false;
    }
    watch.holder = holder;
    watch.checked_at = t;
    const pid = holder_pid(holder);
    if (pid === undefined || pid_alive(pid)) {
        return false;
    }
    // Of several waiters only the one that marks this dead hold first
    // deletes it; the others could delete the winner's new hold. A dead hold
    // about to expire is left to expire: between our read and our delete it
    // could expire and be retaken by someone else. (A marker that finds no
    // room in a full zone is a takeover not tried: the hold expires.)
    const [won] = dict.safe_add(LOCK + ":takeover:" + (holder as string), true, EXPTIME);
    const [left] = dict.ttl(LOCK);
    if (!won || left === undefined || left <= TAKEOVER_MARGIN) {
        return false;
    }
    const [again] = dict.get(LOCK);
    if (again === holder) {
        dict.delete(LOCK);
        log(WARN, "took over the node lock from dead process ", pid);
    }
    return true;
}

/** Waits one step between two tries; the next step's length. */
function wait_a_step(dict: NgxSharedDict, can_yield: boolean, step: number): number {
    if (can_yield) {
        sleep(YIELD_STEP);
    } else {
        pause(step);
        // Where this process cannot yield it may be the master in
        // init_by_lua, which a dead process's hold of the zone would
        // block for good (see free_dead_shm_mutex).
        free_dead_shm_mutex(dict);
    }
    return math.min(step * 2, MAX_STEP);
}

/**
 * Takes the lock, waiting at most `max_wait` seconds: the hold, or nil and
 * "timeout" when the wait ran out, or nil and the shm's error (logged).
 * With `can_yield` (timer or request context) it waits with ngx.sleep,
 * otherwise it blocks the process in short steps; either way it refreshes
 * nginx's cached clock, which shm expiry is judged by.
 */
function try_acquire(
    dict: NgxSharedDict, can_yield: boolean, max_wait: number,
): LuaMultiReturn<[Hold, undefined] | [undefined, string]> {
    taken = taken + 1;
    const token = worker_pid() + ":" + taken;
    update_time();
    const deadline = now() + max_wait;
    const watch: Watch = { holder: undefined, checked_at: now() };
    let step = FIRST_STEP;
    let reserve = true;
    while (true) {
        const [ok, err] = dict.safe_add(LOCK, token, EXPTIME);
        if (ok) {
            current = token;
            return $multi(token, undefined);
        }
        if (err === "no memory" && reserve) {
            // the zone is full: free the reserve's room and try again at once
            reserve = false;
            dict.delete(RESERVE);
        } else if (err !== "exists") {
            log(ERR, "cannot take the node lock '", LOCK, "': ", err, "; going on without it");
            return $multi(undefined, err ?? "unknown error");
        } else if (!take_over_if_dead(dict, watch)) {
            update_time();
            if (now() >= deadline) {
                return $multi(undefined, "timeout");
            }
            step = wait_a_step(dict, can_yield, step);
        }
    }
}

/**
 * Takes the lock, waiting as long as needed (bounded by MAX_WAIT, after which
 * it goes on unlocked and says so).
 */
function acquire(dict: NgxSharedDict, can_yield: boolean): Hold {
    const [hold, err] = try_acquire(dict, can_yield, MAX_WAIT);
    if (hold !== undefined) {
        return hold;
    }
    if (err === "timeout") {
        const [holder] = dict.get(LOCK);
        log(ERR, "waited ", MAX_WAIT, "s for the node lock held by '", tostring(holder), "'; going on without it");
    }
    return UNLOCKED;
}

/** True while this process holds the lock (inside a callback, say). */
function held(): boolean {
    return current !== undefined;
}

/** This process's hold, if it has one. */
function mine(): Hold | undefined {
    return current;
}

/**
 * Makes sure the hold is still ours before more work is done under it, and
 * renews its expiry. A callback that ran past the expiry lost the lock: then
 * the lock is taken again rather than working unlocked.
 */
function renew(dict: NgxSharedDict, hold: Hold, can_yield: boolean): Hold {
    if (hold === UNLOCKED) {
        return acquire(dict, can_yield);
    }
    const [holder] = dict.get(LOCK);
    if (holder === hold) {
        // the same value again: written in place, so only a wrong zone fails
        const [ok, err] = dict.safe_set(LOCK, hold, EXPTIME);
        if (!ok) {
            log(ERR, "cannot renew the node lock '", LOCK, "': ", err, "; it expires ", EXPTIME, "s after it was taken");
        }
        return hold;
    }
    current = undefined;
    log(WARN, "the node lock expired while held by ", hold, " (a callback ran over ", EXPTIME,
        "s); taking it again");
    return acquire(dict, can_yield);
}

/**
 * Puts the reserve back (or keeps it) in the room the lock key just freed.
 * Another process may take that room first in a full zone: then the next
 * take of the lock in a full zone fails, and says so.
 */
function keep_reserve(dict: NgxSharedDict): void {
    const [ok, err] = dict.safe_add(RESERVE, true);
    if (!ok && err !== "exists") {
        log(NOTICE, "the node lock's reserve key '", RESERVE, "' is not back: ", err);
    }
}

/** Releases the lock if, and only if, it is still this hold. */
function release(dict: NgxSharedDict, hold: Hold): void {
    if (hold === UNLOCKED) {
        return;
    }
    current = undefined;
    const [holder] = dict.get(LOCK);
    if (holder === hold) {
        dict.delete(LOCK);
        keep_reserve(dict);
    } else {
        log(WARN, "the node lock expired while held by ", hold, "; not releasing ",
            tostring(holder), "'s hold");
    }
}

export { try_acquire, acquire, held, mine, renew, release, EXPTIME, UNLOCKED };
export type { Hold };
