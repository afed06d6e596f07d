-- resty.worker.manager.holding: who holds which singleton, in the shm.
-- Tokens, registration by generation, releases, tombstones, and what a
-- dropped worker loses.

local stub = require("helpers.ngx_stub")

describe("holding", function()
    local env, dict, holding

    before_each(function()
        env = stub.install{ phase = "timer", now = 1000 }
        dict = env.dict
        holding = require("resty.worker.manager.holding")
    end)

    after_each(function()
        stub.uninstall()
    end)

    local function worker(pid, gen, slot)
        return { pid = pid, gen = gen or 1, slot = slot or 0 }
    end

    it("hands out tokens that only grow, 1 first", function()
        assert.equal(0, holding.last_token(dict, "job"))
        assert.equal(1, holding.claim(dict, "job", worker(101), 1000))
        assert.is_true(holding.release(dict, "job", 101, 1, 1001, false))
        assert.equal(2, holding.claim(dict, "job", worker(102), 1002))
        assert.equal(2, holding.last_token(dict, "job"))
        -- another name counts on its own
        assert.equal(1, holding.claim(dict, "other", worker(101), 1003))
    end)

    it("records the holder: pid, generation, slot, token, since", function()
        holding.claim(dict, "job", worker(101, 3, 2), 1000.25)
        local h = holding.holder(dict, "job")
        assert.same({ pid = 101, gen = 3, slot = 2, token = 1, since = 1000.25, stopped = false }, h)
    end)

    it("releases only the holding it is asked for", function()
        holding.claim(dict, "job", worker(101), 1000)
        assert.is_false(holding.release(dict, "job", 102, 1, 1001, false), "another pid")
        assert.is_false(holding.release(dict, "job", 101, 2, 1001, false), "another token")
        assert.is_not_nil(holding.holder(dict, "job"))
        assert.is_true(holding.release(dict, "job", 101, 1, 1001, false))
        assert.is_nil(holding.holder(dict, "job"))
    end)

    it("moves the epoch when a holding ends, not when one begins", function()
        local e0 = holding.epoch(dict)
        holding.claim(dict, "job", worker(101), 1000)
        assert.equal(e0, holding.epoch(dict))
        holding.release(dict, "job", 101, 1, 1001, false)
        assert.equal(e0 + 1, holding.epoch(dict))
    end)

    it("leaves a tombstone when the node stops, which a later release does not lift", function()
        holding.claim(dict, "job", worker(101), 1000)
        assert.is_true(holding.release(dict, "job", 101, 1, 1005, true))
        local h = holding.holder(dict, "job")
        assert.is_true(h.stopped)
        assert.equal(1005, h.since)
        assert.is_false(holding.release(dict, "job", 101, 1, 1006, false))
        assert.is_true(holding.holder(dict, "job").stopped)
    end)

    it("registers names once, and says when a newer generation takes a name over", function()
        assert.is_true(holding.register(dict, "job", 1), "new to the node")
        assert.is_false(holding.register(dict, "job", 1), "the same generation again")
        assert.is_true(holding.register(dict, "job", 2), "a newer generation")
        assert.is_false(holding.register(dict, "job", 1), "an older one changes nothing")
        assert.equal(2, holding.registered_by(dict, "job"))
        holding.register(dict, "b", 2)
        holding.register(dict, "a", 2)
        assert.same({ "job", "b", "a" }, holding.names(dict))
    end)

    it("keeps names that share a prefix apart", function()
        holding.register(dict, "job", 1)
        holding.register(dict, "jo", 1)
        holding.register(dict, "job:token", 1)
        assert.same({ "job", "jo", "job:token" }, holding.names(dict))
        holding.claim(dict, "job", worker(101), 1000)
        assert.is_nil(holding.holder(dict, "job:token"))
        assert.equal(0, holding.last_token(dict, "job:token"))
    end)

    it("frees every name a dropped worker holds, and no other", function()
        for _, name in ipairs({ "a", "b", "c" }) do
            holding.register(dict, name, 1)
        end
        holding.claim(dict, "a", worker(101), 1000)
        holding.claim(dict, "b", worker(102), 1000)
        holding.claim(dict, "c", worker(101), 1000)
        local e0 = holding.epoch(dict)
        local freed = holding.release_worker(dict, 101)
        assert.same({ { name = "a", token = 1 }, { name = "c", token = 1 } }, freed)
        assert.is_nil(holding.holder(dict, "a"))
        assert.equal(102, holding.holder(dict, "b").pid)
        assert.equal(e0 + 1, holding.epoch(dict))
        assert.same({}, holding.release_worker(dict, 101), "nothing left to free")
        assert.equal(e0 + 1, holding.epoch(dict), "and no epoch move for nothing")
    end)

    it("does not free a tombstone for a dropped worker", function()
        holding.register(dict, "a", 1)
        holding.claim(dict, "a", worker(101), 1000)
        holding.release(dict, "a", 101, 1, 1001, true)
        assert.same({}, holding.release_worker(dict, 101))
        assert.is_true(holding.holder(dict, "a").stopped)
    end)
end)
