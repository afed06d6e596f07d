-- Compiled from src/resty/worker/manager/singletons.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Singletons in this worker: the jobs it registered (manager.singleton and
-- manager.every), which of them it holds, and the timers that run their
-- code. Who holds what is decided in the shm under the node lock
-- (holding.ts); user code (start, stop, fn) always runs outside the lock, in
-- a timer of the holder, except a stop for a fast exit, which runs in the
-- exit hook.
--
-- A worker looks at its jobs when the epoch moves (a holding ended, a newer
-- generation registered a name), with one shm read per WATCH seconds when
-- nothing moves, and at every heartbeat. A holding ends only after its stop
-- returned, so the next start of the name always begins after it, unless
-- the holder died or was dropped as stalled (then no stop can run first).

local holding = require("resty.worker.manager.holding")
local registry = require("resty.worker.manager.registry")
local lock = require("resty.worker.manager.lock")
local pid_alive = require("resty.worker.manager.host").pid_alive
local log = require("resty.worker.manager.log").log
local run_job = require("resty.worker.manager.callbacks").run_job
local ERR, NOTICE = ngx.ERR, ngx.NOTICE
local now, update_time, sleep = ngx.now, ngx.update_time, ngx.sleep
local timer_at, timer_every = ngx.timer.at, ngx.timer.every
local worker_exiting = ngx.worker.exiting

local _M = {}

--- Seconds between two looks at the epoch: how soon a freed job is taken up.
local WATCH = 0.01

--- Step of an exiting holder's wait for its running start or fn to return.
local BUSY_STEP = 0.001

local jobs = {}
local by_name = {}
local me = nil

--- The epoch this worker last looked at its jobs for.
local seen = -1

--- A job of this worker waits for a holder of an older generation: look at every tick.
local waiting = false

--- Its names are in the shm's registry.
local registered = false
local exiting = false

--- A look is under way (it may yield, waiting for the lock).
local looking = false

--- Runs user code protected; an error is logged with the name, token and worker id.
local function call(what, job, token, f, reason)
    run_job("singleton", what, job.name, me and me.id or "?", token, f, reason)
end

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

--- The holding `job` believes it has is no longer this worker's (it was dropped meanwhile).
local function is_lost(w, job)
    local h = holding.holder(w.dict, job.name)
    return h == nil or h.pid ~= w.pid or h.token ~= job.token or h.stopped
end

--- Ends `job`'s holding here: its stop (if its start ran), then, unless lost, the record.
local function stop_now(job, reason)
    local w = me
    local token = job.token
    if w == nil or token == nil or job.stopping then
        return
    end
    job.stopping = true
    job.pending = nil
    if job.started and job.stop ~= nil then
        call("stop", job, token, job.stop, reason)
    end
    if reason ~= "lost" then
        local hold = lock.acquire(w.dict, true)
        update_time()
        holding.release(w.dict, job.name, w.pid, token, now(), false)
        lock.release(w.dict, hold)
    end
    job.token = nil
    job.started = false
    job.stopping = false
end

local function on_stop_timer(premature, job, token, reason)
    -- premature: this worker exits, and its exit runs the stop
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
    local ok, err = timer_at(0, on_stop_timer, job, job.token, reason)
    if not ok then
        log(ERR, "could not start a timer for the stop of singleton '", job.name, "': ", err, "; stopping it here")
        stop_now(job, reason)
    end
end

--- Runs the stop of every job whose holding this worker lost (it was dropped
-- for an overdue heartbeat and another worker took the job), here and now:
-- every entry into this worker's singleton code calls it first, so that such
-- a stop runs before any other of its callbacks.
local function check_lost()
    local w = me
    if w == nil then
        return
    end
    for _, job in ipairs(jobs) do
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

--- After a start or fn returned: the stop asked for meanwhile.
local function after_busy(job)
    job.busy = false
    local reason = job.pending
    if reason ~= nil and not exiting then
        stop_now(job, reason)
    end
end

