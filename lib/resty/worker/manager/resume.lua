-- Compiled from src/resty/worker/manager/resume.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Which generation a worker belongs to when nginx starts workers of a
-- configuration after that configuration's master exit ran.
--
-- A worker knows the generation of the configuration it was forked with
-- (its master's init_by_lua). Normally that generation runs and the worker
-- joins it. But on a fast exit (TERM) of a generation's last worker the
-- module cannot tell a stop from a worker recycled by a signal sent to it:
-- nginx tells the two apart to nobody, and keeps its listening sockets in
-- both. It assumes a stop and runs the master exit. If nginx then respawns
-- the worker, that configuration runs again: its workers open a new
-- generation (master start, run by the first of them) rather than go
-- untracked. One entry (keys.RESUME) remembers the last generation of the
-- configuration and whether its end was only assumed.

local keys = require("resty.worker.manager.keys")
local registry = require("resty.worker.manager.registry")
local write = require("resty.worker.manager.store").write

local _M = {}

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
    if registry.recorded(dict, config) then
        return config
    end
    local last = last_of(dict, config)
    return last ~= nil and registry.recorded(dict, last) and last or nil
end

--- True when a worker of configuration `config`, finding no generation that
-- carries it, opens a new one: its last generation ended on an assumed stop
-- and no newer configuration got a worker since (a late worker of an old
-- configuration stays untracked).
local function resumable(dict, config)
    local last, assumed = last_of(dict, config)
    return last ~= nil and assumed and not registry.recorded(dict, last) and not registry.superseded(dict, last)
end

--- Opens a new generation to carry configuration `config`; its number, nil if the shm refused.
local function open(dict, config, now)
    local g = registry.begin_generation(dict, now)
    if g ~= nil then
        write(dict, keys.RESUME, tostring(config) .. " " .. tostring(g), 0)
    end
    return g
end

--- The master exit of `g`, carrying configuration `config`, ran. `assumed`:
-- on a stop the module could only assume, after which nginx may start that
-- configuration's workers again.
local function note_end(dict, config, g, assumed)
    if assumed then
        -- Only the master's current configuration can run again; an older
        -- one ending later (its exits were slower) must not take its place.
        if not registry.superseded(dict, g) then
            write(dict, keys.RESUME, tostring(config) .. " " .. tostring(g), 1)
        end
        return
    end
    local last = last_of(dict, config)
    if last == g then
        write(dict, keys.RESUME, tostring(config) .. " " .. tostring(g), 0)
    end
end

_M.carrier = carrier
_M.resumable = resumable
_M.open = open
_M.note_end = note_end

return _M
