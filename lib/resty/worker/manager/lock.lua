--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
local ____log = require("resty.worker.manager.log")
local log = ____log.log
local ____keys = require("resty.worker.manager.keys")
local LOCK = ____keys.LOCK
local ____host = require("resty.worker.manager.host")
local pause = ____host.pause
local pid_alive = ____host.pid_alive
local free_dead_shm_mutex = ____host.free_dead_shm_mutex
local ERR = ngx.ERR
local WARN = ngx.WARN
local now = ngx.now
local update_time = ngx.update_time
local sleep = ngx.sleep
local worker_pid = ngx.worker.pid
--- Seconds a hold lasts unless renewed: a hung holder cannot block the node forever.
local EXPTIME = 30
--- Seconds a waiter tries before it gives up and goes on unlocked (logged).
local MAX_WAIT = EXPTIME + 5
--- Steps of a waiter that blocks (usleep has microseconds).
local FIRST_STEP = 0.0002
local MAX_STEP = 0.001
--- The step of a waiter that yields: nginx's timers count whole
-- milliseconds, and ngx.sleep of less sleeps 0 ms, with a warning in the
-- error log on nginx builds without OpenResty's delayed-events patch.
local YIELD_STEP = 0.001
--- Seconds of life a dead hold must have left for a takeover to delete it.
local TAKEOVER_MARGIN = 1
--- Seconds between two checks that the same holder still lives.
local CHECK_HOLDER_AFTER = 0.005
--- A key of the lock key's size (same slab class) kept allocated: when the shm
-- is full and the lock key finds no room, deleting it makes that room, so
-- callbacks still run one at a time. Put back after every release.
local RESERVE = LOCK .. ":reserve"
local UNLOCKED = ""
local taken = 0
--- This process's hold, while it has one.
local current = nil
--- The pid in a holder token "pid:n"; nil for holders that are not ours (resty.lock writes true).
local function holder_pid(holder)
    if type(holder) ~= "string" then
        return nil
    end
    local digits = string.match(holder, "^(%d+):")
    local ____temp_0
    if digits ~= nil then
        ____temp_0 = tonumber(digits)
    else
        ____temp_0 = nil
    end
    return ____temp_0
end
--- Takes the lock, waiting at most `max_wait` seconds; nil when that ran out.
-- With `can_yield` (timer or request context) it waits with ngx.sleep,
-- otherwise it blocks the process in short steps; either way it refreshes
-- nginx's cached clock, which shm expiry is judged by.
local function try_acquire(dict, can_yield, max_wait)
    taken = taken + 1
    local token = (tostring(worker_pid()) .. ":") .. tostring(taken)
    update_time()
    local deadline = now() + max_wait
    local step = FIRST_STEP
    local reserve = true
    local watched = nil
    local checked_at = now()
    while true do
        do
            local ok, err = dict:safe_add(LOCK, token, EXPTIME)
            if ok then
                current = token
                return token
            end
            if err == "no memory" and reserve then
                reserve = false
                dict:delete(RESERVE)
                goto __continue5
            end
            if err ~= "exists" then
                log(
                    ERR,
                    "cannot take the node lock '",
                    LOCK,
                    "': ",
                    err,
                    "; going on without it"
                )
                return UNLOCKED
            end
            local holder = dict:get(LOCK)
            local pid = nil
            if holder ~= watched or now() - checked_at >= CHECK_HOLDER_AFTER then
                watched = holder
                checked_at = now()
                pid = holder_pid(holder)
            end
            if pid ~= nil and not pid_alive(pid) then
                local won = dict:safe_add((LOCK .. ":takeover:") .. holder, true, EXPTIME)
                local left = dict:ttl(LOCK)
                if won and left ~= nil and left > TAKEOVER_MARGIN then
                    local again = dict:get(LOCK)
                    if again == holder then
                        dict:delete(LOCK)
                        log(WARN, "took over the node lock from dead process ", pid)
                    end
                    goto __continue5
                end
            end
            update_time()
            if now() >= deadline then
                return nil
            end
            if can_yield then
                sleep(YIELD_STEP)
            else
                pause(step)
                free_dead_shm_mutex(dict)
            end
            step = math.min(step * 2, MAX_STEP)
        end
        ::__continue5::
    end
end
--- Takes the lock, waiting as long as needed (bounded by MAX_WAIT, after which
-- it goes on unlocked and says so).
local function acquire(dict, can_yield)
    local hold = try_acquire(dict, can_yield, MAX_WAIT)
    if hold == nil then
        local holder = dict:get(LOCK)
        log(
            ERR,
            "waited ",
            MAX_WAIT,
            "s for the node lock held by '",
            tostring(holder),
            "'; going on without it"
        )
        return UNLOCKED
    end
    return hold
end
--- True while this process holds the lock (inside a callback, say).
local function held()
    return current ~= nil
end
--- This process's hold, if it has one.
local function mine()
    return current
end
--- Makes sure the hold is still ours before more work is done under it, and
-- renews its expiry. A callback that ran past the expiry lost the lock: then
-- the lock is taken again rather than working unlocked.
local function renew(dict, hold, can_yield)
    if hold == UNLOCKED then
        return acquire(dict, can_yield)
    end
    local holder = dict:get(LOCK)
    if holder == hold then
        dict:safe_set(LOCK, hold, EXPTIME)
        return hold
    end
    current = nil
    log(
        WARN,
        "the node lock expired while held by ",
        hold,
        " (a callback ran over ",
        EXPTIME,
        "s); taking it again"
    )
    return acquire(dict, can_yield)
end
--- Puts the reserve back (or keeps it): the room the lock key just freed, at least.
local function keep_reserve(dict)
    dict:safe_add(RESERVE, true)
end
--- Releases the lock if, and only if, it is still this hold.
local function release(dict, hold)
    if hold == UNLOCKED then
        return
    end
    current = nil
    local holder = dict:get(LOCK)
    if holder == hold then
        dict:delete(LOCK)
        keep_reserve(dict)
    else
        log(
            WARN,
            "the node lock expired while held by ",
            hold,
            "; not releasing ",
            tostring(holder),
            "'s hold"
        )
    end
end
____exports.try_acquire = try_acquire
____exports.acquire = acquire
____exports.held = held
____exports.mine = mine
____exports.renew = renew
____exports.release = release
____exports.EXPTIME = EXPTIME
____exports.UNLOCKED = UNLOCKED
return ____exports
