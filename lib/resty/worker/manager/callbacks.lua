-- Compiled from src/resty/worker/manager/callbacks.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- Running user callbacks: an error in one is logged with its traceback and
-- goes no further, so the lock is still released and the counts stay right.

local log = require("resty.worker.manager.log").log
local ERR = ngx.ERR
local traceback = debug.traceback
local running_thread = coroutine.running

local _M = {}

--- Stands for the main Lua thread (init, init_worker, exit_worker), where coroutine.running() is nil.
local MAIN_THREAD = "main"

--- The Lua thread a callback runs in, while it runs. A thread, not a depth
-- count: ngx.exit() in a callback run from a timer ends that timer's thread
-- for good, and a count would then stay up forever.
local callback_thread = nil

local function current_thread()
    return running_thread() or MAIN_THREAD
end

local function on_error(err)
    return traceback(tostring(err), 2)
end

--- Runs `cb` protected. `entering`, if given, is called right before the
-- callback itself: from then on the callback counts as run, even if this
-- process dies inside it.
local function run(name, cb, id, n_prev, n_mine, n_next, entering)
    if cb == nil then
        return
    end
    if entering ~= nil then
        entering()
    end
    callback_thread = current_thread()
    local ok, err = xpcall(cb, on_error, id, n_prev, n_mine, n_next)
    callback_thread = nil
    if not ok then
        log(ERR, name, " callback for ", id, " failed: ", err)
    end
end

--- True when the caller runs inside one of the module's callbacks (in this Lua thread).
local function inside()
    return callback_thread ~= nil and callback_thread == current_thread()
end

--- Runs a singleton's start, stop or fn (`what`) protected: an error is
-- logged with its traceback, the job's name, the worker and the token.
-- `kind`: "singleton" or "cluster singleton".
local function run_job(kind, what, name, worker, token, f, reason)
    local ok, err = xpcall(f, on_error, name, token, reason)
    if not ok then
        log(ERR, kind, " '", name, "' ", what, " failed in worker ", worker, " (token ", token, "): ", err)
    end
end

_M.run = run
_M.run_job = run_job
_M.inside = inside
_M.on_error = on_error

return _M
