/**
 * Declarations of exactly the part of the nginx Lua API (lua-nginx-module +
 * lua-resty-core) that resty.worker.manager uses. Shared-dict methods are
 * colon-called in Lua, so each declares `this` explicitly (noImplicitSelf would
 * otherwise make them dot calls).
 */

/** A log level constant such as ngx.ERR; branded so a plain number is rejected. */
type NgxLogLevel = number & { readonly __brand: "NgxLogLevel" };

/** The phase names returned by ngx.get_phase(). */
type NgxPhase =
    | "init"
    | "init_worker"
    | "ssl_cert"
    | "ssl_session_fetch"
    | "ssl_session_store"
    | "ssl_client_hello"
    | "set"
    | "rewrite"
    | "server_rewrite"
    | "balancer"
    | "access"
    | "content"
    | "header_filter"
    | "body_filter"
    | "log"
    | "timer"
    | "exit_worker";

type NgxTimerCallback<A extends unknown[]> = (this: void, premature: boolean, ...args: A) => void;

/** One lua_shared_dict zone. */
interface NgxSharedDict {
    get(this: NgxSharedDict, key: string): LuaMultiReturn<[string | number | boolean | undefined, number | undefined] | [undefined, string]>;
    set(this: NgxSharedDict, key: string, value: string | number | boolean, exptime?: number, flags?: number):
        LuaMultiReturn<[true, undefined, boolean] | [false, string, boolean]>;
    safe_set(this: NgxSharedDict, key: string, value: string | number | boolean, exptime?: number, flags?: number):
        LuaMultiReturn<[true, undefined] | [false, string]>;
    add(this: NgxSharedDict, key: string, value: string | number | boolean, exptime?: number, flags?: number):
        LuaMultiReturn<[true, undefined, boolean] | [false, string, boolean]>;
    safe_add(this: NgxSharedDict, key: string, value: string | number | boolean, exptime?: number, flags?: number):
        LuaMultiReturn<[true, undefined] | [false, string]>;
    replace(this: NgxSharedDict, key: string, value: string | number | boolean, exptime?: number, flags?: number):
        LuaMultiReturn<[true, undefined, boolean] | [false, string, boolean]>;
    incr(this: NgxSharedDict, key: string, value: number, init?: number, init_ttl?: number):
        LuaMultiReturn<[number, undefined, boolean] | [undefined, string, boolean]>;
    delete(this: NgxSharedDict, key: string): void;
    ttl(this: NgxSharedDict, key: string): LuaMultiReturn<[number, undefined] | [undefined, string]>;
    get_keys(this: NgxSharedDict, max_count?: number): string[];
    capacity(this: NgxSharedDict): number;
    free_space(this: NgxSharedDict): number;
}

/** @noSelf */
declare namespace ngx {
    const STDERR: NgxLogLevel;
    const EMERG: NgxLogLevel;
    const ALERT: NgxLogLevel;
    const CRIT: NgxLogLevel;
    const ERR: NgxLogLevel;
    const WARN: NgxLogLevel;
    const NOTICE: NgxLogLevel;
    const INFO: NgxLogLevel;
    const DEBUG: NgxLogLevel;

    function log(level: NgxLogLevel, ...args: unknown[]): void;
    /** Cached time in seconds (milliseconds as the fraction). */
    function now(): number;
    /** The SHA-1 digest of `s`, 20 raw bytes. */
    function sha1_bin(s: string): string;
    /** Refreshes the cached time from the OS clock. */
    function update_time(): void;
    function get_phase(): NgxPhase;
    /** Yields; only in yieldable contexts (timers, rewrite/access/content ...). */
    function sleep(seconds: number): void;

    const shared: { readonly [name: string]: NgxSharedDict | undefined };

    /** @noSelf */
    namespace timer {
        function at<A extends unknown[]>(delay: number, callback: NgxTimerCallback<A>, ...args: A):
            LuaMultiReturn<[true, undefined] | [undefined, string]>;
        /** Runs `callback` every `delay` seconds; nginx arms the next run before it runs this one. */
        function every<A extends unknown[]>(delay: number, callback: NgxTimerCallback<A>, ...args: A):
            LuaMultiReturn<[true, undefined] | [undefined, string]>;
        /** Timers running now in this worker (needs a request or timer context). */
        function running_count(): number;
    }

    /** @noSelf */
    namespace worker {
        function pid(): number;
        /** 0-based slot of this worker; nil outside worker processes. */
        function id(): number | undefined;
        function count(): number;
        function exiting(): boolean;
    }

    /** @noSelf */
    namespace config {
        const subsystem: "http" | "stream";
        const ngx_lua_version: number;
        const debug: boolean;
        /** The nginx prefix (-p), with a trailing slash. */
        function prefix(): string;
    }
}

/** lua-resty-core's ngx.process module. */
/** @noResolution */
declare module "ngx.process" {
    type ProcessType = "single" | "master" | "signaller" | "worker" | "helper" | "privileged agent";
    /** @noSelf */
    interface NgxProcess {
        type(): ProcessType;
        get_master_pid(): number | undefined;
    }
    const process: NgxProcess;
    export = process;
}
