/**
 * Why a worker's heartbeat did not run on time. The heartbeat is an
 * ngx.timer.every timer: nginx arms each next run before it runs the current
 * one, and drops a run, with an ALERT "N lua_max_running_timers are not
 * enough", while every running-timer slot is busy (ngx_http_lua_timer.c), so
 * the runs that do come still come on schedule, a whole number of intervals
 * apart. A worker whose event loop was blocked runs its timer late instead,
 * by however long the block lasted.
 */

type MissedCause = "dropped" | "blocked";

/** How far from a whole number of intervals a gap may be and still be on schedule. */
function tolerance(interval: number): number {
    return math.max(0.1 * interval, 0.02);
}

/**
 * Why runs are missing between two heartbeats `gap` seconds apart, and how
 * many; nil when none is (the beat came at most a little late).
 */
function judge(gap: number, interval: number): LuaMultiReturn<[MissedCause, number] | [undefined, number]> {
    const tol = tolerance(interval);
    const intervals = math.floor(gap / interval + 0.5);
    if (intervals < 2 || gap < 2 * interval - tol) {
        return $multi(undefined, 0);
    }
    if (math.abs(gap - intervals * interval) <= tol) {
        return $multi("dropped", intervals - 1);
    }
    return $multi("blocked", math.floor(gap / interval) - 1);
}

/** The module's words for a worker's missed heartbeats. */
function explain(id: string, cause: MissedCause, missed: number, gap: number, interval: number): string {
    const apart = string.format("%.1fs", gap);
    if (cause === "dropped") {
        return "nginx dropped " + missed + " run(s) of the heartbeat timer of worker " + id + " (two runs came "
            + apart + " apart, every " + interval + "s): it drops a timer run while all lua_max_running_timers "
            + "are busy (its ALERT says they 'are not enough'); the heartbeat goes on, and if others counted the "
            + "worker as crashed meanwhile, it is counted again";
    }
    return "the heartbeat of worker " + id + " ran " + apart + " after the previous one (every " + interval
        + "s): the worker's event loop was blocked (long Lua code or a blocking call); others count a worker "
        + "blocked over interval + failed as crashed, until it beats again";
}

export { judge, explain };
export type { MissedCause };
