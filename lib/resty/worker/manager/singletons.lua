--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local call, is_lost, stop_now, check_lost, after_busy, arm_fn, run_fn, on_fn_timer, ERR, NOTICE, now, update_time, timer_at, worker_exiting, jobs, me, exiting
local holding = require("resty.worker.manager.holding")
local registry = require("resty.worker.manager.registry")
local lock = require("resty.worker.manager.lock")
local ____host = require("resty.worker.manager.host")
local pid_alive = ____host.pid_alive
local ____log = require("resty.worker.manager.log")
local log = ____log.log
local ____callbacks = require("resty.worker.manager.callbacks")
local on_error = ____callbacks.on_error
function call(what, job, token, f, reason)
    local ok, err = xpcall(
        f,
        on_error,
        job.name,
        token,
        reason
    )
    if not ok then
        log(
            ERR,
            "singleton '",
            job.name,
            "' ",
            what,
            " failed in worker ",
            me and me.id or "?",
            " (token ",
            token,
            "): ",
            err
        )
    end
end
function is_lost(w, job)
    local h = holding.holder(w.dict, job.name)
    return h == nil or h.pid ~= w.pid or h.token ~= job.token or h.stopped
end
function stop_now(job, reason)
    local w = me
    local token = job.token
    if w == nil or token == nil or job.stopping then
        return
    end
    job.stopping = true
    job.pending = nil
    if job.started and job.stop ~= nil then
        call(
            "stop",
            job,
            token,
            job.stop,
            reason
        )
    end
    if reason ~= "lost" then
        local hold = lock.acquire(w.dict, true)
        update_time()
        holding.release(
            w.dict,
            job.name,
            w.pid,
            token,
            now(),
            false
        )
        lock.release(w.dict, hold)
    end
    job.token = nil
    job.started = false
    job.stopping = false
end
function check_lost()
    local w = me
    if w == nil then
        return
    end
    for ____, job in ipairs(jobs) do
        if job.token ~= nil and not job.stopping and job.pending ~= "lost" and is_lost(w, job) then
            log(
                NOTICE,
                "worker ",
                w.id,
                " lost singleton '",
                job.name,
                "' (token ",
                job.token,
                ") while it did not beat: another worker took it over"
            )
            if job.busy then
                job.pending = "lost"
            else
                stop_now(job, "lost")
            end
        end
    end
end
function after_busy(job)
    job.busy = false
    local reason = job.pending
    if reason ~= nil and not exiting then
        stop_now(job, reason)
    end
end
function arm_fn(job, token, began)
    update_time()
    job.due = began + job.interval
    local ok, err = timer_at(
        math.max(
            0,
            job.due - now()
        ),
        on_fn_timer,
        job,
        token
    )
    job.armed = ok == true
    if not ok then
        log(
            ERR,
            "could not start the timer of singleton '",
            job.name,
            "' in worker ",
            me and me.id or "?",
            ": ",
            err,
            "; it runs at the next heartbeat instead"
        )
    end
end
function run_fn(job, token)
    local fn = job.fn
    if fn == nil then
        return
    end
    update_time()
    local began = now()
    job.busy = true
    job.started = true
    call("fn", job, token, fn)
    after_busy(job)
    if job.token == token and not job.stopping and not exiting and not worker_exiting() then
        arm_fn(job, token, began)
    end
end
function on_fn_timer(premature, job, token)
    job.armed = false
    if premature or exiting then
        return
    end
    check_lost()
    if job.token == token and not job.stopping and job.pending == nil and not job.busy then
        run_fn(job, token)
    end
end
ERR = ngx.ERR
NOTICE = ngx.NOTICE
now = ngx.now
update_time = ngx.update_time
local sleep = ngx.sleep
timer_at = ngx.timer.at
local timer_every = ngx.timer.every
worker_exiting = ngx.worker.exiting
--- Seconds between two looks at the epoch: how soon a freed job is taken up.
local WATCH = 0.01
--- Step of an exiting holder's wait for its running start or fn to return.
local BUSY_STEP = 0.001
jobs = {}
local by_name = {}
me = nil
--- The epoch this worker last looked at its jobs for.
local seen = -1
--- A job of this worker waits for a holder of an older generation: look at every tick.
local waiting = false
--- Its names are in the shm's registry.
local registered = false
exiting = false
--- A look is under way (it may yield, waiting for the lock).
local looking = false
--- Whether `name` belongs to generation `g`: no newer generation with
-- counted workers registered it.
local function belongs_to(dict, name, g)
    local newest = holding.registered_by(dict, name)
    return newest == nil or newest <= g or registry.count(dict, newest) <= 0
