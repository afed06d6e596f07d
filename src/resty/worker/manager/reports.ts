/**
 * The callbacks the node runs about a worker or a generation other than the
 * caller's own: a crash found (counted for status(), then on_crash), and the
 * master exit of a generation whose last worker is gone. liveness.ts finds
 * what happened; this module tells the user's code.
 */

import * as registry from "./registry";
import * as crash_record from "./crash_record";
import { run } from "./callbacks";
import type { Callback } from "resty.worker.manager";
import { log } from "./log";

const ERR = ngx.ERR;

/**
 * What follows every crash found, once it was logged: counted for status(),
 * then the crash callback with the dead worker's id and the counts left.
 */
function announce_crash(dict: NgxSharedDict, on_crash: Callback | undefined, failed: number, g: number,
                        pid: number, slot: number, cause: string, left: number, now: number): void {
    const id = g + "-" + pid;
    crash_record.note(dict, g, pid, slot, cause, now);
    const [n_prev, n_next] = registry.neighbours(dict, g, now, failed);
    run("crash", on_crash, id, n_prev, left, n_next);
}

/**
 * Runs the master exit of generation `g`, whose last worker is gone, in
 * process `pid`, then forgets the generation. The closing mark lets others
 * tell a death before the callback (run it again) from one inside it (not).
 */
function end_with_master_exit(dict: NgxSharedDict, master_exit: Callback | undefined, g: number, pid: number,
                              now: number, failed: number): void {
    const [n_prev, n_next] = registry.neighbours(dict, g, now, failed);
    registry.begin_close(dict, g, pid);
    run("master exit", master_exit, g, n_prev, 0, n_next, () => registry.enter_close(dict, g, pid));
    registry.end_generation(dict, g);
}

/**
 * Reports the dead workers of slot `s` of `g` that a respawned worker dropped
 * (registry.replace_dead) but has not reported yet, oldest first; `extra`
 * is one whose report could not be queued (shm full).
 */
function report_replaced(dict: NgxSharedDict, on_crash: Callback | undefined, failed: number, g: number, s: number,
                         now: number, extra?: { dead: number; by: number }): void {
    const reports = registry.take_replaced(dict, g, s);
    if (extra !== undefined) {
        reports.push(extra);
    }
    for (const r of reports) {
        const left = registry.count(dict, g);
        log(ERR, "worker ", g, "-", r.dead, " (pid ", r.dead, ", slot ", s, ") crashed: nginx respawned its slot as ",
            g, "-", r.by, "; dropped from the counts, ", left, " left in generation ", g);
        announce_crash(dict, on_crash, failed, g, r.dead, s, "respawned", left, now);
    }
}

export { announce_crash, report_replaced, end_with_master_exit };
