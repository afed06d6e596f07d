-- Compiled from src/resty/worker/manager/crash_record.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The node's crash count and its last crash, for status(). The last crash
-- is one shm entry of at most 128 bytes (see record.ts): its pid is the
-- entry's flags, and the value "<generation> <slot> <time> <cause>", the
-- time as hex milliseconds and the cause as a short code.

local keys = require("resty.worker.manager.keys")
local store = require("resty.worker.manager.store")
local read_number = store.read_number
local write = store.write
local add = store.add
local record = require("resty.worker.manager.record")
local to_hex_ms = record.to_hex_ms
local from_hex_ms = record.from_hex_ms

local _M = {}

--- The causes liveness and the respawn path give, and their codes.
local CODE_OF = { respawned = "r", ["crashed while starting"] = "s", ["its process is gone"] = "g" }
local CAUSE_OF = { r = "respawned", s = "crashed while starting", g = "its process is gone" }

--- "no heartbeat for 15.5s" is stored as "h15.5".
local function encode_cause(cause)
    local code = CODE_OF[cause]
    if code ~= nil then
        return code
    end
    local late = string.match(cause, "^no heartbeat for (%S+)s$")
    return late ~= nil and "h" .. late or "?"
end

local function decode_cause(code)
    local cause = CAUSE_OF[code]
    if cause ~= nil then
        return cause
    end
    local late = string.match(code, "^h(.+)$")
    return late ~= nil and "no heartbeat for " .. late .. "s" or "unknown"
end

--- Counts the crash of worker `pid` of generation `g`, found at `now`.
local function note(dict, g, pid, slot, cause, now)
    add(dict, keys.CRASHES, 1)
    write(
        dict,
        keys.LAST_CRASH,
        tostring(g) .. " " .. tostring(slot) .. " " .. to_hex_ms(now) .. " " .. encode_cause(cause),
        pid
    )
end

--- Crashes counted since the node started.
local function count(dict)
    return read_number(dict, keys.CRASHES) or 0
end

--- The last crash, nil if none (or its entry is unreadable).
local function last(dict)
    local value, pid = dict:get(keys.LAST_CRASH)
    if type(value) ~= "string" or type(pid) ~= "number" then
        return nil
    end
    local g, slot, at, code = string.match(value, "^(%d+) (%d+) (%x+) (%S+)$")
    if g == nil then
        return nil
    end
    return {
        id = g .. "-" .. tostring(pid),
        pid = pid,
        slot = tonumber(slot) or 0,
        at = from_hex_ms(at) or 0,
        cause = decode_cause(code or ""),
    }
end

_M.note = note
_M.count = count
_M.last = last

return _M
