/**
 * The bookkeeping behind the four counts: generations and the workers counted
 * in each, as a few small shm keys per generation (see keys.ts). Every
 * function that writes is called with the node lock held; this module knows
 * nothing of phases, callbacks or the lock itself.
 *
 * Per generation: `arrived` workers reached init_worker (ever), `live` are
 * counted now. A worker is counted exactly while its pid is in its slot's
 * key, so whoever removes that key (its own exit, or the one who found it
 * dead) is the one who uncounts it. Before that, each worker writes its pid
 * as its slot's arrival without waiting for the lock: an arrival that is not
 * (yet) in the slot is a worker still starting; counting it removes it.
 *
 * A counted worker has that one key, which also holds its heartbeat and
 * start time (record.ts).
 *
 * One word for each stage of a generation `g`, in order: `recorded` (its
 * master start wrote its keys), `active` (it has workers, or may still get
 * one: `failed` seconds after its master start), `emptied` (it had workers
 * and none is counted now), `over` (emptied, and none of its processes runs:
 * it may get its master exit; liveness.ts), `ended` (its master exit ran and
 * its keys are gone). `rolled_back`: recorded, never active (nginx kept the
 * old configuration).
 */

import * as keys from "./keys";
import { read_number, read_string, write, add, remove } from "./store";
import * as record from "./record";
import { log } from "./log";

const NOTICE = ngx.NOTICE;

/** The pid counted in slot `s` of `g`, if any. */
function counted_pid(dict: NgxSharedDict, g: number, s: number): number | undefined {
    const [pid] = record.get(dict, keys.slot(g, s));
    return pid;
}

/** Starts a new generation (master start); its number, or nil if the shm refused. */
function begin_generation(dict: NgxSharedDict, now: number): number | undefined {
    const g = add(dict, keys.TOP, 1);
    if (g === undefined) {
        return undefined;
    }
    write(dict, keys.gen(g), now);
    if (read_number(dict, keys.LOW) === undefined) {
        write(dict, keys.LOW, g);
    }
    return g;
}

/**
 * Notes that worker `pid` of `g` exists, before it waits for the lock.
 * Returns the slot's previous arrival that never got counted, if any: a
 * worker that died while it was starting (nginx respawned its slot).
 */
function arrive(dict: NgxSharedDict, g: number, s: number, pid: number, workers: number): number | undefined {
    const previous = read_number(dict, keys.arrival(g, s));
    write(dict, keys.size(g), workers);
    write(dict, keys.arrival(g, s), pid);
    add(dict, keys.arrived(g), 1);
    if (previous !== undefined && previous !== pid && previous !== counted_pid(dict, g, s)) {
        return previous;
    }
    return undefined;
}

function recorded(dict: NgxSharedDict, g: number): boolean {
    return read_number(dict, keys.gen(g)) !== undefined;
}

/** Workers counted in generation `g`. */
function count(dict: NgxSharedDict, g: number): number {
    return read_number(dict, keys.live(g)) ?? 0;
}

/** Number of slots of `g` (its worker_processes), 0 if unknown. */
function slots(dict: NgxSharedDict, g: number): number {
    return read_number(dict, keys.size(g)) ?? 0;
}

/**
 * True while fewer workers of `g` reached init_worker than it has slots, and
 * `g` is younger than `failed` seconds: nginx forks a generation's workers
 * together, so only then may a missing one still come (one whose code before
 * this module's hook failed never will).
 */
function unarrived(dict: NgxSharedDict, g: number, now: number, failed: number): boolean {
    const started = read_number(dict, keys.gen(g));
    return started !== undefined && now - started < failed && (read_number(dict, keys.arrived(g)) ?? 0) < slots(dict, g);
}

/** Pids of `g` that arrived but are not counted: starting (or died while starting). */
function starting(dict: NgxSharedDict, g: number): number[] {
    const pids: number[] = [];
    for (const s of $range(0, slots(dict, g) - 1)) {
        const pid = read_number(dict, keys.arrival(g, s));
        if (pid !== undefined && pid !== counted_pid(dict, g, s)) {
            pids.push(pid);
        }
    }
    return pids;
}


/** The pid counted in slot `s` of `g`, its last heartbeat and when it started. */
function occupant(dict: NgxSharedDict, g: number, s: number):
    LuaMultiReturn<[number | undefined, number | undefined, number | undefined]> {
    return record.get(dict, keys.slot(g, s));
}

