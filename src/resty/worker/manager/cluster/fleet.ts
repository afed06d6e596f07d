/**
 * The node's membership in the fleet: an agent, a node singleton (one
 * worker of the node at a time, moved through reloads and crashes), every
 * `interval` refreshes the node's presence in Redis (scripts.ts), reads the
 * fleet's events from the node's own cursor and runs on_join / on_leave for
 * each, in order. The cursor and the last view live in the node's shm: an
 * agent that moves goes on where the last one stopped, so an event runs
 * late rather than never, and once (a callback cut off by its worker's
 * death runs again in the next agent).
 *
 * Redis trouble stays out of the node: the agent logs one error per outage
 * and one notice when Redis is back, and tries again at its next interval.
 */

import * as keys from "../keys";
import * as driver from "./driver";
import * as scripts from "./scripts";
import { log } from "../log";
import type { ClusterConfig } from "./options";
import type { FleetCallback, FleetNode, LeaveReason } from "resty.worker.manager";

const ERR = ngx.ERR;
const NOTICE = ngx.NOTICE;
const now = ngx.now;
const update_time = ngx.update_time;

/** The agent's singleton name: a name users cannot register (they are checked). */
const AGENT = "[worker-manager] fleet";
/** Events read per round trip. */
const BATCH = 100;
/** How long the stream keeps an event, at least: a node away longer misses events. */
const MIN_RETENTION = 3600 * 1000;

/** The node's generation and its worker count, for its entry in the fleet. */
type Census = (this: void) => LuaMultiReturn<[number, number]>;

let config: ClusterConfig | undefined;
let dict: NgxSharedDict | undefined;
let census: Census | undefined;
let fleet_keys: string[] = [];

function retention(c: ClusterConfig): number {
    return math.max(MIN_RETENTION, (c.interval + c.failed) * 1000 * 100);
}

/** In init_by_lua: this configuration's fleet options (nil: not a member). */
function setup(c: ClusterConfig | undefined, d: NgxSharedDict): void {
    config = c;
    dict = d;
    fleet_keys = c === undefined ? [] : scripts.keys(c.prefix);
}

function enabled(): boolean {
    return config !== undefined;
}

/** This node's incarnation: made once per node start, by whichever worker asks first. */
function incarnation(d: NgxSharedDict): string {
    const [known] = d.get(keys.FLEET_INCARNATION);
    if (typeof known === "string") {
        return known;
    }
    update_time();
    const made = string.format("%x-%x", math.floor(now() * 1000), ngx.worker.pid());
    d.add(keys.FLEET_INCARNATION, made);
    const [kept] = d.get(keys.FLEET_INCARNATION);
    return kept as string;
}

/** Redis could not be reached or refused: one error per outage. */
function trouble(c: ClusterConfig, d: NgxSharedDict, err: string): void {
    update_time();
    const [ok] = d.add(keys.FLEET_OUTAGE, now());
    if (ok) {
        log(ERR, "fleet: Redis at ", c.redis.label, " failed: ", err, "; the fleet is not updated until it is ",
            "back (the node itself goes on)");
    }
}

function recovered(c: ClusterConfig, d: NgxSharedDict): void {
    const [since] = d.get(keys.FLEET_OUTAGE);
    if (since !== undefined) {
        d.delete(keys.FLEET_OUTAGE);
        update_time();
        log(NOTICE, "fleet: Redis at ", c.redis.label, " is back after ",
            string.format("%.1f", now() - (since as number)), " s");
    }
}

/** The stream id just before `id` ("ms-seq"): a cursor that reads `id` next. */
function before(id: string): string {
    const [ms, seq] = string.match(id, "^(%d+)%-(%d+)$");
    const s = tonumber(seq) ?? 0;
    if (s > 0) {
        return ms + "-" + (s - 1);
    }
    return string.format("%d-18446744073709551615", (tonumber(ms) ?? 1) - 1);
}

/** The view's lines, one per member. */
function lines(view: string): string[] {
    const out: string[] = [];
    for (const [line] of string.gmatch(view, "[^\n]+")) {
        out.push(line as string);
    }
    return out;
}

/** The members in PRESENCE's reply (node, text pairs) as the view's lines. */
function view_of(flat: unknown[]): string {
    const out: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
        out.push(tostring(flat[i]) + " " + tostring(flat[i + 1]));
    }
    table.sort(out);
    return out.join("\n");
}

function call(what: string, cb: FleetCallback, node: string, n: number, reason: LeaveReason | undefined): void {
    // on_join gets two arguments, on_leave three
    const [ok, err] = reason === undefined ? pcall(cb, node, n) : pcall(cb, node, n, reason);
    if (!ok) {
        log(ERR, "fleet: ", what, "('", node, "', ", n, reason !== undefined ? ", \"" + reason + "\"" : "",
            ") failed: ", err);
    }
}

/**
 * One event, unless it repeats what this node ran last for that member's
 * incarnation (a join or leave written again after a Redis failover lost
 * the first write).
 */
function run_event(c: ClusterConfig, d: NgxSharedDict, e: Record<string, string>): void {
    const node = e["node"] ?? "?";
    const n = tonumber(e["n"]) ?? 0;
    const joins = e["kind"] === "join";
    const state = (e["inc"] ?? "?") + (joins ? " in" : " out");
    const [last] = d.get(keys.fleet_member(node));
    if (last === state) {
        return;
    }
    d.set(keys.fleet_member(node), state, retention(c) / 1000);
    if (joins && c.on_join !== undefined) {
        call("on_join", c.on_join, node, n, undefined);
    } else if (!joins && c.on_leave !== undefined) {
        call("on_leave", c.on_leave, node, n, e["reason"] === "stopped" ? "stopped" : "lost");
    }
}

