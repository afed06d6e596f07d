-- Compiled from src/resty/worker/manager/lock.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The node-wide lock: one shm key, taken with add(key, owner, exptime) and
-- released with delete(key), the same protocol as lua-resty-lock, so users can
-- take it with resty.lock too. Unlike resty.lock it records its owner ("pid:n")
-- and releases only its own hold, and it can wait where ngx.sleep is disabled
-- (init_by_lua, init_worker_by_lua, exit_worker_by_lua) by blocking briefly.

local log = require("resty.worker.manager.log").log
local LOCK = require("resty.worker.manager.keys").LOCK
local host = require("resty.worker.manager.host")
local pause = host.pause
local pid_alive = host.pid_alive
local free_dead_shm_mutex = host.free_dead_shm_mutex
local ERR, WARN, NOTICE = ngx.ERR, ngx.WARN, ngx.NOTICE
local now, update_time, sleep = ngx.now, ngx.update_time, ngx.sleep
local worker_pid = ngx.worker.pid

local _M = {}

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
    if digits == nil then
        return nil
    end
    return tonumber(digits)
end

--- Deletes the hold of a holder that died without releasing (kill -9,
-- segfault): its pid is gone, so waiting for the expiry would only stall the
-- node. True when the caller should try to take the lock again at once.
local function take_over_if_dead(dict, watch)
    local holder = dict:get(LOCK)
    -- Whether the holder lives is asked when a hold is first seen, then
    -- every CHECK_HOLDER_AFTER: it costs a syscall and a /proc read, and
    -- dozens of workers starting at once would otherwise ask it at every
    -- step of their wait.
    local t = now()
    if holder == watch.holder and t - watch.checked_at < CHECK_HOLDER_AFTER then
        return false
    end
    watch.holder = holder
    watch.checked_at = t
    local pid = holder_pid(holder)
    if pid == nil or pid_alive(pid) then
        return false
    end
    -- Of several waiters only the one that marks this dead hold first
    -- deletes it; the others could delete the winner's new hold. A dead hold
    -- about to expire is left to expire: between our read and our delete it
    -- could expire and be retaken by someone else. (A marker that finds no
    -- room in a full zone is a takeover not tried: the hold expires.)
    local won = dict:safe_add(LOCK .. ":takeover:" .. holder, true, EXPTIME)
    local left = dict:ttl(LOCK)
    if not won or left == nil or left <= TAKEOVER_MARGIN then
        return false
    end
    local again = dict:get(LOCK)
    if again == holder then
        dict:delete(LOCK)
        log(WARN, "took over the node lock from dead process ", pid)
    end
    return true
end

--- Waits one step between two tries; the next step's length.
local function wait_a_step(dict, can_yield, step)
    if can_yield then
        sleep(YIELD_STEP)
    else
        pause(step)
        -- Where this process cannot yield it may be the master in
        -- init_by_lua, which a dead process's hold of the zone would
        -- block for good (see free_dead_shm_mutex).
        free_dead_shm_mutex(dict)
    end
    return math.min(step * 2, MAX_STEP)
end

--- Takes the lock, waiting at most `max_wait` seconds: the hold, or nil and
-- "timeout" when the wait ran out, or nil and the shm's error (logged).
-- With `can_yield` (timer or request context) it waits with ngx.sleep,
-- otherwise it blocks the process in short steps; either way it refreshes
-- nginx's cached clock, which shm expiry is judged by.
local function try_acquire(dict, can_yield, max_wait)
    taken = taken + 1
    local token = tostring(worker_pid()) .. ":" .. tostring(taken)
    update_time()
    local deadline = now() + max_wait
    local watch = {
        holder = nil,
        checked_at = now(),
    }
    local step = FIRST_STEP
    local reserve = true
    while true do
        local ok, err = dict:safe_add(LOCK, token, EXPTIME)
        if ok then
            current = token
            return token, nil
        end
        if err == "no memory" and reserve then
            -- the zone is full: free the reserve's room and try again at once
            reserve = false
            dict:delete(RESERVE)
        elseif err ~= "exists" then
            log(ERR, "cannot take the node lock '", LOCK, "': ", err, "; going on without it")
            return nil, err or "unknown error"
        elseif not take_over_if_dead(dict, watch) then
            update_time()
            if now() >= deadline then
                return nil, "timeout"
            end
            step = wait_a_step(dict, can_yield, step)
        end
    end
end

--- Takes the lock, waiting as long as needed (bounded by MAX_WAIT, after which
-- it goes on unlocked and says so).
local function acquire(dict, can_yield)
    local hold, err = try_acquire(dict, can_yield, MAX_WAIT)
    if hold ~= nil then
        return hold
    end
    if err == "timeout" then
        local holder = dict:get(LOCK)
        log(ERR, "waited ", MAX_WAIT, "s for the node lock held by '", tostring(holder), "'; going on without it")
    end
    return UNLOCKED
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
        -- the same value again: written in place, so only a wrong zone fails
        local ok, err = dict:safe_set(LOCK, hold, EXPTIME)
        if not ok then
            log(ERR, "cannot renew the node lock '", LOCK, "': ", err, "; it expires ", EXPTIME, "s after it was taken")
        end
        return hold
    end
    current = nil
    log(WARN, "the node lock expired while held by ", hold, " (a callback ran over ", EXPTIME, "s); taking it again")
    return acquire(dict, can_yield)
end

--- Puts the reserve back (or keeps it) in the room the lock key just freed.
-- Another process may take that room first in a full zone: then the next
-- take of the lock in a full zone fails, and says so.
local function keep_reserve(dict)
    local ok, err = dict:safe_add(RESERVE, true)
    if not ok and err ~= "exists" then
        log(NOTICE, "the node lock's reserve key '", RESERVE, "' is not back: ", err)
    end
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
        log(WARN, "the node lock expired while held by ", hold, "; not releasing ", tostring(holder), "'s hold")
    end
end

_M.try_acquire = try_acquire
_M.acquire = acquire
_M.held = held
_M.mine = mine
_M.renew = renew
_M.release = release
_M.EXPTIME = EXPTIME
_M.UNLOCKED = UNLOCKED

return _M
