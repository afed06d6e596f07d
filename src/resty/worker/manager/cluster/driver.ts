/**
 * The Redis client: lua-resty-redis under either of its names (luarocks and
 * OpenResty: resty.redis; Debian's lua-nginx-redis: nginx.redis), one
 * connection per call from the cosocket pool, scripts sent by SHA1 first.
 *
 * Sentinel: the master's address is asked from the sentinels in turn
 * (SENTINEL get-master-addr-by-name) and the server is asked its ROLE
 * before it is used, so a demoted master is never written to. Only
 * lua-resty-redis is needed for that.
 */

import type { RedisTarget } from "./options";

const NAMES = ["resty.redis", "nginx.redis"];
const KEEPALIVE_MS = 60000;

let redis: RedisModule | undefined = undefined;
/**
 * lua-resty-redis 0.28 and later have set_timeouts. Asked of the module
 * table itself: its metatable makes any other name a Redis command.
 */
let has_timeouts = false;

/** lua-resty-redis, under whichever name this installation has it; nil if absent. */
function load(): RedisModule | undefined {
    if (redis === undefined) {
        for (const name of NAMES) {
            const [ok, mod] = pcall(require, name);
            if (ok && type(mod) === "table") {
                redis = mod as RedisModule;
                has_timeouts = rawget(mod as unknown as Record<string, unknown>, "set_timeouts") !== undefined;
                break;
            }
        }
    }
    return redis;
}

/** Whether version text `v` ("0.27") is at least `major.minor`. */
function at_least(v: string, major: number, minor: number): boolean {
    const [a, b] = string.match(v, "^(%d+)%.(%d+)");
    const x = tonumber(a) ?? 0;
    const y = tonumber(b) ?? 0;
    return x > major || (x === major && y >= minor);
}

/** At on_init_by_lua: the library is there, and can do what the options ask. */
function check(_sentinels: boolean, ssl: boolean, level: number): void {
    const mod = load();
    if (mod === undefined) {
        error("opts.cluster needs lua-resty-redis, found neither resty.redis nor nginx.redis: install it with "
              + "`luarocks install lua-resty-redis` (OpenResty has it already; Debian: apt install lua-nginx-redis)",
              level);
    }
    if (ssl && !at_least(tostring(mod._VERSION), 0, 28)) {
        error("opts.cluster.redis.ssl needs lua-resty-redis 0.28 or newer, found " + tostring(mod._VERSION), level);
    }
}

/** A fresh connection's authentication and database. */
function prepare(red: RedisClient, t: RedisTarget): string | undefined {
    const [reused] = red.get_reused_times();
    if (reused !== undefined && reused > 0) {
        return undefined;
    }
    if (t.password !== undefined) {
        const [ok, err] = t.username !== undefined ? red.auth(t.username, t.password) : red.auth(t.password);
        if (!ok) {
            return "AUTH failed: " + tostring(err);
        }
    }
    if (t.database !== 0) {
        const [ok, err] = red.select(t.database);
        if (!ok) {
            return "SELECT " + t.database + " failed: " + tostring(err);
        }
    }
    return undefined;
}

/**
 * A connection to `host`:`port` (or t.path when host is nil); `sentinel`:
 * one to a Sentinel, which gets no AUTH or SELECT of the data server.
 */
function open(t: RedisTarget, host: string | undefined, port: number, sentinel: boolean): LuaMultiReturn<[RedisClient, undefined] | [undefined, string]> {
    const mod = load();
    if (mod === undefined) {
        return $multi(undefined, "lua-resty-redis is not installed");
    }
    const [red, err] = mod.new();
    if (red === undefined) {
        return $multi(undefined, err);
    }
    const connect_ms = t.connect_timeout * 1000;
    const read_ms = t.read_timeout * 1000;
    if (has_timeouts) {
        red.set_timeouts(connect_ms, read_ms, read_ms);
    } else {
        red.set_timeout(connect_ms);
    }
    // one pool per address and database: a connection authenticated or
    // switched for one target is never handed to another
    const pool = (host !== undefined ? host + ":" + port : tostring(t.path))
        + (sentinel ? "/sentinel" : "/" + t.database + "/" + (t.username ?? ""));
    const opts = t.ssl ? { pool, pool_size: t.pool_size, ssl: true, ssl_verify: t.ssl_verify, server_name: t.server_name }
        : { pool, pool_size: t.pool_size };
    const [ok, cerr] = host !== undefined ? red.connect(host, port, opts) : red.connect(t.path as string, opts);
    if (ok === undefined) {
        return $multi(undefined, "cannot connect: " + cerr);
    }
    if (!has_timeouts) {
        red.set_timeout(read_ms);
    }
    // a sentinel takes no AUTH of the master's nor a SELECT
    if (sentinel) {
        return $multi(red, undefined);
    }
    const perr = prepare(red, t);
    if (perr !== undefined) {
        red.close();
        return $multi(undefined, perr);
    }
    return $multi(red, undefined);
}