/** Runs the events after the cursor, in order, moving the cursor past each. */
function run_events(c: ClusterConfig, d: NgxSharedDict, red: RedisClient): string | undefined {
    for (;;) {
        const [at] = d.get(keys.FLEET_CURSOR);
        const cursor = typeof at === "string" ? at : "0-0";
        const [res, err] = red.xrange(fleet_keys[2] as string, "(" + cursor, "+", "COUNT", BATCH);
        if (res === undefined || res === false) {
            return "XRANGE: " + tostring(err);
        }
        const entries = res as [string, string[]][];
        for (const [id, fields] of entries) {
            const e: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) {
                e[fields[i] as string] = fields[i + 1] as string;
            }
            run_event(c, d, e);
            d.set(keys.FLEET_CURSOR, id);
        }
        if (entries.length < BATCH) {
            return undefined;
        }
    }
}

/** One round of the agent: presence, then the events. */
function round(c: ClusterConfig, d: NgxSharedDict): string | undefined {
    const [red, cerr] = driver.connect(c.redis);
    if (red === undefined) {
        return cerr;
    }
    let [gen, workers] = [0, 0];
    if (census !== undefined) {
        [gen, workers] = census();
    }
    const [id] = d.get(keys.FLEET_ID);
    const [last] = d.get(keys.FLEET_VIEW);
    const known = typeof id === "string" ? id : "";
    const view = typeof last === "string" ? last : "";
    const args: (string | number)[] = [
        c.node, incarnation(d), known, math.floor((c.interval + c.failed) * 1000), gen, workers, retention(c),
        math.floor(c.interval * 1000),
    ];
    if (known !== "") {
        // for a Redis that forgot the fleet: the members as this node saw them
        for (const line of lines(view)) {
            args.push(line);
        }
    }
    const [res, err] = driver.run(red, scripts.PRESENCE, fleet_keys, args);
    if (res === undefined) {
        driver.done(red, c.redis, true);
        return "presence: " + err;
    }
    const reply = res as [string, string, number, number, unknown[]];
    const fleet = reply[0];
    const joined = reply[1];
    const members = reply[4];
    if (fleet !== known) {
        // first contact: read from this node's own join on; a Redis that
        // forgot the fleet: its new stream from the start
        d.set(keys.FLEET_CURSOR, joined !== "" && known === "" ? before(joined) : "0-0");
        d.set(keys.FLEET_ID, fleet);
    }
    d.set(keys.FLEET_VIEW, view_of(members));
    const rerr = run_events(c, d, red);
    driver.done(red, c.redis, rerr !== undefined);
    return rerr;
}

/** The agent's every() function. */
function agent(this: void): void {
    const c = config;
    const d = dict;
    if (c === undefined || d === undefined) {
        return;
    }
    const err = round(c, d);
    if (err !== undefined) {
        trouble(c, d, err);
    } else {
        recovered(c, d);
    }
}

/** In init_worker: what the agent reports of the node. */
function attach(counts: Census): void {
    census = counts;
}

/**
 * The node stops (its last master exit, on QUIT): it leaves as "stopped".
 * Needs cosockets: on a fast stop (TERM) it cannot run, and the node is
 * lost once its presence runs out.
 */
function leave_on_stop(): void {
    const c = config;
    const d = dict;
    if (c === undefined || d === undefined || d.get(keys.FLEET_LEFT)[0] !== undefined) {
        return;
    }
    d.set(keys.FLEET_LEFT, true);
    const err = write_leave(c, d);
    if (err !== undefined) {
        log(ERR, "fleet: could not tell Redis at ", c.redis.label, " that node '", c.node, "' stops: ", err,
            "; the fleet will find it lost");
    }
}

/** LEAVE in Redis; an error text when it could not be written. */
function write_leave(c: ClusterConfig, d: NgxSharedDict): string | undefined {
    const [red, cerr] = driver.connect(c.redis);
    if (red === undefined) {
        return cerr;
    }
    const [res, err] = driver.run(red, scripts.LEAVE, fleet_keys, [c.node, incarnation(d), retention(c), math.floor(c.interval * 1000)]);
    driver.done(red, c.redis, res === undefined);
    return res === undefined ? err : undefined;
}

/** The fleet as this node last saw it (no network call). */
function nodes(): FleetNode[] {
    const list: FleetNode[] = [];
    const d = dict;
    if (d === undefined) {
        return list;
    }
    const [view] = d.get(keys.FLEET_VIEW);
    if (typeof view !== "string") {
        return list;
    }
    for (const line of lines(view)) {
        const [name, started, gen, workers, seen] = string.match(line, "^(%S+) %S+ (%d+) (%d+) (%d+) (%d+)");
        if (name !== undefined) {
            list.push({
                node: name,
                started: (tonumber(started) ?? 0) / 1000,
                generation: tonumber(gen) ?? 0,
                workers: tonumber(workers) ?? 0,
                seen: (tonumber(seen) ?? 0) / 1000,
            });
        }
    }
    return list;
}

/** Who this worker is in the fleet: "<node>/<incarnation>/<pid>" (a lease's holder). */
function holder_id(this: void): string {
    const c = config;
    const d = dict;
    if (c === undefined || d === undefined) {
        return "?";
    }
    return c.node + "/" + incarnation(d) + "/" + ngx.worker.pid();
}

export { AGENT, setup, enabled, attach, agent, leave_on_stop, nodes, holder_id };
export type { Census };
