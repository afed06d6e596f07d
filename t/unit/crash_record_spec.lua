-- resty.worker.manager.crash_record: the crash count and the last crash of
-- status(), stored small enough for the least entry nginx allocates.

local stub = require("helpers.ngx_stub")

local P = "lua-resty-worker-manager:"
-- nginx's node overhead per shm entry; key + value up to 60 bytes take 128
local NODE = 68

describe("crash_record", function()
    local env, dict, crash_record

    before_each(function()
        env = stub.install{ phase = "timer", now = 1795839718.142 }
        dict = env.dict
        crash_record = require("resty.worker.manager.crash_record")
    end)

    after_each(function()
        stub.uninstall()
    end)

    it("has no last crash and a count of 0 before any", function()
        assert.is_nil(crash_record.last(dict))
        assert.equal(0, crash_record.count(dict))
    end)

    for _, cause in ipairs{ "respawned", "crashed while starting", "its process is gone",
                            "no heartbeat for 15.5s", "no heartbeat for 1234.0s" } do
        it("gives back worker, slot, time and the cause '" .. cause .. "'", function()
            crash_record.note(dict, 12, 4194303, 7, cause, env.now())
            assert.same({ id = "12-4194303", pid = 4194303, slot = 7, at = env.now(), cause = cause },
                        crash_record.last(dict))
            assert.equal(1, crash_record.count(dict))
        end)
    end

    it("keeps the last of several, and counts them all", function()
        crash_record.note(dict, 1, 100, 0, "respawned", env.now())
        env.advance(2.5)
        crash_record.note(dict, 2, 200, 1, "its process is gone", env.now())
        assert.equal(2, crash_record.count(dict))
        assert.same({ id = "2-200", pid = 200, slot = 1, at = env.now(), cause = "its process is gone" },
                    crash_record.last(dict))
    end)

    it("stays within 128 bytes of slab up to generation 9999 and slot 99", function()
        crash_record.note(dict, 9999, 4194303, 99, "no heartbeat for 12345.6s", env.now())
        local value, flags = dict:get(P .. "crash")
        assert.equal(4194303, flags)
        assert.is_true(NODE + #(P .. "crash") + #value <= 128, value)
    end)
end)
