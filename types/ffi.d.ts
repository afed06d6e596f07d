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
        /** A C value of type `ct` (zero-filled). */
        "new"(this: void, ct: string): unknown;
        /** `value` converted to the C type `ct`. */
        cast(this: void, ct: string, value: unknown): unknown;
    }
    const ffi: Ffi;
    export = ffi;
}
