/**
 * The record of a counted worker: one shm key per worker (keys.slot), so
 * that a small zone holds many. Its pid is the entry's flags, and the value
 * its last heartbeat and start time in milliseconds, as 11 hex digits each
 * ("<beat> <started>"). nginx adds 68 bytes to key and value and allocates
 * in powers of two: with a key of up to 37 bytes an entry takes 128 bytes,
 * the least an entry can take, where decimal seconds would take 256, a size
 * class of its own, for which a small zone may have no page left. Fixed
 * width until the year 2527, so a heartbeat rewrites the entry in place.
 *
 * A worker dropped for a late heartbeat while it still runs keeps its pid
 * and start time the same way (keys.stalled), until it beats again.
 */

import { write, overwrite } from "./store";

/** A time as 11 hex digits of milliseconds. */
function to_hex_ms(t: number): string {
    return string.format("%011x", math.floor(t * 1000 + 0.5));
}

function from_hex_ms(digits: string | undefined): number | undefined {
    if (digits === undefined) {
        return undefined;
    }
    const ms = tonumber(digits, 16);
    return ms !== undefined ? ms / 1000 : undefined;
}

function encode(beat: number, started: number): string {
    return to_hex_ms(beat) + " " + to_hex_ms(started);
}

/** Counts `pid` under `key`; false (logged) when the shm has no room for it. */
function put(dict: NgxSharedDict, key: string, pid: number, beat: number, started: number): boolean {
    return write(dict, key, encode(beat, started), pid);
}

/** The pid recorded under `key`, its last heartbeat and start time; nils if none. */
function get(dict: NgxSharedDict, key: string):
    LuaMultiReturn<[number | undefined, number | undefined, number | undefined]> {
    const [value, pid] = dict.get(key);
    if (typeof value !== "string" || typeof pid !== "number") {
        return $multi(undefined, undefined, undefined);
    }
    const [beat, started] = string.match(value, "^(%x+) (%x+)$");
    return $multi(pid, from_hex_ms(beat), from_hex_ms(started));
}

/**
 * A heartbeat of `pid`, if `key` still records it. Lock-free: if a finder
 * drops the worker meanwhile, the key is gone and stays gone (an overwrite,
 * never a set), and the worker's next heartbeat restores it under the lock.
 */
function beat(dict: NgxSharedDict, key: string, pid: number, now: number): void {
    const [counted, , started] = get(dict, key);
    if (counted === pid) {
        overwrite(dict, key, encode(now, started ?? now), pid);
    }
}

/** Remembers that `pid`, started at `started`, was dropped but still runs. */
function put_stalled(dict: NgxSharedDict, key: string, pid: number, started: number | undefined): boolean {
    return write(dict, key, started !== undefined ? to_hex_ms(started) : "-", pid);
}

/** The pid under a stalled `key` and when it started; nils if none. */
function get_stalled(dict: NgxSharedDict, key: string): LuaMultiReturn<[number | undefined, number | undefined]> {
    const [value, pid] = dict.get(key);
    if (typeof value !== "string" || typeof pid !== "number") {
        return $multi(undefined, undefined);
    }
    return $multi(pid, from_hex_ms(string.match(value, "^%x+$")[0]));
}

export { put, get, beat, put_stalled, get_stalled, to_hex_ms, from_hex_ms };
