-- The test doubles themselves: the registry and lock specs are only as good
-- as the fake shdict's resemblance to ngx.shared.DICT.

local stub = require("helpers.ngx_stub")
local fake_dict = require("helpers.fake_dict")

describe("fake shared dict", function()
    local env, dict

    before_each(function()
        env = stub.install{ now = 1000 }
        dict = env.dict
    end)

    after_each(function()
        stub.uninstall()
    end)

    it("fails loudly when a method is called with . instead of :", function()
        for _, method in ipairs{ "get", "set", "safe_set", "add", "safe_add", "incr", "delete",
                                 "ttl", "get_keys", "capacity", "free_space" } do
            local ok, err = pcall(dict[method], "some-key", 1)
            assert.is_false(ok, method)
            assert.matches("called with . instead of :", err, 1, true)
        end
        assert.has_no.errors(function() return dict:get("k") end)
    end)

    it("stores strings, numbers and booleans, with flags only when non-zero", function()
        assert.is_true((dict:set("s", "v")))
        assert.is_true((dict:set("n", 1.5, 0, 7)))
        assert.is_true((dict:set("b", false)))
        assert.same({ "v" }, { dict:get("s") })
        assert.same({ 1.5, 7 }, { dict:get("n") })
        assert.same({ false }, { dict:get("b") })
        assert.same({ nil, "bad value type" }, { dict:set("t", {}) })
        assert.same({ nil, "nil key" }, { dict:get(nil) })
        assert.same({ nil, "empty key" }, { dict:get("") })
    end)

    it("judges expiry by the cached clock, in milliseconds", function()
        dict:set("k", "v", 2)
        assert.equal(2, dict:ttl("k"))
        env.advance_os(5)                     -- real time passed, cache not refreshed
        assert.equal("v", dict:get("k"))
        ngx.update_time()
        assert.is_nil(dict:get("k"))
        assert.same({ nil, "not found" }, { dict:ttl("k") })
        assert.same({}, dict:get_keys(0))

        dict:set("k2", "v", 2)
        env.advance(2)
        assert.equal("v", dict:get("k2"))     -- alive up to its expiry instant
        env.advance(0.001)
        assert.is_nil(dict:get("k2"))

        dict:set("forever", 1, 0)
        env.advance(1e6)
        assert.equal(1, dict:get("forever"))
        assert.equal(0, dict:ttl("forever"))
    end)

    it("add refuses live keys and takes expired ones", function()
        assert.same({ true, nil, false }, { dict:add("k", "a", 1) })
        assert.same({ false, "exists", false }, { dict:add("k", "b") })
        assert.same({ false, "exists", false }, { dict:safe_add("k", "b") })
        env.advance(1.001)
        assert.is_true((dict:safe_add("k", "c")))
        assert.equal("c", dict:get("k"))
        assert.same({ false, "attempt to add or replace nil values", false }, { dict:add("z", nil) })
    end)

    it("incr follows nginx: not found, init, init_ttl, not a number", function()
        assert.same({ nil, "not found" }, { dict:incr("c", 1) })
        assert.same({ 5, nil, false }, { dict:incr("c", 2, 3) })
        assert.same({ 6 }, { dict:incr("c", 1) })
        assert.equal(6, dict:get("c"))
        assert.equal(0, dict:ttl("c"))        -- init_ttl only applies when initialising
        assert.same({ 1, nil, false }, { dict:incr("t", 1, 0, 10) })
        assert.equal(10, dict:ttl("t"))
        env.advance(11)
        assert.same({ nil, "not found" }, { dict:incr("t", 1) })
        assert.same({ 1, nil, false }, { dict:incr("t", 1, 0) })
        dict:set("s", "text")
        assert.same({ nil, "not a number" }, { dict:incr("s", 1, 0) })
        assert.has_error(function() dict:incr("x", 1, nil, 5) end)
    end)

    it("delete removes, get_keys lists live keys", function()
        dict:set("a", 1)
        dict:set("b", 2, 1)
        dict:set("c", 3)
        dict:delete("c")
        local keys = dict:get_keys()
        table.sort(keys)
        assert.same({ "a", "b" }, keys)
        env.advance(2)
        assert.same({ "a" }, dict:get_keys(0))
        assert.same({ "a" }, fake_dict.keys(dict))
    end)

    it("has a byte budget: safe_* fail with 'no memory', set/add/incr evict the LRU", function()
        stub.uninstall()
        env = stub.install{ capacity = 1000 }
        dict = env.dict
        assert.equal(1000, dict:capacity())
        assert.equal(1000, dict:free_space())
        local n = fake_dict.fill(dict, "u:")
        assert.is_true(n > 0)
        assert.equal(0, dict:free_space())
        assert.same({ false, "no memory", false }, { dict:safe_set("new", 1) })
        assert.same({ false, "no memory", false }, { dict:safe_add("new", 1) })
        -- same-size overwrite reuses the entry
        assert.is_true((dict:safe_set("u:0", 42)))
        assert.equal(42, dict:get("u:0"))
        -- a different size frees the old value first: it is lost if the new one does not fit
        assert.same({ false, "no memory", false }, { dict:safe_set("u:1", string.rep("y", 500)) })
        assert.is_nil(dict:get("u:1"))
        -- incr on an existing number never needs memory
        assert.equal(43, (dict:incr("u:0", 1)))
        -- forcible writes evict the least recently used entries
        local before = #dict:get_keys(0)
        local big = string.rep("z", 200)
        assert.same({ true, nil, true }, { dict:set("new", big) })
        assert.equal(big, dict:get("new"))
        fake_dict.fill(dict, "v:")
        assert.same({ 1, nil, true }, { dict:incr("new2", 1, 0) })
        assert.is_true(#dict:get_keys(0) <= before)
        assert.is_nil(dict:get("u:2"))        -- the oldest untouched keys went first
        assert.equal(43, dict:get("u:0"))     -- recently used: kept
    end)
end)

describe("ngx stub", function()
    local env

    before_each(function()
        env = stub.install{ now = 1000, phase = "init_worker" }
    end)

    after_each(function()
        stub.uninstall()
    end)

    it("records log lines with their level and concatenated arguments", function()
        ngx.log(ngx.WARN, "a", 1, nil, true)
        assert.same({ "a1niltrue" }, env.logs_at("WARN"))
        assert.same({}, env.logs_at(ngx.ERR))
        assert.has_error(function() ngx.log(ngx.ERR, {}) end)
        assert.has_error(function() ngx.log("x", "y") end)
    end)

    it("caches the clock like nginx", function()
        local t0 = ngx.now()
        env.advance_os(3)
        assert.equal(t0, ngx.now())
        ngx.update_time()
        assert.equal(t0 + 3, ngx.now())
    end)

    it("refuses ngx.sleep where nginx disables it, and sleeping advances the clock", function()
        assert.has_error(function() ngx.sleep(1) end)
        env.phase = "timer"
        local t0 = ngx.now()
        ngx.sleep(1.5)
        assert.equal(t0 + 1.5, ngx.now())
        assert.same({ 1.5 }, env.sleeps)
    end)

    it("captures timers instead of running them, and can refuse them", function()
        local function cb() end
        assert.is_true(ngx.timer.at(10, cb, "x"))
        assert.equal(1, #env.timers)
        assert.equal(10, env.timers[1].delay)
        assert.equal(cb, env.timers[1].callback)
        assert.same({ "x" }, env.timers[1].args)
        env.timer_error = "process exiting"
        assert.same({ nil, "process exiting" }, { ngx.timer.at(10, cb) })
        assert.equal(1, #env.timers)
    end)

    it("replaces resty.worker.manager.host and reloads modules per install", function()
        assert.equal(env.host, require("resty.worker.manager.host"))
        local log1 = require("resty.worker.manager.log")
        stub.uninstall()
        env = stub.install{}
        assert.are_not.equal(log1, require("resty.worker.manager.log"))
    end)
end)
