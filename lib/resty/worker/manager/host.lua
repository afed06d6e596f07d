-- Compiled from src/resty/worker/manager/host.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The few things the module asks of the operating system and of nginx's
-- process model, kept in one place so nothing else touches FFI.

local ffi = require("ffi")
local log = require("resty.worker.manager.log").log
local WARN = ngx.WARN

local _M = {}

-- Each declaration on its own and protected: LuaJIT ignores a function or
-- variable declared again (even with another signature), but refuses a
-- struct defined again ("attempt to redefine"), and one failed cdef must not
-- cost the others.
pcall(ffi.cdef, "int usleep(unsigned int usec);")
pcall(ffi.cdef, "int kill(int pid, int sig);")
pcall(ffi.cdef, "int getppid(void);")
pcall(ffi.cdef, "int getsockopt(int sockfd, int level, int optname, void *optval, unsigned int *optlen);")
pcall(ffi.cdef, "long readlink(const char *path, char *buf, unsigned long bufsiz);")
pcall(ffi.cdef, "extern uintptr_t ngx_test_config;")
pcall(ffi.cdef, "extern int ngx_terminate;")
pcall(ffi.cdef, "void *ngx_http_lua_ffi_shdict_udata_to_zone(void *zone_udata);")
pcall(ffi.cdef, "uintptr_t ngx_shmtx_force_unlock(void *mtx, int pid);")
pcall(
    ffi.cdef,
    "typedef struct { volatile unsigned long *lock; volatile unsigned long *wait; uintptr_t semaphore; uintptr_t spare[8]; } "
        .. "resty_worker_manager_shmtx_t;"
)

local C = ffi.C
local ESRCH = 3

--- Linux's SOL_SOCKET and SO_ACCEPTCONN (x86 and ARM).
local SOL_SOCKET = 1
local SO_ACCEPTCONN = 30

--- "socket:[<inode>]" fits easily.
local LINK_SIZE = 64

--- Blocks the whole process for `seconds`. For init_by_lua, init_worker_by_lua
-- and exit_worker_by_lua, where ngx.sleep is disabled.
local function pause(seconds)
    C.usleep(math.floor(seconds * 1000000))
end

--- The whole text of a small file (under /proc, say), nil where it cannot be read.
local function read_file(path)
    local file = io.open(path, "r")
    if file == nil then
        return nil
    end
    local text = file:read("*a")
    file:close()
    return type(text) == "string" and text or nil
end

--- The state letter of a process from /proc (Linux), nil where unreadable.
local function proc_state(pid)
    local text = read_file("/proc/" .. tostring(pid) .. "/stat")
    if text == nil then
        return nil
    end
    local state = string.match(text, "^%d+ %b() (%a)")
    return state
end

--- The number `pattern` captures in file `path` (/proc), nil where unreadable.
local function number_in(path, pattern)
    local text = read_file(path)
    if text == nil then
        return nil
    end
    local digits = string.match(text, pattern)
    if digits == nil then
        return nil
    end
    return tonumber(digits)
end

--- The parent of process `pid` (/proc), nil where unreadable.
local function parent_of(pid)
    return number_in("/proc/" .. tostring(pid) .. "/stat", "^%d+ %b() %a (%d+)")
end

--- True when process `pid` is an nginx master (by the title nginx gives it), false where unreadable.
local function is_nginx_master(pid)
    local title = read_file("/proc/" .. tostring(pid) .. "/cmdline")
    return title ~= nil and { string.find(title, "^nginx: master process") } ~= nil
end

--- True in a worker whose master is the new binary of a binary upgrade in
-- progress (USR2): nginx forked it from the old master, which still runs.
local function upgrading_from_old_master()
    local grandparent = parent_of(C.getppid())
    return grandparent ~= nil and grandparent > 1 and is_nginx_master(grandparent)
end

--- False only when the pid certainly does not run (EPERM means it does).
local function pid_alive(pid)
    if C.kill(pid, 0) ~= 0 then
        return ffi.errno() ~= ESRCH
    end
    -- A dead child its parent has not reaped yet still answers kill(): the
    -- master cannot reap while it waits for the lock in init_by_lua.
    local state = proc_state(pid)
    return state ~= "Z" and state ~= "X"
end

