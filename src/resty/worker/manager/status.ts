/**
 * status(): the node's current view, read from the shm in one pass under the
 * node lock, so the numbers agree with each other.
 */

import * as registry from "./registry";
import * as crash_record from "./crash_record";
import * as keys from "./keys";
import * as lock from "./lock";
import { read_number } from "./store";
import { alive } from "./liveness";
import * as holding from "./holding";
// The shapes are declared once, in the module's published declarations.
import type { Status, GenerationStatus, SingletonStatus, WorkerStatus } from "resty.worker.manager";

const [get_phase, now, update_time] = [ngx.get_phase, ngx.now, ngx.update_time];

/** How long status() waits for the lock where it must block the worker to wait. */
const BLOCKING_WAIT = 0.05;
/** How long it waits where it can yield. */
const YIELDING_WAIT = 5;

const YIELDABLE: { [phase: string]: boolean | undefined } = {
    rewrite: true, server_rewrite: true, access: true, content: true, timer: true,
    ssl_cert: true, ssl_session_fetch: true, ssl_client_hello: true,
};

function generation_status(dict: NgxSharedDict, g: number): GenerationStatus {
    const workers: WorkerStatus[] = [];
    for (const s of $range(0, registry.slots(dict, g) - 1)) {
        const [pid, beat, started] = registry.occupant(dict, g, s);
        if (pid !== undefined) {
            workers.push({ id: g + "-" + pid, pid, slot: s, started, heartbeat: beat });
        }
    }
    return {
        id: g,
        started: read_number(dict, keys.gen(g)),
        workers,
        starting: alive(registry.starting(dict, g)).length,
        stalled: registry.stalled(dict, g),
        idle: registry.idle(dict, g),
    };
}

function singletons_status(dict: NgxSharedDict): SingletonStatus[] {
    const list: SingletonStatus[] = [];
    for (const name of holding.names(dict)) {
        const h = holding.holder(dict, name);
        const held = h !== undefined && !h.stopped;
        list.push({
            name,
            holder: held ? h.gen + "-" + h.pid : undefined,
            token: h !== undefined ? h.token : holding.last_token(dict, name),
            since: held ? h.since : undefined,
            stopped: h !== undefined && h.stopped,
        });
    }
    return list;
}

function snapshot(dict: NgxSharedDict, failed: number, consistent: boolean): Status {
    update_time();
    const generations: GenerationStatus[] = [];
    const [low, top] = registry.span(dict);
    for (const g of $range(low, top)) {
        if (registry.recorded(dict, g)) {
            generations.push(generation_status(dict, g));
        }
    }
    return {
        generation: registry.newest(dict, now(), failed),
        generations,
        crashes: crash_record.count(dict),
        last_crash: crash_record.last(dict),
        singletons: singletons_status(dict),
        consistent,
    };
}

/**
 * Reads the node's view. Inside a callback (this process holds the lock) it
 * reads at once; elsewhere it takes the lock, waiting briefly where it would
 * have to block the worker.
 */
function status(dict: NgxSharedDict, failed: number): Status {
    if (lock.held()) {
        return snapshot(dict, failed, true);
    }
    const can_yield = YIELDABLE[get_phase()] === true;
    const [hold] = lock.try_acquire(dict, can_yield, can_yield ? YIELDING_WAIT : BLOCKING_WAIT);
    // not taken (a time-out, or a full zone: logged): an unlocked read
    if (hold === undefined) {
        return snapshot(dict, failed, false);
    }
    const view = snapshot(dict, failed, true);
    lock.release(dict, hold);
    return view;
}

export { status };
