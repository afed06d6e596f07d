-- Compiled from src/resty/worker/manager/reports.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The callbacks the node runs about a worker or a generation other than the
-- caller's own: a crash found (counted for status(), then on_crash), and the
-- master exit of a generation whose last worker is gone. liveness.ts finds
-- what happened; this module tells the user's code.

local registry = require("resty.worker.manager.registry")
local crash_record = require("resty.worker.manager.crash_record")
local run = require("resty.worker.manager.callbacks").run
local log = require("resty.worker.manager.log").log
local ERR = ngx.ERR

local _M = {}

--- What follows every crash found, once it was logged: counted for status(),
-- then the crash callback with the dead worker's id and the counts left.
local function announce_crash(dict, on_crash, failed, g, pid, slot, cause, left, now)
    local id = tostring(g) .. "-" .. tostring(pid)
    crash_record.note(dict, g, pid, slot, cause, now)
    local n_prev, n_next = registry.neighbours(dict, g, now, failed)
    run("crash", on_crash, id, n_prev, left, n_next)
end

--- Runs the master exit of generation `g`, whose last worker is gone, in
-- process `pid`, then forgets the generation. The closing mark lets others
-- tell a death before the callback (run it again) from one inside it (not).
local function end_with_master_exit(dict, master_exit, g, pid, now, failed)
    local n_prev, n_next = registry.neighbours(dict, g, now, failed)
    registry.begin_close(dict, g, pid)
    run("master exit", master_exit, g, n_prev, 0, n_next, function()
        return registry.enter_close(dict, g, pid)
    end)
    registry.end_generation(dict, g)
end

--- Reports the dead workers of slot `s` of `g` that a respawned worker dropped
-- (registry.replace_dead) but has not reported yet, oldest first; `extra`
-- is one whose report could not be queued (shm full).
local function report_replaced(dict, on_crash, failed, g, s, now, extra)
    local reports = registry.take_replaced(dict, g, s)
    if extra ~= nil then
        reports[#reports + 1] = extra
    end
    for _, r in ipairs(reports) do
        local left = registry.count(dict, g)
        log(
            ERR,
            "worker ",
            g,
            "-",
            r.dead,
            " (pid ",
            r.dead,
            ", slot ",
            s,
            ") crashed: nginx respawned its slot as ",
            g,
            "-",
            r.by,
            "; dropped from the counts, ",
            left,
            " left in generation ",
            g
        )
        announce_crash(dict, on_crash, failed, g, r.dead, s, "respawned", left, now)
    end
end

_M.announce_crash = announce_crash
_M.report_replaced = report_replaced
_M.end_with_master_exit = end_with_master_exit

return _M
