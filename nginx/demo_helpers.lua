-- Small helpers for nginx/demo.conf (`make demo`, `make demo-serve`).
--
--   callback(event)  a resty.worker.manager callback that logs one line at
--                    NOTICE: the event, its four arguments, the process and
--                    phase it runs in, when it ran and since when its process
--                    held the node lock (nginx/demo.pl reads these lines); the
--                    same line goes to the journal for the live timeline
--   job(kind)        a singleton's start or stop that logs and journals the same way
--   fleet(kind)      the fleet's on_join ("join") or on_leave ("leave") that
--                    logs "demo: fleet_<kind> node=.. n_nodes=.. [reason=..] ..."
--                    and journals it the same way
--   journal()        the journal so far: those lines, one per callback, in
--                    the format of nginx/demo_timeline.lua's parse()
--   json(value)      a tiny JSON encoder for status() (no cjson needed)

local M = {}

local fmt = string.format
local concat = table.concat

-- The module's node lock is one key in its shm, taken with a 30 s expiry
-- and renewed with the same (docs/design.md, "The node lock"): inside a
-- callback, 30 s minus the key's time to live is how long ago this
-- process took (or last renewed) the lock.
local SHM = "worker_manager"
local LOCK_KEY = "lua-resty-worker-manager:lock"
local LOCK_EXPTIME = 30

-- lua_shared_dict demo_journal in demo.conf; no journal without it
local JOURNAL = "demo_journal"

local function lock_taken_at(now)
    local ttl = ngx.shared[SHM]:ttl(LOCK_KEY)
    if type(ttl) ~= "number" or ttl <= 0 then
        return nil
    end
    return now - (LOCK_EXPTIME - ttl)
end

local function remember(line)
    local journal = ngx.shared[JOURNAL]
    if not journal then
        return
    end
    local n = journal:incr("n", 1, 0)
    if n then
        -- safe_set: a full journal keeps its beginning
        journal:safe_set("e" .. n, line)
    end
end

-- " process=worker pid=.. slot=.. phase=.. t=..", the end of a worker's line
local function worker_fields()
    ngx.update_time()
    return concat({
        " process=worker pid=", ngx.worker.pid(), " slot=", tostring(ngx.worker.id()),
        " phase=", ngx.get_phase(), " t=", fmt("%.3f", ngx.now()),
    })
end

-- journals "event=<event> <fields>" and logs "demo: <event> <fields>" at NOTICE
local function tell(event, fields)
    remember("event=" .. event .. " " .. fields)
    ngx.log(ngx.NOTICE, "demo: ", event, " ", fields)
end

function M.callback(event)
    return function(id, n_prev, n_mine, n_next)
        ngx.update_time()
        local t = ngx.now()
        local phase = ngx.get_phase()
        local lock_at = lock_taken_at(t)
        -- master start runs in the master (init_by_lua), every other
        -- callback in a worker
        local process = phase == "init" and "master" or "worker"
        local reason = event == "worker_exit"
            and require("resty.worker.manager").exit_reason() or nil
        ngx.update_time()
        local line = concat({
            "event=", event, " id=", tostring(id), " n_prev=", tostring(n_prev),
            " n_mine=", tostring(n_mine), " n_next=", tostring(n_next),
            " process=", process, " pid=", ngx.worker.pid(),
            " slot=", tostring(ngx.worker.id()), " phase=", phase,
            reason and (" reason=" .. reason) or "",
            " t=", fmt("%.3f", t), " t_end=", fmt("%.3f", ngx.now()),
            lock_at and fmt(" lock_at=%.4f", lock_at) or "",
        })
        remember(line)
        ngx.log(ngx.NOTICE, "demo: ", event, " ", line:sub(#"event=" + #event + 2))
    end
end

-- job(kind) a singleton's start or stop ("start", "stop") that logs one
-- line at NOTICE, "demo: singleton_<kind> name=.. token=.. reason=.. ...",
-- and journals it like the callbacks above
function M.job(kind)
    return function(name, token, reason)
        tell("singleton_" .. kind, concat({
            "name=", name, " token=", tostring(token), " reason=", tostring(reason), worker_fields(),
        }))
    end
end

-- fleet(kind) the cluster's on_join ("join") or on_leave ("leave"): one
-- line at NOTICE, "demo: fleet_join node=<member> n_nodes=<n> ..." (a
-- leave adds reason=stopped|lost), journalled like the callbacks above
function M.fleet(kind)
    return function(node, n_nodes, reason)
        tell("fleet_" .. kind, concat({
            "node=", tostring(node), " n_nodes=", tostring(n_nodes),
            kind == "leave" and (" reason=" .. tostring(reason)) or "", worker_fields(),
        }))
    end
end

function M.journal()
    local journal = ngx.shared[JOURNAL]
    local lines = {}
    for i = 1, journal and journal:get("n") or 0 do
        lines[#lines + 1] = journal:get("e" .. i)
    end
    return concat(lines, "\n")
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return ESCAPES[c] or fmt("\\u%04x", c:byte())
    end) .. '"'
end

local encode

local function encode_table(t, out)
    if next(t) == nil then      -- status() has no empty objects, only empty lists
        out[#out + 1] = "[]"
        return
    end
    local n = #t
    local is_array = n > 0
    if is_array then
        for k in pairs(t) do
            if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
                is_array = false
                break
            end
        end
    end
    if is_array then
        out[#out + 1] = "["
        for i = 1, n do
            if i > 1 then out[#out + 1] = "," end
            encode(t[i], out)
        end
        out[#out + 1] = "]"
        return
    end
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        local v = t[k]
        if v == nil then v = t[tonumber(k)] end
        encode(v, out)
    end
    out[#out + 1] = "}"
end

encode = function(v, out)
    local ty = type(v)
    if v == nil or v == ngx.null then
        out[#out + 1] = "null"
    elseif ty == "boolean" then
        out[#out + 1] = v and "true" or "false"
    elseif ty == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            out[#out + 1] = "null"
        elseif v % 1 == 0 and v > -1e15 and v < 1e15 then
            out[#out + 1] = fmt("%d", v)
        else
            out[#out + 1] = fmt("%.14g", v)
        end
    elseif ty == "string" then
        out[#out + 1] = encode_string(v)
    elseif ty == "table" then
        encode_table(v, out)
    else
        out[#out + 1] = encode_string(tostring(v))
    end
end

function M.json(value)
    local out = {}
    encode(value, out)
    return concat(out)
end

return M
