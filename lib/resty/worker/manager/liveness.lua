-- Compiled from src/resty/worker/manager/liveness.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Finding workers that died without exiting (kill -9, segfault, OOM): their
-- pid is gone, or their heartbeat is overdue. Looking is lock-free and cheap
-- (a few reads per generation); dropping them happens under the lock, where
-- each suspect is checked again, so two finders never drop one worker twice.

local registry = require("resty.worker.manager.registry")
local holding = require("resty.worker.manager.holding")
local pid_alive = require("resty.worker.manager.host").pid_alive
local reports = require("resty.worker.manager.reports")
local announce_crash = reports.announce_crash
local report_replaced = reports.report_replaced
local end_with_master_exit = reports.end_with_master_exit
local log = require("resty.worker.manager.log").log
local ERR = ngx.ERR
local NOTICE = ngx.NOTICE

local _M = {}

--- Why the worker `pid` counts as dead, or nil. In a generation nginx keeps
-- respawning, a gone pid is left to its respawned successor (which reports it
-- at once) unless the heartbeat is overdue too: nginx does not respawn a
-- worker that exited with code 2.
local function diagnose(pid, beat, now, overdue, respawnable)
    local late = beat ~= nil and now - beat or overdue + 1
    if not pid_alive(pid) then
        if not respawnable or late > overdue then
            return "its process is gone"
        end
        return nil
    end
    if late > overdue then
        return "no heartbeat for " .. string.format("%.1f", late) .. "s"
    end
    return nil
end

