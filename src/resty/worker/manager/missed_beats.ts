/**
 * A worker's heartbeat that did not run on time. The heartbeat is an
 * ngx.timer.every timer, and nginx skips a run of it for one of two reasons:
 * every lua_max_running_timers slot is busy when the run is due (nginx then
 * logs an ALERT "N lua_max_running_timers are not enough" and arms the next
 * run anyway, ngx_http_lua_timer.c), or the worker's event loop is blocked
 * (no timer runs until it is free). The gap alone cannot tell which: a late
 * run after drops is off schedule by the drops' own delays, so the module
 * names both and how to tell them apart.
 */

/** How many runs are missing between two heartbeats `gap` seconds apart (0: the beat was at most a little late). */
function missing(gap: number, interval: number): number {
    return math.max(math.floor(gap / interval + 0.1) - 1, 0);
}

/** The module's words for `missed` runs missing before a heartbeat of worker `id`. */
function explain(id: string, missed: number, gap: number, interval: number): string {
    return "the heartbeat of worker " + id + " did not run for " + string.format("%.1f", gap) + "s (every "
        + interval + "s: " + missed + " run(s) missing): nginx skips a timer run while all lua_max_running_timers "
        + "are busy (this log then has its ALERT 'lua_max_running_timers are not enough'), and runs no timer while "
        + "the worker's event loop is blocked; the heartbeat goes on, and a worker counted as crashed meanwhile is "
        + "counted again";
}

export { missing, explain };
