/**
 * The bookkeeping behind the four counts: generations and the workers counted
 * in each, as a few small shm keys per generation (see keys.ts). Every
 * function here is called with the node lock held; it knows nothing of
 * phases, callbacks or the lock itself.
 */

import * as keys from "./keys";
import { read_number, write, add, remove } from "./store";
import { log } from "./log";

const NOTICE = ngx.NOTICE;

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

/** Notes that a worker of `g` exists, before it waits for the lock. */
function arrive(dict: NgxSharedDict, g: number): void {
    add(dict, keys.arrived(g), 1);
}

/**
 * Counts a starting worker. Returns its generation's count including itself,
 * and the pid previously counted in the same slot, if any: nginx reuses a
 * slot only for a worker it respawned, so that pid is dead.
 */
function register(dict: NgxSharedDict, g: number, s: number, pid: number, workers: number,
                  now: number): LuaMultiReturn<[number, number | undefined]> {
    const previous = read_number(dict, keys.slot(g, s));
    if (read_number(dict, keys.gen(g)) === undefined) {
        // Taken for a rolled-back reload while this worker was slow to start.
        write(dict, keys.gen(g), now);
    }
    write(dict, keys.size(g), workers);
    write(dict, keys.slot(g, s), pid);
    write(dict, keys.beat(g, s), now);
    const mine = add(dict, keys.live(g), 1) ?? 1;
    return $multi(mine, previous !== pid ? previous : undefined);
}

/** Drops a worker that is known to be dead (its slot now belongs to another pid). */
function drop_dead(dict: NgxSharedDict, g: number): number {
    return add(dict, keys.live(g), -1) ?? 0;
}

/** Uncounts an exiting worker; returns how many of its generation remain. */
function unregister(dict: NgxSharedDict, g: number, s: number, pid: number): number {
    if (read_number(dict, keys.slot(g, s)) === pid) {
        remove(dict, keys.slot(g, s));
        remove(dict, keys.beat(g, s));
    }
    return add(dict, keys.live(g), -1) ?? 0;
}

/** Records a heartbeat of the worker in slot `s`. */
function heartbeat(dict: NgxSharedDict, g: number, s: number, now: number): void {
    write(dict, keys.beat(g, s), now);
}

function forget(dict: NgxSharedDict, g: number): void {
    const slots = read_number(dict, keys.size(g)) ?? 0;
    for (const s of $range(0, slots - 1)) {
        remove(dict, keys.slot(g, s));
        remove(dict, keys.beat(g, s));
    }
    remove(dict, keys.size(g));
    remove(dict, keys.arrived(g));
    remove(dict, keys.live(g));
    remove(dict, keys.gen(g));
}

/** Moves LOW past generations that have no records left. */
function advance_low(dict: NgxSharedDict): void {
    const top = read_number(dict, keys.TOP);
    let low = read_number(dict, keys.LOW);
    if (top === undefined || low === undefined) {
        return;
    }
    const start = low;
    while (low < top && read_number(dict, keys.gen(low)) === undefined
           && (read_number(dict, keys.live(low)) ?? 0) <= 0) {
        low = low + 1;
    }
    if (low !== start) {
        write(dict, keys.LOW, low);
    }
}

/** Removes the records of a generation whose last worker left. */
function end_generation(dict: NgxSharedDict, g: number): void {
    forget(dict, g);
    advance_low(dict);
}

/**
 * A generation "exists" while it has counted or arriving workers, or, without
 * any, for `grace` seconds after its master start: a reload that nginx rolled
 * back after init_by_lua ran never gets a worker and stops existing then.
 */
function exists(dict: NgxSharedDict, h: number, now: number, grace: number): boolean {
    if ((read_number(dict, keys.live(h)) ?? 0) > 0 || (read_number(dict, keys.arrived(h)) ?? 0) > 0) {
        return true;
    }
    const started = read_number(dict, keys.gen(h));
    return started !== undefined && now - started < grace;
}

/** Forgets generations that never got a worker within `grace` seconds (rolled-back reloads). */
function sweep(dict: NgxSharedDict, now: number, grace: number): void {
    const top = read_number(dict, keys.TOP) ?? 0;
    const low = read_number(dict, keys.LOW) ?? top + 1;
    let swept = false;
    for (const h of $range(low, top)) {
        const started = read_number(dict, keys.gen(h));
        if (started !== undefined && !exists(dict, h, now, grace)) {
            log(NOTICE, "generation ", h, " got no worker within ", grace,
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
                    grace: number): LuaMultiReturn<[number | undefined, number | undefined]> {
    const top = read_number(dict, keys.TOP) ?? g;
    const low = read_number(dict, keys.LOW) ?? g;
    let prev = 0;
    let next: number | undefined = undefined;
    for (const h of $range(low, top)) {
        if (h < g) {
            prev = prev + math.max(read_number(dict, keys.live(h)) ?? 0, 0);
        } else if (h > g && exists(dict, h, now, grace)) {
            next = (next ?? 0) + math.max(read_number(dict, keys.live(h)) ?? 0, 0);
        }
    }
    return $multi(g === 1 ? undefined : prev, next);
}

/**
 * True while a newer generation has no worker yet but may still get one: an
 * exiting worker that can wait does, so that it tells a reload from a stop.
 */
function newer_undecided(dict: NgxSharedDict, g: number, now: number, grace: number): boolean {
    const top = read_number(dict, keys.TOP) ?? g;
    let undecided = false;
    for (const h of $range(g + 1, top)) {
        if ((read_number(dict, keys.live(h)) ?? 0) > 0 || (read_number(dict, keys.arrived(h)) ?? 0) > 0) {
            return false;
        }
        if (exists(dict, h, now, grace)) {
            undecided = true;
        }
    }
    return undecided;
}

/** Workers counted in generation `g`. */
function count(dict: NgxSharedDict, g: number): number {
    return read_number(dict, keys.live(g)) ?? 0;
}

export {
    begin_generation, arrive, register, drop_dead, unregister, heartbeat, end_generation, sweep,
    neighbours, newer_undecided, count,
};
