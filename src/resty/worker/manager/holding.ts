/**
 * Who holds which singleton, kept in the shm (keys.ts, "Singletons"): per
 * name, the holding worker's record, a token counter that only grows over
 * the node's life (fencing tokens), and the newest generation that
 * registered the name; for the node, the list of names and a change
 * counter (the epoch) that idle workers watch with one read.
 *
 * Writes happen under the node lock; this module knows nothing of the lock,
 * of timers or of user code (singletons.ts runs those).
 *
 * A holding ends with its record removed, except on a stop of the node:
 * then the record stays as a tombstone ("stopped"), so that no worker still
 * running starts the job again while the node goes down.
 */

import * as keys from "./keys";
import { read_number, read_string, write, add, remove } from "./store";
import { to_hex_ms, from_hex_ms } from "./record";

/** A name's holder as recorded. */
interface Holder {
    pid: number;
    gen: number;
    slot: number;
    token: number;
    /** When the holding began (or, for a tombstone, when its stop returned). */
    since: number;
    /** A tombstone: the holder stopped the job because the node stops. */
    stopped: boolean;
}

/** The worker that claims or gives up a name. */
interface Claimant {
    pid: number;
    gen: number;
    slot: number;
}

const HELD = "h";
const STOPPED = "s";

function encode(gen: number, slot: number, token: number, since: number, state: string): string {
    return gen + " " + slot + " " + token + " " + to_hex_ms(since) + " " + state;
}

/** The holder of `name`, or nil when nobody holds it. */
function holder(dict: NgxSharedDict, name: string): Holder | undefined {
    const [value, pid] = dict.get(keys.holder(name));
    if (typeof value !== "string" || typeof pid !== "number") {
        return undefined;
    }
    const [gen, slot, token, since, state] = string.match(value, "^(%d+) (%d+) (%d+) (%x+) (%a)$");
    if (gen === undefined) {
        return undefined;
    }
    return {
        pid, gen: tonumber(gen) ?? 0, slot: tonumber(slot) ?? 0, token: tonumber(token) ?? 0,
        since: from_hex_ms(since) ?? 0, stopped: state === STOPPED,
    };
}

/** The last token handed out for `name`; 0 before its first holding. */
function last_token(dict: NgxSharedDict, name: string): number {
    return read_number(dict, keys.token(name)) ?? 0;
}

/** The change counter: it moves whenever a holding ends or a newer generation registers a name. */
function epoch(dict: NgxSharedDict): number {
    return read_number(dict, keys.EPOCH) ?? 0;
}

function bump(dict: NgxSharedDict): void {
    add(dict, keys.EPOCH, 1);
}

/** Every name registered in the node, in the order they were first registered. */
function names(dict: NgxSharedDict): string[] {
    const found: string[] = [];
    const list = read_string(dict, keys.NAMES);
    if (list !== undefined) {
        for (const [name] of string.gmatch(list, "\n([^\n]+)")) {
            if (name !== undefined) {
                found.push(name);
            }
        }
    }
    return found;
}

/** The newest generation whose workers registered `name`, nil if none did. */
function registered_by(dict: NgxSharedDict, name: string): number | undefined {
    return read_number(dict, keys.registered(name));
}

/**
 * Notes that workers of generation `g` registered `name`. Returns true when
 * that changes where the job belongs (a name new to the node, or a newer
 * generation): the epoch moves, so that an older holder gives the job up.
 */
function register(dict: NgxSharedDict, name: string, g: number): boolean {
    const list = read_string(dict, keys.NAMES) ?? "\n";
    if (string.find(list, "\n" + name + "\n", 1, true)[0] === undefined) {
        write(dict, keys.NAMES, list + name + "\n");
    }
    const newest = registered_by(dict, name);
    if (newest !== undefined && newest >= g) {
        return false;
    }
    write(dict, keys.registered(name), g);
    bump(dict);
    return true;
}

/**
 * Makes `who` the holder of `name` and returns the holding's token (one
 * more than the last), or nil when the shm had no room (logged by store).
 * The caller checked that the name is free for it.
 */
function claim(dict: NgxSharedDict, name: string, who: Claimant, now: number): number | undefined {
    const token = add(dict, keys.token(name), 1);
    if (token === undefined) {
        return undefined;
    }
    if (!write(dict, keys.holder(name), encode(who.gen, who.slot, token, now, HELD), who.pid)) {
        return undefined;
    }
    return token;
}

/**
 * Ends the holding `token` of `name` by `pid`, if it is still that one:
 * the record goes (the epoch moves, so that another worker takes the job
 * at once), or stays as a tombstone when the node stops (`stopped`).
 * Returns whether it was that holding.
 */
function release(dict: NgxSharedDict, name: string, pid: number, token: number, now: number,
                 stopped: boolean): boolean {
    const h = holder(dict, name);
    if (h === undefined || h.pid !== pid || h.token !== token || h.stopped) {
        return false;
    }
    if (stopped) {
        write(dict, keys.holder(name), encode(h.gen, h.slot, token, now, STOPPED), pid);
    } else {
        remove(dict, keys.holder(name));
    }
    bump(dict);
    return true;
}

/** A holding ended for its holder (see release_worker). */
interface Freed {
    name: string;
    token: number;
}

/**
 * Frees every name that worker `pid` holds: it died, or it was dropped for
 * an overdue heartbeat (it loses its jobs). Returns the holdings freed.
 */
function release_worker(dict: NgxSharedDict, pid: number): Freed[] {
    const freed: Freed[] = [];
    for (const name of names(dict)) {
        const h = holder(dict, name);
        if (h !== undefined && h.pid === pid && !h.stopped) {
            remove(dict, keys.holder(name));
            freed.push({ name, token: h.token });
        }
    }
    if (freed.length > 0) {
        bump(dict);
    }
    return freed;
}

/** Frees `name`, whose holder died (found by a worker that wants the job). */
function free_name(dict: NgxSharedDict, name: string): void {
    remove(dict, keys.holder(name));
    bump(dict);
}

export {
    holder, last_token, epoch, names, registered_by, register, claim, release, release_worker, free_name,
};
export type { Holder, Claimant, Freed };
