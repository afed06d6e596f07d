-- Compiled from src/resty/worker/manager/registry.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The bookkeeping behind the four counts: generations and the workers counted
-- in each, as a few small shm keys per generation (see keys.ts). Every
-- function that writes is called with the node lock held; this module knows
-- nothing of phases, callbacks or the lock itself.
--
-- Per generation: `arrived` workers reached init_worker (ever), `live` are
-- counted now. A worker is counted exactly while its pid is in its slot's
-- key, so whoever removes that key (its own exit, or the one who found it
-- dead) is the one who uncounts it. Before that, each worker writes its pid
-- as its slot's arrival without waiting for the lock: an arrival that is not
-- (yet) in the slot is a worker still starting; counting it removes it.
--
-- A counted worker has that one key, which also holds its heartbeat and
-- start time (record.ts).
--
-- One word for each stage of a generation `g`, in order: `recorded` (its
-- master start wrote its keys), `active` (it has workers, or may still get
-- one: `failed` seconds after its master start), `emptied` (it had workers
-- and none is counted now), `over` (emptied, and none of its processes runs:
-- it may get its master exit; liveness.ts), `ended` (its master exit ran and
-- its keys are gone). `rolled_back`: recorded, never active (nginx kept the
-- old configuration).

local keys = require("resty.worker.manager.keys")
local store = require("resty.worker.manager.store")
local read_number = store.read_number
local read_string = store.read_string
local write = store.write
local add = store.add
local remove = store.remove
local record = require("resty.worker.manager.record")
local log = require("resty.worker.manager.log").log
local NOTICE = ngx.NOTICE

local _M = {}

--- The pid counted in slot `s` of `g`, if any.
local function counted_pid(dict, g, s)
    local pid = record.get(dict, keys.slot(g, s))
    return pid
end

--- Starts a new generation (master start); its number, or nil if the shm refused.
local function begin_generation(dict, now)
    local g = add(dict, keys.TOP, 1)
    if g == nil then
        return nil
    end
    write(dict, keys.gen(g), now)
    if read_number(dict, keys.LOW) == nil then
        write(dict, keys.LOW, g)
    end
    return g
end

--- Notes that worker `pid` of `g` exists, before it waits for the lock.
-- Returns the slot's previous arrival that never got counted, if any: a
-- worker that died while it was starting (nginx respawned its slot).
local function arrive(dict, g, s, pid, workers)
    local previous = read_number(dict, keys.arrival(g, s))
    write(dict, keys.size(g), workers)
    write(dict, keys.arrival(g, s), pid)
    add(dict, keys.arrived(g), 1)
    if previous ~= nil and previous ~= pid and previous ~= counted_pid(dict, g, s) then
        return previous
    end
    return nil
end

local function recorded(dict, g)
    return read_number(dict, keys.gen(g)) ~= nil
end

--- Workers counted in generation `g`.
local function count(dict, g)
    return read_number(dict, keys.live(g)) or 0
end

--- Number of slots of `g` (its worker_processes), 0 if unknown.
local function slots(dict, g)
    return read_number(dict, keys.size(g)) or 0
end

