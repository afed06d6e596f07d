/**
 * Finding workers that died without exiting (kill -9, segfault, OOM): their
 * pid is gone, or their heartbeat is overdue. Looking is lock-free and cheap
 * (a few reads per generation); dropping them happens under the lock, where
 * each suspect is checked again, so two finders never drop one worker twice.
 */

import * as registry from "./registry";
import * as holding from "./holding";
import { pid_alive } from "./host";
import type { Callback } from "resty.worker.manager";
import { announce_crash, report_replaced, end_with_master_exit } from "./reports";
import { log } from "./log";

const ERR = ngx.ERR;
const NOTICE = ngx.NOTICE;

/** A worker that looks dead, and why. */
interface Suspect {
    gen: number;
    slot: number;
    pid: number;
    cause: string;
}

/** What the finder's own process knows and may call. */
interface Finder {
    pid: number;
    /** Seconds after its last heartbeat at which a worker counts as dead. */
    overdue: number;
    /** Seconds a generation may go without a worker before it counts as rolled back. */
    failed: number;
    /** The finder exits because the node stops: nginx respawns nothing now. */
    stopping: boolean;
    on_crash: Callback | undefined;
    master_exit: Callback | undefined;
}

/**
 * Why the worker `pid` counts as dead, or nil. In a generation nginx keeps
 * respawning, a gone pid is left to its respawned successor (which reports it
 * at once) unless the heartbeat is overdue too: nginx does not respawn a
 * worker that exited with code 2.
 */
function diagnose(pid: number, beat: number | undefined, now: number, overdue: number,
                  respawnable: boolean): string | undefined {
    const late = beat !== undefined ? now - beat : overdue + 1;
    if (!pid_alive(pid)) {
        if (!respawnable || late > overdue) {
            return "its process is gone";
        }
        return undefined;
    }
    if (late > overdue) {
        return "no heartbeat for " + string.format("%.1f", late) + "s";
    }
    return undefined;
}

function suspect_at(dict: NgxSharedDict, finder: Finder, g: number, s: number, now: number,
                    respawnable: boolean, found: Suspect[]): void {
    const [pid, beat] = registry.occupant(dict, g, s);
    if (pid === undefined || pid === finder.pid) {
        return;
    }
    const cause = diagnose(pid, beat, now, finder.overdue, respawnable);
    if (cause !== undefined) {
        found.push({ gen: g, slot: s, pid, cause });
    }
}

/** The pids among `pids` whose process still runs. */
function alive(pids: number[]): number[] {
    const running: number[] = [];
    for (const pid of pids) {
        if (pid_alive(pid)) {
            running.push(pid);
        }
    }
    return running;
}

/**
 * Generation `g` is over and may get its master exit: none of its workers is
 * counted, none is still starting (a worker killed while it waited for the
 * lock is not), and none dropped for a late heartbeat still runs (a busy
 * worker must not see its generation's master exit before its own exit).
 * An idle generation (registry.suspend) is over only once a newer one got a
 * worker, or when the node stops (`stopping`): until then nginx's master
 * may start its workers again.
 */
function over(dict: NgxSharedDict, g: number, stopping: boolean): boolean {
    return registry.emptied(dict, g)
        && (stopping || !registry.idle(dict, g) || registry.superseded(dict, g))
        && alive(registry.starting(dict, g)).length === 0 && alive(registry.stalled(dict, g)).length === 0;
}

/** The process marked as running the master exit of `g` died before it finished. */
function cut_short(dict: NgxSharedDict, g: number): boolean {
    const [pid] = registry.closer(dict, g);
    return pid !== undefined && !pid_alive(pid);
}

/**
 * One heartbeat's look around, without the lock: in every generation, the
 * slot `turn` places after the finder's own (so all slots are covered within
 * a few beats at a constant cost per beat). Returns the suspects and whether
 * a generation needs closing (rolled back, or its last worker died).
 */
function look(dict: NgxSharedDict, finder: Finder, own_gen: number, own_slot: number, turn: number,
              now: number): LuaMultiReturn<[Suspect[], boolean]> {
    const found: Suspect[] = [];
    let closing = false;
    const [low, top] = registry.span(dict);
    const newest = registry.newest(dict, now, finder.failed);
    for (const g of $range(low, top)) {
        if (registry.rolled_back(dict, g, now, finder.failed) || (g !== newest && over(dict, g, finder.stopping))
            || cut_short(dict, g)) {
            closing = true;
        }
        const size = registry.slots(dict, g);
        if (size > 0) {
            let s = (own_slot + turn) % size;
            if (g === own_gen && s === own_slot) {
                s = (s + 1) % size;
            }
            suspect_at(dict, finder, g, s, now, g === newest && !finder.stopping, found);
        }
    }
    return $multi(found, closing);
}