/** The sentinel that answered last (an index into the list), asked first next time. */
let answered = 0;

/** Back to the pool; a connection in doubt (after an error) is closed instead. */
function done(red: RedisClient, t: RedisTarget, failed: boolean): void {
    if (failed) {
        red.close();
    } else {
        red.set_keepalive(KEEPALIVE_MS, t.pool_size);
    }
}

/** The master's address, from the first sentinel that knows it. */
function ask_sentinels(t: RedisTarget): LuaMultiReturn<[string, number] | [undefined, string]> {
    const errors: string[] = [];
    const list = t.sentinels ?? [];
    for (const i of $range(0, list.length - 1)) {
        const k = (answered + i) % list.length;
        const s = list[k] as { host: string; port: number };
        const [red, err] = open(t, s.host, s.port, true);
        if (red === undefined) {
            errors.push(s.host + ":" + s.port + " " + err);
        } else {
            const [res, rerr] = red.sentinel("get-master-addr-by-name", t.master_name as string);
            // after an error the connection may still get a late reply: not for the pool
            done(red, t, rerr !== undefined);
            const addr = res as [string, string] | undefined;
            if (type(res) === "table" && addr !== undefined && tonumber(addr[1]) !== undefined) {
                answered = k;
                return $multi(addr[0], tonumber(addr[1]) as number);
            }
            errors.push(s.host + ":" + s.port + " " + (rerr ?? "does not know master '" + t.master_name + "'"));
        }
    }
    return $multi(undefined, "no sentinel gave the master's address (" + errors.join("; ") + ")");
}

/** A connection to the Redis that takes writes. */
function connect(t: RedisTarget): LuaMultiReturn<[RedisClient, undefined] | [undefined, string]> {
    if (t.sentinels === undefined) {
        return open(t, t.host, t.port, false);
    }
    const [host, port] = ask_sentinels(t);
    if (host === undefined) {
        return $multi(undefined, port);
    }
    const [red, err] = open(t, host, port as number, false);
    if (red === undefined) {
        return $multi(undefined, "master " + host + ":" + port + ": " + err);
    }
    const [role] = red.role();
    if (type(role) !== "table" || (role as string[])[0] !== "master") {
        red.close();
        return $multi(undefined, host + ":" + port + " is not a master (a failover is under way)");
    }
    return $multi(red, undefined);
}

/** A Redis script, sent by its SHA1 once the server has it. */
interface Script {
    source: string;
    sha: string;
}

function script(source: string): Script {
    const [hex] = string.gsub(ngx.sha1_bin(source), ".", (c: string) => string.format("%02x", string.byte(c)));
    return { source, sha: hex };
}

/**
 * Runs `s` with `keys` and `args`: EVALSHA, and EVAL when the server does
 * not have it yet (a new or restarted Redis). Returns the reply, or nil and
 * an error text.
 */
function run(red: RedisClient, s: Script, keys: string[], args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]> {
    const all: (string | number)[] = [];
    for (const k of keys) {
        all.push(k);
    }
    for (const a of args) {
        all.push(a);
    }
    let [res, err] = red.evalsha(s.sha, keys.length, ...all);
    if (res === false && err !== undefined && string.sub(err, 1, 8) === "NOSCRIPT") {
        [res, err] = red.eval(s.source, keys.length, ...all);
    }
    if (res === undefined || res === false) {
        return $multi(undefined, err ?? "no reply");
    }
    return $multi(res, undefined);
}

export { load, check, connect, done, script, run };
export type { Script };
