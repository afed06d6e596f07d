-- Compiled from src/resty/worker/manager/cluster/leases.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Cluster singletons: one worker in the whole fleet runs the job.
--
-- Two levels. In each node, a node singleton (singletons.ts) picks the one
-- worker that competes for the name, and moves it through reloads, crashes
-- and stalls. That worker holds a lease in Redis (scripts.ts: ACQUIRE,
-- RENEW, RELEASE) with a fencing token from the fleet's one counter, and
-- renews it every `interval`. The lease runs for `interval + failed` by
-- Redis's clock; the holder counts its own holding as over sooner, at
-- LEASE_SHARE of that from the moment it sent the request, so that it
-- stops ("lost") before any other node can take the lease, even with
-- clocks that tick at slightly different rates.
--
-- The user's start and fn run in timers of their own, so a slow job never
-- delays a renewal. A stop for a move of the node singleton (reload, stop,
-- exit) waits for a running start or fn, runs, then releases the lease so
-- that the next holder need not wait for it to run out.

local driver = require("resty.worker.manager.cluster.driver")
local keys = require("resty.worker.manager.keys")
local scripts = require("resty.worker.manager.cluster.scripts")
local log = require("resty.worker.manager.log").log
local run_job = require("resty.worker.manager.callbacks").run_job
local write = require("resty.worker.manager.store").write
local ERR, NOTICE = ngx.ERR, ngx.NOTICE
local now, update_time, sleep, get_phase = ngx.now, ngx.update_time, ngx.sleep, ngx.get_phase
local timer_at = ngx.timer.at

local _M = {}

--- What the node singleton that competes for a cluster name is called.
local PREFIX = "[worker-manager] cluster "

--- The share of the lease the holder counts on (from when it asked).
local LEASE_SHARE = 0.8

--- Poll step while a stop waits for a running start or fn.
local WAIT_STEP = 0.01

local config = nil
local dict = nil

local function holder_id()
    return "?"
end

local leases = {}

--- In init_worker: the fleet's options, and who this worker is in the fleet.
local function setup(c, d, who)
    config = c
    dict = d
    holder_id = who
end

--- The highest token of `name` the node saw (any of its workers): the floor of the next one.
local function seen(name)
    local v = dict:get(keys.fleet_seen(name))
    return type(v) == "number" and v or 0
end

--- Notes a token of `name` this node got or saw: tokens never go back, even after a Redis forgot them.
local function saw(name, token)
    local d = dict
    if token > seen(name) then
        write(d, keys.fleet_seen(name), token)
    end
    local top = d:get(keys.FLEET.token_max)
    if type(top) ~= "number" or token > top then
        write(d, keys.FLEET.token_max, token)
    end
end

local function has(name)
    return leases[name] ~= nil
end

--- Runs user code protected; an error is logged with the name, token and worker pid.
local function call(what, l, token, f, reason)
    run_job("cluster singleton", what, l.name, ngx.worker.pid(), token, f, reason)
end

local function lease_ms(c)
    return math.floor((c.interval + c.failed) * 1000)
end

