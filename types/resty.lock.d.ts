/**
 * OpenResty's lua-resty-lock, for TypeScript code that wants to take the
 * worker manager's node lock itself (see the README: the lock key is
 * `lua-resty-worker-manager:lock` in the manager's shm). The module does not
 * require resty.lock at run time.
 */
/** @noResolution */
declare module "resty.lock" {
    interface LockOptions {
        exptime?: number;
        timeout?: number;
        step?: number;
        ratio?: number;
        max_step?: number;
    }
    interface Lock {
        lock(this: Lock, key: string): LuaMultiReturn<[number, undefined] | [undefined, string]>;
        unlock(this: Lock): LuaMultiReturn<[1, undefined] | [undefined, string]>;
        expire(this: Lock, timeout?: number): LuaMultiReturn<[true, undefined] | [undefined, string]>;
    }
    interface LockModule {
        new: (this: LockModule, dict_name: string, opts?: LockOptions) => LuaMultiReturn<[Lock, undefined] | [undefined, string]>;
    }
    const lock: LockModule;
    export = lock;
}
