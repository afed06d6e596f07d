/**
 * Why a worker exits, which its exit callback may ask (exit_reason()) and
 * which decides whether the last worker of a generation runs its master exit:
 *
 * - "reload": a newer generation exists (n_next is a number);
 * - "stop": the node stops;
 * - "replace": nginx's master goes on running this configuration without
 *   this worker: the worker was sent a signal of its own (QUIT, TERM) and
 *   nginx respawns it, or the master was sent WINCH and may start the
 *   workers again (a binary-upgrade rollback).
 *
 * A graceful exit tells the last two apart by the node's listening sockets
 * (listeners.ts); a fast one cannot, nor can the new binary's node during a
 * binary upgrade, and those count as a stop that is only assumed. (The old
 * binary's node, whose sockets the new one holds too, keeps its generation
 * idle after WINCH: a rollback runs its workers again.)
 */

import * as listeners from "./listeners";
import * as registry from "./registry";
import { pause, upgrading_from_old_master } from "./host";
// Declared once, in the module's published declarations.
import type { ExitReason } from "resty.worker.manager";

const [now, update_time, sleep] = [ngx.now, ngx.update_time, ngx.sleep];

/** Steps of the wait for the listening sockets to close (seconds). */
const FIRST_STEP = 0.005;
const MAX_STEP = 0.1;

/**
 * Whether the sockets `inodes` closed everywhere within `limit` seconds:
 * true (the master closed its own: a stop), false (still open: it goes on),
 * nil when the kernel's tables cannot be read.
 */
function closed_within(inodes: string, limit: number, can_yield: boolean, waiting: () => void):
    boolean | undefined {
    update_time();
    const began = now();
    let step = FIRST_STEP;
    while (true) {
        const open = listeners.open_anywhere(inodes);
        if (open === undefined) {
            return undefined;
        }
        if (!open) {
            return true;
        }
        update_time();
        if (now() - began >= limit) {
            return false;
        }
        // A master told to stop closes them right after it told its workers;
        // other workers close theirs as they take the same order.
        waiting();
        if (can_yield) {
            sleep(step);
        } else {
            pause(step);
        }
        step = math.min(step * 2, MAX_STEP);
    }
}

/**
 * Why the worker of generation `g` exits, and whether a stop is known (the
 * master closed the listening sockets) rather than assumed. `graceful`: it
 * was told to quit (QUIT, WINCH, a reload), not to terminate. Waits up to
 * `limit` seconds for the sockets to close, calling `waiting` at each step.
 */
function find(dict: NgxSharedDict, g: number, newest: number | undefined, graceful: boolean, can_yield: boolean,
              limit: number, waiting: () => void): LuaMultiReturn<[ExitReason, boolean]> {
    if (newest !== undefined && newest > g) {
        return $multi("reload", true);
    }
    const inodes = registry.listeners(dict, g);
    if (!graceful || inodes === undefined || upgrading_from_old_master()) {
        // TERM: nginx keeps its sockets open until the master exits, so a
        // stop and a recycled worker look the same. During a binary upgrade
        // the old node holds the same sockets as the new one: the new one
        // (told to quit, it is rolled back) cannot see its own stop either.
        return $multi("stop", false);
    }
    const closed = closed_within(inodes, limit, can_yield, waiting);
    if (closed === undefined) {
        return $multi("stop", false);
    }
    return $multi(closed ? "stop" : "replace", true);
}

/**
 * The reason made to agree with the n_next its callback gets, read later
 * under the lock: a reload may have begun meanwhile (a recycled worker waits
 * for the sockets), or a newer generation seen before was rolled back.
 */
function agree(reason: ExitReason, known: boolean, n_next: number | undefined): LuaMultiReturn<[ExitReason, boolean]> {
    if (n_next !== undefined) {
        return $multi("reload", true);
    }
    if (reason === "reload") {
        return $multi("stop", false);
    }
    return $multi(reason, known);
}

/** Whether the listening sockets of `g` are closed everywhere now (nil: unknown). */
function closed_now(dict: NgxSharedDict, g: number): boolean | undefined {
    const inodes = registry.listeners(dict, g);
    if (inodes === undefined) {
        return undefined;
    }
    const open = listeners.open_anywhere(inodes);
    if (open === undefined) {
        return undefined;
    }
    return !open;
}

export { find, agree, closed_now };