--- Arms the timer of the next run of an every() job, `interval` after `began`.
local function arm(job, token, began, on_timer)
    update_time()
    job.due = began + job.interval
    local ok, err = timer_at(math.max(0, job.due - now()), on_timer, job, token)
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

--- One run of an every() job: when it began if a next run is due, nil if the
-- job ended meanwhile or this worker exits.
local function run_fn(job, token)
    local fn = job.fn
    if fn == nil then
        return nil
    end
    update_time()
    local began = now()
    job.busy = true
    job.started = true
    call("fn", job, token, fn)
    after_busy(job)
    -- (nginx refuses new timers once the worker exits; its exit stops the job)
    if job.token ~= token or job.stopping or exiting or worker_exiting() then
        return nil
    end
    return began
end

--- The timer of an every() job: one run, then the next one armed.
local function on_fn_timer(premature, job, token)
    job.armed = false
    if premature or exiting then
        return
    end
    check_lost()
    if job.token ~= token or job.stopping or job.pending ~= nil or job.busy then
        return
    end
    local began = run_fn(job, token)
    if began ~= nil then
        arm(job, token, began, on_fn_timer)
    end
end

--- Runs an every() job now and arms its next run.
local function run_fn_and_arm(job, token)
    local began = run_fn(job, token)
    if began ~= nil then
        arm(job, token, began, on_fn_timer)
    end
end

local function on_start_timer(premature, job, token)
    -- premature: this worker exits before the start ran; its exit frees the
    -- name without a stop (nothing was started)
    if premature or exiting then
        return
    end
    check_lost()
    if job.token ~= token or job.stopping or job.pending ~= nil then
        return
    end
    if job.fn ~= nil then
        run_fn_and_arm(job, token)
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
        for _, job in ipairs(jobs) do
            holding.register(dict, job.name, w.gen)
        end
    end
    if exiting or not counted(w) then
        return claimed
    end
    update_time()
    for _, job in ipairs(jobs) do
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
                local token = holding.claim(dict, job.name, w, now())
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
    for _, job in ipairs(jobs) do
        if job.token ~= nil then
            if not job.stopping and job.pending == nil and not belongs_to(dict, job.name, w.gen) then
                request_stop(job, "reload")
            end
        elseif belongs_to(dict, job.name, w.gen) then
            local h = holding.holder(dict, job.name)
            if free_for(w, h) then
                wanted = true
            elseif h ~= nil and not h.stopped and h.gen < w.gen then
                -- an older holder about to give it up, or dead without a word
                blocked = true
            end
        end
    end
    waiting = blocked
    if wanted then
        local hold = lock.acquire(dict, true)
        local claimed = claim_free(w)
        lock.release(dict, hold)
        for _, job in ipairs(claimed) do
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
        due = 0,
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
    return w ~= nil
        and job ~= nil
        and job.token ~= nil
        and job.pending == nil
        and not job.stopping
        and not exiting
        and not worker_exiting()
        and not is_lost(w, job)
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
    for _, job in ipairs(jobs) do
        local token = job.token
        if
            token ~= nil
            and job.fn ~= nil
            and job.started
            and not job.armed
            and not job.busy
            and not job.stopping
            and job.pending == nil
            and not exiting
            and now() >= job.due
        then
            run_fn_and_arm(job, token)
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
    for _, job in ipairs(jobs) do
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
                    call("stop", job, token, job.stop, why)
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
    for _, job in ipairs(jobs) do
        local token = job.token
        if token ~= nil and job.stopped_for_exit then
            holding.release(dict, job.name, w.pid, token, now(), node_stops)
            job.token = nil
            job.stopped_for_exit = false
        end
    end
end

_M.attach = attach
_M.has = has
_M.add = add
_M.holds = holds
_M.keeps = keeps
_M.check_lost = check_lost
_M.on_beat = on_beat
_M.stop_for_exit = stop_for_exit
_M.release_for_exit = release_for_exit
_M.WATCH = WATCH

return _M
