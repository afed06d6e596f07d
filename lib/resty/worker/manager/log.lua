-- Compiled from src/resty/worker/manager/log.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

local _M = {}

--- The module's one logging entry: every line is prefixed so users can grep it.
local ngx_log = ngx.log

local PREFIX = "[worker-manager] "

local function log(level, ...)
    -- A tail call: ngx.log then names the module function that logged, not this one.
    return ngx_log(level, PREFIX, ...)
end

_M.log = log

return _M
