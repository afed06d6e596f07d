--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
--- The module's one logging entry: every line is prefixed so users can grep it.
local ngx_log = ngx.log
local PREFIX = "[worker-manager] "
local function log(level, ...)
    return ngx_log(level, PREFIX, ...)
end
____exports.log = log
return ____exports
