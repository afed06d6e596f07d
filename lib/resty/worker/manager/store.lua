--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local ____log = require("resty.worker.manager.log")
local log = ____log.log
local ERR = ngx.ERR
local function read_number(dict, key)
    local value = dict:get(key)
    return type(value) == "number" and value or nil
end
local function read_string(dict, key)
    local value = dict:get(key)
    return type(value) == "string" and value or nil
end
local function write(dict, key, value, flags)
    local ok, err = dict:safe_set(key, value, 0, flags)
    if not ok then
        log(
            ERR,
            "failed to write shm key '",
            key,
            "': ",
            err
        )
    end
    return ok
end
--- Overwrites `key` only if it exists; false if it does not (or the write
-- failed, logged). A value of the stored size is written in place: no
-- allocation, so it never fails for memory nor evicts other keys.
local function overwrite(dict, key, value, flags)
    local ok, err = dict:replace(key, value, 0, flags)
    if not ok and err ~= "not found" then
        log(
            ERR,
            "failed to write shm key '",
            key,
            "': ",
            err
        )
    end
    return ok
end
--- Atomically adds `delta` (missing key counts as 0); the new value, or nil on failure.
local function add(dict, key, delta)
    local value, err = dict:incr(key, delta)
    if value == nil and err == "not found" then
        local created, add_err = dict:safe_add(key, 0)
        if not created and add_err ~= "exists" then
            log(
                ERR,
                "failed to write shm key '",
                key,
                "': ",
                add_err
            )
            return nil
        end
        value, err = dict:incr(key, delta)
    end
    if value == nil then
        log(
            ERR,
            "failed to update shm key '",
            key,
            "': ",
            err
        )
    end
    return value
end
local function remove(dict, key)
    dict:delete(key)
end
____exports.read_number = read_number
____exports.read_string = read_string
____exports.write = write
____exports.overwrite = overwrite
____exports.add = add
____exports.remove = remove
return ____exports
