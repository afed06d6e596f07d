-- Compiled from src/resty/worker/manager.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- resty.worker.manager: tells nginx code what happens to its node (start,
-- reload, stop, a worker crashing and respawning) through callbacks
-- `cb(id, n_prev, n_mine, n_next)` run one at a time under a node-wide lock.
-- See README.md for the lifecycle table; this file only orchestrates:
-- phase checks, the lock, the registry and the callbacks.

local registry = require("resty.worker.manager.registry")
local lock = require("resty.worker.manager.lock")
local liveness = require("resty.worker.manager.liveness")
local reports = require("resty.worker.manager.reports")
local listeners = require("resty.worker.manager.listeners")
local reasons = require("resty.worker.manager.exit_reason")
local missed_beats = require("resty.worker.manager.missed_beats")
local resume = require("resty.worker.manager.resume")
local singletons = require("resty.worker.manager.singletons")
local fleet = require("resty.worker.manager.cluster.fleet")
local cluster_options = require("resty.worker.manager.cluster.options")
local leases = require("resty.worker.manager.cluster.leases")
local callbacks = require("resty.worker.manager.callbacks")
local run = callbacks.run
local inside = callbacks.inside
local log = require("resty.worker.manager.log").log
local host = require("resty.worker.manager.host")
local free_dead_shm_mutex = host.free_dead_shm_mutex
local pause = host.pause
local process_type = host.process_type
local terminating = host.terminating
local testing_config = host.testing_config
local read_status = require("resty.worker.manager.status").status
local ERR, WARN, NOTICE, INFO = ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO
local get_phase, now, update_time, sleep, shared = ngx.get_phase, ngx.now, ngx.update_time, ngx.sleep, ngx.shared
local timer_every = ngx.timer.every
local worker_pid, worker_exiting, worker_id, worker_count =
    ngx.worker.pid, ngx.worker.exiting, ngx.worker.id, ngx.worker.count

local _M = { _VERSION = "0.1.0" }

local DEFAULT_INTERVAL = 10
local DEFAULT_FAILED = 5

--- Bounds of interval and failed (a year at most: failed is also how long a stop may wait).
local MIN_SECONDS = 0.001
local MAX_SECONDS = 31536000

--- Longest singleton name, in bytes (it is part of shm keys).
local MAX_NAME = 128

--- What the module's own singletons' names start with (the fleet agent).
local RESERVED = "[worker-manager]"

--- Step of the wait that tells a reload from a stop (timer context only).
local UNDECIDED_STEP = 0.05

--- How long a fast stop's exit may wait for a newer generation's first worker
-- (nginx sends KILL ~1.5 s after TERM), and in which steps (blocking).
local FAST_STOP_WAIT = 0.5
local FAST_STOP_STEP = 0.01

local node = nil
local worker_hooked = false
local worker = nil

--- `level`: where the error is reported, counted from here (3: the caller of the function that checks).
local function check_phase(fn, phase, directive, level)
    if level == nil then
        level = 3
    end
    if inside() then
        -- Its own work is under way in the callback's caller, which holds
        -- the node lock: run again from here it would nest inside that
        -- work and free the lock under it.
        error(fn .. " must not be called from inside a callback of resty.worker.manager", level)
    end
    local current = get_phase()
    if current ~= phase then
        error(fn .. " must be called from " .. directive .. ", not in phase '" .. current .. "'", level)
    end
end

local function check_callback(name, cb)
    if cb ~= nil and type(cb) ~= "function" then
        error(name .. " must be a function or nil, got " .. type(cb), 3)
    end
    return cb
end

--- How a bad value reads in an error: type, then the value where it says something.
local function describe(value)
    if type(value) == "string" then
        return "string " .. string.format("%q", value)
    end
    if type(value) == "number" or type(value) == "boolean" then
        return type(value) .. " " .. tostring(value)
    end
    return type(value)
end

