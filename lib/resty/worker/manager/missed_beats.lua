-- Compiled from src/resty/worker/manager/missed_beats.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

local _M = {}

--- How many runs are missing between two heartbeats `gap` seconds apart (0: the beat was at most a little late).
local function missing(gap, interval)
    return math.max(math.floor(gap / interval + 0.1) - 1, 0)
end

--- The module's words for `missed` runs missing before a heartbeat of worker `id`.
local function explain(id, missed, gap, interval)
    return "the heartbeat of worker "
        .. id
        .. " did not run for "
        .. string.format("%.1f", gap)
        .. "s (every "
        .. tostring(interval)
        .. "s: "
        .. tostring(missed)
        .. " run(s) missing): nginx skips a timer run while all lua_max_running_timers "
        .. "are busy (this log then has its ALERT 'lua_max_running_timers are not enough'), and runs no timer while "
        .. "the worker's event loop is blocked; the heartbeat goes on, and a worker counted as crashed meanwhile is "
        .. "counted again"
end

_M.missing = missing
_M.explain = explain

return _M
