/**
 * LuaJIT's ffi module, as required by name (it is not a global in LuaJIT).
 * Only the calls resty.worker.manager makes are declared.
 */
/** @noResolution */
declare module "ffi" {
    /** @noSelf */
    interface Ffi {
        cdef(this: void, defs: string): void;
        /** The C namespace; callers narrow it to the functions they declared with cdef. */
        readonly C: unknown;
        errno(this: void): number;
        /** A C value of type `ct`, zero-filled or set from `init`. */
        "new"(this: void, ct: string, ...init: unknown[]): unknown;
        /** A Lua string of `len` bytes at `ptr`. */
        string(this: void, ptr: unknown, len: number): string;
        /** `value` converted to the C type `ct`. */
        cast(this: void, ct: string, value: unknown): unknown;
    }
    const ffi: Ffi;
    export = ffi;
}
