/**
 * The few things the module asks of the operating system and of nginx's
 * process model, kept in one place so nothing else touches FFI.
 */

import * as ffi from "ffi";
import { log } from "./log";

const WARN = ngx.WARN;

interface LibC {
    usleep(this: void, usec: number): number;
    kill(this: void, pid: number, sig: number): number;
    getppid(this: void): number;
    getsockopt(this: void, fd: number, level: number, name: number, value: unknown, len: unknown): number;
    /** Returns a 64-bit cdata (ssize_t). */
    readlink(this: void, path: string, buf: unknown, size: number): unknown;
    /** nginx's own flag for `nginx -t` / `-T` (exported by the binary for FFI). */
    readonly ngx_test_config: number;
    /** nginx's flag that this process was told to terminate (TERM, INT), by a signal or by its master. */
    readonly ngx_terminate: number;
    /** The shm zone (ngx_shm_zone_t *) of a lua_shared_dict's userdata (lua-nginx-module). */
    ngx_http_lua_ffi_shdict_udata_to_zone(this: void, udata: unknown): unknown;
    /** nginx: frees a shm mutex held by dead process `pid`; non-zero if it did. */
    ngx_shmtx_force_unlock(this: void, mtx: unknown, pid: number): number;
}

/** The lock word of a shm zone's slab mutex: the holder's pid, 0 when free. */
interface LockWord {
    [0]: number;
}

/** The leading fields of nginx's ngx_shmtx_t, all ngx_shmtx_force_unlock reads when semaphore is 0. */
interface Shmtx {
    lock: LockWord;
    semaphore: number;
}

// Each declaration on its own and protected: LuaJIT ignores a function or
// variable declared again (even with another signature), but refuses a
// struct defined again ("attempt to redefine"), and one failed cdef must not
// cost the others.
pcall(ffi.cdef, "int usleep(unsigned int usec);");
pcall(ffi.cdef, "int kill(int pid, int sig);");
pcall(ffi.cdef, "int getppid(void);");
pcall(ffi.cdef, "int getsockopt(int sockfd, int level, int optname, void *optval, unsigned int *optlen);");
pcall(ffi.cdef, "long readlink(const char *path, char *buf, unsigned long bufsiz);");
pcall(ffi.cdef, "extern uintptr_t ngx_test_config;");
pcall(ffi.cdef, "extern int ngx_terminate;");
pcall(ffi.cdef, "void *ngx_http_lua_ffi_shdict_udata_to_zone(void *zone_udata);");
pcall(ffi.cdef, "uintptr_t ngx_shmtx_force_unlock(void *mtx, int pid);");
pcall(ffi.cdef, "typedef struct { volatile unsigned long *lock; volatile unsigned long *wait; uintptr_t semaphore; uintptr_t spare[8]; } "
                + "resty_worker_manager_shmtx_t;");

const C = ffi.C as LibC;
const ESRCH = 3;
/** Linux's SOL_SOCKET and SO_ACCEPTCONN (x86 and ARM). */
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
/** "socket:[<inode>]" fits easily. */
const LINK_SIZE = 64;

/**
 * Blocks the whole process for `seconds`. For init_by_lua, init_worker_by_lua
 * and exit_worker_by_lua, where ngx.sleep is disabled.
 */
function pause(seconds: number): void {
    C.usleep(math.floor(seconds * 1e6));
}

/** The whole text of a small file (under /proc, say), nil where it cannot be read. */
function read_file(path: string): string | undefined {
    const [file] = io.open(path, "r");
    if (file === undefined) {
        return undefined;
    }
    const text: unknown = file.read("*a");
    file.close();
    return typeof text === "string" ? text : undefined;
}

/** The state letter of a process from /proc (Linux), nil where unreadable. */
function proc_state(pid: number): string | undefined {
    const text = read_file("/proc/" + pid + "/stat");
    if (text === undefined) {
        return undefined;
    }
    const [state] = string.match(text, "^%d+ %b() (%a)");
    return state;
}

/** The number `pattern` captures in file `path` (/proc), nil where unreadable. */
function number_in(path: string, pattern: string): number | undefined {
    const text = read_file(path);
    if (text === undefined) {
        return undefined;
    }
    const [digits] = string.match(text, pattern);
    if (digits === undefined) {
        return undefined;
    }
    return tonumber(digits);
}

/** The parent of process `pid` (/proc), nil where unreadable. */
function parent_of(pid: number): number | undefined {
    return number_in("/proc/" + pid + "/stat", "^%d+ %b() %a (%d+)");
}

/** True when process `pid` is an nginx master (by the title nginx gives it), false where unreadable. */
function is_nginx_master(pid: number): boolean {
    const title = read_file("/proc/" + pid + "/cmdline");
    return title !== undefined && string.find(title, "^nginx: master process") !== undefined;
}

/**
 * True in a worker whose master is the new binary of a binary upgrade in
 * progress (USR2): nginx forked it from the old master, which still runs.
 */
function upgrading_from_old_master(): boolean {
    const grandparent = parent_of(C.getppid());
    return grandparent !== undefined && grandparent > 1 && is_nginx_master(grandparent);
}

/** False only when the pid certainly does not run (EPERM means it does). */
function pid_alive(pid: number): boolean {
    if (C.kill(pid, 0) !== 0) {
        return ffi.errno() !== ESRCH;
    }
    // A dead child its parent has not reaped yet still answers kill(): the
    // master cannot reap while it waits for the lock in init_by_lua.
    const state = proc_state(pid);
    return state !== "Z" && state !== "X";
}