--- The slab mutex's lock word of the zone behind `dict` (nil where the FFI does not reach it).
local function read_lock_word(dict)
    -- A lua_shared_dict is a table whose [1] is the zone's userdata; the
    -- zone starts { void *data; ngx_shm_t shm { u_char *addr; ... } }, and
    -- the slab pool at addr starts with its mutex's lock word.
    local udata = dict[1]
    -- Resolved here, where the caller's pcall turns the check off if nginx
    -- does not export it (indexing ffi.C raises then), not at first use.
    if type(C.ngx_shmtx_force_unlock) ~= "cdata" or udata == nil then
        return nil
    end
    local zone = C.ngx_http_lua_ffi_shdict_udata_to_zone(udata)
    -- (a NULL pointer cdata equals nil in LuaJIT; reading through it would crash)
    if zone == nil then
        return nil
    end
    local addr = ffi.cast("uintptr_t *", zone)[1]
    if addr == nil or tonumber(addr) == 0 then
        return nil
    end
    return ffi.cast("volatile unsigned long *", addr)
end

local lock_words = {}

--- Makes sure no dead process holds the mutex nginx takes inside every call on
-- `dict` (the zone's slab mutex), freeing it where one does. nginx frees it
-- itself when its master reaps the dead holder, but the master cannot reap
-- while it runs init_by_lua (nginx blocks SIGCHLD outside its main loop): a
-- shm call there would wait for a dead holder forever. Waits while a live
-- holder keeps it (for microseconds, normally).
local function free_dead_shm_mutex(dict)
    if ngx.worker.id() ~= nil then
        -- A worker's dead holder is reaped, and the mutex freed, by its
        -- master in its main loop: only the master itself needs this.
        return
    end
    local word = lock_words[dict]
    if word == nil then
        local ok, found = pcall(read_lock_word, dict)
        word = ok and found ~= nil and found or false
        lock_words[dict] = word
    end
    if word == false then
        return
    end
    while true do
        local holder = tonumber(word[0]) or 0
        if holder == 0 then
            return
        end
        if not pid_alive(holder) then
            local mtx = ffi.new("resty_worker_manager_shmtx_t")
            mtx.lock = word
            mtx.semaphore = 0
            -- Waiters sleeping on the zone's semaphore are woken by the next
            -- ordinary unlock, which our own next shm call makes.
            if C.ngx_shmtx_force_unlock(mtx, holder) ~= 0 then
                log(
                    WARN,
                    "the shm zone's mutex was held by dead process ",
                    holder,
                    " (killed inside a shm call); freed it"
                )
                return
            end
        else
            pause(0.0005)
        end
    end
end

--- How many descriptors this process's fd table has room for (Linux), nil where unknown.
local function fd_table_size()
    return number_in("/proc/self/status", "\nFDSize:%s*(%d+)")
end

--- The inode of the socket on descriptor `fd` if it listens (accepts connections), else nil.
local function listening_inode(fd)
    local flag = ffi.new("int[1]")
    local size = ffi.new("unsigned int[1]", 4)
    if C.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, flag, size) ~= 0 or flag[0] ~= 1 then
        return nil
    end
    local buf = ffi.new("char[?]", LINK_SIZE)
    local n = tonumber(C.readlink("/proc/self/fd/" .. tostring(fd), buf, LINK_SIZE)) or -1
    if n <= 0 then
        return nil
    end
    local inode = string.match(ffi.string(buf, n), "^socket:%[(%d+)%]$")
    return inode
end

local function read_terminate_flag()
    return tonumber(C.ngx_terminate) or 0
end

--- True once this process was told to terminate (a fast stop, or TERM sent
-- to it), also after it began a graceful exit; nil where nginx does not
-- export the flag.
local function terminating()
    local ok, flag = pcall(read_terminate_flag)
    if not ok then
        return nil
    end
    return flag ~= 0
end

local function read_test_flag()
    return tonumber(C.ngx_test_config) or 0
end

--- True in an `nginx -t` / `-T` process. lua-nginx-module 0.10.14 and later
-- do not run init_by_lua there at all; older ones do, with a private shm.
local function testing_config()
    local ok, flag = pcall(read_test_flag)
    return ok and flag ~= 0
end

--- ngx.process.type() where lua-resty-core provides it.
local function process_type()
    local ok, mod = pcall(require, "ngx.process")
    if ok and type(mod) == "table" then
        local kind = mod.type()
        return kind
    end
    -- Without resty.core only a worker has a worker id.
    return ngx.worker.id() ~= nil and "worker" or "unknown"
end

_M.pause = pause
_M.pid_alive = pid_alive
_M.free_dead_shm_mutex = free_dead_shm_mutex
_M.process_type = process_type
_M.testing_config = testing_config
_M.terminating = terminating
_M.read_file = read_file
_M.fd_table_size = fd_table_size
_M.listening_inode = listening_inode
_M.upgrading_from_old_master = upgrading_from_old_master

return _M
