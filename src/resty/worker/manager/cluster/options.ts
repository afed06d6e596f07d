/**
 * opts.cluster checked at on_init_by_lua: every mistake is an error there,
 * naming the option, so that a fleet never starts half configured.
 */

import type { ClusterOptions, FleetCallback, RedisOptions } from "resty.worker.manager";
import * as driver from "./driver";

/** What opts.cluster may leave out (timeout: Redis's connect and read timeouts; pool: connections kept). */
const DEFAULTS = { interval: 2, failed: 3, prefix: "wm", timeout: 1, pool: 4 };
/** Bounds of every number of seconds in opts.cluster. */
const [MIN_SECONDS, MAX_SECONDS] = [0.01, 3600];
const MAX_NODE = 200;

/** Where Redis is: one server, or the master that Sentinels name. */
interface RedisTarget {
    host: string | undefined;
    port: number;
    /** "unix:/path" */
    path: string | undefined;
    sentinels: { host: string; port: number }[] | undefined;
    master_name: string | undefined;
    username: string | undefined;
    password: string | undefined;
    database: number;
    ssl: boolean;
    ssl_verify: boolean;
    server_name: string | undefined;
    /** Seconds. */
    connect_timeout: number;
    read_timeout: number;
    pool_size: number;
    /** For messages: host:port, the socket, or the Sentinels' master. */
    label: string;
}

interface ClusterConfig {
    redis: RedisTarget;
    node: string;
    prefix: string;
    interval: number;
    failed: number;
    on_join: FleetCallback | undefined;
    on_leave: FleetCallback | undefined;
}

function describe(value: unknown): string {
    // %q shows control characters, which a plain quote would hide
    return typeof value === "string" ? string.format("%q", value) : type(value) === "number" ? tostring(value)
        : type(value);
}

function fail(name: string, want: string, value: unknown, level: number): never {
    error("opts.cluster." + name + " must be " + want + ", got " + describe(value), level);
}

function seconds(name: string, value: unknown, fallback: number, level: number): number {
    if (value === undefined) {
        return fallback;
    }
    if (typeof value !== "number" || !(value >= MIN_SECONDS && value <= MAX_SECONDS)) {
        fail(name, "a number of seconds from " + MIN_SECONDS + " to " + MAX_SECONDS, value, level + 1);
    }
    return value;
}

function optional_string(name: string, value: unknown, level: number): string | undefined {
    if (value !== undefined && (typeof value !== "string" || value === "")) {
        fail(name, "a non-empty string", value, level + 1);
    }
    return value as string | undefined;
}

function port_of(name: string, value: unknown, level: number): number {
    if (value === undefined) {
        return 6379;
    }
    if (typeof value !== "number" || value % 1 !== 0 || value < 1 || value > 65535) {
        fail(name, "a port number from 1 to 65535", value, level + 1);
    }
    return value;
}

function sentinels_of(value: unknown, level: number): { host: string; port: number }[] {
    if (type(value) !== "table" || (value as unknown[]).length === 0) {
        const empty = type(value) === "table" && next(value as object)[0] === undefined;
        error("opts.cluster.redis.sentinels must be a non-empty list of { host = ..., port = ... }, got "
              + (empty ? "an empty table" : describe(value)), level);
    }
    const list: { host: string; port: number }[] = [];
    const given = value as unknown[];
    for (const i of $range(1, given.length)) {
        const s = given[i - 1] as { host?: unknown; port?: unknown } | undefined;
        if (type(s) !== "table" || typeof s?.host !== "string" || s.host === "") {
            fail("redis.sentinels[" + i + "]", "a table with a host", s, level + 1);
        }
        list.push({ host: s.host, port: port_of("redis.sentinels[" + i + "].port", s.port, level + 1) });
    }
    return list;
}

