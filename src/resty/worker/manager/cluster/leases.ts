/**
 * Cluster singletons: one worker in the whole fleet runs the job.
 *
 * Two levels. In each node, a node singleton (singletons.ts) picks the one
 * worker that competes for the name, and moves it through reloads, crashes
 * and stalls. That worker holds a lease in Redis (scripts.ts: ACQUIRE,
 * RENEW, RELEASE) with a fencing token from the fleet's one counter, and
 * renews it every `interval`. The lease runs for `interval + failed` by
 * Redis's clock; the holder counts its own holding as over sooner, at
 * LEASE_SHARE of that from the moment it sent the request, so that it
 * stops ("lost") before any other node can take the lease, even with
 * clocks that tick at slightly different rates.
 *
 * The user's start and fn run in timers of their own, so a slow job never
 * delays a renewal. A stop for a move of the node singleton (reload, stop,
 * exit) waits for a running start or fn, runs, then releases the lease so
 * that the next holder need not wait for it to run out.
 */

import * as driver from "./driver";
import * as keys from "../keys";
import * as scripts from "./scripts";
import { log } from "../log";
import { run_job } from "../callbacks";
import { write } from "../store";
import type { ClusterConfig } from "./options";
import type { JobSpec } from "../singletons";
import type { SingletonFn, SingletonStart, SingletonStop, StopReason } from "resty.worker.manager";

const [ERR, NOTICE] = [ngx.ERR, ngx.NOTICE];
const [now, update_time, sleep, get_phase] = [ngx.now, ngx.update_time, ngx.sleep, ngx.get_phase];
const timer_at = ngx.timer.at;

/** What the node singleton that competes for a cluster name is called. */
const PREFIX = "[worker-manager] cluster ";
/** The share of the lease the holder counts on (from when it asked). */
const LEASE_SHARE = 0.8;
/** Poll step while a stop waits for a running start or fn. */
const WAIT_STEP = 0.01;

/** A cluster singleton this worker competes for. */
interface Lease extends JobSpec {
    /** The cluster holding's token; nil while not held here. */
    token: number | undefined;
    /** Local time until which the holding counts. */
    valid_until: number;
    /** A start or fn runs now. */
    busy: boolean;
    /** The user's start (or a first run) began in this holding. */
    started: boolean;
    /** The holding is ending: no more starts or runs. */
    ending: boolean;
    /** Lost while a start or fn ran: its stop runs once that returns. */
    lost: boolean;
}

let config: ClusterConfig | undefined = undefined;
let dict: NgxSharedDict | undefined = undefined;
let holder_id: (this: void) => string = () => "?";
const leases: Record<string, Lease> = {};

/** In init_worker: the fleet's options, and who this worker is in the fleet. */
function setup(c: ClusterConfig, d: NgxSharedDict, who: (this: void) => string): void {
    config = c;
    dict = d;
    holder_id = who;
}

/** The highest token of `name` the node saw (any of its workers): the floor of the next one. */
function seen(name: string): number {
    const [v] = (dict as NgxSharedDict).get(keys.fleet_seen(name));
    return typeof v === "number" ? v : 0;
}

/** Notes a token of `name` this node got or saw: tokens never go back, even after a Redis forgot them. */
function saw(name: string, token: number): void {
    const d = dict as NgxSharedDict;
    if (token > seen(name)) {
        write(d, keys.fleet_seen(name), token);
    }
    const [top] = d.get(keys.FLEET.token_max);
    if (typeof top !== "number" || token > top) {
        write(d, keys.FLEET.token_max, token);
    }
}

function has(name: string): boolean {
    return leases[name] !== undefined;
}

/** Runs user code protected; an error is logged with the name, token and worker pid. */
function call(what: string, l: Lease, token: number, f: SingletonStop, reason?: StopReason): void {
    run_job("cluster singleton", what, l.name, ngx.worker.pid(), token, f, reason);
}

function lease_ms(c: ClusterConfig): number {
    return math.floor((c.interval + c.failed) * 1000);
}

/** Runs one lease script; the reply, or nil and an error text. */
function ask(c: ClusterConfig, l: Lease, s: driver.Script, args: (string | number)[]): LuaMultiReturn<[unknown, string | undefined]> {
    const [red, cerr] = driver.connect(c.redis);
    if (red === undefined) {
        return $multi(undefined, cerr);
    }
    const k = scripts.keys(c.prefix);
    k.push(scripts.lease_key(c.prefix, l.name));
    const [res, err] = driver.run(red, s, k, args);
    driver.done(red, c.redis, res === undefined);
    return $multi(res, err);
}

/** The holding ends here: the user's stop (once its start ran), then forgotten. */
function end_lease(l: Lease, reason: StopReason): void {
    const token = l.token;
    if (token === undefined || l.ending) {
        return;
    }
    l.ending = true;
    if (l.started && l.stop !== undefined) {
        call("stop", l, token, l.stop, reason);
    }
    l.token = undefined;
    l.started = false;
    l.ending = false;
}

