-- Compiled from src/resty/worker/manager/status.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- status(): the node's current view, read from the shm in one pass under the
-- node lock, so the numbers agree with each other.

local registry = require("resty.worker.manager.registry")
local crash_record = require("resty.worker.manager.crash_record")
local keys = require("resty.worker.manager.keys")
local lock = require("resty.worker.manager.lock")
local read_number = require("resty.worker.manager.store").read_number
local alive = require("resty.worker.manager.liveness").alive
local holding = require("resty.worker.manager.holding")
local get_phase, now, update_time = ngx.get_phase, ngx.now, ngx.update_time

local _M = {}

--- How long status() waits for the lock where it must block the worker to wait.
local BLOCKING_WAIT = 0.05

--- How long it waits where it can yield.
local YIELDING_WAIT = 5

local YIELDABLE = {
    rewrite = true,
    server_rewrite = true,
    access = true,
    content = true,
    timer = true,
    ssl_cert = true,
    ssl_session_fetch = true,
    ssl_client_hello = true,
}

local function generation_status(dict, g)
    local workers = {}
    for s = 0, registry.slots(dict, g) - 1 do
        local pid, beat, started = registry.occupant(dict, g, s)
        if pid ~= nil then
            workers[#workers + 1] = {
                id = tostring(g) .. "-" .. tostring(pid),
                pid = pid,
                slot = s,
                started = started,
                heartbeat = beat,
            }
        end
    end
    return {
        id = g,
        started = read_number(dict, keys.gen(g)),
        workers = workers,
        starting = #alive(registry.starting(dict, g)),
        stalled = registry.stalled(dict, g),
        idle = registry.idle(dict, g),
    }
end

local function singletons_status(dict)
    local list = {}
    for _, name in ipairs(holding.names(dict)) do
        local h = holding.holder(dict, name)
        local held = h ~= nil and not h.stopped
        list[#list + 1] = {
            name = name,
            holder = held and tostring(h.gen) .. "-" .. tostring(h.pid) or nil,
            token = h ~= nil and h.token or holding.last_token(dict, name),
            since = held and h.since or nil,
            stopped = h ~= nil and h.stopped,
        }
    end
    return list
end

local function snapshot(dict, failed, consistent)
    update_time()
    local generations = {}
    local low, top = registry.span(dict)
    for g = low, top do
        if registry.recorded(dict, g) then
            generations[#generations + 1] = generation_status(dict, g)
        end
    end
    return {
        generation = registry.newest(dict, now(), failed),
        generations = generations,
        crashes = crash_record.count(dict),
        last_crash = crash_record.last(dict),
        singletons = singletons_status(dict),
        consistent = consistent,
    }
end

--- Reads the node's view. Inside a callback (this process holds the lock) it
-- reads at once; elsewhere it takes the lock, waiting briefly where it would
-- have to block the worker.
local function status(dict, failed)
    if lock.held() then
        return snapshot(dict, failed, true)
    end
    local can_yield = YIELDABLE[get_phase()] == true
    local hold = lock.try_acquire(dict, can_yield, can_yield and YIELDING_WAIT or BLOCKING_WAIT)
    -- not taken (a time-out, or a full zone: logged): an unlocked read
    if hold == nil then
        return snapshot(dict, failed, false)
    end
    local view = snapshot(dict, failed, true)
    lock.release(dict, hold)
    return view
end

_M.status = status

return _M
