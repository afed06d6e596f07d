-- Compiled from src/resty/worker/manager/record.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The record of a counted worker: one shm key per worker (keys.slot), so
-- that a small zone holds many. Its pid is the entry's flags, and the value
-- its last heartbeat and start time in milliseconds, as 11 hex digits each
-- ("<beat> <started>"). nginx adds 68 bytes to key and value and allocates
-- in powers of two: with a key of up to 37 bytes an entry takes 128 bytes,
-- the least an entry can take, where decimal seconds would take 256, a size
-- class of its own, for which a small zone may have no page left. Fixed
-- width until the year 2527, so a heartbeat rewrites the entry in place.
--
-- A worker dropped for a late heartbeat while it still runs keeps its pid
-- and start time the same way (keys.stalled), until it beats again.

local store = require("resty.worker.manager.store")
local write = store.write
local overwrite = store.overwrite

local _M = {}

--- A time as 11 hex digits of milliseconds.
local function to_hex_ms(t)
    return string.format("%011x", math.floor(t * 1000 + 0.5))
end

local function from_hex_ms(digits)
    if digits == nil then
        return nil
    end
    local ms = tonumber(digits, 16)
    return ms ~= nil and ms / 1000 or nil
end

local function encode(beat, started)
    return to_hex_ms(beat) .. " " .. to_hex_ms(started)
end

--- Counts `pid` under `key`; false (logged) when the shm has no room for it.
local function put(dict, key, pid, beat, started)
    return write(dict, key, encode(beat, started), pid)
end

--- The pid recorded under `key`, its last heartbeat and start time; nils if none.
local function get(dict, key)
    local value, pid = dict:get(key)
    if type(value) ~= "string" or type(pid) ~= "number" then
        return nil, nil, nil
    end
    local beat, started = string.match(value, "^(%x+) (%x+)$")
    return pid, from_hex_ms(beat), from_hex_ms(started)
end

--- A heartbeat of `pid`, if `key` still records it. Lock-free: if a finder
-- drops the worker meanwhile, the key is gone and stays gone (an overwrite,
-- never a set), and the worker's next heartbeat restores it under the lock.
local function beat(dict, key, pid, now)
    local counted, _, started = get(dict, key)
    if counted == pid then
        overwrite(dict, key, encode(now, started or now), pid)
    end
end

--- Remembers that `pid`, started at `started`, was dropped but still runs.
local function put_stalled(dict, key, pid, started)
    return write(dict, key, started ~= nil and to_hex_ms(started) or "-", pid)
end

--- The pid under a stalled `key` and when it started; nils if none.
local function get_stalled(dict, key)
    local value, pid = dict:get(key)
    if type(value) ~= "string" or type(pid) ~= "number" then
        return nil, nil
    end
    return pid, from_hex_ms((string.match(value, "^%x+$")))
end

_M.put = put
_M.get = get
_M.beat = beat
_M.put_stalled = put_stalled
_M.get_stalled = get_stalled
_M.to_hex_ms = to_hex_ms
_M.from_hex_ms = from_hex_ms

return _M