local function check_seconds(name, value, fallback, level)
    if level == nil then
        level = 4
    end
    if value == nil then
        return fallback
    end
    -- ngx.timer.at counts whole milliseconds in an unsigned 64-bit number:
    -- under half a millisecond rounds to 0 and a huge delay wraps around,
    -- and either way the heartbeat would fire at once, forever. NaN fails
    -- both comparisons.
    if type(value) ~= "number" or not (value >= MIN_SECONDS and value <= MAX_SECONDS) then
        error(
            name
                .. " must be a number of seconds from "
                .. tostring(MIN_SECONDS)
                .. " to "
                .. tostring(MAX_SECONDS)
                .. ", got "
                .. describe(value),
            level
        )
    end
    return value
end

local function check_options(opts)
    if type(opts) ~= "table" then
        error("opts must be a table, got " .. type(opts), 3)
    end
    local o = opts
    if type(o.shm) ~= "string" then
        error("opts.shm must be the name of a lua_shared_dict, got " .. type(o.shm), 3)
    end
    local dict = shared[o.shm]
    if dict == nil then
        error("unknown shm '" .. o.shm .. "' (no such lua_shared_dict)", 3)
    end
    local interval = check_seconds("opts.interval", o.interval, DEFAULT_INTERVAL)
    local failed = check_seconds("opts.failed", o.failed, DEFAULT_FAILED)
    if o.on_crash ~= nil and type(o.on_crash) ~= "function" then
        error("opts.on_crash must be a function or nil, got " .. type(o.on_crash), 3)
    end
    local cluster = cluster_options.check(o.cluster, 4)
    return o.shm, dict, interval, failed, o.on_crash, cluster
end

--- Registers the master callbacks and runs master start for this configuration
-- load (a new generation). Call once, from init_by_lua*.
--
-- @param opts `{ shm = "name", interval = 10, failed = 5 }`
-- @param master_start `cb(master_id, n_prev, 0, nil)`, run before returning
-- @param master_exit `cb(master_id, n_prev, 0, n_next)`, run by the generation's last exiting worker
-- @return true
local function on_init_by_lua(opts, master_start, master_exit)
    check_phase("on_init_by_lua", "init", "init_by_lua*")
    if node ~= nil then
        error("on_init_by_lua was called twice in this configuration load", 2)
    end
    local shm, dict, interval, failed, on_crash, cluster = check_options(opts)
    local start_cb = check_callback("master_start callback", master_start)
    local exit_cb = check_callback("master_exit callback", master_exit)
    local created = {
        shm = shm,
        dict = dict,
        interval = interval,
        failed = failed,
        gen = nil,
        master_start = start_cb,
        master_exit = exit_cb,
        on_crash = on_crash,
        cluster = cluster,
    }
    node = created
    fleet.setup(cluster, dict)

    local kind = process_type()
    if kind == "signaller" or testing_config() then
        -- Old lua-nginx-module versions run init_by_lua in `nginx -s` and
        -- `nginx -t` processes, with a private shm: they are no part of the node.
        return true
    end
    if kind == "worker" or kind == "helper" or kind == "privileged agent" then
        -- With lua_code_cache off, lua-nginx-module runs init_by_lua again
        -- in a fresh Lua VM for every request, inside the worker. That is
        -- no configuration load: only status() needs what is set up above.
        return true
    end

    -- On a reload a worker killed inside a shm call may still hold the
    -- zone's mutex: nginx frees it only once this returns.
    free_dead_shm_mutex(dict)
    local hold = lock.acquire(dict, false)
    update_time()
    registry.sweep(dict, now(), failed)
    local g = registry.begin_generation(dict, now())
    if g == nil then
        lock.release(dict, hold)
        log(ERR, "could not start a generation in shm '", shm, "'; this configuration is not tracked")
        return true
    end
    created.gen = g
    local n_prev = registry.neighbours(dict, g, now(), failed)
    run("master start", start_cb, g, n_prev, 0, nil)
    lock.release(dict, hold)
    return true
end

local function finder_for(n, w, stopping)
    return {
        pid = w.pid,
        overdue = n.interval + n.failed,
        failed = n.failed,
        stopping = stopping,
        on_crash = n.on_crash,
        master_exit = n.master_exit,
    }
end

