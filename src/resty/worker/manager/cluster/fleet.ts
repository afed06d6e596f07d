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
import * as singletons from "../singletons";
import { log } from "../log";
import { on_error } from "../callbacks";
import { write, write_expiring, create } from "../store";
import type { ClusterConfig } from "./options";
import type { FleetCallback, FleetNode, LeaveReason } from "resty.worker.manager";

const [ERR, NOTICE] = [ngx.ERR, ngx.NOTICE];
const [now, update_time] = [ngx.now, ngx.update_time];

/** The agent's singleton name: a name users cannot register (they are checked). */
const AGENT = "[worker-manager] fleet";
/** Events read per round trip. */
const BATCH = 100;
/** Seconds of one blocking read of new events: how long a stop or a move of the agent may wait for it. */
const LISTEN_STEP = 0.5;
/** Seconds before its next round the agent stops listening (every() then re-arms it at once). */
const LISTEN_GAP = 0.02;
/** Seconds an event's claim is kept (longer than two agents can overlap). */
const CLAIM_TTL = 60;
/** How long the stream keeps an event, at least: a node away longer misses events. */
const MIN_RETENTION = 3600 * 1000;

/** The node's generation and its worker count, for its entry in the fleet. */
type Census = (this: void) => LuaMultiReturn<[number, number]>;

let config: ClusterConfig | undefined = undefined;
let dict: NgxSharedDict | undefined = undefined;
let census: Census | undefined = undefined;
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
    const [known] = d.get(keys.FLEET.incarnation);
    if (typeof known === "string") {
        return known;
    }
    update_time();
    const made = string.format("%x-%x", math.floor(now() * 1000), ngx.worker.pid());
    if (!create(d, keys.FLEET.incarnation, made)) {
        return made;
    }
    const [kept] = d.get(keys.FLEET.incarnation);
    return typeof kept === "string" ? kept : made;
}

/** Redis could not be reached or refused: one error per outage. */
function trouble(c: ClusterConfig, d: NgxSharedDict, err: string): void {
    update_time();
    // (a zone too full for the mark: an error per round, not per outage)
    const [ok] = d.safe_add(keys.FLEET.outage, now());
    if (ok) {
        log(ERR, "fleet: Redis at ", c.redis.label, " failed: ", err, "; the fleet is not updated until it is ",
            "back (the node itself goes on)");
    }
}

