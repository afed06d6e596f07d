--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local listeners = require("resty.worker.manager.listeners")
local registry = require("resty.worker.manager.registry")
local ____host = require("resty.worker.manager.host")
local pause = ____host.pause
local upgrading_from_old_master = ____host.upgrading_from_old_master
local now = ngx.now
local update_time = ngx.update_time
local sleep = ngx.sleep
--- Steps of the wait for the listening sockets to close (seconds).
local FIRST_STEP = 0.005
local MAX_STEP = 0.1
--- Whether the sockets `inodes` closed everywhere within `limit` seconds:
-- true (the master closed its own: a stop), false (still open: it goes on),
-- nil when the kernel's tables cannot be read.
local function closed_within(inodes, limit, can_yield, waiting)
    update_time()
    local began = now()
    local step = FIRST_STEP
    while true do
        local open = listeners.open_anywhere(inodes)
        if open == nil then
            return nil
        end
        if not open then
            return true
        end
        update_time()
        if now() - began >= limit then
            return false
        end
        waiting()
        if can_yield then
            sleep(step)
        else
            pause(step)
        end
        step = math.min(step * 2, MAX_STEP)
    end
end
--- Why the worker of generation `g` exits, and whether a stop is known (the
-- master closed the listening sockets) rather than assumed. `graceful`: it
-- was told to quit (QUIT, WINCH, a reload), not to terminate. Waits up to
-- `limit` seconds for the sockets to close, calling `waiting` at each step.
local function find(dict, g, newest, graceful, can_yield, limit, waiting)
    if newest ~= nil and newest > g then
        return "reload", true
    end
    local inodes = registry.listeners(dict, g)
    if not graceful or inodes == nil or upgrading_from_old_master() then
        return "stop", false
    end
    local closed = closed_within(inodes, limit, can_yield, waiting)
    if closed == nil then
        return "stop", false
    end
    return closed and "stop" or "replace", true
end
--- The reason made to agree with the n_next its callback gets, read later
-- under the lock: a reload may have begun meanwhile (a recycled worker waits
-- for the sockets), or a newer generation seen before was rolled back.
local function agree(reason, known, n_next)
    if n_next ~= nil then
        return "reload", true
    end
    if reason == "reload" then
        return "stop", false
    end
    return reason, known
end
--- Whether the listening sockets of `g` are closed everywhere now (nil: unknown).
local function closed_now(dict, g)
    local inodes = registry.listeners(dict, g)
    if inodes == nil then
        return nil
    end
    local open = listeners.open_anywhere(inodes)
    local ____temp_0
    if open == nil then
        ____temp_0 = nil
    else
        ____temp_0 = not open
    end
    return ____temp_0
end
____exports.find = find
____exports.agree = agree
____exports.closed_now = closed_now
return ____exports