/** The slab mutex's lock word of the zone behind `dict` (nil where the FFI does not reach it). */
function read_lock_word(dict: NgxSharedDict): LockWord | undefined {
    // A lua_shared_dict is a table whose [1] is the zone's userdata; the
    // zone starts { void *data; ngx_shm_t shm { u_char *addr; ... } }, and
    // the slab pool at addr starts with its mutex's lock word.
    const udata = (dict as unknown as Record<number, unknown>)[1];
    // Resolved here, where the caller's pcall turns the check off if nginx
    // does not export it (indexing ffi.C raises then), not at first use.
    if ((type(C.ngx_shmtx_force_unlock) as string) !== "cdata" || udata === undefined) {
        return undefined;
    }
    const zone = C.ngx_http_lua_ffi_shdict_udata_to_zone(udata);
    // (a NULL pointer cdata equals nil in LuaJIT; reading through it would crash)
    if (zone === undefined) {
        return undefined;
    }
    const addr = (ffi.cast("uintptr_t *", zone) as Record<number, unknown>)[1];
    if (addr === undefined || tonumber(addr) === 0) {
        return undefined;
    }
    return ffi.cast("volatile unsigned long *", addr) as LockWord;
}

const lock_words = new LuaTable<NgxSharedDict, LockWord | false>();

/**
 * Makes sure no dead process holds the mutex nginx takes inside every call on
 * `dict` (the zone's slab mutex), freeing it where one does. nginx frees it
 * itself when its master reaps the dead holder, but the master cannot reap
 * while it runs init_by_lua (nginx blocks SIGCHLD outside its main loop): a
 * shm call there would wait for a dead holder forever. Waits while a live
 * holder keeps it (for microseconds, normally).
 */
function free_dead_shm_mutex(dict: NgxSharedDict): void {
    if (ngx.worker.id() !== undefined) {
        // A worker's dead holder is reaped, and the mutex freed, by its
        // master in its main loop: only the master itself needs this.
        return;
    }
    let word = lock_words.get(dict);
    if (word === undefined) {
        const [ok, found] = pcall(read_lock_word, dict);
        word = ok && found !== undefined ? found : false;
        lock_words.set(dict, word);
    }
    if (word === false) {
        return;
    }
    while (true) {
        const holder = tonumber(word[0]) ?? 0;
        if (holder === 0) {
            return;
        }
        if (!pid_alive(holder)) {
            const mtx = ffi.new("resty_worker_manager_shmtx_t") as Shmtx;
            mtx.lock = word;
            mtx.semaphore = 0;
            // Waiters sleeping on the zone's semaphore are woken by the next
            // ordinary unlock, which our own next shm call makes.
            if (C.ngx_shmtx_force_unlock(mtx, holder) !== 0) {
                log(WARN, "the shm zone's mutex was held by dead process ", holder,
                    " (killed inside a shm call); freed it");
                return;
            }
        } else {
            pause(0.0005);
        }
    }
}

/** How many descriptors this process's fd table has room for (Linux), nil where unknown. */
function fd_table_size(): number | undefined {
    return number_in("/proc/self/status", "\nFDSize:%s*(%d+)");
}

/** The inode of the socket on descriptor `fd` if it listens (accepts connections), else nil. */
function listening_inode(fd: number): string | undefined {
    const flag = ffi.new("int[1]") as Record<number, number>;
    const size = ffi.new("unsigned int[1]", 4);
    if (C.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, flag, size) !== 0 || flag[0] !== 1) {
        return undefined;
    }
    const buf = ffi.new("char[?]", LINK_SIZE);
    const n = tonumber(C.readlink("/proc/self/fd/" + fd, buf, LINK_SIZE)) ?? -1;
    if (n <= 0) {
        return undefined;
    }
    const [inode] = string.match(ffi.string(buf, n), "^socket:%[(%d+)%]$");
    return inode;
}

function read_terminate_flag(): number {
    return tonumber(C.ngx_terminate) ?? 0;
}

/**
 * True once this process was told to terminate (a fast stop, or TERM sent
 * to it), also after it began a graceful exit; nil where nginx does not
 * export the flag.
 */
function terminating(): boolean | undefined {
    const [ok, flag] = pcall(read_terminate_flag);
    if (!ok) {
        return undefined;
    }
    return flag !== 0;
}

function read_test_flag(): number {
    return tonumber(C.ngx_test_config) ?? 0;
}

/**
 * True in an `nginx -t` / `-T` process. lua-nginx-module 0.10.14 and later
 * do not run init_by_lua there at all; older ones do, with a private shm.
 */
function testing_config(): boolean {
    const [ok, flag] = pcall(read_test_flag);
    return ok && flag !== 0;
}

type ProcessType = "single" | "master" | "signaller" | "worker" | "helper" | "privileged agent" | "unknown";

/** ngx.process.type() where lua-resty-core provides it. */
function process_type(): ProcessType {
    const [ok, mod] = pcall(require, "ngx.process");
    if (ok && type(mod) === "table") {
        const kind = (mod as { type: (this: void) => string }).type();
        return kind as ProcessType;
    }
    // Without resty.core only a worker has a worker id.
    return ngx.worker.id() !== undefined ? "worker" : "unknown";
}

export {
    pause, pid_alive, free_dead_shm_mutex, process_type, testing_config, terminating, read_file, fd_table_size,
    listening_inode, upgrading_from_old_master,
};
