--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local describe, check_scope, add_cluster, node
local registry = require("resty.worker.manager.registry")
local lock = require("resty.worker.manager.lock")
local liveness = require("resty.worker.manager.liveness")
local listeners = require("resty.worker.manager.listeners")
local reasons = require("resty.worker.manager.exit_reason")
local missed_beats = require("resty.worker.manager.missed_beats")
local resume = require("resty.worker.manager.resume")
local singletons = require("resty.worker.manager.singletons")
local fleet = require("resty.worker.manager.cluster.fleet")
local cluster_options = require("resty.worker.manager.cluster.options")
local leases = require("resty.worker.manager.cluster.leases")
local ____callbacks = require("resty.worker.manager.callbacks")
local run = ____callbacks.run
local inside = ____callbacks.inside
local ____log = require("resty.worker.manager.log")
local log = ____log.log
local ____host = require("resty.worker.manager.host")
local free_dead_shm_mutex = ____host.free_dead_shm_mutex
local pause = ____host.pause
local process_type = ____host.process_type
local terminating = ____host.terminating
local testing_config = ____host.testing_config
local ____status = require("resty.worker.manager.status")
local read_status = ____status.status
function describe(value)
    if type(value) == "string" then
        return "string " .. string.format("%q", value)
    end
    if type(value) == "number" or type(value) == "boolean" then
        return (type(value) .. " ") .. tostring(value)
    end
    return type(value)
end
function check_scope(fn, what, scope)
    if scope == nil or scope == "node" then
        return "node"
    end
    if scope ~= "cluster" then
        error(
            (((fn .. ": ") .. what) .. " must be \"node\" or \"cluster\", got ") .. describe(scope),
            4
        )
    end
    if (node and node.cluster) == nil then
        error(fn .. ": scope \"cluster\" needs opts.cluster in on_init_by_lua", 4)
    end
    return "cluster"
end
function add_cluster(name, start, stop, fn, seconds)
    local n = node
    local internal = leases.add(
        name,
        start,
        stop,
        fn,
        seconds
    )
    singletons.add(
        internal,
        nil,
        leases.on_node_stop,
        leases.round,
        n.cluster.interval
    )
end
local ERR = ngx.ERR
local WARN = ngx.WARN
local NOTICE = ngx.NOTICE
local INFO = ngx.INFO
local get_phase = ngx.get_phase
local now = ngx.now
local update_time = ngx.update_time
local sleep = ngx.sleep
local timer_every = ngx.timer.every
local worker_pid = ngx.worker.pid
local worker_exiting = ngx.worker.exiting
local worker_id = ngx.worker.id
local worker_count = ngx.worker.count
local shared = ngx.shared
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
local worker_hooked = false
local worker
--- `level`: where the error is reported, counted from here (3: the caller of the function that checks).
local function check_phase(fn, phase, directive, level)
    if level == nil then
        level = 3
    end
    if inside() then
        error(fn .. " must not be called from inside a callback of resty.worker.manager", level)
    end
    local current = get_phase()
    if current ~= phase then
        error(((((fn .. " must be called from ") .. directive) .. ", not in phase '") .. current) .. "'", level)
    end
end
local function check_callback(name, cb)
    if cb ~= nil and type(cb) ~= "function" then
        error(
            (name .. " must be a function or nil, got ") .. type(cb),
            3
        )
    end
    return cb
end
local function check_seconds(name, value, fallback, level)
    if level == nil then
        level = 4
    end
    if value == nil then
        return fallback
    end
    if type(value) ~= "number" or not (value >= MIN_SECONDS and value <= MAX_SECONDS) then
        error(
            (((((name .. " must be a number of seconds from ") .. tostring(MIN_SECONDS)) .. " to ") .. tostring(MAX_SECONDS)) .. ", got ") .. describe(value),
            level
        )
    end
    return value
