--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local keys = require("resty.worker.manager.keys")
local registry = require("resty.worker.manager.registry")
local ____store = require("resty.worker.manager.store")
local write = ____store.write
--- The generation that carried configuration `config` last, and whether its master exit ran on an assumed stop.
local function last_of(dict, config)
    local value, flags = dict:get(keys.RESUME)
    if type(value) ~= "string" then
        return nil, false
    end
    local from, last = string.match(value, "^(%d+) (%d+)$")
    if tonumber(from) ~= config then
        return nil, false
    end
    return tonumber(last), flags == 1
end
--- The generation a worker of configuration `config` joins now: `config` itself, or the one that carries it since; nil if none runs.
local function carrier(dict, config)
    if registry.has_generation(dict, config) then
        return config
    end
    local last = last_of(dict, config)
    return last ~= nil and registry.has_generation(dict, last) and last or nil
end
--- True when a worker of configuration `config`, finding no generation that
-- carries it, opens a new one: its last generation ended on an assumed stop
-- and no newer configuration got a worker since (a late worker of an old
-- configuration stays untracked).
local function resumable(dict, config)
    local last, assumed = last_of(dict, config)
    return last ~= nil and assumed and not registry.has_generation(dict, last) and not registry.superseded(dict, last)
end
--- Opens a new generation to carry configuration `config`; its number, nil if the shm refused.
local function open(dict, config, now)
    local g = registry.begin_generation(dict, now)
    if g ~= nil then
        write(
            dict,
            keys.RESUME,
            (tostring(config) .. " ") .. tostring(g),
            0
        )
    end
    return g
end
--- The master exit of `g`, carrying configuration `config`, ran. `assumed`:
-- on a stop the module could only assume, after which nginx may start that
-- configuration's workers again.
local function note_end(dict, config, g, assumed)
    if assumed then
        if not registry.superseded(dict, g) then
            write(
                dict,
                keys.RESUME,
                (tostring(config) .. " ") .. tostring(g),
                1
            )
        end
        return
    end
    local last = last_of(dict, config)
    if last == g then
        write(
            dict,
            keys.RESUME,
            (tostring(config) .. " ") .. tostring(g),
            0
        )
    end
end
____exports.carrier = carrier
____exports.resumable = resumable
____exports.open = open
____exports.note_end = note_end
return ____exports