end
--- Whether `w` may take a name held as `h`: nobody holds it, its holder
-- died, or it is a tombstone of a stop that did not come (its holder is
-- gone and this worker started since: nginx went on).
local function free_for(w, h)
    if h == nil then
        return true
    end
    if h.pid == w.pid then
        return false
    end
    if h.stopped then
        return w.started > h.since and not pid_alive(h.pid)
    end
    return not pid_alive(h.pid)
end
--- This worker is counted in its slot (not dropped as stalled meanwhile).
local function counted(w)
    local pid = registry.occupant(w.dict, w.gen, w.slot)
    return pid == w.pid
end
local function on_stop_timer(premature, job, token, reason)
    if not premature and job.token == token then
        stop_now(job, reason)
    end
end
--- Asks `job` to stop: now in a timer of its own, or once its running start or fn returns.
local function request_stop(job, reason)
    if job.token == nil or job.stopping then
        return
    end
    if job.busy then
        if job.pending == nil or reason == "lost" then
            job.pending = reason
        end
        return
    end
    job.pending = reason
    local ok, err = timer_at(
        0,
        on_stop_timer,
        job,
        job.token,
        reason
    )
    if not ok then
        log(
            ERR,
            "could not start a timer for the stop of singleton '",
            job.name,
            "': ",
            err,
            "; stopping it here"
        )
        stop_now(job, reason)
    end
end
local function on_start_timer(premature, job, token)
    if premature or exiting then
        return
    end
    check_lost()
    if job.token ~= token or job.stopping or job.pending ~= nil then
        return
    end
    if job.fn ~= nil then
        run_fn(job, token)
        return
    end
    local start = job.start
    job.busy = true
    job.started = true
    if start ~= nil then
        call("start", job, token, start)
    end
    after_busy(job)
end
--- The holding of `job` began: its start (or first run) in a timer of its own.
local function begin(job, token)
    local ok, err = timer_at(0, on_start_timer, job, token)
    if not ok then
        log(
            ERR,
            "could not start a timer for singleton '",
            job.name,
            "' in worker ",
            me and me.id or "?",
            ": ",
            err,
            "; starting it here"
        )
        on_start_timer(false, job, token)
    end