function recovered(c: ClusterConfig, d: NgxSharedDict): void {
    const [since] = d.get(keys.FLEET.outage);
    if (since !== undefined) {
        d.delete(keys.FLEET.outage);
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

/** Puts `node` in the view with its entry `info` ("inc started gen workers seen ttl"), or takes it out (nil). */
function note_in_view(d: NgxSharedDict, node: string, info: string | undefined): void {
    const [last] = d.get(keys.FLEET.view);
    const kept: string[] = [];
    for (const l of lines(typeof last === "string" ? last : "")) {
        if (string.match(l, "^(%S+)")[0] !== node) {
            kept.push(l);
        }
    }
    if (info !== undefined && info !== "") {
        kept.push(node + " " + info);
        table.sort(kept);
    }
    write(d, keys.FLEET.view, kept.join("\n"));
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
    if (reason === undefined) {
        const [ok, err] = xpcall(cb, on_error, node, n);
        if (!ok) {
            log(ERR, "fleet: ", what, "('", node, "', ", n, ") failed: ", err);
        }
        return;
    }
    const [ok, err] = xpcall(cb, on_error, node, n, reason);
    if (!ok) {
        log(ERR, "fleet: ", what, "('", node, "', ", n, ", \"", reason, "\") failed: ", err);
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
    write_expiring(d, keys.fleet_member(node), state, retention(c) / 1000);
    // the view follows the events between two presences: a Redis that
    // forgets the fleet meanwhile gets it back from this view, whole
    if (joins) {
        note_in_view(d, node, e["info"]);
        if (c.on_join !== undefined) {
            call("on_join", c.on_join, node, n, undefined);
        }
        return;
    }
    note_in_view(d, node, undefined);
    if (c.on_leave !== undefined) {
        call("on_leave", c.on_leave, node, n, e["reason"] === "stopped" ? "stopped" : "lost");
    }
}

/**
 * Runs stream entries in order, moving the cursor past each. Each event is
 * claimed first: of two agents of this node that overlap (a stalled one
 * resumed beside its successor), one runs it.
 */
function run_entries(c: ClusterConfig, d: NgxSharedDict, entries: [string, string[]][]): void {
    for (const entry of entries) {
        const id = entry[0];
        const fields = entry[1];
        const [claimed, err] = d.safe_add(keys.fleet_ran(id), true, CLAIM_TTL);
        if (!claimed && err !== "exists") {
            // better run twice (two overlapping agents) than never
            log(ERR, "fleet: cannot claim event ", id, " in the shm: ", err, "; running it unclaimed");
        }
        if (claimed || err !== "exists") {
            const e: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) {
                e[fields[i] as string] = fields[i + 1] as string;
            }
            run_event(c, d, e);
        }
        write(d, keys.FLEET.cursor, id);
    }
}

function cursor_of(d: NgxSharedDict): string {
    const [at] = d.get(keys.FLEET.cursor);
    return typeof at === "string" ? at : "0-0";
}

/** Runs the events after the cursor, in order. */
function run_events(c: ClusterConfig, d: NgxSharedDict, red: RedisClient): string | undefined {
    for (;;) {
        const [res, err] = red.xrange(fleet_keys[2] as string, "(" + cursor_of(d), "+", "COUNT", BATCH);
        if (res === undefined || res === false) {
            return "XRANGE: " + tostring(err);
        }
        const entries = res as [string, string[]][];
        run_entries(c, d, entries);
        if (entries.length < BATCH) {
            return undefined;
        }
    }
}

/**
 * Until `deadline` (or a stop of the agent, or the worker's exit): waits in
 * Redis for new events (XREAD BLOCK, LISTEN_STEP at a time) and runs each
 * as it comes, so that a node hears of a join or a stop within
 * milliseconds rather than at its next interval.
 */
function listen(c: ClusterConfig, d: NgxSharedDict, red: RedisClient, deadline: number): string | undefined {
    const read_ms = c.redis.read_timeout * 1000;
    for (;;) {
        update_time();
        const left = deadline - now();
        if (left < 0.01 || !singletons.keeps(AGENT)) {
            red.set_timeout(read_ms);
            return undefined;
        }
        const block = math.floor(math.min(left, LISTEN_STEP) * 1000);
        red.set_timeout(block + read_ms);
        const [res, err] = red.xread("COUNT", BATCH, "BLOCK", block, "STREAMS", fleet_keys[2] as string, cursor_of(d));
        if (res === undefined || res === false) {
            // no outage of its own: the next presence tells (a read cut
            // short by this worker's own stall is none)
            return "XREAD: " + tostring(err);
        }
        if (type(res) === "table") {
            const streams = res as [string, [string, string[]][]][];
            for (const stream of streams) {
                run_entries(c, d, stream[1]);
            }
        }
    }
}

/** The highest cluster singleton token this node saw (0 for none). */
function top_token(d: NgxSharedDict): number {
    const [top] = d.get(keys.FLEET.token_max);
    return typeof top === "number" ? top : 0;
}

/** One round of the agent: presence, the events, then listening for new ones until `deadline`. */
function round(c: ClusterConfig, d: NgxSharedDict, deadline: number): string | undefined {
    const [red, cerr] = driver.connect(c.redis);
    if (red === undefined) {
        return cerr;
    }
    let [gen, workers] = [0, 0];
    if (census !== undefined) {
        [gen, workers] = census();
    }
    const [id] = d.get(keys.FLEET.id);
    const [last] = d.get(keys.FLEET.view);
    const known = typeof id === "string" ? id : "";
    const view = typeof last === "string" ? last : "";
    const args: (string | number)[] = [
        c.node, incarnation(d), known, math.floor((c.interval + c.failed) * 1000), gen, workers, retention(c),
        math.floor(c.interval * 1000), top_token(d),
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
        write(d, keys.FLEET.cursor, joined !== "" && known === "" ? before(joined) : "0-0");
        write(d, keys.FLEET.id, fleet);
    }
    write(d, keys.FLEET.view, view_of(members));
    const rerr = run_events(c, d, red);
    if (rerr !== undefined) {
        driver.done(red, c.redis, true);
        return rerr;
    }
    const lerr = listen(c, d, red, deadline);
    driver.done(red, c.redis, lerr !== undefined);
    return undefined;
}

/** The agent's every() function. */
function agent(this: void): void {
    const c = config;
    const d = dict;
    if (c === undefined || d === undefined) {
        return;
    }
    update_time();
    const err = round(c, d, now() + math.max(0, c.interval - LISTEN_GAP));
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

/** LEAVE in Redis; an error text when it could not be written. */
function write_leave(c: ClusterConfig, d: NgxSharedDict): string | undefined {
    const [red, cerr] = driver.connect(c.redis);
    if (red === undefined) {
        return cerr;
    }
    const [res, err] = driver.run(red, scripts.LEAVE, fleet_keys, [c.node, incarnation(d), retention(c), math.floor(c.interval * 1000)]);
    driver.done(red, c.redis, res === undefined);
    if (res === undefined) {
        return err;
    }
    return undefined;
}

/**
 * The node stops (its last master exit, on QUIT): it leaves as "stopped".
 * Needs cosockets: on a fast stop (TERM) it cannot run, and the node is
 * lost once its presence runs out.
 */
function leave_on_stop(): void {
    const c = config;
    const d = dict;
    if (c === undefined || d === undefined || d.get(keys.FLEET.left)[0] !== undefined) {
        return;
    }
    write(d, keys.FLEET.left, 1);
    const err = write_leave(c, d);
    if (err !== undefined) {
        log(ERR, "fleet: could not tell Redis at ", c.redis.label, " that node '", c.node, "' stops: ", err,
            "; the fleet will find it lost");
    }
}

/** The fleet as this node last saw it (no network call). */
function nodes(): FleetNode[] {
    const list: FleetNode[] = [];
    const d = dict;
    if (d === undefined) {
        return list;
    }
    const [view] = d.get(keys.FLEET.view);
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
