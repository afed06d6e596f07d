-- Lua side of the benchmark (t/bench/bench.pl): time stamps in the error log
-- and a few measuring locations. Loaded through package.path, which the
-- bench's init_by_lua extends with t/bench/ (workers inherit it).
--
--   rec(event)        a callback cb(id, n_prev, n_mine, n_next) that logs
--                     "WMB <event> id=<id> pid=<pid> t=<wall clock, µs>"
--   mark(event)       logs "WMB <event> pid=<pid> t=<...>" (hook entry/exit)
--   info()            content handler: versions of nginx, ngx_lua, LuaJIT
--   shm_report(name)  content handler: bytes and keys of the shm in use
--   instrument(shm)   (init_by_lua, before the module loads) counts the shm
--                     calls and times every heartbeat of the module
--   beats()           content handler: this worker's beats since ?since=
--   control(shm, s)   (init_worker_by_lua) a timer every s seconds timing
--                     beat-like work that does not depend on the module
--   wrap_lock()       (init_by_lua) times every lock.acquire; mark("iw_done")
--                     logs this worker's total as lockwait=
--   no_lock()         (init_by_lua) turns the module's lock into a no-op, to
--                     measure what the lock itself adds
--   mark("iw_done") also logs the minor page faults and CPU seconds the
--   process took since mark("iw_enter") (faults=, cpu=)

local ffi = require "ffi"

local M = {}

-- Own type names, and only clock_gettime (wm_test.lua declares gettimeofday
-- with its own struct; a second declaration would clash).
pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } wm_bench_timespec_t;")
pcall(ffi.cdef, "int clock_gettime(int clk_id, wm_bench_timespec_t *tp);")

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_usec; } wm_bench_timeval_t;
typedef struct {
    wm_bench_timeval_t ru_utime, ru_stime;
    long ru_maxrss, ru_ixrss, ru_idrss, ru_isrss, ru_minflt, ru_majflt, ru_nswap,
         ru_inblock, ru_oublock, ru_msgsnd, ru_msgrcv, ru_nsignals, ru_nvcsw, ru_nivcsw;
} wm_bench_rusage_t;
int getrusage(int who, wm_bench_rusage_t *usage);
]])

local ts = ffi.new("wm_bench_timespec_t")
local ru = ffi.new("wm_bench_rusage_t")
local RUSAGE_SELF = 0

-- minor page faults and CPU seconds (user + system) of this process so far
local function usage()
    ffi.C.getrusage(RUSAGE_SELF, ru)
    local cpu = tonumber(ru.ru_utime.tv_sec) + tonumber(ru.ru_stime.tv_sec)
              + (tonumber(ru.ru_utime.tv_usec) + tonumber(ru.ru_stime.tv_usec)) * 1e-6
    return tonumber(ru.ru_minflt), cpu
end
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1

-- wall clock (CLOCK_REALTIME), microseconds (comparable with Time::HiRes::time in the bench)
local function hires()
    ffi.C.clock_gettime(CLOCK_REALTIME, ts)
    return string.format("%d.%06d", tonumber(ts.tv_sec), math.floor(tonumber(ts.tv_nsec) / 1000))
end
M.hires = hires

local function mono()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- Seconds this process spent in lock.acquire since the last reset (see wrap_lock).
local waits

-- this process's usage() at mark("iw_enter")
local faults_at, cpu_at

function M.mark(event)
    if event == "iw_enter" then
        waits = waits and {}    -- forget the master's acquire, inherited through fork
        faults_at, cpu_at = usage()
    end
    local extra = ""
    if event == "iw_done" and faults_at then
        local faults, cpu = usage()
        extra = string.format(" faults=%d cpu=%.6f", faults - faults_at, cpu - cpu_at)
    end
    if event == "iw_done" and waits then
        local sum, n = 0, 0
        for _, w in ipairs(waits) do sum, n = sum + w, n + 1 end
        extra = extra .. string.format(" lockwait=%.6f acquires=%d", sum, n)
    end
    ngx.log(ngx.WARN, "WMB ", event, " pid=", ngx.worker.pid(), " t=", hires(), extra)
end