/** Every other worker of generation `g` whose process is gone (for an exiting worker). */
function look_in(dict: NgxSharedDict, finder: Finder, g: number, now: number): Suspect[] {
    const found: Suspect[] = [];
    for (const s of $range(0, registry.slots(dict, g) - 1)) {
        suspect_at(dict, finder, g, s, now, false, found);
    }
    return found;
}

/**
 * A worker found dead, or dropped for an overdue heartbeat, loses the
 * singletons it held: they are free at once for the other workers.
 */
function free_singletons(dict: NgxSharedDict, g: number, pid: number, why: string): void {
    for (const freed of holding.release_worker(dict, pid)) {
        log(NOTICE, "singleton '", freed.name, "' (token ", freed.token, ") of worker ", g, "-", pid,
            " is free again: its holder ", why);
    }
}

/**
 * Ends generation `g` on behalf of its last worker, which died, or of an idle
 * generation that nginx will not run again: its master exit runs here.
 */
function close(dict: NgxSharedDict, finder: Finder, g: number, now: number): void {
    if (registry.idle(dict, g)) {
        log(NOTICE, "generation ", g, " went idle and ", finder.stopping ? "the node stops" : "a newer one took over",
            "; running its master exit here");
    } else {
        log(NOTICE, "generation ", g, " lost its last worker without an exit; running its master exit here");
    }
    end_with_master_exit(dict, finder.master_exit, g, finder.pid, now, finder.failed);
}

/**
 * A master exit whose runner died: inside the callback, it counts as run and
 * the records just go; before it, it is run here.
 */
function finish_cut_short(dict: NgxSharedDict, finder: Finder, g: number, now: number): void {
    const [pid, entered] = registry.closer(dict, g);
    if (entered) {
        log(NOTICE, "the master exit of generation ", g, " was cut short by the death of process ", pid,
            "; it is not run again");
        registry.end_generation(dict, g);
        return;
    }
    log(NOTICE, "generation ", g, " lost its last worker (pid ", pid, ") as it was about to run the master exit; ",
        "running its master exit here");
    registry.reopen(dict, g);
    end_with_master_exit(dict, finder.master_exit, g, finder.pid, now, finder.failed);
}

/**
 * Under the lock: drops each suspect that is still counted and still looks
 * dead (logged at ERR, then the crash callback), closes generations whose
 * last worker died and idle ones that are over (but `own`: an exiting worker
 * closes its own generation itself, as its last worker), and forgets
 * rolled-back reloads.
 */
function settle(dict: NgxSharedDict, finder: Finder, suspects: Suspect[], now: number, own?: number): void {
    registry.sweep(dict, now, finder.failed);
    const newest = registry.newest(dict, now, finder.failed);
    for (const x of suspects) {
        const [pid, beat] = registry.occupant(dict, x.gen, x.slot);
        const respawnable = x.gen === newest && !finder.stopping;
        if (pid === x.pid && diagnose(pid, beat, now, finder.overdue, respawnable) !== undefined) {
            const running = pid_alive(x.pid);
            const [counted, left] = registry.uncount(dict, x.gen, x.slot, x.pid, running);
            if (counted) {
                log(ERR, "worker ", x.gen, "-", x.pid, " (pid ", x.pid, ", slot ", x.slot, ") crashed: ", x.cause,
                    "; dropped from the counts, ", left, " left in generation ", x.gen);
                free_singletons(dict, x.gen, x.pid, running ? "stopped beating" : "crashed");
                announce_crash(dict, finder.on_crash, finder.failed, x.gen, x.pid, x.slot, x.cause, left, now);
                if (!running) {
                    // A respawned worker killed in its own start callback took
                    // its predecessor's report with it; nginx may respawn the
                    // slot no more in this generation (a reload came), so no
                    // successor would ever give it.
                    report_replaced(dict, finder.on_crash, finder.failed, x.gen, x.slot, now);
                }
            }
        }
    }
    const [low, top] = registry.span(dict);
    for (const g of $range(low, top)) {
        if (g !== own && (g !== newest || finder.stopping) && over(dict, g, finder.stopping)) {
            close(dict, finder, g, now);
        } else if (cut_short(dict, g)) {
            finish_cut_short(dict, finder, g, now);
        }
    }
}

export {
    look, look_in, settle, over, alive, free_singletons,
};
export type { Suspect, Finder };
