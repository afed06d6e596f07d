-- Test helper for the resty.worker.manager suites (t/*.t).
--
-- rec(event [, opts]) returns a callback function(id, n_prev, n_mine, n_next)
-- that logs, at ngx.WARN:
--
--   WMCB-ENTER <event> id=<id> pid=<pid> t=<hires>
--   WMCB <event> id=<id> prev=<n_prev> mine=<n_mine> next=<n_next> pid=<pid> slot=<ngx.worker.id()> count=<ngx.worker.count()> t=<ngx.now()> ... reason=<exit_reason()>
--   WMCB-LEAVE <event> id=<id> pid=<pid> t=<hires>
--
-- Every value goes through tostring(), so nil prints "nil".
-- opts (all optional):
--   slow  = ms      busy-wait that long (blocking, FFI poll) between WMCB and LEAVE
--   raise = msg     raise error(msg) after logging LEAVE
--   when  = function(id, n_prev, n_mine, n_next) -> bool
--                   apply slow/raise only when it returns true
--   tag   = string  appended as " tag=<tag>" to the WMCB line
--   set   = key     (when active) set key in the wm_test shm to this pid
--                   right after the WMCB line, before slow
--   wait_for = key  (when active) block until key exists in the wm_test shm
--                   (at most wait_max ms, default 15000), before slow; logs
--                   "WMCB-WAITED <event> id=<id> key=<key> ok=<bool>"
--   before = function(id, n_prev, n_mine, n_next)
--                   (when active) run after set/wait_for, before slow
-- set/wait_for/once/flag/wait_flag need `lua_shared_dict wm_test ...;` in http{}.

local ffi = require "ffi"

local M = {}

-- LuaJIT ignores a C function declared again (see host.ts); a struct
-- defined again fails, hence pcall.
pcall(ffi.cdef, [[
struct pollfd;
int poll(struct pollfd *fds, unsigned long nfds, int timeout);
]])
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_usec; } wm_test_timeval_t;
int gettimeofday(wm_test_timeval_t *tv, void *tz);
]])

local tv_ok, tv = pcall(ffi.new, "wm_test_timeval_t")

-- wall-clock seconds with microseconds (falls back to ngx.now(), ms)
local function hires()
    if tv_ok and ffi.C.gettimeofday(tv, nil) == 0 then
        return string.format("%d.%06d", tonumber(tv.tv_sec), tonumber(tv.tv_usec))
    end
    ngx.update_time()
    return string.format("%.3f", ngx.now())
end
M.hires = hires

-- block the whole process for ms milliseconds (no yielding; works in every phase)
local function busy_sleep(ms)
    ngx.update_time()
    local deadline = ngx.now() + ms / 1000
    while true do
        local left = deadline - ngx.now()
        if left <= 0 then break end
        ffi.C.poll(nil, 0, math.max(1, math.floor(left * 1000)))
        ngx.update_time()
    end
end
M.busy_sleep = busy_sleep

local function slot()
    local ok, id = pcall(ngx.worker.id)
    if ok then return tostring(id) end
    return "nil"
end

local function count()
    local ok, c = pcall(ngx.worker.count)
    if ok then return tostring(c) end
    return "nil"
end

-- the module's exit_reason() in this process ("nil" outside an exit, or
-- where the module is not loaded)
local function reason()
    local ok, wm = pcall(require, "resty.worker.manager")
    if ok and type(wm) == "table" and type(wm.exit_reason) == "function" then
        return tostring(wm.exit_reason())
    end
    return "nil"
end

-- The hooks every recorder offers: opts.when(...) decides whether the
-- others act (true when absent); opts.set raises a flag. Whether they act.
local function acts(opts, ...)
    local active = true
    if opts.when then
        active = opts.when(...) and true or false
    end
    if active and opts.set then
        M.flag(opts.set)
    end
    return active
end

function M.rec(event, opts)
    opts = opts or {}
    return function(id, n_prev, n_mine, n_next)
        local pid = tostring(ngx.worker.pid())
        ngx.log(ngx.WARN, "WMCB-ENTER ", event, " id=", tostring(id),
                " pid=", pid, " t=", hires())
        ngx.update_time()
        ngx.log(ngx.WARN, "WMCB ", event,
                " id=", tostring(id),
                " prev=", tostring(n_prev),
                " mine=", tostring(n_mine),
                " next=", tostring(n_next),
                " pid=", pid,
                " slot=", slot(),
                " count=", count(),
                " t=", string.format("%.3f", ngx.now()),
                " nargs=", tostring(select("#", id, n_prev, n_mine, n_next)),
                " types=", type(id), ",", type(n_prev), ",", type(n_mine), ",", type(n_next),
                " reason=", reason(),
                opts.tag and (" tag=" .. tostring(opts.tag)) or "")
        local active = acts(opts, id, n_prev, n_mine, n_next)
        if active and opts.wait_for then
            local ok = M.wait_flag(opts.wait_for, opts.wait_max)
            ngx.log(ngx.WARN, "WMCB-WAITED ", event, " id=", tostring(id),
                    " key=", opts.wait_for, " ok=", tostring(ok))
        end
        if active and opts.before then
            opts.before(id, n_prev, n_mine, n_next)
        end
        if active and opts.slow then
            busy_sleep(opts.slow)
        end
        ngx.log(ngx.WARN, "WMCB-LEAVE ", event, " id=", tostring(id),
                " pid=", pid, " t=", hires())
        if active and opts.raise then
            error(opts.raise)
        end
    end
end

-- The test's own shm (`lua_shared_dict wm_test ...;`), nil without it.
local function test_dict()
    return ngx.shared.wm_test
end

-- once(key): a `when` function true for the first call on the node only
-- (across all processes; needs the wm_test shm).
function M.once(key)
    return function()
        local d = test_dict()
        return d ~= nil and d:add("once:" .. key, ngx.worker.pid()) and true or false
    end
end

-- flag(key): set key in the wm_test shm (value: this pid).
function M.flag(key)
    local d = test_dict()
    if d then d:set(key, ngx.worker.pid()) end
end

-- wait_flag(key [, max_ms]): block (no yield) until key exists in the wm_test
-- shm; true when it does, false after max_ms (default 15000).
-- wait_until(fn [, max_ms]): block (no yield) until fn() is true; false
-- after max_ms (default 15000).
function M.wait_until(fn, max_ms)
    ngx.update_time()
    local deadline = ngx.now() + (max_ms or 15000) / 1000
    while not fn() do
        ngx.update_time()
        if ngx.now() >= deadline then return false end
        ffi.C.poll(nil, 0, 5)
    end
    return true
end

function M.wait_flag(key, max_ms)
    local d = test_dict()
    if not d then return false end
    return M.wait_until(function() return d:get(key) ~= nil end, max_ms)
end

pcall(ffi.cdef, "int kill(int pid, int sig);")

-- pid_gone(pid): true when no process pid exists (kill(pid, 0) fails ESRCH;
-- a zombie not yet reaped still exists).
function M.pid_gone(pid)
    pid = tonumber(pid)
    if not pid then return false end
    return ffi.C.kill(pid, 0) ~= 0 and ffi.errno() == 3
end

-- Convenience: the four standard recorders.
function M.all(opts)
    opts = opts or {}
    return {
        master_start = M.rec("master_start", opts.master_start),
        master_exit  = M.rec("master_exit", opts.master_exit),
        worker_start = M.rec("worker_start", opts.worker_start),
        worker_exit  = M.rec("worker_exit", opts.worker_exit),
    }
end

-- wrap(event, cb): a recorder (rec) that calls cb(id, n_prev, n_mine, n_next)
-- between its WMCB and LEAVE lines; cb's error is re-raised after LEAVE.
function M.wrap(event, cb)
    if cb == nil then return M.rec(event) end
    local err
    local r = M.rec(event, { before = function(...)
        local ok, e = pcall(cb, ...)
        if not ok then err = e end
    end })
    return function(...)
        err = nil
        r(...)
        if err ~= nil then error(err, 0) end
    end
end

-- instrument(): from then on (call it in init_by_lua* before the module's
-- on_*_by_lua calls), every callback given to resty.worker.manager is
-- wrapped in a recorder, so a conf written for people (nginx/example.conf)
-- logs the WMCB lines the invariant checker reads.  Idempotent.
function M.instrument()
    local wm = require "resty.worker.manager"
    if wm.__wm_test_instrumented then return wm end
    local on_init, on_init_worker = wm.on_init_by_lua, wm.on_init_worker_by_lua
    wm.on_init_by_lua = function(opts, ms, me)
        if type(opts) == "table" and type(opts.on_crash) == "function" then
            local o = {}
            for k, v in pairs(opts) do o[k] = v end
            o.on_crash = M.wrap("crash", opts.on_crash)
            opts = o
        end
        return on_init(opts, M.wrap("master_start", ms), M.wrap("master_exit", me))
    end
    wm.on_init_worker_by_lua = function(ws, we)
        return on_init_worker(M.wrap("worker_start", ws), M.wrap("worker_exit", we))
    end
    wm.__wm_test_instrumented = true
    return wm
end

-- Singletons. sj(kind, opts) returns a function(name, token [, reason])
-- for manager.singleton()'s start or stop (kind "start", "stop") or
-- manager.every()'s fn (kind "fn") that logs, at ngx.WARN:
--
--   WMSJ-ENTER <kind> name=<name> token=<token> pid=<pid> phase=<phase> reason=<reason> held=<holds()> t=<hires>
--   WMSJ-LEAVE <kind> name=<name> token=<token> pid=<pid> t=<hires>
--
-- opts (all optional, each applied only when `when(kind, name, token,
-- reason)` is true, if given):
--   sleep = s       ngx.sleep(s) between ENTER and LEAVE where the phase yields
--   slow  = ms      busy-wait that long (blocking) between ENTER and LEAVE
--   set   = key     set key in the wm_test shm right after ENTER
--   raise = msg     raise error(msg) after LEAVE
-- job(opts) returns { start = sj("start", opts.start), stop = sj("stop", opts.stop) }.
local function yieldable()
    local phase = ngx.get_phase()
    return phase == "timer" or phase == "content" or phase == "access" or phase == "rewrite"
end

function M.sj(kind, opts)
    opts = opts or {}
    return function(name, token, why)
        local pid = tostring(ngx.worker.pid())
        local held, held_token = require("resty.worker.manager").holds(name)
        ngx.log(ngx.WARN, "WMSJ-ENTER ", kind, " name=", tostring(name), " token=", tostring(token),
                " pid=", pid, " phase=", ngx.get_phase(), " reason=", tostring(why),
                " held=", tostring(held), ":", tostring(held_token),
                opts.scope and " scope=" .. opts.scope or "", " t=", hires())
        local active = acts(opts, kind, name, token, why)
        if active and opts.sleep and yieldable() then
            ngx.sleep(opts.sleep)
        end
        if active and opts.slow then
            busy_sleep(opts.slow)
        end
        ngx.log(ngx.WARN, "WMSJ-LEAVE ", kind, " name=", tostring(name), " token=", tostring(token),
                " pid=", pid, opts.scope and " scope=" .. opts.scope or "", " t=", hires())
        if active and opts.raise then
            error(opts.raise)
        end
    end
end

-- fleet(kind[, opts]) returns an on_join / on_leave callback that logs
--   WMFLEET <kind> node=<node> n=<n_nodes> reason=<reason> pid=<pid> phase=<phase> t=<time>
-- opts.sleep: seconds to sleep in it (timers only); opts.raise: error after logging.
function M.fleet(kind, opts)
    opts = opts or {}
    return function(...)
        local node, n, why = ...
        ngx.log(ngx.WARN, "WMFLEET ", kind, " node=", tostring(node), " n=", tostring(n),
                " reason=", tostring(why), " nargs=", select("#", ...),
                " pid=", ngx.worker.pid(), " phase=", ngx.get_phase(), " t=", hires())
        if opts.sleep and yieldable() then
            ngx.sleep(opts.sleep)
        end
        if opts.raise then
            error(opts.raise)
        end
    end
end

function M.job(opts)
    opts = opts or {}
    return { start = M.sj("start", opts.start), stop = M.sj("stop", opts.stop) }
end

-- pcall fn(...) and log the outcome as one line:
--   WMVAL <name> ok=<true|false> msg=<message with newlines escaped>
function M.check(name, fn, ...)
    local ok, err = pcall(fn, ...)
    local msg = tostring(err):gsub("\n", "\\n")
    ngx.log(ngx.WARN, "WMVAL ", name, " ok=", tostring(ok), " msg=", msg)
    return ok, err
end

-- Returns the module's keys in the shm as a sorted list.
function M.shm_keys(name)
    local dict = ngx.shared[name]
    local keys = dict:get_keys(0)
    table.sort(keys)
    return keys
end

return M
