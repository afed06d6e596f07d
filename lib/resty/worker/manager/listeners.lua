-- Compiled from src/resty/worker/manager/listeners.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The node's listening sockets: what a worker can see of whether nginx's
-- master goes on running a configuration. A worker cannot tell who told it
-- to quit, the master (a stop, WINCH) or an operator's signal sent to it
-- (nginx then respawns it): both set the same flag. But a master told to
-- stop gracefully closes its copies of the listening sockets right after it
-- tells its workers to quit (ngx_master_process_cycle), and a master that
-- goes on keeps them, so once this worker closed its own (nginx does that
-- first thing on a graceful exit) the sockets vanish from the kernel's
-- tables exactly when the node stops. A fast stop (TERM) gives no such sign:
-- the master keeps its sockets until it exits.
--
-- Each socket is known by its inode, recorded while a worker still holds it.
-- Linux only (/proc); elsewhere nothing is known.

local host = require("resty.worker.manager.host")
local fd_table_size = host.fd_table_size
local listening_inode = host.listening_inode
local read_file = host.read_file

local _M = {}

local TCP_TABLE = "/proc/self/net/tcp"
local TCP6_TABLE = "/proc/self/net/tcp6"
local UNIX_TABLE = "/proc/self/net/unix"

--- A TCP socket in the LISTEN state (include/net/tcp_states.h).
local TCP_LISTEN = "0A"

--- __SO_ACCEPTCON in a unix socket's flags: it listens.
local UNIX_ACCEPTING = 65536

--- The inodes of the listening sockets this process holds, as "ino ino ..."; nil when none is seen.
local function held()
    local size = fd_table_size()
    if size == nil then
        return nil
    end
    local found = {}
    for fd = 0, size - 1 do
        local inode = listening_inode(fd)
        if inode ~= nil then
            found[#found + 1] = inode
        end
    end
    return #found > 0 and table.concat(found, " ") or nil
end

--- The line of `text` around position `at`.
local function line_at(text, at)
    local first = at
    while first > 1 and string.sub(text, first - 1, first - 1) ~= "\n" do
        first = first - 1
    end
    local last = string.find(text, "\n", at, true)
    return string.sub(text, first, last ~= nil and last - 1 or -1)
end

--- Whether the line of a tcp table is socket `inode` in the LISTEN state.
local function tcp_listens(line, inode)
    -- sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    local st, ino = string.match(line, "^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)")
    return ino == inode and st == TCP_LISTEN
end

--- Whether the line of the unix table is socket `inode`, listening.
local function unix_listens(line, inode)
    -- Num RefCount Protocol Flags Type St Inode Path
    local flags, ino = string.match(line, "^%x+:%s+%x+%s+%x+%s+(%x+)%s+%x+%s+%x+%s+(%d+)")
    return ino == inode and math.floor((tonumber(flags, 16) or 0) / UNIX_ACCEPTING) % 2 == 1
end

local function listed(text, inode, listens)
    local from = 1
    while true do
        local at = string.find(text, " " .. inode, from, true)
        if at == nil then
            return false
        end
        if listens(line_at(text, at), inode) then
            return true
        end
        from = at + 1
    end
end

--- Whether one of `inodes` listens in the kernel table at `path`; nil when it cannot be read.
local function listens_in(path, inodes, listens)
    local text = read_file(path)
    if text == nil then
        return nil
    end
    for _, inode in ipairs(inodes) do
        if listed(text, inode, listens) then
            return true
        end
    end
    return false
end

--- Whether any of the sockets `inodes` (as `held` gives them) still listens,
-- whoever holds it: true or false, nil when the kernel's tables cannot be read.
local function open_anywhere(inodes)
    local wanted = {}
    for inode in string.gmatch(inodes, "(%d+)") do
        wanted[#wanted + 1] = inode
    end
    local tcp = listens_in(TCP_TABLE, wanted, tcp_listens)
    if tcp == true then
        return true
    end
    local tcp6 = listens_in(TCP6_TABLE, wanted, tcp_listens)
    if tcp6 == true then
        return true
    end
    local unix = listens_in(UNIX_TABLE, wanted, unix_listens)
    if unix == true then
        return true
    end
    if tcp == nil and tcp6 == nil and unix == nil then
        return nil
    end
    return false
end

_M.held = held
_M.open_anywhere = open_anywhere

return _M