function redis_of(value: unknown, level: number): RedisTarget {
    if (type(value) !== "table") {
        fail("redis", "a table with host and port, path, or sentinels and master_name", value, level + 1);
    }
    const r = value as RedisOptions & Record<string, unknown>;
    const host = optional_string("redis.host", r.host, level + 1);
    const path = optional_string("redis.path", r.path, level + 1);
    const master_name = optional_string("redis.master_name", r.master_name, level + 1);
    let sentinels: RedisTarget["sentinels"] = undefined;
    if (r.sentinels !== undefined) {
        sentinels = sentinels_of(r.sentinels, level + 1);
    }
    const ways = (host !== undefined ? 1 : 0) + (path !== undefined ? 1 : 0) + (sentinels !== undefined ? 1 : 0);
    if (ways !== 1) {
        error("opts.cluster.redis must give exactly one of host (with port), path (a unix socket) or sentinels "
              + "(with master_name), got " + (ways === 0 ? "none" : "several"), level);
    }
    if (sentinels !== undefined && master_name === undefined) {
        error("opts.cluster.redis.master_name must name the master the sentinels watch", level);
    }
    if (path !== undefined && string.sub(path, 1, 5) !== "unix:" && string.sub(path, 1, 1) !== "/") {
        fail("redis.path", "a unix socket path (\"unix:/...\" or \"/...\")", path, level + 1);
    }
    const database = r.database ?? 0;
    if (typeof database !== "number" || database % 1 !== 0 || database < 0) {
        fail("redis.database", "a database number (0 or more)", database, level + 1);
    }
    if (r.ssl !== undefined && typeof r.ssl !== "boolean") {
        fail("redis.ssl", "a boolean", r.ssl, level + 1);
    }
    if (r.ssl_verify !== undefined && typeof r.ssl_verify !== "boolean") {
        fail("redis.ssl_verify", "a boolean", r.ssl_verify, level + 1);
    }
    const pool_size = r.pool_size ?? DEFAULTS.pool;
    if (typeof pool_size !== "number" || pool_size % 1 !== 0 || pool_size < 1) {
        fail("redis.pool_size", "a whole number of connections (1 or more)", pool_size, level + 1);
    }
    if (r.password !== undefined && (typeof r.password !== "string" || r.password === "")) {
        // (the value itself stays out of the log: it may be the password)
        error("opts.cluster.redis.password must be a non-empty string, got "
              + (r.password === "" ? "\"\"" : type(r.password)), level);
    }
    const port = port_of("redis.port", r.port, level + 1);
    // lua-resty-redis connects to a unix socket given as "unix:/path"
    let unix: string | undefined = undefined;
    if (path !== undefined) {
        unix = string.sub(path, 1, 5) === "unix:" ? path : "unix:" + path;
    }
    return {
        host, port, path: unix, sentinels, master_name,
        username: optional_string("redis.username", r.username, level + 1),
        password: optional_string("redis.password", r.password, level + 1),
        database,
        ssl: r.ssl === true,
        ssl_verify: r.ssl_verify === true,
        server_name: optional_string("redis.server_name", r.server_name, level + 1),
        connect_timeout: seconds("redis.connect_timeout", r.connect_timeout, DEFAULTS.timeout, level + 1),
        read_timeout: seconds("redis.read_timeout", r.read_timeout, DEFAULTS.timeout, level + 1),
        pool_size,
        label: unix ?? (host !== undefined ? host + ":" + port : "master '" + master_name + "' of the sentinels"),
    };
}

/** This machine's name, for the default node name. */
function hostname(): string {
    const [f] = io.open("/proc/sys/kernel/hostname", "r");
    if (f !== undefined) {
        const name = f.read("*l");
        f.close();
        if (typeof name === "string" && name !== "") {
            return name;
        }
    }
    return os.getenv("HOSTNAME") ?? "localhost";
}

function callback_of(name: string, value: unknown, level: number): FleetCallback | undefined {
    if (value !== undefined && type(value) !== "function") {
        fail(name, "a function or nil", value, level + 1);
    }
    return value as FleetCallback | undefined;
}

/**
 * opts.cluster, checked, with its defaults; nil without one. `level`: what
 * error() called here is given (each helper gets one more).
 */
function check(value: unknown, level: number): ClusterConfig | undefined {
    if (value === undefined) {
        return undefined;
    }
    if (type(value) !== "table") {
        error("opts.cluster must be a table, got " + type(value), level);
    }
    const c = value as ClusterOptions & Record<string, unknown>;
    const redis = redis_of(c.redis, level + 1);
    const node = optional_string("node", c.node, level + 1) ?? hostname() + ":" + ngx.config.prefix();
    if (node.length > MAX_NODE || string.find(node, "[%c%s]")[0] !== undefined) {
        fail("node", "a name of 1 to " + MAX_NODE + " bytes without spaces or control characters", node, level + 1);
    }
    const prefix = optional_string("prefix", c.prefix, level + 1) ?? DEFAULTS.prefix;
    if (string.find(prefix, "[{}%c%s]")[0] !== undefined) {
        // the keys are "{prefix}:...": one hash tag, so one slot of a sharded Redis
        fail("prefix", "a string without braces, spaces or control characters", prefix, level + 1);
    }
    const interval = seconds("interval", c.interval, DEFAULTS.interval, level + 1);
    const failed = seconds("failed", c.failed, DEFAULTS.failed, level + 1);
    const on_join = callback_of("on_join", c.on_join, level + 1);
    const on_leave = callback_of("on_leave", c.on_leave, level + 1);
    driver.check(redis.sentinels !== undefined, redis.ssl, level + 1);
    return { redis, node, prefix, interval, failed, on_join, on_leave };
}

export { check };
export type { ClusterConfig, RedisTarget };