end
local function check_options(opts)
    if type(opts) ~= "table" then
        error(
            "opts must be a table, got " .. type(opts),
            3
        )
    end
    local o = opts
    if type(o.shm) ~= "string" then
        error(
            "opts.shm must be the name of a lua_shared_dict, got " .. type(o.shm),
            3
        )
    end
    local dict = shared[o.shm]
    if dict == nil then
        error(("unknown shm '" .. o.shm) .. "' (no such lua_shared_dict)", 3)
    end
    local interval = check_seconds("opts.interval", o.interval, DEFAULT_INTERVAL)
    local failed = check_seconds("opts.failed", o.failed, DEFAULT_FAILED)
    if o.on_crash ~= nil and type(o.on_crash) ~= "function" then
        error(
            "opts.on_crash must be a function or nil, got " .. type(o.on_crash),
            3
        )
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
        cluster = cluster
    }
    node = created
    fleet.setup(cluster, dict)
    local kind = process_type()
    if kind == "signaller" or testing_config() then
        return true
    end
    if kind == "worker" or kind == "helper" or kind == "privileged agent" then
        return true
    end
    free_dead_shm_mutex(dict)
    local hold = lock.acquire(dict, false)
    update_time()
    registry.sweep(
        dict,
        now(),
        failed
    )
    local g = registry.begin_generation(
        dict,
        now()
    )
    if g == nil then
        lock.release(dict, hold)
        log(ERR, "could not start a generation in shm '", shm, "'; this configuration is not tracked")
        return true
    end
    created.gen = g
    local n_prev = registry.neighbours(
        dict,
        g,
        now(),
        failed
    )
    run(
        "master start",
        start_cb,
        g,
        n_prev,
        0,
        nil
    )
    lock.release(dict, hold)
    return true
end
local function finder_for(n, w, stopping)
    return {
        pid = w.pid,
        overdue = n.interval + n.failed,
        grace = n.failed,
        stopping = stopping,
        on_crash = n.on_crash,
        master_exit = n.master_exit
    }