/**
 * The ended generations are kept as one entry: the newest of them as the
 * value, and which of the 31 before it ended as the flags (bit i: newest -
 * 1 - i; flags are a signed 32-bit int), so that the entry stays small
 * however many reloads there were.
 */
const ENDED_SPAN = 31;
const MASK_LIMIT = 2 ** ENDED_SPAN;

function ended_set(dict: NgxSharedDict): LuaMultiReturn<[number | undefined, number]> {
    const [newest, mask] = dict.get(keys.ENDED);
    return $multi(typeof newest === "number" ? newest : undefined, typeof mask === "number" ? mask : 0);
}

/** Whether bit `i` of `mask` is set (plain arithmetic: LuaJIT's bit ops are signed). */
function bit_set(mask: number, i: number): boolean {
    return math.floor(mask / 2 ** i) % 2 === 1;
}

/** Remembers that the master exit of `g` ran. */
function note_ended(dict: NgxSharedDict, g: number): void {
    const [newest, mask] = ended_set(dict);
    if (newest === undefined || g > newest) {
        // `newest` becomes bit g - newest - 1; older ones move up with it
        const shift = newest !== undefined ? g - newest : ENDED_SPAN + 1;
        const kept = shift > ENDED_SPAN ? 0 : ((mask * 2 + 1) * 2 ** (shift - 1)) % MASK_LIMIT;
        write(dict, keys.ENDED, g, kept);
    } else if (g < newest && newest - g <= ENDED_SPAN && !bit_set(mask, newest - g - 1)) {
        write(dict, keys.ENDED, newest, mask + 2 ** (newest - g - 1));
    }
}

/**
 * The master exit of `g` ran: a worker of it that starts only now (nginx
 * forked it, but slow user code held it back) must not bring it back.
 */
function ended(dict: NgxSharedDict, g: number): boolean {
    if (recorded(dict, g)) {
        return false;
    }
    const [newest, mask] = ended_set(dict);
    if (newest === undefined || g > newest) {
        return false;
    }
    return g === newest || (newest - g <= ENDED_SPAN && bit_set(mask, newest - g - 1));
}

/** Deletes every key of generation `g`. */
function forget(dict: NgxSharedDict, g: number): void {
    for (const s of $range(0, slots(dict, g) - 1)) {
        remove(dict, keys.slot(g, s));
        remove(dict, keys.arrival(g, s));
        remove(dict, keys.stalled(g, s));
        remove(dict, keys.replaced(g, s));
    }
    remove(dict, keys.size(g));
    remove(dict, keys.arrived(g));
    remove(dict, keys.closing(g));
    remove(dict, keys.listeners(g));
    remove(dict, keys.idle(g));
    remove(dict, keys.live(g));
    remove(dict, keys.gen(g));
}

/**
 * Counts a starting worker. Returns its generation's count including itself,
 * and the pid previously counted in the same slot, if any: nginx reuses a
 * slot only for a worker it respawned, so that pid is dead (and, as the
 * contract wants, still counted until `replace_dead`); and whether it is
 * counted. The count is nil when the generation already ended (see ended).
 */
function register(dict: NgxSharedDict, g: number, s: number, pid: number, workers: number,
                  now: number): LuaMultiReturn<[number | undefined, number | undefined, boolean]> {
    const previous = counted_pid(dict, g, s);
    if (!recorded(dict, g)) {
        if (ended(dict, g)) {
            // Its siblings exited and ran its master exit before this worker
            // got here: what arrive() wrote goes, and nothing is counted.
            forget(dict, g);
            return $multi(undefined, undefined, false);
        }
        // Forgotten as a rolled-back reload while its workers were slow to
        // start: it exists after all, and scans must reach it again.
        write(dict, keys.gen(g), now);
        if ((read_number(dict, keys.LOW) ?? g) > g) {
            write(dict, keys.LOW, g);
        }
    }
    if (slots(dict, g) !== workers) {
        // (arrive() wrote it, unless the shm lost it since)
        write(dict, keys.size(g), workers);
    }
    if (!record.put(dict, keys.slot(g, s), pid, now, now)) {
        // No room for its slot key (shm full): a worker counted without it
        // would be counted again by every heartbeat's restore. Left uncounted,
        // its heartbeat counts it once there is room.
        return $multi(count(dict, g) + 1, undefined, false);
    }
    remove(dict, keys.arrival(g, s));
    // A worker of an idle generation: nginx went on with it (a respawn, a rollback).
    remove(dict, keys.idle(g));
    const mine = add(dict, keys.live(g), 1) ?? 1;
    if (previous === pid) {
        return $multi(mine, undefined, true);
    }
    return $multi(mine, previous, true);
}