/** The holding ran out or was taken over: "lost", now, or after the running start or fn. */
function lose(l: Lease, why: string): void {
    if (l.token === undefined || l.ending) {
        return;
    }
    log(NOTICE, "worker ", ngx.worker.pid(), " lost cluster singleton '", l.name, "' (token ", l.token, "): ", why);
    l.valid_until = 0;
    if (l.busy) {
        l.lost = true; // after_busy ends it
    } else {
        end_lease(l, "lost");
    }
}

/** Whether the holding still counts; ends it ("lost") when it ran out. */
function valid(l: Lease): boolean {
    update_time();
    if (l.token !== undefined && !l.lost && now() > l.valid_until) {
        lose(l, "its lease could not be renewed in time");
    }
    return l.token !== undefined && !l.ending && !l.lost;
}

function after_busy(l: Lease): void {
    l.busy = false;
    if (l.lost) {
        l.lost = false;
        end_lease(l, "lost");
    } else {
        valid(l);
    }
}

function on_run(premature: boolean, l: Lease, token: number): void {
    if (premature || l.token !== token || l.busy || !valid(l)) {
        return;
    }
    update_time();
    const began = now();
    l.busy = true;
    l.started = true;
    if (l.fn !== undefined) {
        call("fn", l, token, l.fn as SingletonStop);
    } else if (l.start !== undefined) {
        call("start", l, token, l.start as SingletonStop);
    }
    after_busy(l);
    if (l.fn !== undefined && l.token === token && !l.ending && !ngx.worker.exiting()) {
        update_time();
        const [ok, err] = timer_at(math.max(0, began + l.interval - now()), on_run, l, token);
        if (!ok) {
            log(ERR, "could not start the timer of cluster singleton '", l.name, "': ", err);
        }
    }
}

/** The internal node singleton's every(): take or renew the lease. */
function round(this: void, internal: string): void {
    const c = config;
    const l = leases[string.sub(internal, PREFIX.length + 1)];
    if (c === undefined || l === undefined) {
        return;
    }
    update_time();
    const asked = now();
    const ms = lease_ms(c);
    if (l.token !== undefined) {
        if (!valid(l)) {
            return;
        }
        const [res, err] = ask(c, l, scripts.RENEW, [holder_id(), l.token, ms]);
        if (res === 1) {
            l.valid_until = asked + (ms / 1000) * LEASE_SHARE;
        } else if (res === 0) {
            lose(l, "another node holds it now");
        } else if (err !== undefined) {
            valid(l);
        }
        return;
    }
    const [res] = ask(c, l, scripts.ACQUIRE, [holder_id(), ms, seen(l.name)]);
    if (type(res) !== "table") {
        return;
    }
    const [taken, token] = res as [number, number];
    saw(l.name, token ?? 0);
    if (taken === 1 && !ngx.worker.exiting()) {
        l.token = token;
        l.valid_until = asked + (ms / 1000) * LEASE_SHARE;
        l.started = false;
        const [ok, terr] = timer_at(0, on_run, l, token);
        if (!ok) {
            log(ERR, "could not start a timer for cluster singleton '", l.name, "': ", terr, "; starting it here");
            on_run(false, l, token);
        }
    }
}

/**
 * The internal node singleton's stop: this worker no longer competes for
 * the name (reload, stop, exit, or dropped as stalled: "lost").
 */
function on_node_stop(this: void, internal: string, _node_token: number, reason?: StopReason): void {
    const c = config;
    const l = leases[string.sub(internal, PREFIX.length + 1)];
    if (c === undefined || l === undefined || l.token === undefined) {
        return;
    }
    const token = l.token;
    const can_yield = get_phase() === "timer";
    while (can_yield && l.busy) {
        sleep(WAIT_STEP);
    }
    if (l.token !== token || !valid(l)) {
        return; // (a holding that ran out meanwhile ended as "lost")
    }
    end_lease(l, reason ?? "stop");
    if (reason !== "lost" && can_yield) {
        ask(c, l, scripts.RELEASE, [holder_id(), token]);
    }
}

/** Registers cluster singleton `name` in this worker; returns the name of its node singleton. */
function add(name: string, start: SingletonStart | undefined, stop: SingletonStop | undefined,
             fn: SingletonFn | undefined, interval: number): string {
    leases[name] = {
        name, start, stop, fn, interval, token: undefined, valid_until: 0, busy: false, started: false, ending: false,
        lost: false,
    };
    return PREFIX + name;
}

/** Whether this worker holds cluster singleton `name` now, and its token. */
function holds(name: string): LuaMultiReturn<[boolean, number | undefined]> {
    const l = leases[name];
    // (true in its stop too, but a "lost" one)
    if (l === undefined || l.token === undefined || l.lost) {
        return $multi(false, undefined);
    }
    update_time();
    if (now() > l.valid_until) {
        return $multi(false, undefined);
    }
    return $multi(true, l.token);
}

export { setup, has, add, holds, round, on_node_stop };