end
--- Under the lock: registers this worker's names (once) and claims those free for it.
local function claim_free(w)
    local dict = w.dict
    local claimed = {}
    if not registered then
        registered = true
        for ____, job in ipairs(jobs) do
            holding.register(dict, job.name, w.gen)
        end
    end
    if exiting or not counted(w) then
        return claimed
    end
    update_time()
    for ____, job in ipairs(jobs) do
        if job.token == nil and belongs_to(dict, job.name, w.gen) then
            local h = holding.holder(dict, job.name)
            if free_for(w, h) then
                if h ~= nil then
                    log(
                        NOTICE,
                        "singleton '",
                        job.name,
                        "' (token ",
                        h.token,
                        ") was held by worker ",
                        h.gen,
                        "-",
                        h.pid,
                        ", which is gone",
                        h.stopped and " after it stopped the job for a stop that did not come" or "",
                        ": worker ",
                        w.id,
                        " takes it over"
                    )
                    holding.free_name(dict, job.name)
                end
                local token = holding.claim(
                    dict,
                    job.name,
                    w,
                    now()
                )
                if token ~= nil then
                    job.token = token
                    job.started = false
                    job.pending = nil
                    claimed[#claimed + 1] = job
                end
            end
        end
    end
    return claimed
end
--- Looks at this worker's jobs: gives up those that belong to a newer
-- generation now, and takes those free for it (under the lock, only when
-- there is one to take).
local function look()
    local w = me
    if w == nil or exiting or looking then
        return
    end
    looking = true
    check_lost()
    local dict = w.dict
    seen = holding.epoch(dict)
    local wanted = not registered
    local blocked = false
    for ____, job in ipairs(jobs) do
        if job.token ~= nil then
            if not job.stopping and job.pending == nil and not belongs_to(dict, job.name, w.gen) then
                request_stop(job, "reload")
            end
        elseif belongs_to(dict, job.name, w.gen) then
            local h = holding.holder(dict, job.name)
            if free_for(w, h) then
                wanted = true
            elseif h ~= nil and not h.stopped and h.gen < w.gen then
                blocked = true
            end
        end
    end
    waiting = blocked
    if wanted then
        local hold = lock.acquire(dict, true)
        local claimed = claim_free(w)
        lock.release(dict, hold)
        for ____, job in ipairs(claimed) do
            begin(job, job.token)
        end
    end
    looking = false
end
local function on_watch(premature)
    local w = me
    if premature or w == nil or exiting then
        return
    end
    if waiting or holding.epoch(w.dict) ~= seen then
        look()
    end
end
local function on_ready(premature)
    if not premature then
        look()
    end
end
--- This worker is counted: its jobs may be held from now on.
local function attach(w)
    me = w
end
--- Whether `name` is registered in this worker already.
local function has(name)
    return by_name[name] ~= nil
end
--- Registers a job in this worker (init_worker); the first one also starts
-- the look after init_worker and the watch.
local function add(name, start, stop, fn, interval)
    local job = {
        name = name,
        start = start,
        stop = stop,
        fn = fn,
        interval = interval,
        token = nil,
        started = false,
        busy = false,
        pending = nil,
        stopping = false,
        stopped_for_exit = false,
        armed = false,
        due = 0
    }
    jobs[#jobs + 1] = job
    by_name[name] = job
    if #jobs > 1 or me == nil then
        return
    end
    local ok, err = timer_at(0, on_ready)
    if ok then
        ok, err = timer_every(WATCH, on_watch)
    end
    if not ok then
        log(
            ERR,
            "could not start the timers of the singletons of worker ",
            me.id,
            ": ",
            err,
            "; they are taken up at its heartbeats only"
        )
    end
end
--- Whether this worker holds `name` and may go on with it: no stop asked for
-- or under way, not exiting, not lost. For the module's own long runs.
local function keeps(name)
    local w = me
    local job = by_name[name]
    return w ~= nil and job ~= nil and job.token ~= nil and job.pending == nil and not job.stopping and not exiting and not worker_exiting() and not is_lost(w, job)
end
--- Whether this worker holds `name` now, and the holding's token.
local function holds(name)
    local w = me
    local job = by_name[name]
    if w == nil or job == nil or job.token == nil or job.pending == "lost" or is_lost(w, job) then
        return false, nil
    end
    return true, job.token
end
--- At each heartbeat, after check_lost: a look (in case the watch could not
-- start), and every() runs whose timer could not be armed.
local function on_beat()
    if #jobs == 0 then
        return
    end
    look()
    update_time()
    for ____, job in ipairs(jobs) do
        local token = job.token
        if token ~= nil and job.fn ~= nil and job.started and not job.armed and not job.busy and not job.stopping and job.pending == nil and not exiting and now() >= job.due then
            run_fn(job, token)
        end
    end
end
--- This worker exits: no more claims or runs; the stop of each job it holds
-- runs here (after its running start or fn returned, where this can wait),
-- with the exit's reason; the holdings end under the exit's lock
-- (release_for_exit).
local function stop_for_exit(reason, can_yield)
    local w = me
    exiting = true
    if w == nil then
        return
    end
    check_lost()
    local why = reason == "replace" and "exit" or reason
    for ____, job in ipairs(jobs) do
        while can_yield and job.busy and job.token ~= nil do
            sleep(BUSY_STEP)
        end
        local token = job.token
        if token ~= nil and not job.stopping then
            if job.pending == "lost" or is_lost(w, job) then
                stop_now(job, "lost")
            else
                job.stopping = true
                job.stopped_for_exit = true
                if job.started and job.stop ~= nil then
                    call(
                        "stop",
                        job,
                        token,
                        job.stop,
                        why
                    )
                end
            end
        end
    end
end
--- Under the exit's lock: ends the holdings whose stop the exit ran; a stop of the node leaves tombstones.
local function release_for_exit(dict, node_stops)
    local w = me
    if w == nil then
        return
    end
    update_time()
    for ____, job in ipairs(jobs) do
        local token = job.token
        if token ~= nil and job.stopped_for_exit then
            holding.release(
                dict,
                job.name,
                w.pid,
                token,
                now(),
                node_stops
            )
            job.token = nil
            job.stopped_for_exit = false
        end
    end
end
____exports.attach = attach
____exports.has = has
____exports.add = add
____exports.holds = holds
____exports.keeps = keeps
____exports.check_lost = check_lost
____exports.on_beat = on_beat
____exports.stop_for_exit = stop_for_exit
____exports.release_for_exit = release_for_exit
____exports.WATCH = WATCH
return ____exports
