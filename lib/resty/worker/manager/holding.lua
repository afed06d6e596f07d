-- Compiled from src/resty/worker/manager/holding.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Who holds which singleton, kept in the shm (keys.ts, "Singletons"): per
-- name, the holding worker's record, a token counter that only grows over
-- the node's life (fencing tokens), and the newest generation that
-- registered the name; for the node, the list of names and a change
-- counter (the epoch) that idle workers watch with one read.
--
-- Writes happen under the node lock; this module knows nothing of the lock,
-- of timers or of user code (singletons.ts runs those).
--
-- A holding ends with its record removed, except on a stop of the node:
-- then the record stays as a tombstone ("stopped"), so that no worker still
-- running starts the job again while the node goes down.

local keys = require("resty.worker.manager.keys")
local store = require("resty.worker.manager.store")
local read_number = store.read_number
local read_string = store.read_string
local write = store.write
local add = store.add
local remove = store.remove
local record = require("resty.worker.manager.record")
local to_hex_ms = record.to_hex_ms
local from_hex_ms = record.from_hex_ms

local _M = {}

local HELD = "h"
local STOPPED = "s"

local function encode(gen, slot, token, since, state)
    return tostring(gen) .. " " .. tostring(slot) .. " " .. tostring(token) .. " " .. to_hex_ms(since) .. " " .. state
end

--- The holder of `name`, or nil when nobody holds it.
local function holder(dict, name)
    local value, pid = dict:get(keys.holder(name))
    if type(value) ~= "string" or type(pid) ~= "number" then
        return nil
    end
    local gen, slot, token, since, state = string.match(value, "^(%d+) (%d+) (%d+) (%x+) (%a)$")
    if gen == nil then
        return nil
    end
    return {
        pid = pid,
        gen = tonumber(gen) or 0,
        slot = tonumber(slot) or 0,
        token = tonumber(token) or 0,
        since = from_hex_ms(since) or 0,
        stopped = state == STOPPED,
    }
end

--- The last token handed out for `name`; 0 before its first holding.
local function last_token(dict, name)
    return read_number(dict, keys.token(name)) or 0
end

--- The change counter: it moves whenever a holding ends or a newer generation registers a name.
local function epoch(dict)
    return read_number(dict, keys.EPOCH) or 0
end

local function bump(dict)
    add(dict, keys.EPOCH, 1)
end

--- Every name registered in the node, in the order they were first registered.
local function names(dict)
    local found = {}
    local list = read_string(dict, keys.NAMES)
    if list ~= nil then
        for name in string.gmatch(list, "\n([^\n]+)") do
            if name ~= nil then
                found[#found + 1] = name
            end
        end
    end
    return found
end

--- The newest generation whose workers registered `name`, nil if none did.
local function registered_by(dict, name)
    return read_number(dict, keys.registered(name))
end

--- Notes that workers of generation `g` registered `name`. Returns true when
-- that changes where the job belongs (a name new to the node, or a newer
-- generation): the epoch moves, so that an older holder gives the job up.
local function register(dict, name, g)
    local list = read_string(dict, keys.NAMES) or "\n"
    if (string.find(list, "\n" .. name .. "\n", 1, true)) == nil then
        write(dict, keys.NAMES, list .. name .. "\n")
    end
    local newest = registered_by(dict, name)
    if newest ~= nil and newest >= g then
        return false
    end
    write(dict, keys.registered(name), g)
    bump(dict)
    return true
end

--- Makes `who` the holder of `name` and returns the holding's token (one
-- more than the last), or nil when the shm had no room (logged by store).
-- The caller checked that the name is free for it.
local function claim(dict, name, who, now)
    local token = add(dict, keys.token(name), 1)
    if token == nil then
        return nil
    end
    if not write(dict, keys.holder(name), encode(who.gen, who.slot, token, now, HELD), who.pid) then
        return nil
    end
    return token
end

--- Ends the holding `token` of `name` by `pid`, if it is still that one:
-- the record goes (the epoch moves, so that another worker takes the job
-- at once), or stays as a tombstone when the node stops (`stopped`).
-- Returns whether it was that holding.
local function release(dict, name, pid, token, now, stopped)
    local h = holder(dict, name)
    if h == nil or h.pid ~= pid or h.token ~= token or h.stopped then
        return false
    end
    if stopped then
        write(dict, keys.holder(name), encode(h.gen, h.slot, token, now, STOPPED), pid)
    else
        remove(dict, keys.holder(name))
    end
    bump(dict)
    return true
end

--- Frees every name that worker `pid` holds: it died, or it was dropped for
-- an overdue heartbeat (it loses its jobs). Returns the holdings freed.
local function release_worker(dict, pid)
    local freed = {}
    for _, name in ipairs(names(dict)) do
        local h = holder(dict, name)
        if h ~= nil and h.pid == pid and not h.stopped then
            remove(dict, keys.holder(name))
            freed[#freed + 1] = { name = name, token = h.token }
        end
    end
    if #freed > 0 then
        bump(dict)
    end
    return freed
end

--- Frees `name`, whose holder died (found by a worker that wants the job).
local function free_name(dict, name)
    remove(dict, keys.holder(name))
    bump(dict)
end

_M.holder = holder
_M.last_token = last_token
_M.epoch = epoch
_M.names = names
_M.registered_by = registered_by
_M.register = register
_M.claim = claim
_M.release = release
_M.release_worker = release_worker
_M.free_name = free_name

return _M
