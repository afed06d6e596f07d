-- Compiled from src/resty/worker/manager/exit_reason.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Why a worker exits, which its exit callback may ask (exit_reason()) and
-- which decides whether the last worker of a generation runs its master exit:
--
-- - "reload": a newer generation exists (n_next is a number);
-- - "stop": the node stops;
-- - "replace": nginx's master goes on running this configuration without
--   this worker: the worker was sent a signal of its own (QUIT, TERM) and
--   nginx respawns it, or the master was sent WINCH and may start the
--   workers again (a binary-upgrade rollback).
--
-- A graceful exit tells the last two apart by the node's listening sockets
-- (listeners.ts); a fast one cannot, nor can the new binary's node during a
-- binary upgrade, and those count as a stop that is only assumed. (The old
-- binary's node, whose sockets the new one holds too, keeps its generation
-- idle after WINCH: a rollback runs its workers again.)

local listeners = require("resty.worker.manager.listeners")
local registry = require("resty.worker.manager.registry")
local host = require("resty.worker.manager.host")
local pause = host.pause
local upgrading_from_old_master = host.upgrading_from_old_master
local now, update_time, sleep = ngx.now, ngx.update_time, ngx.sleep

local _M = {}

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
        -- A master told to stop closes them right after it told its workers;
        -- other workers close theirs as they take the same order.
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
        -- TERM: nginx keeps its sockets open until the master exits, so a
        -- stop and a recycled worker look the same. During a binary upgrade
        -- the old node holds the same sockets as the new one: the new one
        -- (told to quit, it is rolled back) cannot see its own stop either.
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
    if open == nil then
        return nil
    end
    return not open
end

_M.find = find
_M.agree = agree
_M.closed_now = closed_now

return _M
