-- Compiled from src/resty/worker/manager/cluster/options.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- opts.cluster checked at on_init_by_lua: every mistake is an error there,
-- naming the option, so that a fleet never starts half configured.

local driver = require("resty.worker.manager.cluster.driver")

local _M = {}

--- What opts.cluster may leave out (timeout: Redis's connect and read timeouts; pool: connections kept).
local DEFAULTS = {
    interval = 2,
    failed = 3,
    prefix = "wm",
    timeout = 1,
    pool = 4,
}
local MIN_SECONDS, MAX_SECONDS = 0.01, 3600
local MAX_NODE = 200

local function describe(value)
    -- %q shows control characters, which a plain quote would hide
    return type(value) == "string" and string.format("%q", value)
        or (type(value) == "number" and tostring(value) or type(value))
end

local function fail(name, want, value, level)
    error("opts.cluster." .. name .. " must be " .. want .. ", got " .. describe(value), level)
end

local function seconds(name, value, fallback, level)
    if value == nil then
        return fallback
    end
    if type(value) ~= "number" or not (value >= MIN_SECONDS and value <= MAX_SECONDS) then
        fail(
            name,
            "a number of seconds from " .. tostring(MIN_SECONDS) .. " to " .. tostring(MAX_SECONDS),
            value,
            level + 1
        )
    end
    return value
end

local function optional_string(name, value, level)
    if value ~= nil and (type(value) ~= "string" or value == "") then
        fail(name, "a non-empty string", value, level + 1)
    end
    return value
end

local function port_of(name, value, level)
    if value == nil then
        return 6379
    end
    if type(value) ~= "number" or value % 1 ~= 0 or value < 1 or value > 65535 then
        fail(name, "a port number from 1 to 65535", value, level + 1)
    end
    return value
end

local function sentinels_of(value, level)
    if type(value) ~= "table" or #value == 0 then
        local empty = type(value) == "table" and (next(value)) == nil
        error(
            "opts.cluster.redis.sentinels must be a non-empty list of { host = ..., port = ... }, got "
                .. (empty and "an empty table" or describe(value)),
            level
        )
    end
    local list = {}
    local given = value
    for i = 1, #given do
        local s = given[i]
        if type(s) ~= "table" or type(s and s.host) ~= "string" or s.host == "" then
            fail("redis.sentinels[" .. tostring(i) .. "]", "a table with a host", s, level + 1)
        end
        list[#list + 1] = {
            host = s.host,
            port = port_of("redis.sentinels[" .. tostring(i) .. "].port", s.port, level + 1),
        }
    end
    return list
end

local function redis_of(value, level)
    if type(value) ~= "table" then
        fail("redis", "a table with host and port, path, or sentinels and master_name", value, level + 1)
    end
    local r = value
    local host = optional_string("redis.host", r.host, level + 1)
    local path = optional_string("redis.path", r.path, level + 1)
    local master_name = optional_string("redis.master_name", r.master_name, level + 1)
    local sentinels = nil
    if r.sentinels ~= nil then
        sentinels = sentinels_of(r.sentinels, level + 1)
    end
    local ways = (host ~= nil and 1 or 0) + (path ~= nil and 1 or 0) + (sentinels ~= nil and 1 or 0)
    if ways ~= 1 then
        error(
            "opts.cluster.redis must give exactly one of host (with port), path (a unix socket) or sentinels "
                .. "(with master_name), got "
                .. (ways == 0 and "none" or "several"),
            level
        )
    end
    if sentinels ~= nil and master_name == nil then
        error("opts.cluster.redis.master_name must name the master the sentinels watch", level)
    end
    if path ~= nil and string.sub(path, 1, 5) ~= "unix:" and string.sub(path, 1, 1) ~= "/" then
        fail("redis.path", 'a unix socket path ("unix:/..." or "/...")', path, level + 1)
    end
    local database = r.database or 0
    if type(database) ~= "number" or database % 1 ~= 0 or database < 0 then
        fail("redis.database", "a database number (0 or more)", database, level + 1)
    end
    if r.ssl ~= nil and type(r.ssl) ~= "boolean" then
        fail("redis.ssl", "a boolean", r.ssl, level + 1)
    end
    if r.ssl_verify ~= nil and type(r.ssl_verify) ~= "boolean" then
        fail("redis.ssl_verify", "a boolean", r.ssl_verify, level + 1)
    end
    local pool_size = r.pool_size or DEFAULTS.pool
    if type(pool_size) ~= "number" or pool_size % 1 ~= 0 or pool_size < 1 then
        fail("redis.pool_size", "a whole number of connections (1 or more)", pool_size, level + 1)
    end
    if r.password ~= nil and (type(r.password) ~= "string" or r.password == "") then
        -- (the value itself stays out of the log: it may be the password)
        error(
            "opts.cluster.redis.password must be a non-empty string, got "
                .. (r.password == "" and '""' or type(r.password)),
            level
        )
    end
    local port = port_of("redis.port", r.port, level + 1)
    -- lua-resty-redis connects to a unix socket given as "unix:/path"
    local unix = nil
    if path ~= nil then
        unix = string.sub(path, 1, 5) == "unix:" and path or "unix:" .. path
    end
    return {
        host = host,
        port = port,
        path = unix,
        sentinels = sentinels,
        master_name = master_name,
        username = optional_string("redis.username", r.username, level + 1),
        password = optional_string("redis.password", r.password, level + 1),
        database = database,
        ssl = r.ssl == true,
        ssl_verify = r.ssl_verify == true,
        server_name = optional_string("redis.server_name", r.server_name, level + 1),
        connect_timeout = seconds("redis.connect_timeout", r.connect_timeout, DEFAULTS.timeout, level + 1),
        read_timeout = seconds("redis.read_timeout", r.read_timeout, DEFAULTS.timeout, level + 1),
        pool_size = pool_size,
        label = unix
            or (
                host ~= nil and host .. ":" .. tostring(port)
                or "master '" .. tostring(master_name) .. "' of the sentinels"
            ),
    }
end

--- This machine's name, for the default node name.
local function hostname()
    local f = io.open("/proc/sys/kernel/hostname", "r")
    if f ~= nil then
        local name = f:read("*l")
        f:close()
        if type(name) == "string" and name ~= "" then
            return name
        end
    end
    return os.getenv("HOSTNAME") or "localhost"
end

local function callback_of(name, value, level)
    if value ~= nil and type(value) ~= "function" then
        fail(name, "a function or nil", value, level + 1)
    end
    return value
end

--- opts.cluster, checked, with its defaults; nil without one. `level`: what
-- error() called here is given (each helper gets one more).
local function check(value, level)
    if value == nil then
        return nil
    end
    if type(value) ~= "table" then
        error("opts.cluster must be a table, got " .. type(value), level)
    end
    local c = value
    local redis = redis_of(c.redis, level + 1)
    local node = optional_string("node", c.node, level + 1) or hostname() .. ":" .. ngx.config.prefix()
    if #node > MAX_NODE or (string.find(node, "[%c%s]")) ~= nil then
        fail(
            "node",
            "a name of 1 to " .. tostring(MAX_NODE) .. " bytes without spaces or control characters",
            node,
            level + 1
        )
    end
    local prefix = optional_string("prefix", c.prefix, level + 1) or DEFAULTS.prefix
    if (string.find(prefix, "[{}%c%s]")) ~= nil then
        -- the keys are "{prefix}:...": one hash tag, so one slot of a sharded Redis
        fail("prefix", "a string without braces, spaces or control characters", prefix, level + 1)
    end
    local interval = seconds("interval", c.interval, DEFAULTS.interval, level + 1)
    local failed = seconds("failed", c.failed, DEFAULTS.failed, level + 1)
    local on_join = callback_of("on_join", c.on_join, level + 1)
    local on_leave = callback_of("on_leave", c.on_leave, level + 1)
    driver.check(redis.sentinels ~= nil, redis.ssl, level + 1)
    return {
        redis = redis,
        node = node,
        prefix = prefix,
        interval = interval,
        failed = failed,
        on_join = on_join,
        on_leave = on_leave,
    }
end

_M.check = check

return _M
