-- Two small helpers for nginx/demo.conf (`make demo`, `make demo-serve`).
--
--   callback(event)  a resty.worker.manager callback that logs one line at
--                    NOTICE: the event, its four arguments, the process it
--                    runs in and the time (nginx/demo.pl reads these lines)
--   json(value)      a tiny JSON encoder for status() (no cjson needed)

local M = {}

local fmt = string.format
local concat = table.concat

function M.callback(event)
    return function(id, n_prev, n_mine, n_next)
        ngx.update_time()
        -- master start runs in the master (init_by_lua), every other
        -- callback in a worker
        local process = ngx.get_phase() == "init" and "master" or "worker"
        ngx.log(ngx.NOTICE, "demo: ", event,
                " id=", tostring(id), " n_prev=", tostring(n_prev),
                " n_mine=", tostring(n_mine), " n_next=", tostring(n_next),
                " process=", process, " pid=", ngx.worker.pid(),
                " slot=", tostring(ngx.worker.id()), " t=", fmt("%.3f", ngx.now()))
    end
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
