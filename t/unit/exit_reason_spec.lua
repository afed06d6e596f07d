-- resty.worker.manager.exit_reason: why a worker exits. A newer generation
-- means a reload; without one, a graceful exit waits for the node's
-- listening sockets to close (nginx's master closes them when told to stop)
-- and counts as a replacement of the worker while they stay open; a fast
-- exit, unknown sockets and the new binary of an upgrade count as a stop
-- that is only assumed.

local stub = require("helpers.ngx_stub")

local LISTEN = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %s 1 0 100 0 0 10 0\n"

describe("exit_reason", function()
    local env, dict, registry, reasons, real_open, tcp, beats

    before_each(function()
        env = stub.install{ phase = "timer", now = 1000 }
        dict = env.dict
        registry = require("resty.worker.manager.registry")
        reasons = require("resty.worker.manager.exit_reason")
        tcp = "  sl  local_address rem_address   st\n" .. LISTEN:format("4242")
        real_open = io.open
        io.open = function(path, mode)
            local text = ({ ["/proc/self/net/tcp"] = tcp, ["/proc/self/net/tcp6"] = "",
                            ["/proc/self/net/unix"] = "" })[path]
            if text == nil then
                return real_open(path, mode)
            end
            return { read = function(_, _) return text end, close = function(_) end }
        end
        beats = 0
    end)

    after_each(function()
        io.open = real_open
        stub.uninstall()
    end)

    local function generation()
        local g = registry.begin_generation(dict, env.now())
        registry.note_listeners(dict, g, "4242")
        return g
    end

    local function find(g, newest, graceful, can_yield, limit)
        return { reasons.find(dict, g, newest, graceful, can_yield, limit or 5, function() beats = beats + 1 end) }
    end

    it("is a reload while a newer generation exists", function()
        local g = generation()
        assert.same({ "reload", true }, find(g, g + 1, true, true))
        assert.equal(0, #env.sleeps)
    end)

    it("is a known stop once the sockets closed, waiting for that", function()
        local g = generation()
        local sleeps = 0
        env.on_sleep = function()
            sleeps = sleeps + 1
            if sleeps == 3 then tcp = "" end
        end
        assert.same({ "stop", true }, find(g, g, true, true))
        assert.equal(3, #env.sleeps)
        assert.equal(3, beats, "it beats while it waits")
    end)

    it("is a replacement when the sockets stay open for `limit` seconds", function()
        local g = generation()
        assert.same({ "replace", true }, find(g, g, true, true, 2))
        assert.is_true(env.now() - 1000 >= 2)
    end)

    it("blocks instead of yielding where Lua cannot yield (the exit hook)", function()
        local g = generation()
        assert.same({ "replace", true }, find(g, g, true, false, 0.5))
        assert.equal(0, #env.sleeps)
        assert.is_true(#env.pauses > 0)
    end)

    it("is a stop, only assumed, on a fast exit, with unknown sockets, or in an upgrade's new binary", function()
        local g = generation()
        assert.same({ "stop", false }, find(g, g, false, false))
        local h = registry.begin_generation(dict, env.now())
        assert.same({ "stop", false }, find(h, h, true, true))
        env.upgrading = true
        assert.same({ "stop", false }, find(g, g, true, true))
        assert.equal(0, #env.sleeps)
    end)

    it("agrees with the n_next read later under the lock", function()
        assert.same({ "reload", true }, { reasons.agree("replace", true, 0) })
        assert.same({ "reload", true }, { reasons.agree("stop", false, 3) })
        assert.same({ "stop", false }, { reasons.agree("reload", true, nil) })
        assert.same({ "replace", true }, { reasons.agree("replace", true, nil) })
    end)

    it("says whether the sockets are closed now, nil when unknown", function()
        local g = generation()
        assert.is_false(reasons.closed_now(dict, g))
        tcp = ""
        assert.is_true(reasons.closed_now(dict, g))
        assert.is_nil(reasons.closed_now(dict, g + 7))
    end)
end)