end
--- The last worker of generation `g` is gone: its master exit runs, unless
-- nginx's master goes on with the configuration (`reason` "replace", and the
-- listening sockets still open now: a stop may have come since), which
-- leaves the generation idle until a worker joins it again, a newer one
-- takes over or the node stops.
local function end_or_suspend(n, w, reason, known, grace)
    local dict = n.dict
    update_time()
    if reason == "replace" and reasons.closed_now(dict, w.gen) ~= true then
        registry.suspend(
            dict,
            w.gen,
            now()
        )
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
    liveness.end_with_master_exit(
        dict,
        n.master_exit,
        w.gen,
        w.pid,
        now(),
        grace
    )
    resume.note_end(dict, w.config, w.gen, reason == "stop" and not known)
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
    update_time()
    local function waiting()
        update_time()
        registry.heartbeat(
            dict,
            w.gen,
            w.slot,
            w.pid,
            now()
        )
    end
    local grace = n.failed
    if can_yield then
        while registry.newer_undecided(
            dict,
            w.gen,
            now(),
            n.failed
        ) or registry.unarrived(
            dict,
            w.gen,
            now(),
            n.failed
        ) do
            sleep(UNDECIDED_STEP)
            waiting()
        end
    else
        local began = now()
        while registry.newer_undecided(
            dict,
            w.gen,
            now(),
            n.failed
        ) do
            if now() - began >= FAST_STOP_WAIT then
                grace = 0
                break
            end
            pause(FAST_STOP_STEP)
            waiting()
        end
    end
    update_time()
    local graceful = can_yield or worker_exiting() and terminating() == false
    local reason, known = reasons.find(
        dict,
        w.gen,
        registry.newest(
            dict,
            now(),
            grace
        ),
        graceful,
        can_yield,
        can_yield and n.failed or FAST_STOP_WAIT,
        waiting
    )
    w.reason = reason
    singletons.stop_for_exit(reason, can_yield)
    local ____can_yield_0
    if can_yield then
        ____can_yield_0 = nil
    else
        ____can_yield_0 = lock.mine()
    end
    local hold = ____can_yield_0 or lock.acquire(dict, can_yield)
    update_time()
    if not w.reported then
        local finder = finder_for(n, w, reason == "stop")
        liveness.settle(
            dict,
            finder,
            liveness.look_in(
                dict,
                finder,
                w.gen,
                now()
            ),
            now(),
            w.gen
        )
        local n_prev, n_next = registry.neighbours(
            dict,
            w.gen,
            now(),
            grace
        )
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
        run(
            "worker exit",
            w.exit,
            w.id,
            n_prev,
            remaining + 1,
            n_next
        )
        hold = lock.renew(dict, hold, can_yield)
        update_time()
        liveness.settle(
            dict,
            finder,
            liveness.look_in(
                dict,
                finder,
                w.gen,
                now()
            ),
            now(),
            w.gen
        )
    end
    singletons.release_for_exit(dict, reason == "stop")
    local node_stopped = false
    if liveness.closable(dict, w.gen, reason == "stop") then
        end_or_suspend(
            n,
            w,
            reason,
            known,
            grace
        )
        node_stopped = reason == "stop" and known and not w.left_idle
    end
    w.done = true
    lock.release(dict, hold)
    if node_stopped and can_yield then
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
    liveness.settle(
        dict,
        finder_for(n, w, true),
        {},
        now()
    )
    if not registry.has_generation(dict, w.gen) then
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
    singletons.check_lost()
    update_time()
    local pid = registry.occupant(dict, w.gen, w.slot)
    if pid ~= w.pid or not registry.has_generation(dict, w.gen) then
        local hold = lock_for_beat(w, dict)
        if hold == nil then
            return
        end
        update_time()
        local restored, recounted = registry.restore(
            dict,
            w.gen,
            w.slot,
            w.pid,
            worker_count(),
            now()
        )
        if recounted and not w.counted then
            log(
                WARN,
                "worker ",
                w.id,
                " is counted now: its keys did not fit in shm '",
                n.shm,
                "' when it started"
            )
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
    registry.heartbeat(
        dict,
        w.gen,
        w.slot,
        w.pid,
        now()
    )
    w.turn = w.turn + 1
    local finder = finder_for(n, w, false)
    local suspects, closing = liveness.look(
        dict,
        finder,
        w.gen,
        w.slot,
        w.turn,
        now()
    )
    if #suspects > 0 or closing then
        local hold = lock_for_beat(w, dict)
        if hold == nil then
            return
        end
        update_time()
        liveness.settle(
            dict,
            finder,
            suspects,
            now()
        )
        update_time()
        if not w.exited then
            registry.heartbeat(
                dict,
                w.gen,
                w.slot,
                w.pid,
                now()
            )
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
        log(
            WARN,
            missed_beats.explain(w.id, missed, gap, n.interval)
        )
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
        leave(true)
        return
    end
    update_time()
    note_missed_beats(
        w,
        n,
        now()
    )
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
    local g = resume.open(
        dict,
        config,
        now()
    )
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
    local n_prev = registry.neighbours(
        dict,
        g,
        now(),
        n.failed
    )
    run(
        "master start",
        n.master_start,
        g,
        n_prev,
        0,
        nil
    )
    return g, true
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
    local config = n.gen
    local slot = worker_id()
    local kind = process_type()
    if config == nil or slot == nil or kind ~= "worker" then
        log(
            INFO,
            "process ",
            worker_pid(),
            " (",
            kind,
            ") is not a tracked worker"
        )
        return true
    end
    local dict = n.dict
    local pid = worker_pid()
    local ____resume_carrier_result_2 = resume.carrier(dict, config)
    if ____resume_carrier_result_2 == nil then
        local ____registry_ended_result_1
        if registry.ended(dict, config) then
            ____registry_ended_result_1 = nil
        else
            ____registry_ended_result_1 = config
        end
        ____resume_carrier_result_2 = ____registry_ended_result_1
    end
    local early = ____resume_carrier_result_2
    local ____temp_3
    if early ~= nil then
        ____temp_3 = registry.arrive(
            dict,
            early,
            slot,
            pid,
            worker_count()
        )
    else
        ____temp_3 = nil
    end
    local lost = ____temp_3
    local hold = lock.acquire(dict, false)
    update_time()
    registry.sweep(
        dict,
        now(),
        n.failed
    )
    local g, opened = join(n, config, pid)
    if g ~= early then
        registry.arrive(
            dict,
            g,
            slot,
            pid,
            worker_count()
        )
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
        id = (tostring(g) .. "-") .. tostring(pid),
        exit = exit_cb,
        exited = false,
        reported = false,
        done = false,
        turn = 0,
        counted = false,
        reason = nil,
        left_idle = false,
        last_beat = now(),
        said_missed = false
    }
    local mine, dead, counted = registry.register(
        dict,
        g,
        slot,
        pid,
        worker_count(),
        now()
    )
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
    else
        note_listeners(dict, g)
    end
    local unqueued = dead ~= nil and not registry.replace_dead(
        dict,
        g,
        slot,
        dead,
        pid
    ) and dead or nil
    if dead ~= nil then
        liveness.free_singletons(dict, g, dead, "crashed")
    end
    worker = w
    local n_prev, n_next = registry.neighbours(
        dict,
        g,
        now(),
        n.failed
    )
    run(
        "worker start",
        start_cb,
        w.id,
        n_prev,
        mine,
        n_next
    )
    hold = lock.renew(dict, hold, false)
    update_time()
    registry.heartbeat(
        dict,
        g,
        slot,
        pid,
        now()
    )
    liveness.report_replaced(
        dict,
        n.on_crash,
        n.failed,
        g,
        slot,
        now(),
        unqueued ~= nil and ({dead = unqueued, by = pid}) or nil
    )
    if lost ~= nil and early ~= nil then
        log(
            ERR,
            "worker ",
            early,
            "-",
            lost,
            " (pid ",
            lost,
            ", slot ",
            slot,
            ") crashed while starting, before it ",
            "was counted: nginx respawned its slot as ",
            w.id
        )
        liveness.announce_crash(
            dict,
            n.on_crash,
            n.failed,
            early,
            lost,
            slot,
            "crashed while starting",
            registry.count(dict, early),
            now()
        )
    end
    lock.release(dict, hold)
    singletons.attach({
        dict = dict,
        gen = g,
        slot = slot,
        pid = pid,
        id = w.id,
        started = now()
    })
    if n.cluster ~= nil then
        fleet.attach(function() return g, registry.count(dict, g) end)
        leases.setup(n.cluster, dict, fleet.holder_id)
        singletons.add(
            fleet.AGENT,
            nil,
            nil,
            fleet.agent,
            n.cluster.interval
        )
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
    local ____temp_4
    if w ~= nil and w.exited then
        ____temp_4 = w.reason
    else
        ____temp_4 = nil
    end
    return ____temp_4