/**
 * Uncounts the dead worker `dead` whose slot `s` a respawned worker took over,
 * and queues it to be reported once the respawned worker's start callback
 * ran: queued, a report survives the respawned worker being killed in turn.
 * False when the queue could not be written (shm full): the caller reports it.
 */
function replace_dead(dict: NgxSharedDict, g: number, s: number, dead: number, by: number): boolean {
    add(dict, keys.live(g), -1);
    const entry = dead + ">" + by;
    const queued = read_string(dict, keys.replaced(g, s));
    return write(dict, keys.replaced(g, s), queued !== undefined ? queued + " " + entry : entry);
}

/** A dead worker and the pid nginx respawned in its place. */
interface Replaced {
    dead: number;
    by: number;
}

/** The replaced workers of slot `s` not reported yet, oldest first; the queue is emptied. */
function take_replaced(dict: NgxSharedDict, g: number, s: number): Replaced[] {
    const found: Replaced[] = [];
    const queued = read_string(dict, keys.replaced(g, s));
    if (queued !== undefined) {
        for (const [dead, by] of string.gmatch(queued, "(%d+)>(%d+)")) {
            found.push({ dead: tonumber(dead) ?? 0, by: tonumber(by) ?? 0 });
        }
        remove(dict, keys.replaced(g, s));
    }
    return found;
}

/**
 * Uncounts the worker `pid` of slot `s` if it is still counted there. Returns
 * whether it was, and how many of its generation remain counted. `stalled`:
 * its process still runs (it only stopped beating), so it is remembered until
 * it beats again or exits.
 */
function uncount(dict: NgxSharedDict, g: number, s: number, pid: number,
                 stalled = false): LuaMultiReturn<[boolean, number]> {
    const [counted, , started] = occupant(dict, g, s);
    if (counted !== pid) {
        return $multi(false, count(dict, g));
    }
    remove(dict, keys.slot(g, s));
    if (read_number(dict, keys.arrival(g, s)) === pid) {
        remove(dict, keys.arrival(g, s));
    }
    if (stalled) {
        record.put_stalled(dict, keys.stalled(g, s), pid, started);
    }
    return $multi(true, add(dict, keys.live(g), -1) ?? 0);
}

/** The worker of slot `s` dropped while its process still ran (see uncount), and when it started. */
function stalled_at(dict: NgxSharedDict, g: number, s: number): LuaMultiReturn<[number | undefined, number | undefined]> {
    return record.get_stalled(dict, keys.stalled(g, s));
}

/**
 * Puts back what a live, counted-to-be worker needs in the shm: its slot
 * after it was dropped by mistake (it stalled, then beat again), or its whole
 * generation after the module's keys were lost (flush_all, eviction, a write
 * that failed while the shm was full). Returns what was restored, or nil,
 * and whether the worker was counted again (its slot restored).
 */
function restore(dict: NgxSharedDict, g: number, s: number, pid: number, workers: number,
                 now: number): LuaMultiReturn<[string | undefined, boolean]> {
    let restored: string | undefined = undefined;
    if ((read_number(dict, keys.TOP) ?? 0) < g) {
        write(dict, keys.TOP, g);
        restored = "generation counter";
    }
    if ((read_number(dict, keys.LOW) ?? g + 1) > g) {
        write(dict, keys.LOW, g);
    }
    if (!recorded(dict, g) && write(dict, keys.gen(g), now)) {
        write(dict, keys.size(g), workers);
        // A live worker of it is here: it surely got all its workers.
        if ((read_number(dict, keys.arrived(g)) ?? 0) < workers) {
            write(dict, keys.arrived(g), workers);
        }
        restored = "generation " + g;
    }
    // Counted only once its slot key is in: a worker whose slot cannot be
    // written (shm full) must not be counted again at every heartbeat.
    const [dropped, started] = stalled_at(dict, g, s);
    if (counted_pid(dict, g, s) === undefined
        && record.put(dict, keys.slot(g, s), pid, now, dropped === pid && started !== undefined ? started : now)) {
        if (read_number(dict, keys.arrival(g, s)) === pid) {
            remove(dict, keys.arrival(g, s));
        }
        remove(dict, keys.stalled(g, s));
        add(dict, keys.live(g), 1);
        restored = restored !== undefined ? restored + " and its slot " + s : "slot " + s;
        return $multi(restored, true);
    }
    return $multi(restored, false);
}

