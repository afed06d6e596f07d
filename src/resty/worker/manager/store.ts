/**
 * Reads and writes of the module's shm keys. A write that fails (shm full,
 * wrong type) is logged at ERR with its key, never dropped silently.
 * Writes use safe_set/safe_add, which fail rather than evict other users'
 * keys when the zone is full (incr with an init value could evict).
 */

import { log } from "./log";

const ERR = ngx.ERR;

function read_number(dict: NgxSharedDict, key: string): number | undefined {
    const [value] = dict.get(key);
    return typeof value === "number" ? value : undefined;
}

function read_string(dict: NgxSharedDict, key: string): string | undefined {
    const [value] = dict.get(key);
    return typeof value === "string" ? value : undefined;
}

/** Whether a write of `key` succeeded; a failed one is logged. */
function written(key: string, ok: boolean, err: string | undefined): boolean {
    if (!ok) {
        log(ERR, "failed to write shm key '", key, "': ", err);
    }
    return ok;
}

function write(dict: NgxSharedDict, key: string, value: string | number, flags?: number): boolean {
    const [ok, err] = dict.safe_set(key, value, 0, flags);
    return written(key, ok, err);
}

/** Like write, for a key that expires `exptime` seconds from now. */
function write_expiring(dict: NgxSharedDict, key: string, value: string | number, exptime: number): boolean {
    const [ok, err] = dict.safe_set(key, value, exptime);
    return written(key, ok, err);
}

/**
 * Creates `key` with `value` unless it exists (another process may create
 * it first, which is fine); false when it could not (logged).
 */
function create(dict: NgxSharedDict, key: string, value: string | number): boolean {
    const [ok, err] = dict.safe_add(key, value);
    return written(key, ok || err === "exists", err);
}

/**
 * Overwrites `key` only if it exists; false if it does not (or the write
 * failed, logged). A value of the stored size is written in place: no
 * allocation, so it never fails for memory nor evicts other keys.
 */
function overwrite(dict: NgxSharedDict, key: string, value: string | number, flags?: number): boolean {
    const [ok, err] = dict.replace(key, value, 0, flags);
    if (!ok && err !== "not found") {
        log(ERR, "failed to write shm key '", key, "': ", err);
    }
    return ok;
}

/** Atomically adds `delta` (missing key counts as 0); the new value, or nil on failure. */
function add(dict: NgxSharedDict, key: string, delta: number): number | undefined {
    let [value, err] = dict.incr(key, delta);
    if (value === undefined && err === "not found") {
        // Created, then incremented: another process may create it
        // between the two calls (create is fine with that).
        if (!create(dict, key, 0)) {
            return undefined;
        }
        [value, err] = dict.incr(key, delta);
    }
    if (value === undefined) {
        log(ERR, "failed to update shm key '", key, "': ", err);
    }
    return value;
}

function remove(dict: NgxSharedDict, key: string): void {
    dict.delete(key);
}

export { read_number, read_string, write, write_expiring, create, overwrite, add, remove };