end
--- Checks a singleton's name: part of shm keys and log lines.
local function check_name(fn, name, level)
    if type(name) ~= "string" or name == "" or #name > MAX_NAME or (string.find(name, "%c")) ~= nil then
        error(
            ((((fn .. ": name must be a non-empty string of at most ") .. tostring(MAX_NAME)) .. " bytes without control ") .. "characters, got ") .. describe(name),
            level
        )
    end
    if string.sub(name, 1, #RESERVED) == RESERVED then
        error(
            (((fn .. ": names starting with \"") .. RESERVED) .. "\" are the module's own, got ") .. describe(name),
            level
        )
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
        error(((fn .. ": singleton '") .. checked) .. "' is registered twice in this worker", 3)
    end
    return checked
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
        error(
            "singleton: job must be a table with a start function, got " .. type(job),
            2
        )
    end
    local j = job
    if type(j.start) ~= "function" then
        error(
            "singleton: job.start must be a function, got " .. type(j.start),
            2
        )
    end
    if j.stop ~= nil and type(j.stop) ~= "function" then
        error(
            "singleton: job.stop must be a function or nil, got " .. type(j.stop),
            2
        )
    end
    local scope = check_scope("singleton", "job.scope", j.scope)
    if worker == nil then
        return true
    end
    if scope == "cluster" then
        add_cluster(
            checked,
            j.start,
            j.stop,
            nil,
            0
        )
    else
        singletons.add(
            checked,
            j.start,
            j.stop,
            nil,
            0
        )
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
        error(
            "every: fn must be a function, got " .. type(fn),
            2
        )
    end
    if opts ~= nil and type(opts) ~= "table" then
        error(
            "every: opts must be a table or nil, got " .. type(opts),
            2
        )
    end
    local scope = check_scope("every", "opts.scope", opts and opts.scope)
    if worker == nil then
        return true
    end
    if scope == "cluster" then
        add_cluster(
            checked,
            nil,
            nil,
            fn,
            seconds
        )
    else
        singletons.add(
            checked,
            nil,
            nil,
            fn,
            seconds
        )
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
local _VERSION = "0.1.0"
____exports._VERSION = _VERSION
____exports.on_init_by_lua = on_init_by_lua
____exports.on_init_worker_by_lua = on_init_worker_by_lua
____exports.on_exit_worker_by_lua = on_exit_worker_by_lua
____exports.status = status
____exports.exit_reason = exit_reason
____exports.singleton = singleton
____exports.every = every
____exports.holds = holds
____exports.nodes = nodes
return ____exports
