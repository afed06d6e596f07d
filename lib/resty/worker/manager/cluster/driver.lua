-- Compiled from src/resty/worker/manager/cluster/driver.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The Redis client: lua-resty-redis under either of its names (luarocks and
-- OpenResty: resty.redis; Debian's lua-nginx-redis: nginx.redis), one
-- connection per call from the cosocket pool, scripts sent by SHA1 first.
--
-- Sentinel: the master's address is asked from the sentinels in turn
-- (SENTINEL get-master-addr-by-name) and the server is asked its ROLE
-- before it is used, so a demoted master is never written to. Only
-- lua-resty-redis is needed for that.

local _M = {}

local NAMES = { "resty.redis", "nginx.redis" }
local KEEPALIVE_MS = 60000

local redis = nil

--- lua-resty-redis 0.28 and later have set_timeouts. Asked of the module
-- table itself: its metatable makes any other name a Redis command.
local has_timeouts = false

--- lua-resty-redis, under whichever name this installation has it; nil if absent.
local function load()
    if redis == nil then
        for _, name in ipairs(NAMES) do
            local ok, mod = pcall(require, name)
            if ok and type(mod) == "table" then
                redis = mod
                has_timeouts = rawget(mod, "set_timeouts") ~= nil
                break
            end
        end
    end
    return redis
end

--- Whether version text `v` ("0.27") is at least `major.minor`.
local function at_least(v, major, minor)
    local a, b = string.match(v, "^(%d+)%.(%d+)")
    local x = tonumber(a) or 0
    local y = tonumber(b) or 0
    return x > major or x == major and y >= minor
end

--- At on_init_by_lua: the library is there, and can do what the options ask.
local function check(_sentinels, ssl, level)
    local mod = load()
    if mod == nil then
        error(
            "opts.cluster needs lua-resty-redis, found neither resty.redis nor nginx.redis: install it with "
                .. "`luarocks install lua-resty-redis` (OpenResty has it already; Debian: apt install lua-nginx-redis)",
            level
        )
    end
    if ssl and not at_least(tostring(mod._VERSION), 0, 28) then
        error("opts.cluster.redis.ssl needs lua-resty-redis 0.28 or newer, found " .. tostring(mod._VERSION), level)
    end
end

--- A fresh connection's authentication and database.
local function prepare(red, t)
    local reused = red:get_reused_times()
    if reused ~= nil and reused > 0 then
        return nil
    end
    if t.password ~= nil then
        local ok, err =
            unpack(t.username ~= nil and { red:auth(t.username, t.password) } or { red:auth(t.password) }, 1, 2)
        if not ok then
            return "AUTH failed: " .. tostring(err)
        end
    end
    if t.database ~= 0 then
        local ok, err = red:select(t.database)
        if not ok then
            return "SELECT " .. tostring(t.database) .. " failed: " .. tostring(err)
        end
    end
    return nil
end

--- A connection to `host`:`port` (or t.path when host is nil); `sentinel`:
-- one to a Sentinel, which gets no AUTH or SELECT of the data server.
local function open(t, host, port, sentinel)
    local mod = load()
    if mod == nil then
        return nil, "lua-resty-redis is not installed"
    end
    local red, err = mod.new()
    if red == nil then
        return nil, err
    end
    local connect_ms = t.connect_timeout * 1000
    local read_ms = t.read_timeout * 1000
    if has_timeouts then
        red:set_timeouts(connect_ms, read_ms, read_ms)
    else
        red:set_timeout(connect_ms)
    end
    -- one pool per address and database: a connection authenticated or
    -- switched for one target is never handed to another
    local pool = (host ~= nil and host .. ":" .. tostring(port) or tostring(t.path))
        .. (sentinel and "/sentinel" or "/" .. tostring(t.database) .. "/" .. (t.username or ""))
    local opts = t.ssl
            and {
                pool = pool,
                pool_size = t.pool_size,
                ssl = true,
                ssl_verify = t.ssl_verify,
                server_name = t.server_name,
            }
        or { pool = pool, pool_size = t.pool_size }
    local ok, cerr = unpack(host ~= nil and { red:connect(host, port, opts) } or { red:connect(t.path, opts) }, 1, 2)
    if ok == nil then
        return nil, "cannot connect: " .. cerr
    end
    if not has_timeouts then
        red:set_timeout(read_ms)
    end
    -- a sentinel takes no AUTH of the master's nor a SELECT
    if sentinel then
        return red, nil
    end
    local perr = prepare(red, t)
    if perr ~= nil then
        red:close()
        return nil, perr
    end
    return red, nil
end

--- The sentinel that answered last (an index into the list), asked first next time.
local answered = 0

--- Back to the pool; a connection in doubt (after an error) is closed instead.
local function done(red, t, failed)
    if failed then
        red:close()
    else
        red:set_keepalive(KEEPALIVE_MS, t.pool_size)
    end
end

--- The master's address, from the first sentinel that knows it.
local function ask_sentinels(t)
    local errors = {}
    local list = t.sentinels or {}
    for i = 0, #list - 1 do
        local k = (answered + i) % #list
        local s = list[k + 1]
        local red, err = open(t, s.host, s.port, true)
        if red == nil then
            errors[#errors + 1] = s.host .. ":" .. tostring(s.port) .. " " .. err
        else
            local res, rerr = red:sentinel("get-master-addr-by-name", t.master_name)
            -- after an error the connection may still get a late reply: not for the pool
            done(red, t, rerr ~= nil)
            local addr = res
            if type(res) == "table" and addr ~= nil and tonumber(addr[2]) ~= nil then
                answered = k
                return addr[1], tonumber(addr[2])
            end
            errors[#errors + 1] = s.host
                .. ":"
                .. tostring(s.port)
                .. " "
                .. (rerr or "does not know master '" .. tostring(t.master_name) .. "'")
        end
    end
    return nil, "no sentinel gave the master's address (" .. table.concat(errors, "; ") .. ")"
end

--- A connection to the Redis that takes writes.
local function connect(t)
    if t.sentinels == nil then
        return open(t, t.host, t.port, false)
    end
    local host, port = ask_sentinels(t)
    if host == nil then
        return nil, port
    end
    local red, err = open(t, host, port, false)
    if red == nil then
        return nil, "master " .. host .. ":" .. tostring(port) .. ": " .. err
    end
    local role = red:role()
    if type(role) ~= "table" or role[1] ~= "master" then
        red:close()
        return nil, host .. ":" .. tostring(port) .. " is not a master (a failover is under way)"
    end
    return red, nil
end

local function script(source)
    local hex = string.gsub(ngx.sha1_bin(source), ".", function(c)
        return string.format("%02x", string.byte(c))
    end)
    return { source = source, sha = hex }
end

--- Runs `s` with `keys` and `args`: EVALSHA, and EVAL when the server does
-- not have it yet (a new or restarted Redis). Returns the reply, or nil and
-- an error text.
local function run(red, s, keys, args)
    local all = {}
    for _, k in ipairs(keys) do
        all[#all + 1] = k
    end
    for _, a in ipairs(args) do
        all[#all + 1] = a
    end
    local res, err = red:evalsha(s.sha, #keys, unpack(all))
    if res == false and err ~= nil and string.sub(err, 1, 8) == "NOSCRIPT" then
        res, err = red:eval(s.source, #keys, unpack(all))
    end
    if res == nil or res == false then
        return nil, err or "no reply"
    end
    return res, nil
end

_M.load = load
_M.check = check
_M.connect = connect
_M.done = done
_M.script = script
_M.run = run

return _M