--- Runs one lease script; the reply, or nil and an error text.
local function ask(c, l, s, args)
    local red, cerr = driver.connect(c.redis)
    if red == nil then
        return nil, cerr
    end
    local k = scripts.keys(c.prefix)
    k[#k + 1] = scripts.lease_key(c.prefix, l.name)
    local res, err = driver.run(red, s, k, args)
    driver.done(red, c.redis, res == nil)
    return res, err
end

--- The holding ends here: the user's stop (once its start ran), then forgotten.
local function end_lease(l, reason)
    local token = l.token
    if token == nil or l.ending then
        return
    end
    l.ending = true
    if l.started and l.stop ~= nil then
        call("stop", l, token, l.stop, reason)
    end
    l.token = nil
    l.started = false
    l.ending = false
end

--- The holding ran out or was taken over: "lost", now, or after the running start or fn.
local function lose(l, why)
    if l.token == nil or l.ending then
        return
    end
    log(NOTICE, "worker ", ngx.worker.pid(), " lost cluster singleton '", l.name, "' (token ", l.token, "): ", why)
    l.valid_until = 0
    if l.busy then
        l.lost = true
    else
        end_lease(l, "lost")
    end
end

--- Whether the holding still counts; ends it ("lost") when it ran out.
local function valid(l)
    update_time()
    if l.token ~= nil and not l.lost and now() > l.valid_until then
        lose(l, "its lease could not be renewed in time")
    end
    return l.token ~= nil and not l.ending and not l.lost
end

local function after_busy(l)
    l.busy = false
    if l.lost then
        l.lost = false
        end_lease(l, "lost")
    else
        valid(l)
    end
end

local function on_run(premature, l, token)
    if premature or l.token ~= token or l.busy or not valid(l) then
        return
    end
    update_time()
    local began = now()
    l.busy = true
    l.started = true
    if l.fn ~= nil then
        call("fn", l, token, l.fn)
    elseif l.start ~= nil then
        call("start", l, token, l.start)
    end
    after_busy(l)
    if l.fn ~= nil and l.token == token and not l.ending and not ngx.worker.exiting() then
        update_time()
        local ok, err = timer_at(math.max(0, began + l.interval - now()), on_run, l, token)
        if not ok then
            log(ERR, "could not start the timer of cluster singleton '", l.name, "': ", err)
        end
    end
end

--- The internal node singleton's every(): take or renew the lease.
local function round(internal)
    local c = config
    local l = leases[string.sub(internal, #PREFIX + 1)]
    if c == nil or l == nil then
        return
    end
    update_time()
    local asked = now()
    local ms = lease_ms(c)
    if l.token ~= nil then
        if not valid(l) then
            return
        end
        local res, err = ask(c, l, scripts.RENEW, {
            holder_id(),
            l.token,
            ms,
        })
        if res == 1 then
            l.valid_until = asked + ms / 1000 * LEASE_SHARE
        elseif res == 0 then
            lose(l, "another node holds it now")
        elseif err ~= nil then
            valid(l)
        end
        return
    end
    local res = ask(c, l, scripts.ACQUIRE, {
        holder_id(),
        ms,
        seen(l.name),
    })
    if type(res) ~= "table" then
        return
    end
    local taken, token = unpack(res, 1, 2)
    saw(l.name, token or 0)
    if taken == 1 and not ngx.worker.exiting() then
        l.token = token
        l.valid_until = asked + ms / 1000 * LEASE_SHARE
        l.started = false
        local ok, terr = timer_at(0, on_run, l, token)
        if not ok then
            log(ERR, "could not start a timer for cluster singleton '", l.name, "': ", terr, "; starting it here")
            on_run(false, l, token)
        end
    end
end

--- The internal node singleton's stop: this worker no longer competes for
-- the name (reload, stop, exit, or dropped as stalled: "lost").
local function on_node_stop(internal, _node_token, reason)
    local c = config
    local l = leases[string.sub(internal, #PREFIX + 1)]
    if c == nil or l == nil or l.token == nil then
        return
    end
    local token = l.token
    local can_yield = get_phase() == "timer"
    while can_yield and l.busy do
        sleep(WAIT_STEP)
    end
    if l.token ~= token or not valid(l) then
        return
    end
    end_lease(l, reason or "stop")
    if reason ~= "lost" and can_yield then
        ask(c, l, scripts.RELEASE, {
            holder_id(),
            token,
        })
    end
end

--- Registers cluster singleton `name` in this worker; returns the name of its node singleton.
local function add(name, start, stop, fn, interval)
    leases[name] = {
        name = name,
        start = start,
        stop = stop,
        fn = fn,
        interval = interval,
        token = nil,
        valid_until = 0,
        busy = false,
        started = false,
        ending = false,
        lost = false,
    }
    return PREFIX .. name
end

--- Whether this worker holds cluster singleton `name` now, and its token.
local function holds(name)
    local l = leases[name]
    -- (true in its stop too, but a "lost" one)
    if l == nil or l.token == nil or l.lost then
        return false, nil
    end
    update_time()
    if now() > l.valid_until then
        return false, nil
    end
    return true, l.token
end

_M.setup = setup
_M.has = has
_M.add = add
_M.holds = holds
_M.round = round
_M.on_node_stop = on_node_stop

return _M
