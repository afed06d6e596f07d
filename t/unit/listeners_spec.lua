-- resty.worker.manager.listeners: the node's listening sockets, recorded by
-- inode while a worker holds them and looked up in the kernel's tables
-- (/proc/self/net/tcp, tcp6, unix) when the module must know whether
-- nginx's master still keeps them.

local stub = require("helpers.ngx_stub")

-- Real lines from Linux 6.1's tables (a listener on 127.0.0.1:8080, inode
-- 4242; an established connection, inode 4243; a listening unix socket,
-- inode 5151; a connected one, inode 5152).
local TCP = [[
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000    65534        0 4243 1 0000000000000000 20 4 30 10 -1
]]
local TCP6 = [[
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
]]
local UNIX = [[
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01  5151 /run/nginx.sock
0000000000000000: 00000003 00000000 00000000 0001 03  5152
]]

describe("listeners", function()
    local env, listeners, tables, real_open

    before_each(function()
        env = stub.install{ phase = "init_worker", fd_size = 8 }
        listeners = require("resty.worker.manager.listeners")
        tables = { ["/proc/self/net/tcp"] = TCP, ["/proc/self/net/tcp6"] = TCP6, ["/proc/self/net/unix"] = UNIX }
        real_open = io.open
        io.open = function(path, mode)
            local text = tables[path]
            if text == nil then
                return real_open(path, mode)
            end
            return { read = function(_, _) return text end, close = function(_) end }
        end
    end)

    after_each(function()
        io.open = real_open
        stub.uninstall()
    end)

    it("records the inodes of the listening sockets on this process's descriptors", function()
        env.listening[3] = "4242"
        env.listening[6] = "5151"
        assert.equal("4242 5151", listeners.held())
    end)

    it("records nothing where no descriptor listens, or the fd table is unknown", function()
        assert.is_nil(listeners.held())
        env.fd_size = nil
        env.listening[3] = "4242"
        assert.is_nil(listeners.held())
    end)

    it("finds a tcp or unix socket that still listens", function()
        assert.is_true(listeners.open_anywhere("4242"))
        assert.is_true(listeners.open_anywhere("9 5151"))
    end)

    it("does not take a connection, a connected unix socket or a longer inode for a listener", function()
        assert.is_false(listeners.open_anywhere("4243"))
        assert.is_false(listeners.open_anywhere("5152"))
        assert.is_false(listeners.open_anywhere("424"))
        assert.is_false(listeners.open_anywhere("42"))
    end)

    it("says a socket closed everywhere once it is gone from the tables", function()
        tables["/proc/self/net/tcp"] = TCP:gsub("\n   0:[^\n]*", "")
        assert.is_false(listeners.open_anywhere("4242"))
    end)

    it("knows nothing when the tables cannot be read", function()
        tables = { ["/proc/self/net/tcp"] = false }
        io.open = function() return nil, "No such file or directory" end
        assert.is_nil(listeners.open_anywhere("4242"))
    end)
end)
