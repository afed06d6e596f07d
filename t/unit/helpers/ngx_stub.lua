-- A global `ngx` for unit tests of lib/resty/worker/manager/*.lua, plus a
-- stand-in for resty.worker.manager.host (which needs FFI and real pids).
--
--   local stub = require("helpers.ngx_stub")
--   local env = stub.install{ pid = 1001, phase = "init_worker" }
--   local lock = require("resty.worker.manager.lock")   -- loaded fresh
--   ...
--   stub.uninstall()
--
-- Clocks: `env.os_time` is the real (OS) clock, `env.cached` nginx's cached
-- clock that ngx.now() returns. As in nginx, the cached clock moves only on
-- ngx.update_time() or when the test moves it (env.advance). ngx.sleep
-- advances the OS clock and then refreshes the cached one (nginx's event loop
-- updates its time when the sleeping coroutine resumes); host.pause (usleep)
-- advances only the OS clock, so code that blocks must call
-- ngx.update_time() itself to see time pass.
--
-- ngx.sleep is refused in the phases where nginx disables it (init,
-- init_worker, exit_worker), like the real API.

local fake_dict = require("helpers.fake_dict")

local M = {}

local LEVELS = {
    STDERR = 0, EMERG = 1, ALERT = 2, CRIT = 3, ERR = 4,
    WARN = 5, NOTICE = 6, INFO = 7, DEBUG = 8,
}
M.LEVELS = LEVELS
M.LEVEL_NAMES = {}
for name, n in pairs(LEVELS) do
    M.LEVEL_NAMES[n] = name
end

local NO_SLEEP_PHASES = { init = true, init_worker = true, exit_worker = true }

-- Any wait loop that makes this many sleep/pause calls is taken as a runaway
-- (e.g. a loop that never refreshes the cached clock).
M.MAX_WAIT_CALLS = 200000

local saved_ngx
local installed = false

local function unload_modules()
    for name in pairs(package.loaded) do
        if name == "resty.worker.manager" or name:find("^resty%.worker%.manager%.") then
            package.loaded[name] = nil
        end
    end
end

local function log_arg(i, v)
    local t = type(v)
    if t == "nil" then
        return "nil"
    elseif t == "boolean" or t == "number" then
        return tostring(v)
    elseif t == "string" then
        return v
    end
    local mt = getmetatable(v)
    if t == "table" and mt and mt.__tostring then
        return tostring(v)
    end
    error("bad argument #" .. i .. " to 'log' (expected table to have __tostring metamethod)", 3)
end

--- Installs a fresh global `ngx` and the host stub, and forgets every loaded
-- resty.worker.manager module so the next require sees this environment.
-- opts: pid, worker_id, worker_count, phase, now (start time), capacity
-- (dict byte budget), shm (dict name, default "wm"), process_type.
function M.install(opts)
    opts = opts or {}
    if not installed then
        saved_ngx = rawget(_G, "ngx")
    end
    installed = true

    local env = {
        pid = opts.pid or 1001,
        worker_id = opts.worker_id,
        worker_count = opts.worker_count or 1,
        phase = opts.phase or "init_worker",
        process_type = opts.process_type or "worker",
        exiting = false,
        os_time = opts.now or 1700000000,
        logs = {},
        timers = {},
        timer_error = nil,
        sleeps = {},
        pauses = {},
        live_pids = {},
        fd_size = opts.fd_size,
        listening = {},
        pid_checks = {},
        wait_calls = 0,
    }
    env.cached = env.os_time
    env.live_pids[env.pid] = true

    local function ms(t)
        return math.floor(t * 1000 + 0.5) / 1000
    end

    local function count_wait()
        env.wait_calls = env.wait_calls + 1
        if env.wait_calls > M.MAX_WAIT_CALLS then
            error("runaway wait loop: " .. env.wait_calls .. " sleep/pause calls", 3)
        end
    end

    --- Moves both clocks forward (time passing while nothing runs).
    function env.advance(seconds)
        env.os_time = env.os_time + seconds
        env.cached = env.os_time
    end

    --- Moves only the OS clock; ngx.now() stays until ngx.update_time().
    function env.advance_os(seconds)
        env.os_time = env.os_time + seconds
    end

    function env.now()
        return ms(env.cached)
    end

    --- Log entries at `level` (a number or a name like "ERR") whose message
    -- contains `needle` (plain text) if given.
    function env.logs_at(level, needle)
        if type(level) == "string" then
            level = LEVELS[level]
        end
        local out = {}
        for _, entry in ipairs(env.logs) do
            if (level == nil or entry.level == level)
               and (needle == nil or entry.msg:find(needle, 1, true)) then
                out[#out + 1] = entry.msg
            end
        end
        return out
    end

    function env.dump_logs()
        local lines = {}
        for _, entry in ipairs(env.logs) do
            lines[#lines + 1] = (M.LEVEL_NAMES[entry.level] or "?") .. ": " .. entry.msg
        end
        return table.concat(lines, "\n")
    end

    local ngx = {}
    for name, n in pairs(LEVELS) do
        ngx[name] = n
    end
    ngx.OK = 0
    ngx.ERROR = -1

    function ngx.log(level, ...)
        if type(level) ~= "number" or level < 0 or level > 8 then
            error("bad argument #1 to 'log' (bad log level)", 2)
        end
        local parts = {}
        for i = 1, select("#", ...) do
            parts[i] = log_arg(i + 1, (select(i, ...)))
        end
        env.logs[#env.logs + 1] = { level = level, msg = table.concat(parts) }
    end

    function ngx.now()
        return ms(env.cached)
    end

    function ngx.time()
        return math.floor(env.cached)
    end

    function ngx.update_time()
        env.cached = env.os_time
    end

    function ngx.get_phase()
        return env.phase
    end

    function ngx.sleep(seconds)
        if NO_SLEEP_PHASES[env.phase] then
            error("API disabled in the context of " .. env.phase, 2)
        end
        assert(type(seconds) == "number" and seconds >= 0, "bad sleep time")
        count_wait()
        env.sleeps[#env.sleeps + 1] = seconds
        env.os_time = env.os_time + seconds
        env.cached = env.os_time
        -- what the test lets happen meanwhile (another process's doing)
        if env.on_sleep then
            env.on_sleep(seconds)
        end
    end

    ngx.worker = {
        pid = function() return env.pid end,
        id = function() return env.worker_id end,
        count = function() return env.worker_count end,
        exiting = function() return env.exiting end,
    }

    ngx.timer = {
        at = function(delay, callback, ...)
            assert(type(delay) == "number" and delay >= 0, "bad delay")
            assert(type(callback) == "function", "bad callback")
            if env.timer_error then
                return nil, env.timer_error
            end
            env.timers[#env.timers + 1] = { delay = delay, callback = callback, args = { ... } }
            return true
        end,
    }

    ngx.config = { subsystem = "http", ngx_lua_version = 10026, debug = false }

    env.dict = fake_dict.new{ capacity = opts.capacity, clock = ngx.now }
    ngx.shared = { [opts.shm or "wm"] = env.dict }

    env.host = {
        pause = function(seconds)
            assert(type(seconds) == "number" and seconds >= 0, "bad pause time")
            count_wait()
            env.pauses[#env.pauses + 1] = seconds
            env.os_time = env.os_time + seconds
        end,
        pid_alive = function(pid)
            env.pid_checks[#env.pid_checks + 1] = pid
            return env.live_pids[pid] == true
        end,
        process_type = function()
            return env.process_type
        end,
        -- this process's fd table: env.fd_size slots, env.listening[fd] = inode
        fd_table_size = function()
            return env.fd_size
        end,
        read_file = function(path)
            local file = io.open(path, "r")
            if file == nil then
                return nil
            end
            local text = file:read("*a")
            file:close()
            return text
        end,
        listening_inode = function(fd)
            return env.listening[fd]
        end,
        -- this worker's master is the new binary of an upgrade in progress
        upgrading_from_old_master = function()
            return env.upgrading == true
        end,
        -- the fake dict has no slab mutex; counted, for the specs that care
        free_dead_shm_mutex = function(_dict)
            env.mutex_checks = (env.mutex_checks or 0) + 1
        end,
    }

    env.ngx = ngx
    _G.ngx = ngx
    unload_modules()
    package.loaded["resty.worker.manager.host"] = env.host
    M.env = env
    return env
end

--- Restores the previous global `ngx` and forgets the loaded modules.
function M.uninstall()
    unload_modules()
    if installed then
        _G.ngx = saved_ngx
    end
    installed = false
    M.env = nil
end

return M