/** The pids of `g` dropped while their process still ran (see uncount). */
function stalled(dict: NgxSharedDict, g: number): number[] {
    const pids: number[] = [];
    for (const s of $range(0, slots(dict, g) - 1)) {
        const [pid] = stalled_at(dict, g, s);
        if (pid !== undefined) {
            pids.push(pid);
        }
    }
    return pids;
}

/**
 * A worker that is not counted exits (it was dropped as stalled, or its slot
 * never fitted in a full shm): it no longer holds its generation open.
 * Returns whether it had been dropped as stalled.
 */
function clear_uncounted(dict: NgxSharedDict, g: number, s: number, pid: number): boolean {
    if (read_number(dict, keys.arrival(g, s)) === pid) {
        remove(dict, keys.arrival(g, s));
    }
    const [dropped] = stalled_at(dict, g, s);
    if (dropped === pid) {
        remove(dict, keys.stalled(g, s));
        return true;
    }
    return false;
}

/** Records a heartbeat of worker `pid`, counted in slot `s` (see record.beat). */
function heartbeat(dict: NgxSharedDict, g: number, s: number, pid: number, now: number): void {
    record.beat(dict, keys.slot(g, s), pid, now);
}

/** The range of generations that may have records: LOW..TOP. */
function span(dict: NgxSharedDict): LuaMultiReturn<[number, number]> {
    const top = read_number(dict, keys.TOP) ?? 0;
    return $multi(read_number(dict, keys.LOW) ?? top + 1, top);
}

/** Moves LOW past generations that have no records left. */
function advance_low(dict: NgxSharedDict): void {
    const [start, top] = span(dict);
    let low = start;
    while (low < top && !recorded(dict, low) && count(dict, low) <= 0) {
        low = low + 1;
    }
    if (low !== start) {
        write(dict, keys.LOW, low);
    }
}

/**
 * True once generation `g` had workers and none is counted any more. Whether
 * it is really over also depends on processes still running (liveness.over).
 */
function emptied(dict: NgxSharedDict, g: number): boolean {
    return recorded(dict, g) && (read_number(dict, keys.arrived(g)) ?? 0) > 0 && count(dict, g) <= 0
        && read_number(dict, keys.closing(g)) === undefined;
}

/**
 * Marks that process `pid` is about to run the master exit of `g`; its
 * records go once it ran (end_generation). Until `enter_close`, a death of
 * `pid` leaves the master exit to whoever finds it (reopen); after it, the
 * master exit counts as run: at most once.
 */
function begin_close(dict: NgxSharedDict, g: number, pid: number): void {
    write(dict, keys.closing(g), pid);
}

/** The closer of `g` enters the master exit callback (stored as -pid: entered). */
function enter_close(dict: NgxSharedDict, g: number, pid: number): void {
    write(dict, keys.closing(g), -pid);
}

/** The pid running the master exit of `g`, if one is, and whether it entered the callback. */
function closer(dict: NgxSharedDict, g: number): LuaMultiReturn<[number | undefined, boolean]> {
    const mark = read_number(dict, keys.closing(g));
    if (mark === undefined) {
        return $multi(undefined, false);
    }
    return $multi(math.abs(mark), mark < 0);
}

/** The closer of `g` died before it entered the master exit: `g` is emptied, not closing. */
function reopen(dict: NgxSharedDict, g: number): void {
    remove(dict, keys.closing(g));
}

/** Records the listening sockets of `g` (listeners.ts): every worker of it holds the same. */
function note_listeners(dict: NgxSharedDict, g: number, inodes: string): void {
    write(dict, keys.listeners(g), inodes);
}

/** The listening sockets of `g` as listeners.held() gave them, nil if unknown. */
function listeners(dict: NgxSharedDict, g: number): string | undefined {
    return read_string(dict, keys.listeners(g));
}

/**
 * `g` has no worker, but its master keeps running its configuration (its
 * last worker was replaced, or held back by WINCH): no master exit yet.
 */
function suspend(dict: NgxSharedDict, g: number, now: number): void {
    write(dict, keys.idle(g), now);
}

