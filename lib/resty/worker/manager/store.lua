-- Compiled from src/resty/worker/manager/store.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Reads and writes of the module's shm keys. A write that fails (shm full,
-- wrong type) is logged at ERR with its key, never dropped silently.
-- Writes use safe_set/safe_add, which fail rather than evict other users'
-- keys when the zone is full (incr with an init value could evict).

local log = require("resty.worker.manager.log").log
local ERR = ngx.ERR

local _M = {}

local function read_number(dict, key)
    local value = dict:get(key)
    return type(value) == "number" and value or nil
end

local function read_string(dict, key)
    local value = dict:get(key)
    return type(value) == "string" and value or nil
end

--- Whether a write of `key` succeeded; a failed one is logged.
local function written(key, ok, err)
    if not ok then
        log(ERR, "failed to write shm key '", key, "': ", err)
    end
    return ok
end

local function write(dict, key, value, flags)
    local ok, err = dict:safe_set(key, value, 0, flags)
    return written(key, ok, err)
end

--- Like write, for a key that expires `exptime` seconds from now.
local function write_expiring(dict, key, value, exptime)
    local ok, err = dict:safe_set(key, value, exptime)
    return written(key, ok, err)
end

--- Creates `key` with `value` unless it exists (another process may create
-- it first, which is fine); false when it could not (logged).
local function create(dict, key, value)
    local ok, err = dict:safe_add(key, value)
    return written(key, ok or err == "exists", err)
end

--- Overwrites `key` only if it exists; false if it does not (or the write
-- failed, logged). A value of the stored size is written in place: no
-- allocation, so it never fails for memory nor evicts other keys.
local function overwrite(dict, key, value, flags)
    local ok, err = dict:replace(key, value, 0, flags)
    if not ok and err ~= "not found" then
        log(ERR, "failed to write shm key '", key, "': ", err)
    end
    return ok
end

--- Atomically adds `delta` (missing key counts as 0); the new value, or nil on failure.
local function add(dict, key, delta)
    local value, err = dict:incr(key, delta)
    if value == nil and err == "not found" then
        -- Created, then incremented: another process may create it
        -- between the two calls (create is fine with that).
        if not create(dict, key, 0) then
            return nil
        end
        value, err = dict:incr(key, delta)
    end
    if value == nil then
        log(ERR, "failed to update shm key '", key, "': ", err)
    end
    return value
end

local function remove(dict, key)
    dict:delete(key)
end

_M.read_number = read_number
_M.read_string = read_string
_M.write = write
_M.write_expiring = write_expiring
_M.create = create
_M.overwrite = overwrite
_M.add = add
_M.remove = remove

return _M