--- The last worker of generation `g` is gone: its master exit runs, unless
-- nginx's master goes on with the configuration (`reason` "replace", and the
-- listening sockets still open now: a stop may have come since), which
-- leaves the generation idle until a worker joins it again, a newer one
-- takes over or the node stops.
local function end_or_suspend(n, w, reason, known, failed)
    local dict = n.dict
    update_time()
    if reason == "replace" and reasons.closed_now(dict, w.gen) ~= true then
        registry.suspend(dict, w.gen, now())
        w.left_idle = true
        log(
            NOTICE,
            "generation ",
            w.gen,
            " has no worker now, but its master keeps its listening sockets: nginx ",
            "replaces the worker, or holds its workers back (WINCH); no master exit while it may run them again"
        )
        return
    end
    w.done = true
    reports.end_with_master_exit(dict, n.master_exit, w.gen, w.pid, now(), failed)
    resume.note_end(dict, w.config, w.gen, reason == "stop" and not known)
end

--- Its heartbeat timer no longer runs: while it waits, it beats here, or its siblings would count it as crashed.
local function beat_while_waiting(dict, w)
    return function()
        update_time()
        registry.heartbeat(dict, w.gen, w.slot, w.pid, now())
    end
end

--- Waits while a newer generation's workers have not shown up: either a
-- reload in progress or one nginx rolled back, and waiting tells them apart.
-- nginx forks a reload's workers before it handles a stop signal, so on a
-- fast stop they show up within moments, unless it was rolled back. Returns
-- the `failed` seconds to judge generations by: 0 once a fast stop's wait
-- ran out (the newer one counts as rolled back).
local function wait_for_newer(n, w, can_yield, waiting)
    local dict = n.dict
    update_time()
    if can_yield then
        -- Siblings nginx forked that have not reached init_worker yet (slow
        -- user code before this module's hook) would otherwise start after
        -- this generation's master exit: they may, until it is `failed` s old.
        while
            registry.newer_undecided(dict, w.gen, now(), n.failed)
            or registry.unarrived(dict, w.gen, now(), n.failed)
        do
            sleep(UNDECIDED_STEP)
            waiting()
        end
        return n.failed
    end
    local began = now()
    while registry.newer_undecided(dict, w.gen, now(), n.failed) do
        if now() - began >= FAST_STOP_WAIT then
            return 0
        end
        pause(FAST_STOP_STEP)
        waiting()
    end
    return n.failed
end

--- The lock for the exit's work. In the exit hook, a timer of this very
-- process that the fast stop abandoned may still hold it: that timer will
-- never run again, so its hold is ours. (In a timer, another timer's hold
-- is not.)
local function lock_for_exit(dict, can_yield)
    if not can_yield then
        local abandoned = lock.mine()
        if abandoned ~= nil then
            return abandoned
        end
    end
    return lock.acquire(dict, can_yield)
end

--- Under the lock: uncounts this worker and runs its worker exit with the
-- counts, after dropping siblings that died (so that the last one really
-- alive runs the master exit). The hold (renewed after the callback) and
-- the reason, which the counts may correct.
local function report_exit(n, w, hold, reason, known, failed, can_yield)
    local dict = n.dict
    local finder = finder_for(n, w, reason == "stop")
    update_time()
    liveness.settle(dict, finder, liveness.look_in(dict, finder, w.gen, now()), now(), w.gen)
    local n_prev, n_next = registry.neighbours(dict, w.gen, now(), failed)
    reason, known = reasons.agree(reason, known, n_next)
    w.reason = reason
    local counted, remaining = registry.uncount(dict, w.gen, w.slot, w.pid)
    if not counted then
        if registry.clear_uncounted(dict, w.gen, w.slot, w.pid) then
            log(WARN, "worker ", w.id, " exits after it was dropped for a late heartbeat")
        else
            log(
                WARN,
                "worker ",
                w.id,
                " exits while not counted (its keys were lost from shm '",
                n.shm,
                "' or never fitted in it)"
            )
        end
    end
    w.reported = true
    run("worker exit", w.exit, w.id, n_prev, remaining + 1, n_next)
    local renewed = lock.renew(dict, hold, can_yield)
    -- A sibling may have died while that callback ran (no respawn during
    -- a stop): drop it now, or nobody would close the generation.
    update_time()
    liveness.settle(dict, finder, liveness.look_in(dict, finder, w.gen, now()), now(), w.gen)
    return renewed, reason, known
end

--- The exit of this worker: worker exit, then master exit if it was the last of
-- its generation. Runs once, from whichever path notices the exit first. A
-- fast stop (TERM) during a graceful exit abandons the timer that ran it; the
-- exit hook then finishes what it left, without repeating any callback.
local function leave(can_yield)
    local w = worker
    local n = node
    if w == nil or n == nil or w.done or w.exited and can_yield then
        return
    end
    w.exited = true
    local dict = n.dict
    local waiting = beat_while_waiting(dict, w)
    local failed = wait_for_newer(n, w, can_yield, waiting)
    -- Decided before its callback runs, which may ask (exit_reason()). The
    -- exit hook also runs after a graceful exit whose timer never ran it,
    -- and after one that a TERM cut short (which counts as fast).
    update_time()
    local graceful = can_yield or worker_exiting() and terminating() == false
    local reason, known = reasons.find(
        dict,
        w.gen,
        registry.newest(dict, now(), failed),
        graceful,
        can_yield,
        can_yield and n.failed or FAST_STOP_WAIT,
        waiting
    )
    w.reason = reason
    -- The stops of the singletons it holds run now, outside the lock, after
    -- their running start or fn returned; the holdings end under the lock.
    singletons.stop_for_exit(reason, can_yield)

    local hold = lock_for_exit(dict, can_yield)
    if not w.reported then
        hold, reason, known = report_exit(n, w, hold, reason, known, failed, can_yield)
    end
    singletons.release_for_exit(dict, reason == "stop")
    local node_stopped = false
    if liveness.over(dict, w.gen, reason == "stop") then
        end_or_suspend(n, w, reason, known, failed)
        node_stopped = reason == "stop" and known and not w.left_idle
    end
    w.done = true
    lock.release(dict, hold)
    if node_stopped and can_yield then
        -- outside the lock: a call to Redis may take its timeouts
        fleet.leave_on_stop()
    end
end

--- This worker left its generation idle, and by the time it exits the node
-- stops after all, while the worker drained: nginx's master closed the
-- listening sockets, or this worker was told to terminate, which counts as a
-- stop that is only assumed. Nobody else may be left to run the master exit.
local function end_idle_on_stop()
    local w = worker
    local n = node
    if w == nil or n == nil or not w.left_idle then
        return
    end
    local dict = n.dict
    local assumed = terminating() == true
    if not assumed and reasons.closed_now(dict, w.gen) ~= true then
        return
    end
    w.left_idle = false
    local hold = lock.acquire(dict, false)
    update_time()
    liveness.settle(dict, finder_for(n, w, true), {}, now())
    if not registry.recorded(dict, w.gen) then
        resume.note_end(dict, w.config, w.gen, assumed)
    end
    lock.release(dict, hold)
end

--- The lock for a heartbeat's work, or nil when this worker's exit began while
-- the beat waited for it: nginx fires the next beat early on QUIT and HUP and
-- does not wait for this one, and the exit (which looks around itself) has
-- done the work; restoring this worker now would count an exited worker.
local function lock_for_beat(w, dict)
    local hold = lock.acquire(dict, true)
    if w.exited then
        lock.release(dict, hold)
        return nil
    end
    return hold
end

--- Records the listening sockets of `g`, which this worker holds, unless they are (listeners.ts).
local function note_listeners(dict, g)
    if registry.listeners(dict, g) ~= nil then
        return
    end
    local inodes = listeners.held()
    if inodes ~= nil then
        registry.note_listeners(dict, g, inodes)
    end
end

--- The heartbeat: proves this worker alive and looks for workers that died.
local function beat(w, n)
    local dict = n.dict
    -- a stalled worker that runs again: its lost singletons stop first
    singletons.check_lost()
    update_time()
    local pid = registry.occupant(dict, w.gen, w.slot)
    if pid ~= w.pid or not registry.recorded(dict, w.gen) then
        -- This worker is alive and not exiting, so it must be counted: it was
        -- dropped while it stalled, or the shm lost the module's keys.
        local hold = lock_for_beat(w, dict)
        if hold == nil then
            return
        end
        update_time()
        local restored, recounted = registry.restore(dict, w.gen, w.slot, w.pid, worker_count(), now())
        if recounted and not w.counted then
            log(WARN, "worker ", w.id, " is counted now: its keys did not fit in shm '", n.shm, "' when it started")
        elseif recounted then
            log(
                WARN,
                "worker ",
                w.id,
                " is alive but was not counted (it stalled over ",
                n.interval + n.failed,
                "s, or the shm lost the module's keys): restored ",
                restored
            )
        elseif restored ~= nil then
            log(
                WARN,
                "worker ",
                w.id,
                " found records of generation ",
                w.gen,
                " missing from shm '",
                n.shm,
                "' (lost, or not written while it was full): restored ",
                restored
            )
        end
        w.counted = w.counted or recounted
        if restored ~= nil then
            note_listeners(dict, w.gen)
        end
        lock.release(dict, hold)
    end
    registry.heartbeat(dict, w.gen, w.slot, w.pid, now())
    w.turn = w.turn + 1
    local finder = finder_for(n, w, false)
    local suspects, closing = liveness.look(dict, finder, w.gen, w.slot, w.turn, now())
    if #suspects > 0 or closing then
        local hold = lock_for_beat(w, dict)
        if hold == nil then
            return
        end
        update_time()
        liveness.settle(dict, finder, suspects, now())
        -- Callbacks run by settle may have taken a while, and may have
        -- yielded to this worker's exit: a beat after it would leave a key
        -- of its ended generation behind.
        update_time()
        if not w.exited then
            registry.heartbeat(dict, w.gen, w.slot, w.pid, now())
        end
        lock.release(dict, hold)
    end
    if not w.exited then
        singletons.on_beat()
    end
end

--- Says once why this worker's heartbeat missed runs, if it did (missed_beats.ts).
local function note_missed_beats(w, n, at)
    local gap = at - w.last_beat
    w.last_beat = at
    local missed = missed_beats.missing(gap, n.interval)
    if missed > 0 and not w.said_missed then
        w.said_missed = true
        log(WARN, missed_beats.explain(w.id, missed, gap, n.interval))
    end
end

--- An ngx.timer.every timer: nginx arms the next run before it runs this
-- one, so neither a run it drops (lua_max_running_timers all busy) nor a
-- slow callback run by a beat ends the heartbeat.
local function on_beat(premature)
    local w = worker
    local n = node
    if w == nil or n == nil or w.exited then
        return
    end
    if premature then
        -- nginx fires pending timers early when this worker is told to quit
        -- gracefully (QUIT, or HUP for the old generation).
        leave(true)
        return
    end
    update_time()
    note_missed_beats(w, n, now())
    beat(w, n)
end

--- The generation a starting worker of configuration `config` joins, under
-- the lock: that configuration's own, or the one that carries it since
-- (resume.ts), opened here, master start included, when nginx starts the
-- worker after the configuration's master exit ran on an assumed stop.
-- Also whether it opened one (its master start ran).
local function join(n, config, pid)
    local dict = n.dict
    local carrier = resume.carrier(dict, config)
    if carrier ~= nil or not resume.resumable(dict, config) then
        return carrier or config, false
    end
    update_time()
    local g = resume.open(dict, config, now())
    if g == nil then
        return config, false
    end
    log(
        NOTICE,
        "worker ",
        pid,
        " starts from the configuration of generation ",
        config,
        " after its master exit ",
        "ran on a fast exit (a stop, or a worker recycled with TERM): it opens generation ",
        g,
        " for it"
    )
    local n_prev = registry.neighbours(dict, g, now(), n.failed)
    run("master start", n.master_start, g, n_prev, 0, nil)
    return g, true
end

--- The configuration's generation and the slot of this process, nil when it
-- is no tracked worker (logged): the privileged agent, cache processes and
-- single-process mode run init_worker too, and a configuration the shm
-- refused to count has no generation.
local function tracked(n)
    local config = n.gen
    local slot = worker_id()
    local kind = process_type()
    if config == nil or slot == nil or kind ~= "worker" then
        log(INFO, "process ", worker_pid(), " (", kind, ") is not a tracked worker")
        return nil, nil
    end
    return config, slot
end

--- Noted before the lock wait, so that a death while waiting is seen: the
-- generation a starting worker arrives in early (nil for a worker of an
-- ended configuration: it is noted where it joins) and the pid it finds
-- there in its slot, a predecessor that died before it was counted.
local function arrive_early(dict, config, slot, pid)
    local early = resume.carrier(dict, config)
    if early == nil and not registry.ended(dict, config) then
        early = config
    end
    if early == nil then
        return nil, nil
    end
    return early, registry.arrive(dict, early, slot, pid, worker_count())
end

--- Whether the worker's keys fitted in the shm; a counted one records its listening sockets.
local function note_counted(n, w, counted)
    w.counted = counted
    if not counted then
        log(
            ERR,
            "worker ",
            w.id,
            " could not be counted (no room for its keys in shm '",
            n.shm,
            "'); its heartbeat counts it once there is room"
        )
        return
    end
    note_listeners(n.dict, w.gen)
end

--- The start callback still counts the dead predecessor in this slot, as the
-- contract promises, but the shm drops it now: if this worker is killed in
-- its callback too, the next respawn must not find two to drop. Returns the
-- predecessor when its report could not be queued (shm full).
local function drop_predecessor(dict, w, dead)
    if dead == nil then
        return nil
    end
    local queued = registry.replace_dead(dict, w.gen, w.slot, dead, w.pid)
    liveness.free_singletons(dict, w.gen, dead, "crashed")
    if queued then
        return nil
    end
    return dead
end

--- Runs the worker start callback with the counts; the hold, renewed after it.
local function run_worker_start(n, w, start_cb, mine, hold)
    local dict = n.dict
    local n_prev, n_next = registry.neighbours(dict, w.gen, now(), n.failed)
    run("worker start", start_cb, w.id, n_prev, mine, n_next)
    local renewed = lock.renew(dict, hold, false)
    update_time()
    -- A slow start callback must not make this worker look dead.
    registry.heartbeat(dict, w.gen, w.slot, w.pid, now())
    return renewed
end

--- The crashes of this slot's predecessors: normally just the one it
-- replaced; more when a respawned worker was killed in its own start
-- callback before it could report its predecessor; and `lost`, one killed
-- while it waited for the lock in generation `early`.
local function report_crashes_before(n, w, unqueued, early, lost)
    local dict = n.dict
    local extra = nil
    if unqueued ~= nil then
        extra = { dead = unqueued, by = w.pid }
    end
    reports.report_replaced(dict, n.on_crash, n.failed, w.gen, w.slot, now(), extra)
    if lost == nil or early == nil then
        return
    end
    -- Never counted, so nothing to drop, but the crash is still reported.
    log(
        ERR,
        "worker ",
        early,
        "-",
        lost,
        " (pid ",
        lost,
        ", slot ",
        w.slot,
        ") crashed while starting, before it ",
        "was counted: nginx respawned its slot as ",
        w.id
    )
    reports.announce_crash(
        dict,
        n.on_crash,
        n.failed,
        early,
        lost,
        w.slot,
        "crashed while starting",
        registry.count(dict, early),
        now()
    )
end

--- After the lock: this worker's singletons, the fleet agent, the heartbeat.
local function start_jobs(n, w)
    local dict = n.dict
    local g = w.gen
    singletons.attach({
        dict = dict,
        gen = g,
        slot = w.slot,
        pid = w.pid,
        id = w.id,
        started = now(),
    })
    if n.cluster ~= nil then
        -- the node's fleet agent: a node singleton like the users' own
        fleet.attach(function()
            return g, registry.count(dict, g)
        end)
        leases.setup(n.cluster, dict, fleet.holder_id)
        singletons.add(fleet.AGENT, nil, nil, fleet.agent, n.cluster.interval)
    end

    w.last_beat = now()
    local ok, err = timer_every(n.interval, on_beat)
    if not ok then
        log(
            ERR,
            "could not start the heartbeat of worker ",
            w.id,
            ": ",
            err,
            "; its exit is tracked only through on_exit_worker_by_lua"
        )
    end
end

--- Counts this worker and runs its worker start callback before returning.
-- Call once, from init_worker_by_lua*, after on_init_by_lua ran in init_by_lua*.
--
-- @param worker_start `cb(worker_id, n_prev, n_mine, n_next)`, n_mine counting this worker
-- @param worker_exit `cb(worker_id, n_prev, n_mine, n_next)`, n_mine counting this worker
-- @return true
local function on_init_worker_by_lua(worker_start, worker_exit)
    check_phase("on_init_worker_by_lua", "init_worker", "init_worker_by_lua*")
    if worker_hooked then
        error("on_init_worker_by_lua was called twice in this worker", 2)
    end
    local start_cb = check_callback("worker_start callback", worker_start)
    local exit_cb = check_callback("worker_exit callback", worker_exit)
    local n = node
    if n == nil then
        error("on_init_worker_by_lua needs a successful on_init_by_lua in init_by_lua* first", 2)
    end
    worker_hooked = true
    local config, slot = tracked(n)
    if config == nil or slot == nil then
        return true
    end
    local dict = n.dict
    local pid = worker_pid()
    local early, lost = arrive_early(dict, config, slot, pid)

    local hold = lock.acquire(dict, false)
    update_time()
    registry.sweep(dict, now(), n.failed)
    local g, opened = join(n, config, pid)
    if g ~= early then
        registry.arrive(dict, g, slot, pid, worker_count())
    end
    if opened then
        hold = lock.renew(dict, hold, false)
        update_time()
    end
    local w = {
        gen = g,
        config = config,
        slot = slot,
        pid = pid,
        id = tostring(g) .. "-" .. tostring(pid),
        exit = exit_cb,
        exited = false,
        reported = false,
        done = false,
        turn = 0,
        counted = false,
        reason = nil,
        left_idle = false,
        last_beat = now(),
        said_missed = false,
    }
    local mine, dead, counted = registry.register(dict, g, slot, pid, worker_count(), now())
    if mine == nil then
        lock.release(dict, hold)
        log(
            WARN,
            "worker ",
            w.id,
            " reached init_worker after generation ",
            g,
            " ended (its other workers ",
            "exited and its master exit ran): it is not tracked, no callback runs for it"
        )
        return true
    end
    note_counted(n, w, counted)
    local unqueued = drop_predecessor(dict, w, dead)
    worker = w
    hold = run_worker_start(n, w, start_cb, mine, hold)
    report_crashes_before(n, w, unqueued, early, lost)
    lock.release(dict, hold)
    start_jobs(n, w)
    return true
end

--- Runs this worker's exit (and the master exit if it is the last) if no
-- graceful path ran it yet: needed for fast shutdown (TERM, `nginx -s stop`),
-- where nginx fires no timers. Call from exit_worker_by_lua*.
--
-- @return true
local function on_exit_worker_by_lua()
    check_phase("on_exit_worker_by_lua", "exit_worker", "exit_worker_by_lua*")
    leave(false)
    end_idle_on_stop()
    return true
end

--- Why this worker exits, for its exit callback (or anything that runs after
-- its exit began): "reload" (a newer generation took over: n_next is a
-- number), "stop" (the node stops) or "replace" (nginx goes on with this
-- configuration without this worker: a signal sent to the worker itself,
-- or WINCH). Nil while this worker is not exiting, or is not tracked.
local function exit_reason()
    local w = worker
    if w == nil or not w.exited then
        return nil
    end
    return w.reason
end

--- Checks a singleton's name: part of shm keys and log lines.
local function check_name(fn, name, level)
    if type(name) ~= "string" or name == "" or #name > MAX_NAME or (string.find(name, "%c")) ~= nil then
        error(
            fn
                .. ": name must be a non-empty string of at most "
                .. tostring(MAX_NAME)
                .. " bytes without control "
                .. "characters, got "
                .. describe(name),
            level
        )
    end
    if string.sub(name, 1, #RESERVED) == RESERVED then
        error(fn .. ': names starting with "' .. RESERVED .. "\" are the module's own, got " .. describe(name), level)
    end
    return name
end

--- What singleton() and every() check first: phase, order, name (errors at their caller's line).
local function check_registration(fn, name)
    check_phase(fn, "init_worker", "init_worker_by_lua*", 4)
    local checked = check_name(fn, name, 4)
    if not worker_hooked then
        error(fn .. " needs on_init_worker_by_lua in init_worker_by_lua* first", 3)
    end
    if singletons.has(checked) or leases.has(checked) then
        error(fn .. ": singleton '" .. checked .. "' is registered twice in this worker", 3)
    end
    return checked
end

--- A singleton's scope: "node" (the default) or "cluster", which needs opts.cluster.
local function check_scope(fn, what, scope)
    if scope == nil or scope == "node" then
        return "node"
    end
    if scope ~= "cluster" then
        error(fn .. ": " .. what .. ' must be "node" or "cluster", got ' .. describe(scope), 4)
    end
    if (node and node.cluster) == nil then
        error(fn .. ': scope "cluster" needs opts.cluster in on_init_by_lua', 4)
    end
    return "cluster"
end

--- A cluster singleton: a node singleton competes for its lease in Redis (cluster/leases.ts).
local function add_cluster(name, start, stop, fn, seconds)
    local n = node
    local internal = leases.add(name, start, stop, fn, seconds)
    singletons.add(internal, nil, leases.on_node_stop, leases.round, n.cluster.interval)
end

--- Registers a singleton: one worker of the node runs `job.start(name,
-- token)`, and `job.stop(name, token, reason)` when its holding ends; the job
-- moves through reloads, crashes and stalls. Call in every worker, from
-- init_worker_by_lua*, after on_init_worker_by_lua.
--
-- @return true
local function singleton(name, job)
    local checked = check_registration("singleton", name)
    if type(job) ~= "table" then
        error("singleton: job must be a table with a start function, got " .. type(job), 2)
    end
    local j = job
    if type(j.start) ~= "function" then
        error("singleton: job.start must be a function, got " .. type(j.start), 2)
    end
    if j.stop ~= nil and type(j.stop) ~= "function" then
        error("singleton: job.stop must be a function or nil, got " .. type(j.stop), 2)
    end
    local scope = check_scope("singleton", "job.scope", j.scope)
    if worker == nil then
        return true
    end
    if scope == "cluster" then
        add_cluster(checked, j.start, j.stop, nil, 0)
    else
        singletons.add(checked, j.start, j.stop, nil, 0)
    end
    return true
end

--- Registers a periodic singleton: `fn(name, token)` runs in the worker that
-- holds `name`, at once, then every `interval` seconds; runs never overlap,
-- also when the job moves. Call like singleton().
--
-- @return true
local function every(name, interval, fn, opts)
    local checked = check_registration("every", name)
    local seconds = check_seconds("every: interval", interval, 0, 3)
    if type(fn) ~= "function" then
        error("every: fn must be a function, got " .. type(fn), 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("every: opts must be a table or nil, got " .. type(opts), 2)
    end
    local scope = check_scope("every", "opts.scope", opts and opts.scope)
    if worker == nil then
        return true
    end
    if scope == "cluster" then
        add_cluster(checked, nil, nil, fn, seconds)
    else
        singletons.add(checked, nil, nil, fn, seconds)
    end
    return true
end

--- Whether this worker holds the singleton `name` now, and the holding's
-- token; false (and nil) otherwise. Any phase after init_worker.
local function holds(name)
    check_name("holds", name, 3)
    if leases.has(name) then
        return leases.holds(name)
    end
    return singletons.holds(name)
end

--- The node's current view: generations with their workers, the newest
-- generation, crashes seen. Read-only; any phase after init_by_lua.
--
-- @return the view, or nil and an error when the module is not set up here
local function status()
    local n = node
    if n == nil then
        return nil, "on_init_by_lua was not called in this nginx configuration"
    end
    return read_status(n.dict, n.failed)
end

--- The fleet as this node last saw it: each member's name, when it joined,
-- its generation and workers, when it was last seen. Read from the node's
-- shm (no network call); empty without opts.cluster or before the first
-- refresh. Any phase after init_by_lua.
local function nodes()
    return fleet.nodes()
end

_M.on_init_by_lua = on_init_by_lua
_M.on_init_worker_by_lua = on_init_worker_by_lua
_M.on_exit_worker_by_lua = on_exit_worker_by_lua
_M.status = status
_M.exit_reason = exit_reason
_M.singleton = singleton
_M.every = every
_M.holds = holds
_M.nodes = nodes

return _M