--- True while fewer workers of `g` reached init_worker than it has slots, and
-- `g` is younger than `failed` seconds: nginx forks a generation's workers
-- together, so only then may a missing one still come (one whose code before
-- this module's hook failed never will).
local function unarrived(dict, g, now, failed)
    local started = read_number(dict, keys.gen(g))
    return started ~= nil and now - started < failed and (read_number(dict, keys.arrived(g)) or 0) < slots(dict, g)
end

--- Pids of `g` that arrived but are not counted: starting (or died while starting).
local function starting(dict, g)
    local pids = {}
    for s = 0, slots(dict, g) - 1 do
        local pid = read_number(dict, keys.arrival(g, s))
        if pid ~= nil and pid ~= counted_pid(dict, g, s) then
            pids[#pids + 1] = pid
        end
    end
    return pids
end

--- The pid counted in slot `s` of `g`, its last heartbeat and when it started.
local function occupant(dict, g, s)
    return record.get(dict, keys.slot(g, s))
end

--- The ended generations are kept as one entry: the newest of them as the
-- value, and which of the 31 before it ended as the flags (bit i: newest -
-- 1 - i; flags are a signed 32-bit int), so that the entry stays small
-- however many reloads there were.
local ENDED_SPAN = 31
local MASK_LIMIT = 2 ^ ENDED_SPAN

local function ended_set(dict)
    local newest, mask = dict:get(keys.ENDED)
    return type(newest) == "number" and newest or nil, type(mask) == "number" and mask or 0
end

--- Whether bit `i` of `mask` is set (plain arithmetic: LuaJIT's bit ops are signed).
local function bit_set(mask, i)
    return math.floor(mask / 2 ^ i) % 2 == 1
end

--- Remembers that the master exit of `g` ran.
local function note_ended(dict, g)
    local newest, mask = ended_set(dict)
    if newest == nil or g > newest then
        -- `newest` becomes bit g - newest - 1; older ones move up with it
        local shift = newest ~= nil and g - newest or ENDED_SPAN + 1
        local kept = shift > ENDED_SPAN and 0 or (mask * 2 + 1) * 2 ^ (shift - 1) % MASK_LIMIT
        write(dict, keys.ENDED, g, kept)
    elseif g < newest and newest - g <= ENDED_SPAN and not bit_set(mask, newest - g - 1) then
        write(dict, keys.ENDED, newest, mask + 2 ^ (newest - g - 1))
    end
end

--- The master exit of `g` ran: a worker of it that starts only now (nginx
-- forked it, but slow user code held it back) must not bring it back.
local function ended(dict, g)
    if recorded(dict, g) then
        return false
    end
    local newest, mask = ended_set(dict)
    if newest == nil or g > newest then
        return false
    end
    return g == newest or newest - g <= ENDED_SPAN and bit_set(mask, newest - g - 1)
end

--- Deletes every key of generation `g`.
local function forget(dict, g)
    for s = 0, slots(dict, g) - 1 do
        remove(dict, keys.slot(g, s))
        remove(dict, keys.arrival(g, s))
        remove(dict, keys.stalled(g, s))
        remove(dict, keys.replaced(g, s))
    end
    remove(dict, keys.size(g))
    remove(dict, keys.arrived(g))
    remove(dict, keys.closing(g))
    remove(dict, keys.listeners(g))
    remove(dict, keys.idle(g))
    remove(dict, keys.live(g))
    remove(dict, keys.gen(g))
end

--- Counts a starting worker. Returns its generation's count including itself,
-- and the pid previously counted in the same slot, if any: nginx reuses a
-- slot only for a worker it respawned, so that pid is dead (and, as the
-- contract wants, still counted until `replace_dead`); and whether it is
-- counted. The count is nil when the generation already ended (see ended).
local function register(dict, g, s, pid, workers, now)
    local previous = counted_pid(dict, g, s)
    if not recorded(dict, g) then
        if ended(dict, g) then
            -- Its siblings exited and ran its master exit before this worker
            -- got here: what arrive() wrote goes, and nothing is counted.
            forget(dict, g)
            return nil, nil, false
        end
        -- Forgotten as a rolled-back reload while its workers were slow to
        -- start: it exists after all, and scans must reach it again.
        write(dict, keys.gen(g), now)
        if (read_number(dict, keys.LOW) or g) > g then
            write(dict, keys.LOW, g)
        end
    end
    if slots(dict, g) ~= workers then
        -- (arrive() wrote it, unless the shm lost it since)
        write(dict, keys.size(g), workers)
    end
    if not record.put(dict, keys.slot(g, s), pid, now, now) then
        -- No room for its slot key (shm full): a worker counted without it
        -- would be counted again by every heartbeat's restore. Left uncounted,
        -- its heartbeat counts it once there is room.
        return count(dict, g) + 1, nil, false
    end
    remove(dict, keys.arrival(g, s))
    -- A worker of an idle generation: nginx went on with it (a respawn, a rollback).
    remove(dict, keys.idle(g))
    local mine = add(dict, keys.live(g), 1) or 1
    if previous == pid then
        return mine, nil, true
    end
    return mine, previous, true
end

--- Uncounts the dead worker `dead` whose slot `s` a respawned worker took over,
-- and queues it to be reported once the respawned worker's start callback
-- ran: queued, a report survives the respawned worker being killed in turn.
-- False when the queue could not be written (shm full): the caller reports it.
local function replace_dead(dict, g, s, dead, by)
    add(dict, keys.live(g), -1)
    local entry = tostring(dead) .. ">" .. tostring(by)
    local queued = read_string(dict, keys.replaced(g, s))
    return write(dict, keys.replaced(g, s), queued ~= nil and queued .. " " .. entry or entry)
end

--- The replaced workers of slot `s` not reported yet, oldest first; the queue is emptied.
local function take_replaced(dict, g, s)
    local found = {}
    local queued = read_string(dict, keys.replaced(g, s))
    if queued ~= nil then
        for dead, by in string.gmatch(queued, "(%d+)>(%d+)") do
            found[#found + 1] = {
                dead = tonumber(dead) or 0,
                by = tonumber(by) or 0,
            }
        end
        remove(dict, keys.replaced(g, s))
    end
    return found
end

--- Uncounts the worker `pid` of slot `s` if it is still counted there. Returns
-- whether it was, and how many of its generation remain counted. `stalled`:
-- its process still runs (it only stopped beating), so it is remembered until
-- it beats again or exits.
local function uncount(dict, g, s, pid, stalled)
    if stalled == nil then
        stalled = false
    end
    local counted, _, started = occupant(dict, g, s)
    if counted ~= pid then
        return false, count(dict, g)
    end
    remove(dict, keys.slot(g, s))
    if read_number(dict, keys.arrival(g, s)) == pid then
        remove(dict, keys.arrival(g, s))
    end
    if stalled then
        record.put_stalled(dict, keys.stalled(g, s), pid, started)
    end
    return true, add(dict, keys.live(g), -1) or 0
end

--- The worker of slot `s` dropped while its process still ran (see uncount), and when it started.
local function stalled_at(dict, g, s)
    return record.get_stalled(dict, keys.stalled(g, s))
end

--- Puts back what a live, counted-to-be worker needs in the shm: its slot
-- after it was dropped by mistake (it stalled, then beat again), or its whole
-- generation after the module's keys were lost (flush_all, eviction, a write
-- that failed while the shm was full). Returns what was restored, or nil,
-- and whether the worker was counted again (its slot restored).
local function restore(dict, g, s, pid, workers, now)
    local restored = nil
    if (read_number(dict, keys.TOP) or 0) < g then
        write(dict, keys.TOP, g)
        restored = "generation counter"
    end
    if (read_number(dict, keys.LOW) or g + 1) > g then
        write(dict, keys.LOW, g)
    end
    if not recorded(dict, g) and write(dict, keys.gen(g), now) then
        write(dict, keys.size(g), workers)
        -- A live worker of it is here: it surely got all its workers.
        if (read_number(dict, keys.arrived(g)) or 0) < workers then
            write(dict, keys.arrived(g), workers)
        end
        restored = "generation " .. tostring(g)
    end
    -- Counted only once its slot key is in: a worker whose slot cannot be
    -- written (shm full) must not be counted again at every heartbeat.
    local dropped, started = stalled_at(dict, g, s)
    if
        counted_pid(dict, g, s) == nil
        and record.put(dict, keys.slot(g, s), pid, now, dropped == pid and started ~= nil and started or now)
    then
        if read_number(dict, keys.arrival(g, s)) == pid then
            remove(dict, keys.arrival(g, s))
        end
        remove(dict, keys.stalled(g, s))
        add(dict, keys.live(g), 1)
        restored = restored ~= nil and restored .. " and its slot " .. tostring(s) or "slot " .. tostring(s)
        return restored, true
    end
    return restored, false
end

--- The pids of `g` dropped while their process still ran (see uncount).
local function stalled(dict, g)
    local pids = {}
    for s = 0, slots(dict, g) - 1 do
        local pid = stalled_at(dict, g, s)
        if pid ~= nil then
            pids[#pids + 1] = pid
        end
    end
    return pids
end

--- A worker that is not counted exits (it was dropped as stalled, or its slot
-- never fitted in a full shm): it no longer holds its generation open.
-- Returns whether it had been dropped as stalled.
local function clear_uncounted(dict, g, s, pid)
    if read_number(dict, keys.arrival(g, s)) == pid then
        remove(dict, keys.arrival(g, s))
    end
    local dropped = stalled_at(dict, g, s)
    if dropped == pid then
        remove(dict, keys.stalled(g, s))
        return true
    end
    return false
end

--- Records a heartbeat of worker `pid`, counted in slot `s` (see record.beat).
local function heartbeat(dict, g, s, pid, now)
    record.beat(dict, keys.slot(g, s), pid, now)
end

--- The range of generations that may have records: LOW..TOP.
local function span(dict)
    local top = read_number(dict, keys.TOP) or 0
    return read_number(dict, keys.LOW) or top + 1, top
end

--- Moves LOW past generations that have no records left.
local function advance_low(dict)
    local start, top = span(dict)
    local low = start
    while low < top and not recorded(dict, low) and count(dict, low) <= 0 do
        low = low + 1
    end
    if low ~= start then
        write(dict, keys.LOW, low)
    end
end

--- True once generation `g` had workers and none is counted any more. Whether
-- it is really over also depends on processes still running (liveness.over).
local function emptied(dict, g)
    return recorded(dict, g)
        and (read_number(dict, keys.arrived(g)) or 0) > 0
        and count(dict, g) <= 0
        and read_number(dict, keys.closing(g)) == nil
end

--- Marks that process `pid` is about to run the master exit of `g`; its
-- records go once it ran (end_generation). Until `enter_close`, a death of
-- `pid` leaves the master exit to whoever finds it (reopen); after it, the
-- master exit counts as run: at most once.
local function begin_close(dict, g, pid)
    write(dict, keys.closing(g), pid)
end

--- The closer of `g` enters the master exit callback (stored as -pid: entered).
local function enter_close(dict, g, pid)
    write(dict, keys.closing(g), -pid)
end

--- The pid running the master exit of `g`, if one is, and whether it entered the callback.
local function closer(dict, g)
    local mark = read_number(dict, keys.closing(g))
    if mark == nil then
        return nil, false
    end
    return math.abs(mark), mark < 0
end

--- The closer of `g` died before it entered the master exit: `g` is emptied, not closing.
local function reopen(dict, g)
    remove(dict, keys.closing(g))
end

--- Records the listening sockets of `g` (listeners.ts): every worker of it holds the same.
local function note_listeners(dict, g, inodes)
    write(dict, keys.listeners(g), inodes)
end

--- The listening sockets of `g` as listeners.held() gave them, nil if unknown.
local function listeners(dict, g)
    return read_string(dict, keys.listeners(g))
end

--- `g` has no worker, but its master keeps running its configuration (its
-- last worker was replaced, or held back by WINCH): no master exit yet.
local function suspend(dict, g, now)
    write(dict, keys.idle(g), now)
end

--- True while `g` is idle (see suspend) and no worker joined it since.
local function idle(dict, g)
    return read_number(dict, keys.idle(g)) ~= nil
end

--- True once a generation newer than `g` got a worker: nginx's master runs a
-- newer configuration, so `g`'s will not get a worker again.
local function superseded(dict, g)
    local _, top = span(dict)
    for newer = g + 1, top do
        if count(dict, newer) > 0 or (read_number(dict, keys.arrived(newer)) or 0) > 0 or ended(dict, newer) then
            return true
        end
    end
    return false
end

--- Removes the records of a generation whose master exit ran.
local function end_generation(dict, g)
    forget(dict, g)
    note_ended(dict, g)
    advance_low(dict)
end

--- A generation is active while it has counted or arriving workers, or, without
-- any, for `failed` seconds after its master start: a reload that nginx rolled
-- back after init_by_lua ran never gets a worker and stops being active then.
local function active(dict, g, now, failed)
    if count(dict, g) > 0 or (read_number(dict, keys.arrived(g)) or 0) > 0 then
        return true
    end
    local started = read_number(dict, keys.gen(g))
    return started ~= nil and now - started < failed
end

--- The newest generation that exists, nil if none.
local function newest(dict, now, failed)
    local low, top = span(dict)
    local g = top
    while g >= low do
        if active(dict, g, now, failed) then
            return g
        end
        g = g - 1
    end
    return nil
end

--- A generation that never got a worker within `failed` seconds of its master start.
local function rolled_back(dict, g, now, failed)
    return recorded(dict, g) and not active(dict, g, now, failed)
end

--- Forgets generations that never got a worker within `failed` seconds (rolled-back reloads).
local function sweep(dict, now, failed)
    local low, top = span(dict)
    local swept = false
    for h = low, top do
        if rolled_back(dict, h, now, failed) then
            log(
                NOTICE,
                "generation ",
                h,
                " got no worker within ",
                failed,
                "s of its master start (reload rolled back); it is not counted"
            )
            forget(dict, h)
            swept = true
        end
    end
    if swept then
        advance_low(dict)
    end
end

--- n_prev and n_next for a callback of generation `g`: workers counted in all
-- older generations (nil for generation 1) and in all newer ones (nil when no
-- newer generation exists).
local function neighbours(dict, g, now, failed)
    local low, top = span(dict)
    local prev = 0
    local next = nil
    for other = math.min(low, g), math.max(top, g) do
        if other < g then
            prev = prev + math.max(count(dict, other), 0)
        elseif other > g and active(dict, other, now, failed) then
            next = (next or 0) + math.max(count(dict, other), 0)
        end
    end
    if g == 1 then
        -- the first generation of a node has no previous one (nil, not 0)
        return nil, next
    end
    return prev, next
end

--- True while a newer generation has no worker yet but may still get one: an
-- exiting worker that can wait does, so that it tells a reload from a stop.
local function newer_undecided(dict, g, now, failed)
    local _, top = span(dict)
    local undecided = false
    for h = g + 1, top do
        if count(dict, h) > 0 or (read_number(dict, keys.arrived(h)) or 0) > 0 then
            return false
        end
        if active(dict, h, now, failed) then
            undecided = true
        end
    end
    return undecided
end

_M.begin_generation = begin_generation
_M.arrive = arrive
_M.recorded = recorded
_M.count = count
_M.unarrived = unarrived
_M.starting = starting
_M.slots = slots
_M.occupant = occupant
_M.ended = ended
_M.register = register
_M.replace_dead = replace_dead
_M.take_replaced = take_replaced
_M.uncount = uncount
_M.restore = restore
_M.stalled = stalled
_M.clear_uncounted = clear_uncounted
_M.heartbeat = heartbeat
_M.span = span
_M.emptied = emptied
_M.begin_close = begin_close
_M.enter_close = enter_close
_M.closer = closer
_M.reopen = reopen
_M.end_generation = end_generation
_M.active = active
_M.newest = newest
_M.rolled_back = rolled_back
_M.sweep = sweep
_M.neighbours = neighbours
_M.newer_undecided = newer_undecided
_M.note_listeners = note_listeners
_M.listeners = listeners
_M.suspend = suspend
_M.idle = idle
_M.superseded = superseded

return _M
