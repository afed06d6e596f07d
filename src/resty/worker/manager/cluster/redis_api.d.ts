/**
 * The part of lua-resty-redis the cluster layer calls (0.27, Debian's
 * lua-nginx-redis, and later). Commands return the reply, or nil/false and
 * an error text: nil for a network error, false for an error reply.
 */
declare interface RedisClient {
    set_timeout(ms: number): void;
    /** lua-resty-redis 0.28 and later only (in 0.27 it would be sent as a command). */
    set_timeouts(connect: number, send: number, read: number): void;
    connect(host: string, port: number, opts?: object): LuaMultiReturn<[1, undefined] | [undefined, string]>;
    connect(path: string, opts?: object): LuaMultiReturn<[1, undefined] | [undefined, string]>;
    set_keepalive(idle_ms: number, pool_size: number): LuaMultiReturn<[1, undefined] | [undefined, string]>;
    close(): void;
    get_reused_times(): LuaMultiReturn<[number, undefined] | [undefined, string]>;
    auth(...args: string[]): LuaMultiReturn<[unknown, string | undefined]>;
    select(db: number): LuaMultiReturn<[unknown, string | undefined]>;
    evalsha(sha: string, nkeys: number, ...args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]>;
    eval(script: string, nkeys: number, ...args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]>;
    sentinel(...args: string[]): LuaMultiReturn<[unknown, string | undefined]>;
    role(): LuaMultiReturn<[unknown, string | undefined]>;
    xread(...args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]>;
    xrange(key: string, start: string, end: string, ...args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]>;
}

declare interface RedisModule {
    _VERSION: string;
    "new": (this: void) => LuaMultiReturn<[RedisClient, undefined] | [undefined, string]>;
}