/** True while `g` is idle (see suspend) and no worker joined it since. */
function idle(dict: NgxSharedDict, g: number): boolean {
    return read_number(dict, keys.idle(g)) !== undefined;
}

/**
 * True once a generation newer than `g` got a worker: nginx's master runs a
 * newer configuration, so `g`'s will not get a worker again.
 */
function superseded(dict: NgxSharedDict, g: number): boolean {
    const [, top] = span(dict);
    for (const newer of $range(g + 1, top)) {
        if (count(dict, newer) > 0 || (read_number(dict, keys.arrived(newer)) ?? 0) > 0 || ended(dict, newer)) {
            return true;
        }
    }
    return false;
}

/** Removes the records of a generation whose master exit ran. */
function end_generation(dict: NgxSharedDict, g: number): void {
    forget(dict, g);
    note_ended(dict, g);
    advance_low(dict);
}

/**
 * A generation is active while it has counted or arriving workers, or, without
 * any, for `failed` seconds after its master start: a reload that nginx rolled
 * back after init_by_lua ran never gets a worker and stops being active then.
 */
function active(dict: NgxSharedDict, g: number, now: number, failed: number): boolean {
    if (count(dict, g) > 0 || (read_number(dict, keys.arrived(g)) ?? 0) > 0) {
        return true;
    }
    const started = read_number(dict, keys.gen(g));
    return started !== undefined && now - started < failed;
}

/** The newest generation that exists, nil if none. */
function newest(dict: NgxSharedDict, now: number, failed: number): number | undefined {
    const [low, top] = span(dict);
    let g = top;
    while (g >= low) {
        if (active(dict, g, now, failed)) {
            return g;
        }
        g = g - 1;
    }
    return undefined;
}

/** A generation that never got a worker within `failed` seconds of its master start. */
function rolled_back(dict: NgxSharedDict, g: number, now: number, failed: number): boolean {
    return recorded(dict, g) && !active(dict, g, now, failed);
}

/** Forgets generations that never got a worker within `failed` seconds (rolled-back reloads). */
function sweep(dict: NgxSharedDict, now: number, failed: number): void {
    const [low, top] = span(dict);
    let swept = false;
    for (const h of $range(low, top)) {
        if (rolled_back(dict, h, now, failed)) {
            log(NOTICE, "generation ", h, " got no worker within ", failed,
                "s of its master start (reload rolled back); it is not counted");
            forget(dict, h);
            swept = true;
        }
    }
    if (swept) {
        advance_low(dict);
    }
}

/**
 * n_prev and n_next for a callback of generation `g`: workers counted in all
 * older generations (nil for generation 1) and in all newer ones (nil when no
 * newer generation exists).
 */
function neighbours(dict: NgxSharedDict, g: number, now: number,
                    failed: number): LuaMultiReturn<[number | undefined, number | undefined]> {
    const [low, top] = span(dict);
    let prev = 0;
    let next: number | undefined = undefined;
    for (const other of $range(math.min(low, g), math.max(top, g))) {
        if (other < g) {
            prev = prev + math.max(count(dict, other), 0);
        } else if (other > g && active(dict, other, now, failed)) {
            next = (next ?? 0) + math.max(count(dict, other), 0);
        }
    }
    if (g === 1) {
        // the first generation of a node has no previous one (nil, not 0)
        return $multi(undefined, next);
    }
    return $multi(prev, next);
}

/**
 * True while a newer generation has no worker yet but may still get one: an
 * exiting worker that can wait does, so that it tells a reload from a stop.
 */
function newer_undecided(dict: NgxSharedDict, g: number, now: number, failed: number): boolean {
    const [, top] = span(dict);
    let undecided = false;
    for (const h of $range(g + 1, top)) {
        if (count(dict, h) > 0 || (read_number(dict, keys.arrived(h)) ?? 0) > 0) {
            return false;
        }
        if (active(dict, h, now, failed)) {
            undecided = true;
        }
    }
    return undecided;
}

export {
    begin_generation, arrive, recorded, count, unarrived, starting, slots, occupant, ended, register,
    replace_dead, take_replaced, uncount, restore, stalled, clear_uncounted, heartbeat,
    span, emptied, begin_close, enter_close, closer, reopen, end_generation, active, newest, rolled_back, sweep,
    neighbours, newer_undecided, note_listeners, listeners, suspend, idle, superseded,
};