local function suspect_at(dict, finder, g, s, now, respawnable, found)
    local pid, beat = registry.occupant(dict, g, s)
    if pid == nil or pid == finder.pid then
        return
    end
    local cause = diagnose(pid, beat, now, finder.overdue, respawnable)
    if cause ~= nil then
        found[#found + 1] = { gen = g, slot = s, pid = pid, cause = cause }
    end
end

--- The pids among `pids` whose process still runs.
local function alive(pids)
    local running = {}
    for _, pid in ipairs(pids) do
        if pid_alive(pid) then
            running[#running + 1] = pid
        end
    end
    return running
end

--- Generation `g` is over and may get its master exit: none of its workers is
-- counted, none is still starting (a worker killed while it waited for the
-- lock is not), and none dropped for a late heartbeat still runs (a busy
-- worker must not see its generation's master exit before its own exit).
-- An idle generation (registry.suspend) is over only once a newer one got a
-- worker, or when the node stops (`stopping`): until then nginx's master
-- may start its workers again.
local function over(dict, g, stopping)
    return registry.emptied(dict, g)
        and (stopping or not registry.idle(dict, g) or registry.superseded(dict, g))
        and #alive(registry.starting(dict, g)) == 0
        and #alive(registry.stalled(dict, g)) == 0
end

--- The process marked as running the master exit of `g` died before it finished.
local function cut_short(dict, g)
    local pid = registry.closer(dict, g)
    return pid ~= nil and not pid_alive(pid)
end

--- One heartbeat's look around, without the lock: in every generation, the
-- slot `turn` places after the finder's own (so all slots are covered within
-- a few beats at a constant cost per beat). Returns the suspects and whether
-- a generation needs closing (rolled back, or its last worker died).
local function look(dict, finder, own_gen, own_slot, turn, now)
    local found = {}
    local closing = false
    local low, top = registry.span(dict)
    local newest = registry.newest(dict, now, finder.failed)
    for g = low, top do
        if
            registry.rolled_back(dict, g, now, finder.failed)
            or g ~= newest and over(dict, g, finder.stopping)
            or cut_short(dict, g)
        then
            closing = true
        end
        local size = registry.slots(dict, g)
        if size > 0 then
            local s = (own_slot + turn) % size
            if g == own_gen and s == own_slot then
                s = (s + 1) % size
            end
            suspect_at(dict, finder, g, s, now, g == newest and not finder.stopping, found)
        end
    end
    return found, closing
end

--- Every other worker of generation `g` whose process is gone (for an exiting worker).
local function look_in(dict, finder, g, now)
    local found = {}
    for s = 0, registry.slots(dict, g) - 1 do
        suspect_at(dict, finder, g, s, now, false, found)
    end
    return found
end

--- A worker found dead, or dropped for an overdue heartbeat, loses the
-- singletons it held: they are free at once for the other workers.
local function free_singletons(dict, g, pid, why)
    for _, freed in ipairs(holding.release_worker(dict, pid)) do
        log(
            NOTICE,
            "singleton '",
            freed.name,
            "' (token ",
            freed.token,
            ") of worker ",
            g,
            "-",
            pid,
            " is free again: its holder ",
            why
        )
    end
end

--- Ends generation `g` on behalf of its last worker, which died, or of an idle
-- generation that nginx will not run again: its master exit runs here.
local function close(dict, finder, g, now)
    if registry.idle(dict, g) then
        log(
            NOTICE,
            "generation ",
            g,
            " went idle and ",
            finder.stopping and "the node stops" or "a newer one took over",
            "; running its master exit here"
        )
    else
        log(NOTICE, "generation ", g, " lost its last worker without an exit; running its master exit here")
    end
    end_with_master_exit(dict, finder.master_exit, g, finder.pid, now, finder.failed)
end

--- A master exit whose runner died: inside the callback, it counts as run and
-- the records just go; before it, it is run here.
local function finish_cut_short(dict, finder, g, now)
    local pid, entered = registry.closer(dict, g)
    if entered then
        log(
            NOTICE,
            "the master exit of generation ",
            g,
            " was cut short by the death of process ",
            pid,
            "; it is not run again"
        )
        registry.end_generation(dict, g)
        return
    end
    log(
        NOTICE,
        "generation ",
        g,
        " lost its last worker (pid ",
        pid,
        ") as it was about to run the master exit; ",
        "running its master exit here"
    )
    registry.reopen(dict, g)
    end_with_master_exit(dict, finder.master_exit, g, finder.pid, now, finder.failed)
end

--- Under the lock: drops each suspect that is still counted and still looks
-- dead (logged at ERR, then the crash callback), closes generations whose
-- last worker died and idle ones that are over (but `own`: an exiting worker
-- closes its own generation itself, as its last worker), and forgets
-- rolled-back reloads.
local function settle(dict, finder, suspects, now, own)
    registry.sweep(dict, now, finder.failed)
    local newest = registry.newest(dict, now, finder.failed)
    for _, x in ipairs(suspects) do
        local pid, beat = registry.occupant(dict, x.gen, x.slot)
        local respawnable = x.gen == newest and not finder.stopping
        if pid == x.pid and diagnose(pid, beat, now, finder.overdue, respawnable) ~= nil then
            local running = pid_alive(x.pid)
            local counted, left = registry.uncount(dict, x.gen, x.slot, x.pid, running)
            if counted then
                log(
                    ERR,
                    "worker ",
                    x.gen,
                    "-",
                    x.pid,
                    " (pid ",
                    x.pid,
                    ", slot ",
                    x.slot,
                    ") crashed: ",
                    x.cause,
                    "; dropped from the counts, ",
                    left,
                    " left in generation ",
                    x.gen
                )
                free_singletons(dict, x.gen, x.pid, running and "stopped beating" or "crashed")
                announce_crash(dict, finder.on_crash, finder.failed, x.gen, x.pid, x.slot, x.cause, left, now)
                if not running then
                    -- A respawned worker killed in its own start callback took
                    -- its predecessor's report with it; nginx may respawn the
                    -- slot no more in this generation (a reload came), so no
                    -- successor would ever give it.
                    report_replaced(dict, finder.on_crash, finder.failed, x.gen, x.slot, now)
                end
            end
        end
    end
    local low, top = registry.span(dict)
    for g = low, top do
        if g ~= own and (g ~= newest or finder.stopping) and over(dict, g, finder.stopping) then
            close(dict, finder, g, now)
        elseif cut_short(dict, g) then
            finish_cut_short(dict, finder, g, now)
        end
    end
end

_M.look = look
_M.look_in = look_in
_M.settle = settle
_M.over = over
_M.alive = alive
_M.free_singletons = free_singletons

return _M
