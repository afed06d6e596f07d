--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local alive, closable, cut_short
local registry = require("resty.worker.manager.registry")
local crash_record = require("resty.worker.manager.crash_record")
local holding = require("resty.worker.manager.holding")
local ____host = require("resty.worker.manager.host")
local pid_alive = ____host.pid_alive
local ____callbacks = require("resty.worker.manager.callbacks")
local run = ____callbacks.run
local ____log = require("resty.worker.manager.log")
local log = ____log.log
function alive(pids)
    local running = {}
    for ____, pid in ipairs(pids) do
        if pid_alive(pid) then
            running[#running + 1] = pid
        end
    end
    return running
end
function closable(dict, g, stopping)
    return registry.finished(dict, g) and (stopping or not registry.idle(dict, g) or registry.superseded(dict, g)) and #alive(registry.starting(dict, g)) == 0 and #alive(registry.stalled(dict, g)) == 0
end
function cut_short(dict, g)
    local pid = registry.closer(dict, g)
    return pid ~= nil and not pid_alive(pid)
end
local ERR = ngx.ERR
local NOTICE = ngx.NOTICE
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
        return ("no heartbeat for " .. string.format("%.1f", late)) .. "s"
    end
    return nil
end
local function suspect_at(dict, finder, g, s, now, respawnable, found)
    local pid, beat = registry.occupant(dict, g, s)
    if pid == nil or pid == finder.pid then
        return
    end
    local cause = diagnose(
        pid,
        beat,
        now,
        finder.overdue,
        respawnable
    )
    if cause ~= nil then
        found[#found + 1] = {gen = g, slot = s, pid = pid, cause = cause}
    end
end
--- One heartbeat's look around, without the lock: in every generation, the
-- slot `turn` places after the finder's own (so all slots are covered within
-- a few beats at a constant cost per beat). Returns the suspects and whether
-- a generation needs closing (rolled back, or its last worker died).
local function look(dict, finder, own_gen, own_slot, turn, now)
    local found = {}
    local closing = false
    local low, top = registry.span(dict)
    local newest = registry.newest(dict, now, finder.grace)
    for g = low, top do
        if registry.rolled_back(dict, g, now, finder.grace) or g ~= newest and closable(dict, g, finder.stopping) or cut_short(dict, g) then
            closing = true
        end
        local size = registry.slots(dict, g)
        if size > 0 then
            local s = (own_slot + turn) % size
            if g == own_gen and s == own_slot then
                s = (s + 1) % size
            end
            suspect_at(
                dict,
                finder,
                g,
                s,
                now,
                g == newest and not finder.stopping,
                found
            )
        end
    end
    return found, closing
end
--- Every other worker of generation `g` whose process is gone (for an exiting worker).
local function look_in(dict, finder, g, now)
    local found = {}
    for s = 0, registry.slots(dict, g) - 1 do
        suspect_at(
            dict,
            finder,
            g,
            s,
            now,
            false,
            found
        )
    end
    return found
end
--- A worker found dead, or dropped for an overdue heartbeat, loses the
-- singletons it held: they are free at once for the other workers.
local function free_singletons(dict, g, pid, why)
    for ____, ____value in ipairs(holding.release_worker(dict, pid)) do
        local name = ____value.name
        local token = ____value.token
        log(
            NOTICE,
            "singleton '",
            name,
            "' (token ",
            token,
            ") of worker ",
            g,
            "-",
            pid,
            " is free again: its ",
            "holder ",
            why
        )
    end
end
--- What follows every crash found, once it was logged: counted for status(),
-- then the crash callback with the dead worker's id and the counts left.
local function announce_crash(dict, on_crash, grace, g, pid, slot, cause, left, now)
    local id = (tostring(g) .. "-") .. tostring(pid)
    crash_record.note(
        dict,
        g,
        pid,
        slot,
        cause,
        now
    )
    local n_prev, n_next = registry.neighbours(dict, g, now, grace)
    run(
        "crash",
        on_crash,
        id,
        n_prev,
        left,
        n_next
    )
end
--- Runs the master exit of generation `g`, whose last worker is gone, in
-- process `pid`, then forgets the generation. The closing mark lets others
-- tell a death before the callback (run it again) from one inside it (not).
local function end_with_master_exit(dict, master_exit, g, pid, now, grace)
    local n_prev, n_next = registry.neighbours(dict, g, now, grace)
    registry.begin_close(dict, g, pid)
    run(
        "master exit",
        master_exit,
        g,
        n_prev,
        0,
        n_next,
        function() return registry.enter_close(dict, g, pid) end
    )
    registry.end_generation(dict, g)
end
--- Reports the dead workers of slot `s` of `g` that a respawned worker dropped
-- (registry.replace_dead) but has not reported yet, oldest first; `extra`
-- is one whose report could not be queued (shm full).
local function report_replaced(dict, on_crash, grace, g, s, now, extra)
    local reports = registry.take_replaced(dict, g, s)
    if extra ~= nil then
        reports[#reports + 1] = extra
    end
    for ____, ____value in ipairs(reports) do
        local dead = ____value.dead
        local by = ____value.by
        local left = registry.count(dict, g)
        log(
            ERR,
            "worker ",
            g,
            "-",
            dead,
            " (pid ",
            dead,
            ", slot ",
            s,
            ") crashed: nginx respawned its slot as ",
            g,
            "-",
            by,
            "; dropped from the counts, ",
            left,
            " left in generation ",
            g
        )
        announce_crash(
            dict,
            on_crash,
            grace,
            g,
            dead,
            s,
            "respawned",
            left,
            now
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
    end_with_master_exit(
        dict,
        finder.master_exit,
        g,
        finder.pid,
        now,
        finder.grace
    )
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
    end_with_master_exit(
        dict,
        finder.master_exit,
        g,
        finder.pid,
        now,
        finder.grace
    )
end
--- Under the lock: drops each suspect that is still counted and still looks
-- dead (logged at ERR, then the crash callback), closes generations whose
-- last worker died and idle ones that are over (but `own`: an exiting worker
-- closes its own generation itself, as its last worker), and forgets
-- rolled-back reloads.
local function settle(dict, finder, suspects, now, own)
    registry.sweep(dict, now, finder.grace)
    local newest = registry.newest(dict, now, finder.grace)
    for ____, x in ipairs(suspects) do
        local pid, beat = registry.occupant(dict, x.gen, x.slot)
        local respawnable = x.gen == newest and not finder.stopping
        if pid == x.pid and diagnose(
            pid,
            beat,
            now,
            finder.overdue,
            respawnable
        ) ~= nil then
            local running = pid_alive(x.pid)
            local counted, left = registry.uncount(
                dict,
                x.gen,
                x.slot,
                x.pid,
                running
            )
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
                announce_crash(
                    dict,
                    finder.on_crash,
                    finder.grace,
                    x.gen,
                    x.pid,
                    x.slot,
                    x.cause,
                    left,
                    now
                )
                if not running then
                    report_replaced(
                        dict,
                        finder.on_crash,
                        finder.grace,
                        x.gen,
                        x.slot,
                        now
                    )
                end
            end
        end
    end
    local low, top = registry.span(dict)
    for g = low, top do
        if g ~= own and (g ~= newest or finder.stopping) and closable(dict, g, finder.stopping) then
            close(dict, finder, g, now)
        elseif cut_short(dict, g) then
            finish_cut_short(dict, finder, g, now)
        end
    end
end
____exports.look = look
____exports.look_in = look_in
____exports.settle = settle
____exports.closable = closable
____exports.alive = alive
____exports.announce_crash = announce_crash
____exports.report_replaced = report_replaced
____exports.end_with_master_exit = end_with_master_exit
____exports.free_singletons = free_singletons
return ____exports
