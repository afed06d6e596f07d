/**
 * The few things the module asks of the operating system and of nginx's
 * process model, kept in one place so nothing else touches FFI.
 */

import * as ffi from "ffi";

interface LibC {
    usleep(this: void, usec: number): number;
    kill(this: void, pid: number, sig: number): number;
    /** nginx's own flag for `nginx -t` / `-T` (exported by the binary for FFI). */
    readonly ngx_test_config: number;
}

// Each declaration on its own: another module may have declared the same
// function already, and LuaJIT refuses a second declaration of a name.
pcall(ffi.cdef, "int usleep(unsigned int usec);");
pcall(ffi.cdef, "int kill(int pid, int sig);");
pcall(ffi.cdef, "extern uintptr_t ngx_test_config;");

const C = ffi.C as LibC;
const ESRCH = 3;

/**
 * Blocks the whole process for `seconds`. For init_by_lua, init_worker_by_lua
 * and exit_worker_by_lua, where ngx.sleep is disabled.
 */
function pause(seconds: number): void {
    C.usleep(math.floor(seconds * 1e6));
}

/** The state letter of a process from /proc (Linux), nil where unreadable. */
function proc_state(pid: number): string | undefined {
    const [file] = io.open("/proc/" + pid + "/stat", "r");
    if (file === undefined) {
        return undefined;
    }
    const line: unknown = file.read("*l");
    file.close();
    if (typeof line !== "string") {
        return undefined;
    }
    const [state] = string.match(line, "^%d+ %b() (%a)");
    return state;
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

export { pause, pid_alive, process_type, testing_config };
export type { ProcessType };