-- Times every lock.acquire of the module (manager.lua calls it through the
-- module table, so replacing the field is enough). The time is kept in the
-- process and logged by mark("iw_done"), after the lock is released, so the
-- measuring adds nothing to the time the lock is held. Returns false when the
-- module has no such function (the bench then reports no lock wait).
function M.wrap_lock()
    local ok, lock = pcall(require, "resty.worker.manager.lock")
    if not ok or type(lock) ~= "table" or type(lock.acquire) ~= "function" then
        return false
    end
    local acquire = lock.acquire
    waits = {}
    lock.acquire = function(...)
        local t0 = mono()
        local hold = acquire(...)
        waits[#waits + 1] = mono() - t0
        return hold
    end
    return true
end

-- The module with its lock taken out: acquire hands out the "going on
-- unlocked" hold, which renew and release leave alone. Only for a node whose
-- start-up is timed; nothing else of it is read.
function M.no_lock()
    local lock = require "resty.worker.manager.lock"
    lock.acquire = function() return lock.UNLOCKED end
    lock.renew = function(_, hold) return hold end
    return true
end

function M.rec(event)
    return function(id)
        ngx.log(ngx.WARN, "WMB ", event, " id=", tostring(id), " pid=", ngx.worker.pid(), " t=", hires())
    end
end

function M.info()
    local v = ngx.config.ngx_lua_version or 0
    ngx.say("ngx_lua=", string.format("%d.%d.%d", math.floor(v / 1000000), math.floor(v / 1000) % 1000, v % 1000))
    ngx.say("nginx_num=", tostring(ngx.config.nginx_version))
    ngx.say("luajit=", jit and jit.version or "none")
    local ok, base = pcall(require, "resty.core.base")
    ngx.say("resty_core=", ok and tostring(base.version) or "none")
    local okm, wm = pcall(require, "resty.worker.manager")
    ngx.say("module=", okm and tostring(wm._VERSION) or "none")
end

local PREFIX = "lua-resty-worker-manager:"

-- What one entry costs the slab allocator in lua-nginx-module's shdict:
-- rbtree node up to `color` (32) + ngx_http_lua_shdict_node_t up to `data`
-- (36) + key + value, rounded up to a power of two (slab sizes).
local function slab_size(key, value)
    local vlen
    local t = type(value)
    if t == "number" then vlen = 8
    elseif t == "boolean" then vlen = 1
    elseif t == "string" then vlen = #value
    else vlen = 0 end
    local n = 68 + #key + vlen
    local s = 8
    while s < n do s = s * 2 end
    return s
end

function M.shm_report(name)
    local d = ngx.shared[name]
    local cap, free = d:capacity(), d:free_space()
    local keys = d:get_keys(0)
    local n_mod, payload, slab = 0, 0, 0
    local names = {}
    for _, k in ipairs(keys) do
        -- (the lock itself and a takeover marker come and go: a heartbeat
        -- may hold the lock right now, a marker lives 30 s after a takeover)
        local transient = k == PREFIX .. "lock" or k:sub(1, #PREFIX + 14) == PREFIX .. "lock:takeover:"
        if k:sub(1, #PREFIX) == PREFIX and not transient then
            local v = d:get(k)
            if v ~= nil then
                n_mod = n_mod + 1
                slab = slab + slab_size(k, v)
                payload = payload + #k + (type(v) == "string" and #v or 8)
                names[#names + 1] = (k:sub(#PREFIX + 1):gsub("%d+", "N"))
            end
        end
    end
    table.sort(names)
    ngx.say("capacity=", cap, " free=", free, " used=", cap - free, " keys=", #keys,
            " module_keys=", n_mod, " slab_bytes=", slab, " payload_bytes=", payload)
    -- key shapes, for the report: "gN:beatN x2, ..."
    local shape, counts = {}, {}
    for _, s in ipairs(names) do
        if not counts[s] then shape[#shape + 1] = s end
        counts[s] = (counts[s] or 0) + 1
    end
    local parts = {}
    for _, s in ipairs(shape) do parts[#parts + 1] = s .. "x" .. counts[s] end
    ngx.say("shapes=", table.concat(parts, ","))
end

-- Heartbeat instrumentation (row 6). Called in init_by_lua before
-- resty.worker.manager is loaded, it (1) puts a proxy in front of the shm
-- dict that counts every method call, and (2) wraps ngx.timer.at and
-- ngx.timer.every so that every timer callback the module schedules (its
-- heartbeat) is timed. The module captures all of them when it loads, so
-- the real beats are measured, with whatever they do in the current src/
-- (a re-arm through ngx.timer.at included, and timed on its own too; an
-- ngx.timer.every timer is re-armed by nginx, outside the beat).
local RING = 20000
local ring_t, ring_us, ring_ops, ring_rearm, ring_kind, ring_n = {}, {}, {}, {}, {}, 0
local ops, rearm = 0, 0
-- shm name -> the dict behind instrument()'s proxy
local real_dicts = {}

-- beat_interval (optional): only the ngx.timer.every timers of that
-- interval count as beats; the module's other timers (the singletons'
-- watch, their starts and runs) are timed as "every" and "at" (see ticks()).
local beat_every

function M.instrument(shm, beat_interval)
    beat_every = beat_interval
    local real = ngx.shared[shm]
    real_dicts[shm] = real
    local proxy = setmetatable({}, { __index = function(t, method)
        local f = real[method]
        if type(f) ~= "function" then return f end
        local w = function(_, ...)
            ops = ops + 1
            return f(real, ...)
        end
        rawset(t, method, w)
        return w
    end })
    ngx.shared[shm] = proxy
    local at = ngx.timer.at
    local function timed(cb, kind)
        return function(premature, ...)
            if premature then
                return cb(premature, ...)
            end
            rearm = 0
            local o0, t0 = ops, mono()
            cb(premature, ...)
            local dt = mono() - t0
            ring_n = ring_n + 1
            local i = (ring_n - 1) % RING + 1
            ngx.update_time()
            ring_t[i], ring_us[i], ring_ops[i], ring_rearm[i] = ngx.now(), dt * 1e6, ops - o0, rearm * 1e6
            ring_kind[i] = kind
        end
    end
    ngx.timer.at = function(delay, cb, ...)  -- luacheck: ignore 122 (on purpose: see above)
        local t0 = mono()
        local ok, err = at(delay, timed(cb, "at"), ...)
        rearm = rearm + (mono() - t0)
        return ok, err
    end
    local every = ngx.timer.every
    M.real_every = every
    ngx.timer.every = function(delay, cb, ...)  -- luacheck: ignore 122 (on purpose: see above)
        local kind = (beat_every == nil or delay == beat_every) and "beat" or "every"
        return every(delay, timed(cb, kind), ...)
    end
end

-- A control for the heartbeat's time (row 6): a timer in the same worker,
-- at the same interval, doing work of the same kind and size as a beat (14
-- shm calls, keys made by concatenation) on keys of its own, so that it does
-- not depend on the module's state or on the number of generations. What the
-- worker process and the machine cost at the moment shows in both; what the
-- module's state costs shows only in the beat.
local ctl_t, ctl_us, ctl_n = {}, {}, 0

-- (the same four keys written in every worker and generation: row 5 reads
-- the shm's bytes in use, which keys of each worker would make grow)
local function control_work(d, pid)
    local base = "bench-control:"
    for i = 1, 10 do
        d:get(base .. "k" .. i)
    end
    d:set(base .. "k1", pid)
    d:set(base .. "k2", base)
    d:set(base .. "k3", pid, 60)
    d:incr(base .. "n", 1, 0)
end

function M.control(shm, interval)
    -- (not instrument()'s proxy: a beat waiting for the lock yields, and
    -- this timer's calls would be counted as the beat's)
    local d = real_dicts[shm] or ngx.shared[shm]
    local pid = ngx.worker.pid()
    -- (nor instrument()'s ngx.timer.every: its runs are no beats)
    local ok, err = (M.real_every or ngx.timer.every)(interval, function(premature)
        if premature then return end
        local t0 = mono()
        control_work(d, pid)
        local dt = mono() - t0
        ctl_n = ctl_n + 1
        local i = (ctl_n - 1) % RING + 1
        ngx.update_time()
        ctl_t[i], ctl_us[i] = ngx.now(), dt * 1e6
    end)
    if not ok then
        ngx.log(ngx.ERR, "bench control timer: ", err)
    end
end

-- Content handler: the beats of this worker since ?since= (wall clock);
-- ?kind=every: the module's other ngx.timer.every runs instead (the
-- singletons' watch, see instrument()).
function M.beats()
    local since = tonumber(ngx.var.arg_since) or 0
    local kind = ngx.var.arg_kind or "beat"
    local us, opsl, re = {}, {}, {}
    for i = 1, math.min(ring_n, RING) do
        if ring_t[i] >= since and (ring_kind[i] == kind or (kind == "beat" and ring_kind[i] == "at"
                                                            and beat_every == nil)) then
            us[#us + 1] = ring_us[i]
            opsl[#opsl + 1] = ring_ops[i]
            re[#re + 1] = ring_rearm[i]
        end
    end
    table.sort(us)
    table.sort(opsl)
    table.sort(re)
    local n = #us
    if n == 0 then
        ngx.say("n=0 pid=", ngx.worker.pid())
        return
    end
    local function med(a)
        return #a % 2 == 1 and a[(#a + 1) / 2] or (a[#a / 2] + a[#a / 2 + 1]) / 2
    end
    local ctl = {}
    for i = 1, math.min(ctl_n, RING) do
        if ctl_t[i] >= since then ctl[#ctl + 1] = ctl_us[i] end
    end
    table.sort(ctl)
    ngx.say(string.format("n=%d pid=%d us_median=%.3f us_max=%.3f us_min=%.3f ops_median=%g ops_min=%g ops_max=%g"
        .. " rearm_median=%.3f ctl_n=%d ctl_median=%.3f", n, ngx.worker.pid(), med(us), us[n], us[1], med(opsl),
        opsl[1], opsl[#opsl], med(re), #ctl, #ctl > 0 and med(ctl) or 0))
end

-- A singleton's start (t/bench/bench.pl row 7): logs
-- "WMB singleton_start name=<name> token=<token> pid=<pid> t=<...>".
function M.job_start(name, token)
    ngx.log(ngx.WARN, "WMB singleton_start name=", name, " token=", token, " pid=", ngx.worker.pid(), " t=", hires())
end

return M
