-- resty.worker.manager.registry: the bookkeeping behind n_prev / n_mine /
-- n_next (README.md, "The four counts"), against a fake shdict with
-- ngx.shared.DICT semantics. Every registry function takes `now` explicitly;
-- the specs pass the stub's cached clock.

local stub = require("helpers.ngx_stub")
local fake_dict = require("helpers.fake_dict")

local P = "lua-resty-worker-manager:"
local GRACE = 5

describe("registry", function()
    local env, dict, registry

    before_each(function()
        env = stub.install{ phase = "init", now = 5000 }
        dict = env.dict
        registry = require("resty.worker.manager.registry")
    end)

    after_each(function()
        stub.uninstall()
    end)

    -- The worker counted in slot s of generation g beats now.
    local function beat(g, s)
        registry.heartbeat(dict, g, s, (registry.occupant(dict, g, s)), env.now())
    end

    -- Workers of generation g in slots 0..n-1, pids base, base+1, ...;
    -- each arrives, then registers (what on_init_worker_by_lua does).
    local function start_workers(g, n, base)
        local pids = {}
        for s = 0, n - 1 do
            registry.arrive(dict, g, s, base + s, n)
            registry.register(dict, g, s, base + s, n, env.now())
            pids[s] = base + s
        end
        return pids
    end

    -- All of them exit gracefully; the last one ends the generation.
    local function stop_workers(g, pids)
        local slots = {}
        for s in pairs(pids) do
            slots[#slots + 1] = s
        end
        table.sort(slots)
        local counted, remaining
        for _, s in ipairs(slots) do
            counted, remaining = registry.uncount(dict, g, s, pids[s])
            assert.is_true(counted)
        end
        assert.equal(0, remaining)
        registry.end_generation(dict, g)
    end

    -- A fresh stub whose shm holds 4 KiB, for the specs of a full shm.
    local function small_shm()
        stub.uninstall()
        env = stub.install{ phase = "init", capacity = 4096 }
        dict = env.dict
        registry = require("resty.worker.manager.registry")
    end

    local function nb(g)
        local n_prev, n_next = registry.neighbours(dict, g, env.now(), GRACE)
        return { prev = n_prev, next = n_next }
    end

    local function gen_keys(g)
        -- every key of generation g: "...:g<g>" and "...:g<g>:<anything>"
        local out = {}
        for _, k in ipairs(fake_dict.keys(dict)) do
            if k == P .. "g" .. g or k:sub(1, #(P .. "g" .. g .. ":")) == P .. "g" .. g .. ":" then
                out[#out + 1] = k
            end
        end
        return out
    end

    describe("begin_generation", function()
        it("numbers generations 1, 2, 3 and records their start time", function()
            local t1 = env.now()
            assert.equal(1, registry.begin_generation(dict, t1))
            env.advance(7)
            local t2 = env.now()
            assert.equal(2, registry.begin_generation(dict, t2))
            env.advance(7)
            assert.equal(3, registry.begin_generation(dict, env.now()))
            assert.equal(3, dict:get(P .. "top"))
            assert.equal(1, dict:get(P .. "low"))
            assert.equal(t1, dict:get(P .. "g1"))
            assert.equal(t2, dict:get(P .. "g2"))
        end)

        it("continues from the shm after a reload loads the module again", function()
            registry.begin_generation(dict, env.now())
            registry.begin_generation(dict, env.now())
            package.loaded["resty.worker.manager.registry"] = nil
            local again = require("resty.worker.manager.registry")
            assert.are_not.equal(registry, again)
            assert.equal(3, again.begin_generation(dict, env.now()))
        end)

        it("starts again at 1 with a new shm (restart)", function()
            registry.begin_generation(dict, env.now())
            registry.begin_generation(dict, env.now())
            stub.uninstall()
            env = stub.install{}
            registry = require("resty.worker.manager.registry")
            assert.equal(1, registry.begin_generation(env.dict, env.now()))
        end)
    end)

    describe("neighbours", function()
        it("gives nil, nil to generation 1 alone", function()
            registry.begin_generation(dict, env.now())
            local n_prev, n_next = registry.neighbours(dict, 1, env.now(), GRACE)
            assert.is_nil(n_prev)
            assert.is_nil(n_next)
            start_workers(1, 2, 100)
            n_prev, n_next = registry.neighbours(dict, 1, env.now(), GRACE)
            assert.is_nil(n_prev)
            assert.is_nil(n_next)
        end)

        it("counts the older generation's live workers in n_prev of a reload", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            env.advance(60)
            assert.equal(2, registry.begin_generation(dict, env.now()))
            assert.same({ prev = 2 }, nb(2))
        end)

        it("sums ALL older generations in n_prev, not only the one just before", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 3, 200)
            registry.begin_generation(dict, env.now())
            assert.same({ prev = 5 }, nb(3))
            assert.same({ prev = 2, next = 0 }, nb(2))
        end)

        it("gives n_prev 0, not nil, once the older generations are gone", function()
            registry.begin_generation(dict, env.now())
            local old = start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 2, 200)
            assert.same({ prev = 2 }, nb(2))
            stop_workers(1, old)
            local n_prev, n_next = registry.neighbours(dict, 2, env.now(), GRACE)
            assert.equal(0, n_prev)
            assert.is_nil(n_next)
            env.advance(3600)
            assert.same({ prev = 0 }, nb(2))
        end)

        it("gives n_next 0, not nil, for a newer generation just begun", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            assert.same({}, nb(1))
            registry.begin_generation(dict, env.now())
            assert.same({ next = 0 }, nb(1))
            env.advance(GRACE - 0.5)
            assert.same({ next = 0 }, nb(1))
        end)

        it("counts the workers of every newer generation in n_next", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 2, 200)
            assert.same({ next = 2 }, nb(1))
            registry.begin_generation(dict, env.now())
            start_workers(3, 4, 300)
            assert.same({ next = 6 }, nb(1))
            assert.same({ prev = 1, next = 4 }, nb(2))
            assert.same({ prev = 3 }, nb(3))
            -- workers keep a generation existing long after its grace
            env.advance(1000)
            assert.same({ next = 6 }, nb(1))
        end)

        it("counts a newer generation whose worker arrived but is not counted yet", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 2, 0, 200, 1)
            env.advance(GRACE * 10)
            assert.same({ next = 0 }, nb(1))
        end)

        it("follows workers leaving: n_next drops as newer workers exit", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 3, 200)
            assert.same({ true, 2 }, { registry.uncount(dict, 2, 0, 200) })
            assert.same({ next = 2 }, nb(1))
        end)

        it("never counts a negative number of workers", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 1, 200)
            registry.begin_generation(dict, env.now())
            dict:set(P .. "g1:live", -3)
            dict:set(P .. "g3:live", -2)
            dict:set(P .. "g3:arrived", 1)
            assert.same({ prev = 1 }, nb(3))
            assert.same({ prev = 0, next = 0 }, nb(2))
        end)
    end)

    describe("a rolled-back reload (begun, never got a worker)", function()
        local t0

        before_each(function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            env.advance(100)
            t0 = env.now()
            assert.equal(2, registry.begin_generation(dict, t0))
        end)

        it("exists for `grace` seconds after its master start, then not", function()
            assert.same({ next = 0 }, nb(1))
            env.advance(GRACE - 0.001)
            assert.same({ next = 0 }, nb(1))
            env.advance(0.001)
            -- a later stop reports n_next == nil
            assert.same({}, nb(1))
        end)

        it("is not forgotten by sweep within the grace", function()
            env.advance(GRACE - 0.001)
            registry.sweep(dict, env.now(), GRACE)
            assert.same({}, env.logs_at("NOTICE"))
            assert.equal(t0, dict:get(P .. "g2"))
        end)

        it("is forgotten by sweep after the grace: keys removed, NOTICE logged", function()
            assert.is_true(#gen_keys(2) > 0)
            local before = {}
            for _, k in ipairs(gen_keys(1)) do
                before[k] = dict:get(k)
            end
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            assert.same({}, gen_keys(2))
            local notices = env.logs_at("NOTICE", "generation 2")
            assert.equal(1, #notices)
            assert.matches("^%[worker%-manager%] ", notices[1])
            -- generation 1 is untouched: the same keys, with the same values
            assert.equal(2, registry.count(dict, 1))
            local after = {}
            for _, k in ipairs(gen_keys(1)) do
                after[k] = dict:get(k)
            end
            assert.same(before, after)
            for _, k in ipairs{ "g1", "g1:arrived", "g1:live", "g1:size", "g1:slot0", "g1:slot1" } do
                assert.is_not_nil(after[P .. k], k)
            end
            -- sweeping again finds nothing more to say
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(1, #env.logs_at("NOTICE"))
        end)

        it("counts in no n_prev or n_next of later generations", function()
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(3, registry.begin_generation(dict, env.now()))
            assert.same({ prev = 2 }, nb(3))
            assert.same({ next = 0 }, nb(1))
            start_workers(3, 2, 300)
            assert.same({ next = 2 }, nb(1))
        end)

        it("lets LOW advance past it once the generations before are gone", function()
            assert.equal(3, registry.begin_generation(dict, env.now()))
            start_workers(3, 1, 300)
            local pids1 = { [0] = 100, [1] = 101 }
            stop_workers(1, pids1)
            assert.same({}, gen_keys(1))
            assert.equal(2, dict:get(P .. "low"))   -- generation 2 still has records
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(3, dict:get(P .. "low"))
            assert.same({}, gen_keys(2))
            assert.same({ prev = 0 }, nb(3))
        end)

        it("is not forgotten while a worker of it has arrived (slow to take the lock)", function()
            registry.arrive(dict, 2, 0, 200, 1)
            env.advance(GRACE * 10)
            registry.sweep(dict, env.now(), GRACE)
            assert.same({}, env.logs_at("NOTICE"))
            assert.equal(t0, dict:get(P .. "g2"))
            assert.same({ next = 0 }, nb(1))
        end)

        it("is counted again if a worker of it registers after all", function()
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            local mine = registry.register(dict, 2, 0, 200, 1, env.now())
            assert.equal(1, mine)
            assert.equal(env.now(), dict:get(P .. "g2"))
            assert.same({ next = 1 }, nb(1))
            assert.same({ prev = 2 }, nb(2))
        end)
    end)

    describe("sweep", function()
        it("never forgets a generation that has counted workers", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())
            start_workers(2, 1, 200)
            env.advance(GRACE * 100)
            registry.sweep(dict, env.now(), GRACE)
            assert.same({}, env.logs_at("NOTICE"))
            assert.equal(2, registry.count(dict, 1))
            assert.equal(1, registry.count(dict, 2))
            assert.same({ prev = 2 }, nb(2))
        end)
    end)

    describe("register", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
        end)

        it("returns the generation's count including the new worker", function()
            local mine, dead = registry.register(dict, 1, 0, 100, 3, env.now())
            assert.equal(1, mine)
            assert.is_nil(dead)
            mine, dead = registry.register(dict, 1, 1, 101, 3, env.now())
            assert.equal(2, mine)
            assert.is_nil(dead)
            mine, dead = registry.register(dict, 1, 2, 102, 3, env.now())
            assert.equal(3, mine)
            assert.is_nil(dead)
            assert.equal(3, registry.count(dict, 1))
        end)

        it("records the slot's pid, heartbeat and start time in one key, and the generation size", function()
            env.advance(1.25)
            local t0 = env.now()
            registry.arrive(dict, 1, 1, 101, 4)
            registry.register(dict, 1, 1, 101, 4, t0)
            -- the pid as the entry's flags, the times as hex milliseconds
            assert.same({ "000004c5022 000004c5022", 101 }, { dict:get(P .. "g1:slot1") })
            assert.same({ 101, t0, t0 }, { registry.occupant(dict, 1, 1) })
            assert.equal(4, dict:get(P .. "g1:size"))
            -- counted: its arrival is not needed any more
            assert.is_nil(dict:get(P .. "g1:arrival1"))
            env.advance(10)
            beat(1, 1)
            assert.same({ 101, env.now(), t0 }, { registry.occupant(dict, 1, 1) })
        end)

        it("rewrites the heartbeat in place: it succeeds in a full shm", function()
            registry.register(dict, 1, 1, 101, 4, env.now())
            fake_dict.fill(dict, "other:")
            env.advance(10)
            beat(1, 1)
            assert.same({ 101, env.now(), 5000 }, { registry.occupant(dict, 1, 1) })
            assert.same({}, env.logs_at("ERR"))
        end)

        it("lets a heartbeat write only the record of its own pid, and never bring back a dropped one", function()
            registry.register(dict, 1, 1, 101, 4, env.now())
            env.advance(10)
            registry.heartbeat(dict, 1, 1, 999, env.now())
            assert.same({ 101, 5000, 5000 }, { registry.occupant(dict, 1, 1) })
            registry.uncount(dict, 1, 1, 101)
            registry.heartbeat(dict, 1, 1, 101, env.now())
            assert.is_nil(dict:get(P .. "g1:slot1"))
            assert.equal(0, registry.count(dict, 1))
        end)

        it("returns the previous pid of the slot when nginx respawned it", function()
            start_workers(1, 2, 100)
            -- worker 100 in slot 0 was killed; nginx starts 150 in its slot
            local mine, dead = registry.register(dict, 1, 0, 150, 2, env.now())
            assert.equal(3, mine)   -- the dead one is still counted
            assert.equal(100, dead)
            assert.equal(150, (registry.occupant(dict, 1, 0)))
            registry.replace_dead(dict, 1, 0, 100, 150)
            assert.equal(2, registry.count(dict, 1))
            -- reported later, once: the queue names the dead pid and its successor
            assert.same({ { dead = 100, by = 150 } }, registry.take_replaced(dict, 1, 0))
            assert.same({}, registry.take_replaced(dict, 1, 0))
        end)

        it("does not report the worker itself as its dead predecessor", function()
            registry.register(dict, 1, 0, 100, 1, env.now())
            local _, dead = registry.register(dict, 1, 0, 100, 1, env.now())
            assert.is_nil(dead)
        end)

        it("keeps generations apart: a slot number is per generation", function()
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            local mine, dead = registry.register(dict, 2, 0, 200, 1, env.now())
            assert.equal(1, mine)
            assert.is_nil(dead)
            assert.equal(1, registry.count(dict, 1))
        end)
    end)

    describe("uncount", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
        end)

        it("returns how many workers of the generation remain", function()
            start_workers(1, 3, 100)
            assert.same({ true, 2 }, { registry.uncount(dict, 1, 1, 101) })
            assert.same({ true, 1 }, { registry.uncount(dict, 1, 0, 100) })
            assert.same({ true, 0 }, { registry.uncount(dict, 1, 2, 102) })
            assert.equal(0, registry.count(dict, 1))
        end)

        it("removes the worker's slot key", function()
            start_workers(1, 2, 100)
            registry.uncount(dict, 1, 1, 101)
            assert.is_nil(dict:get(P .. "g1:slot1"))
            assert.same({ 100, 5000, 5000 }, { registry.occupant(dict, 1, 0) })
        end)

        it("remembers a stalled worker with its start time, which a restore keeps", function()
            start_workers(1, 2, 100)
            env.advance(30)
            assert.same({ true, 1 }, { registry.uncount(dict, 1, 1, 101, true) })
            assert.same({ 101 }, registry.stalled(dict, 1))
            assert.equal("slot 1", registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.same({ 101, env.now(), 5000 }, { registry.occupant(dict, 1, 1) })
            assert.same({}, registry.stalled(dict, 1))
        end)

        it("queues a dead predecessor until reported, even across a second respawn", function()
            start_workers(1, 2, 100)
            -- 100 dies; 150 takes slot 0 and is killed in its own start callback
            local _, dead = registry.register(dict, 1, 0, 150, 2, env.now())
            registry.replace_dead(dict, 1, 0, dead, 150)
            assert.equal(2, registry.count(dict, 1))
            -- 160 takes slot 0: its predecessor is 150, and 100 is still unreported
            local mine, dead2 = registry.register(dict, 1, 0, 160, 2, env.now())
            assert.equal(3, mine)        -- 160, 101 and the dead 150; 100 was uncounted already
            assert.equal(150, dead2)
            registry.replace_dead(dict, 1, 0, dead2, 160)
            assert.equal(2, registry.count(dict, 1))
            assert.same({ { dead = 100, by = 150 }, { dead = 150, by = 160 } }, registry.take_replaced(dict, 1, 0))
        end)

        it("leaves a slot alone that now belongs to another pid", function()
            start_workers(1, 1, 100)
            registry.register(dict, 1, 0, 150, 1, env.now())
            registry.replace_dead(dict, 1, 0, 100, 150)
            -- a stale exit of 100 (say from another path) must not erase 150's slot
            assert.same({ false, 1 }, { registry.uncount(dict, 1, 0, 100) })
            assert.equal(150, (registry.occupant(dict, 1, 0)))
        end)

        it("uncounts a pid once: a second call says 'not counted' and decrements nothing", function()
            start_workers(1, 2, 100)
            assert.same({ true, 1 }, { registry.uncount(dict, 1, 0, 100) })
            assert.equal(1, dict:get(P .. "g1:live"))
            -- e.g. dropped as crashed by a finder, then its own exit path runs
            assert.same({ false, 1 }, { registry.uncount(dict, 1, 0, 100) })
            assert.equal(1, registry.count(dict, 1))
            assert.equal(1, dict:get(P .. "g1:live"))
            -- it left for good: not 'starting' either
            assert.same({}, registry.starting(dict, 1))
            assert.is_nil(dict:get(P .. "g1:arrival0"))
            assert.equal(101, (registry.occupant(dict, 1, 1)))
        end)

        it("keeps a newer arrival in the slot (a respawned worker still starting)", function()
            start_workers(1, 1, 100)
            -- 100 was found dead; nginx respawned slot 0 as 150, which waits for the lock
            registry.arrive(dict, 1, 0, 150, 1)
            assert.same({ true, 0 }, { registry.uncount(dict, 1, 0, 100) })
            assert.same({ 150 }, registry.starting(dict, 1))
        end)

        it("does not uncount a pid under a slot it is not counted in", function()
            start_workers(1, 2, 100)
            assert.same({ false, 2 }, { registry.uncount(dict, 1, 1, 100) })
            assert.same({ false, 2 }, { registry.uncount(dict, 1, 5, 100) })
            assert.equal(101, (registry.occupant(dict, 1, 1)))
            assert.equal(2, registry.count(dict, 1))
        end)
    end)

    describe("end_generation", function()
        it("removes every key of that generation, and only those", function()
            dict:set("someone-else:key", "v")
            registry.begin_generation(dict, env.now())
            local pids1 = start_workers(1, 3, 100)
            beat(1, 2)
            registry.begin_generation(dict, env.now())
            start_workers(2, 2, 200)
            local keys2 = gen_keys(2)
            stop_workers(1, pids1)
            assert.same({}, gen_keys(1))
            assert.same(keys2, gen_keys(2))
            assert.equal("v", dict:get("someone-else:key"))
            assert.equal(2, dict:get(P .. "low"))
        end)

        it("removes the slots of workers that never exited (crashed during the stop)", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 3, 100)
            -- 100 (slot 0) died; counted down without its slot key (replace_dead)
            registry.replace_dead(dict, 1, 0, 100, 150)
            registry.uncount(dict, 1, 1, 101)
            assert.same({ true, 0 }, { registry.uncount(dict, 1, 2, 102) })
            assert.equal(100, (registry.occupant(dict, 1, 0)))
            registry.end_generation(dict, 1)
            assert.same({}, gen_keys(1))
        end)

        it("leaves only constant bookkeeping after any number of start/stop cycles", function()
            dict:set("someone-else:key", "v")
            local function cycle(base)
                local g = registry.begin_generation(dict, env.now())
                local pids = start_workers(g, 3, base)
                env.advance(10)
                for s = 0, 2 do
                    beat(g, s)
                end
                -- slot 1 crashes and is respawned
                local _, dead = registry.register(dict, g, 1, base + 50, 3, env.now())
                assert.equal(base + 1, dead)
                registry.replace_dead(dict, g, 1, dead, base + 50)
                registry.take_replaced(dict, g, 1)
                pids[1] = base + 50
                stop_workers(g, pids)
                env.advance(1)
            end
            cycle(1000)
            local after_first = fake_dict.keys(dict)
            assert.same({ P .. "ended", P .. "low", P .. "top", "someone-else:key" }, after_first)
            for i = 2, 12 do
                cycle(i * 1000)
            end
            assert.same(after_first, fake_dict.keys(dict))
            assert.equal(12, dict:get(P .. "top"))
        end)

        it("leaves no key of an ended generation behind across overlapping reloads", function()
            registry.begin_generation(dict, env.now())
            local pids = start_workers(1, 2, 100)
            for g = 2, 10 do
                env.advance(30)
                assert.equal(g, registry.begin_generation(dict, env.now()))
                local new = start_workers(g, 2, g * 100)
                stop_workers(g - 1, pids)
                pids = new
                assert.same({ prev = 0 }, nb(g))
            end
            local expected = gen_keys(10)
            expected[#expected + 1] = P .. "ended"
            expected[#expected + 1] = P .. "low"
            expected[#expected + 1] = P .. "top"
            table.sort(expected)
            assert.same(expected, fake_dict.keys(dict))
            assert.equal(10, dict:get(P .. "low"))
        end)
    end)

    describe("restore", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
        end)

        it("counts again a live worker that was dropped by mistake (it had stalled)", function()
            assert.same({ true, 1 }, { registry.uncount(dict, 1, 1, 101) })
            env.advance(20)
            assert.equal("slot 1", registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.equal(2, registry.count(dict, 1))
            assert.same({}, registry.starting(dict, 1))
            assert.same({ 101, env.now(), env.now() }, { registry.occupant(dict, 1, 1) })
            assert.is_false(registry.emptied(dict, 1))
        end)

        it("does nothing for a worker that is still counted", function()
            assert.is_nil(registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.equal(2, registry.count(dict, 1))
        end)

        it("does nothing when its slot was taken over by a respawned worker", function()
            registry.uncount(dict, 1, 1, 101)
            registry.arrive(dict, 1, 1, 150, 2)
            registry.register(dict, 1, 1, 150, 2, env.now())
            assert.is_nil(registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.equal(150, (registry.occupant(dict, 1, 1)))
            assert.equal(2, registry.count(dict, 1))
        end)

        it("brings back a live worker's generation after the shm lost the module's keys", function()
            dict:flush_all()
            assert.equal("generation 1 and its slot 1", registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.is_true(registry.recorded(dict, 1))
            assert.equal(1, registry.count(dict, 1))
            assert.equal(1, dict:get(P .. "top"))
            assert.equal(1, dict:get(P .. "low"))
            assert.same({ 101, env.now(), env.now() }, { registry.occupant(dict, 1, 1) })
            -- the next reload is generation 2, not 1 again
            assert.equal(2, registry.begin_generation(dict, env.now()))
            -- the other worker restores its own slot on its next beat
            assert.equal("slot 0", registry.restore(dict, 1, 0, 100, 2, env.now()))
            assert.equal(2, registry.count(dict, 1))
            assert.is_nil(registry.restore(dict, 1, 0, 100, 2, env.now()))
        end)
    end)

    describe("entry sizes", function()
        -- nginx adds 68 bytes of node to key and value and allocates in
        -- powers of two: up to 60 bytes of key and value take 128, the
        -- least an entry takes; one byte more takes 256, a size class that a
        -- small zone may have no page left for.
        local function too_big()
            local out = {}
            for _, k in ipairs(fake_dict.keys(dict, "^" .. P:gsub("%-", "%%-"))) do
                local v = dict:get(k)
                local size = #k + (type(v) == "number" and 8 or type(v) == "boolean" and 1 or #v)
                if size > 60 then
                    out[#out + 1] = k .. " = " .. tostring(v) .. " (" .. size .. ")"
                end
            end
            return out
        end

        it("stay within 128 bytes of slab at generation 9999, slot 99 and 7-digit pids", function()
            dict:set(P .. "top", 9998)
            dict:set(P .. "low", 9999)
            local g = registry.begin_generation(dict, env.now())
            assert.equal(9999, g)
            local seen = {}
            local function look()
                for _, x in ipairs(too_big()) do
                    seen[#seen + 1] = x
                end
            end
            for s = 97, 99 do
                registry.arrive(dict, g, s, 4194200 + s, 100)
                look()
                registry.register(dict, g, s, 4194200 + s, 100, env.now())
            end
            env.advance(12345.678)
            registry.heartbeat(dict, g, 97, 4194297, env.now())
            registry.uncount(dict, g, 98, 4194298, true)           -- stalled
            local _, dead = registry.register(dict, g, 99, 4194303, 100, env.now())
            registry.replace_dead(dict, g, 99, dead, 4194303)      -- respawned
            registry.begin_close(dict, g, 4194297)
            registry.enter_close(dict, g, 4194297)
            look()
            registry.end_generation(dict, g)
            look()
            assert.same({}, seen)
        end)
    end)

    describe("a late starter (its generation ended before it reached init_worker)", function()
        it("is not counted and leaves no key of the ended generation behind", function()
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 1, 0, 100, 2)
            registry.register(dict, 1, 0, 100, 2, env.now())
            registry.uncount(dict, 1, 0, 100)
            registry.end_generation(dict, 1)
            -- slot 1, forked with slot 0, arrives only now
            assert.is_true(registry.ended(dict, 1))
            registry.arrive(dict, 1, 1, 101, 2)
            assert.same({ nil, nil, false }, { registry.register(dict, 1, 1, 101, 2, env.now()) })
            assert.same({}, gen_keys(1))
            assert.is_false(registry.recorded(dict, 1))
        end)

        it("is told apart from a worker of a rolled-back generation, which recreates it", function()
            registry.begin_generation(dict, env.now())
            env.advance(GRACE + 1)
            registry.sweep(dict, env.now(), GRACE)
            assert.is_false(registry.ended(dict, 1))
            registry.arrive(dict, 1, 0, 100, 1)
            assert.same({ 1, nil, true }, { registry.register(dict, 1, 0, 100, 1, env.now()) })
        end)

        it("is remembered for the last 32 ended generations, in one small entry", function()
            for g = 1, 40 do
                assert.equal(g, registry.begin_generation(dict, env.now()))
                registry.end_generation(dict, g)
            end
            for g = 9, 40 do
                assert.is_true(registry.ended(dict, g), g)
            end
            assert.is_false(registry.ended(dict, 8))
            assert.is_false(registry.ended(dict, 41))
            -- the newest as the value, the 31 before it as the flags
            assert.same({ 40, 2 ^ 31 - 1 }, { dict:get(P .. "ended") })
        end)

        it("remembers generations that end out of order, and only those", function()
            local function finish(g)
                registry.end_generation(dict, g)
            end
            for _ = 1, 50 do
                registry.begin_generation(dict, env.now())
            end
            finish(10)
            finish(14)
            finish(12)      -- older than the newest ended
            finish(12)      -- twice changes nothing
            finish(43)      -- 14 and 12 still within 31 of it, 10 not
            finish(40)
            local want = { [12] = true, [14] = true, [40] = true, [43] = true }
            for g = 1, 50 do
                assert.equal(want[g] == true, registry.ended(dict, g), g)
            end
            -- a jump of more than 32 forgets all older ones
            for _ = 51, 100 do
                registry.begin_generation(dict, env.now())
            end
            finish(100)
            assert.is_true(registry.ended(dict, 100))
            for g = 1, 99 do
                assert.is_false(registry.ended(dict, g), g)
            end
        end)

        it("never says a generation that has records ended", function()
            for _ = 1, 3 do
                registry.begin_generation(dict, env.now())
            end
            registry.end_generation(dict, 3)
            registry.end_generation(dict, 1)
            assert.is_false(registry.ended(dict, 2))
            assert.is_true(registry.ended(dict, 1))
            registry.begin_generation(dict, env.now())   -- 4: has records
            assert.is_false(registry.ended(dict, 4))
        end)
    end)

    describe("unarrived", function()
        it("is true while fewer workers reached init_worker than the generation has slots", function()
            registry.begin_generation(dict, env.now())
            assert.is_false(registry.unarrived(dict, 1, env.now(), GRACE))    -- no slot count known yet
            registry.arrive(dict, 1, 0, 100, 2)
            assert.is_true(registry.unarrived(dict, 1, env.now(), GRACE))
            registry.arrive(dict, 1, 1, 101, 2)
            assert.is_false(registry.unarrived(dict, 1, env.now(), GRACE))
        end)

        it("is false once the generation is older than the grace: a missing worker will not come", function()
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 1, 0, 100, 2)
            env.advance(GRACE - 0.1)
            assert.is_true(registry.unarrived(dict, 1, env.now(), GRACE))
            env.advance(0.2)
            assert.is_false(registry.unarrived(dict, 1, env.now(), GRACE))
        end)
    end)

    describe("restore in a full shm", function()
        it("counts a worker only once its slot key is in, however many heartbeats try", function()
            small_shm()
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 1, 0, 100, 2)
            registry.register(dict, 1, 0, 100, 2, env.now())
            fake_dict.fill(dict, "other:")
            registry.arrive(dict, 1, 1, 101, 2)
            assert.is_false(select(3, registry.register(dict, 1, 1, 101, 2, env.now())))
            for _ = 1, 5 do
                assert.same({ nil, false }, { registry.restore(dict, 1, 1, 101, 2, env.now()) })
            end
            assert.equal(1, registry.count(dict, 1))
            -- room returns
            for _, k in ipairs(fake_dict.keys(dict, "^other:")) do
                dict:delete(k)
            end
            assert.same({ "slot 1", true }, { registry.restore(dict, 1, 1, 101, 2, env.now()) })
            assert.equal(2, registry.count(dict, 1))
            assert.same({ nil, false }, { registry.restore(dict, 1, 1, 101, 2, env.now()) })
        end)
    end)

    describe("stalled workers (dropped for a late heartbeat while their process runs)", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
        end)

        it("are remembered by uncount(..., true) only, and listed by stalled", function()
            assert.same({}, registry.stalled(dict, 1))
            assert.same({ true, 1 }, { registry.uncount(dict, 1, 1, 101, true) })
            assert.same({ 101 }, registry.stalled(dict, 1))
            registry.uncount(dict, 1, 0, 100)
            assert.same({ 101 }, registry.stalled(dict, 1))
            -- uncounting again (not counted any more) remembers nothing new
            registry.uncount(dict, 1, 0, 100, true)
            assert.same({ 101 }, registry.stalled(dict, 1))
        end)

        it("are forgotten when counted again", function()
            registry.uncount(dict, 1, 1, 101, true)
            assert.equal("slot 1", registry.restore(dict, 1, 1, 101, 2, env.now()))
            assert.same({}, registry.stalled(dict, 1))
        end)

        it("are forgotten by clear_uncounted for that pid only", function()
            registry.uncount(dict, 1, 1, 101, true)
            registry.clear_uncounted(dict, 1, 1, 999)
            registry.clear_uncounted(dict, 1, 0, 101)
            assert.same({ 101 }, registry.stalled(dict, 1))
            registry.clear_uncounted(dict, 1, 1, 101)
            assert.same({}, registry.stalled(dict, 1))
        end)

        it("leave no key behind when their generation ends", function()
            registry.uncount(dict, 1, 1, 101, true)
            registry.uncount(dict, 1, 0, 100)
            registry.end_generation(dict, 1)
            assert.same({}, gen_keys(1))
        end)
    end)

    describe("starting", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
        end)

        it("lists the pids that arrived in a slot and are not counted there", function()
            for i = 0, 2 do
                registry.arrive(dict, 1, i, 100 + i, 3)
            end
            assert.same({ 100, 101, 102 }, registry.starting(dict, 1))
            registry.register(dict, 1, 0, 100, 3, env.now())
            registry.register(dict, 1, 1, 101, 3, env.now())
            assert.same({ 102 }, registry.starting(dict, 1))
            -- one leaves: still only 102 starting
            registry.uncount(dict, 1, 0, 100)
            assert.same({ 102 }, registry.starting(dict, 1))
            registry.register(dict, 1, 2, 102, 3, env.now())
            assert.same({}, registry.starting(dict, 1))
        end)

        it("forgets a pid killed while starting once nginx respawns its slot", function()
            registry.arrive(dict, 1, 0, 100, 2)        -- killed while it waits for the lock
            registry.arrive(dict, 1, 1, 101, 2)
            registry.register(dict, 1, 1, 101, 2, env.now())
            assert.same({ 100 }, registry.starting(dict, 1))
            registry.arrive(dict, 1, 0, 150, 2)        -- respawned
            assert.same({ 150 }, registry.starting(dict, 1))
            local _, dead = registry.register(dict, 1, 0, 150, 2, env.now())
            assert.is_nil(dead)
            assert.same({}, registry.starting(dict, 1))
        end)

        it("is empty for a generation without records", function()
            assert.same({}, registry.starting(dict, 1))
            assert.same({}, registry.starting(dict, 7))
        end)
    end)

    describe("finished", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
        end)

        it("is false for a generation just begun, that no worker reached yet", function()
            local old = start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            assert.is_false(registry.emptied(dict, 2))
            env.advance(GRACE * 10)
            assert.is_false(registry.emptied(dict, 2))
            stop_workers(1, old)
            assert.is_false(registry.emptied(dict, 2))
        end)

        it("leaves a worker still starting to the caller: it lists it in starting (double HUP)", function()
            -- (liveness.over keeps the generation open while that pid runs;
            -- see liveness_spec)
            start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())      -- HUP: generation 2
            registry.arrive(dict, 2, 0, 200, 2)
            registry.arrive(dict, 2, 1, 201, 2)
            registry.register(dict, 2, 0, 200, 2, env.now())
            -- 201 waits for the lock; a second HUP begins generation 3 and
            -- 200 exits at once
            registry.begin_generation(dict, env.now())
            assert.same({ true, 0 }, { registry.uncount(dict, 2, 0, 200) })
            assert.same({ 201 }, registry.starting(dict, 2))
            -- 201 gets the lock, counts itself, and exits
            assert.equal(1, (registry.register(dict, 2, 1, 201, 2, env.now())))
            assert.is_false(registry.emptied(dict, 2))
            assert.same({}, registry.starting(dict, 2))
            assert.same({ true, 0 }, { registry.uncount(dict, 2, 1, 201) })
            assert.is_true(registry.emptied(dict, 2))
            assert.same({}, registry.starting(dict, 2))
        end)

        it("is true when every worker that arrived is gone, exited or dropped", function()
            start_workers(1, 2, 100)
            -- 100 killed; nginx respawns slot 0 as 150, which drops 100
            registry.arrive(dict, 1, 0, 150, 2)
            registry.register(dict, 1, 0, 150, 2, env.now())
            registry.replace_dead(dict, 1, 0, 100, 150)
            assert.is_false(registry.emptied(dict, 1))
            registry.uncount(dict, 1, 1, 101)
            assert.is_false(registry.emptied(dict, 1))
            registry.uncount(dict, 1, 0, 150)
            assert.is_true(registry.emptied(dict, 1))
        end)

        it("is false once the generation ended, so it ends only once", function()
            local pids = start_workers(1, 2, 100)
            stop_workers(1, pids)
            assert.is_false(registry.emptied(dict, 1))
        end)
    end)

    describe("newest and rolled_back", function()
        local function newest()
            return registry.newest(dict, env.now(), GRACE)
        end

        it("is nil before any generation", function()
            assert.is_nil(newest())
        end)

        it("includes a young generation that has no worker yet", function()
            registry.begin_generation(dict, env.now())
            assert.equal(1, newest())
            start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())
            assert.equal(2, newest())
            assert.is_false(registry.rolled_back(dict, 2, env.now(), GRACE))
            env.advance(GRACE - 0.001)
            assert.equal(2, newest())
        end)

        it("skips a generation rolled back (no worker within its grace)", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
            registry.begin_generation(dict, env.now())
            env.advance(GRACE)
            assert.equal(1, newest())
            assert.is_true(registry.rolled_back(dict, 2, env.now(), GRACE))
            assert.is_false(registry.rolled_back(dict, 1, env.now(), GRACE))
            -- a reload after it is newest at once, the rolled-back one stays skipped
            registry.begin_generation(dict, env.now())
            assert.equal(3, newest())
            env.advance(GRACE)
            assert.equal(1, newest())
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(1, newest())
        end)

        it("keeps a generation whose worker arrived, however late it registers", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 2, 0, 200, 1)
            env.advance(GRACE * 100)
            assert.equal(2, newest())
            assert.is_false(registry.rolled_back(dict, 2, env.now(), GRACE))
        end)

        it("does not call a generation that ended, or never began, rolled back", function()
            registry.begin_generation(dict, env.now())
            local pids = start_workers(1, 1, 100)
            stop_workers(1, pids)
            env.advance(GRACE * 2)
            assert.is_false(registry.rolled_back(dict, 1, env.now(), GRACE))
            assert.is_false(registry.rolled_back(dict, 9, env.now(), GRACE))
            assert.is_nil(newest())
        end)
    end)

    describe("register of a generation forgotten as rolled back", function()
        it("brings LOW back down to it, so scans reach it again", function()
            registry.begin_generation(dict, env.now())
            local old = start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())      -- 2: workers slow to fork
            registry.begin_generation(dict, env.now())      -- 3
            start_workers(3, 1, 300)
            stop_workers(1, old)
            assert.equal(2, dict:get(P .. "low"))
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(3, dict:get(P .. "low"))
            assert.is_false(registry.recorded(dict, 2))
            -- 2's worker was only late: it arrives and counts itself now
            registry.arrive(dict, 2, 0, 200, 1)
            assert.equal(1, (registry.register(dict, 2, 0, 200, 1, env.now())))
            assert.equal(2, dict:get(P .. "low"))
            assert.same({ 2, 3 }, { registry.span(dict) })
            assert.is_true(registry.recorded(dict, 2))
            assert.same({ prev = 1 }, nb(3))
            assert.same({ prev = 0, next = 1 }, nb(2))
            -- and when it leaves, generation 2 ends and LOW moves up again
            assert.same({ true, 0 }, { registry.uncount(dict, 2, 0, 200) })
            assert.is_true(registry.emptied(dict, 2))
            registry.end_generation(dict, 2)
            assert.equal(3, dict:get(P .. "low"))
            assert.same({ prev = 0 }, nb(3))
        end)

        it("leaves LOW alone when LOW is already at or below it", function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 1, 100)
            registry.begin_generation(dict, env.now())
            env.advance(GRACE)
            registry.sweep(dict, env.now(), GRACE)
            assert.equal(1, dict:get(P .. "low"))
            registry.arrive(dict, 2, 0, 200, 1)
            registry.register(dict, 2, 0, 200, 1, env.now())
            assert.equal(1, dict:get(P .. "low"))
            assert.same({ 1, 2 }, { registry.span(dict) })
        end)
    end)

    describe("reading a generation", function()
        it("span is LOW..TOP, empty (1, 0) before any generation", function()
            assert.same({ 1, 0 }, { registry.span(dict) })
            registry.begin_generation(dict, env.now())
            registry.begin_generation(dict, env.now())
            assert.same({ 1, 2 }, { registry.span(dict) })
        end)

        it("recorded holds from master start until the generation ends", function()
            assert.is_false(registry.recorded(dict, 1))
            registry.begin_generation(dict, env.now())
            assert.is_true(registry.recorded(dict, 1))
            local pids = start_workers(1, 2, 100)
            assert.is_true(registry.recorded(dict, 1))
            stop_workers(1, pids)
            assert.is_false(registry.recorded(dict, 1))
        end)

        it("count, slots and occupant read what register wrote; 0 or nil when unknown", function()
            assert.equal(0, registry.count(dict, 1))
            assert.equal(0, registry.slots(dict, 1))
            assert.same({}, { registry.occupant(dict, 1, 0) })
            registry.begin_generation(dict, env.now())
            env.advance(2.5)
            start_workers(1, 3, 100)
            assert.equal(3, registry.count(dict, 1))
            assert.equal(3, registry.slots(dict, 1))
            local t0 = env.now()
            assert.same({ 102, t0, t0 }, { registry.occupant(dict, 1, 2) })
            env.advance(1)
            beat(1, 2)
            assert.same({ 102, env.now(), t0 }, { registry.occupant(dict, 1, 2) })
            registry.uncount(dict, 1, 2, 102)
            assert.same({}, { registry.occupant(dict, 1, 2) })
        end)

        it("exists: with counted or arrived workers, or for `grace` seconds after master start", function()
            registry.begin_generation(dict, env.now())
            assert.is_true(registry.active(dict, 1, env.now(), GRACE))
            env.advance(GRACE)
            assert.is_false(registry.active(dict, 1, env.now(), GRACE))
            registry.arrive(dict, 1, 0, 100, 1)
            assert.is_true(registry.active(dict, 1, env.now(), GRACE))
            registry.register(dict, 1, 0, 100, 1, env.now())
            dict:delete(P .. "g1:arrived")
            assert.is_true(registry.active(dict, 1, env.now(), GRACE))
            assert.is_false(registry.active(dict, 4, env.now(), GRACE))
        end)
    end)

    describe("newer_undecided", function()
        before_each(function()
            registry.begin_generation(dict, env.now())
            start_workers(1, 2, 100)
        end)

        local function undecided()
            return registry.newer_undecided(dict, 1, env.now(), GRACE)
        end

        it("is false without a newer generation", function()
            assert.is_false(undecided())
        end)

        it("is true while a newer generation has no worker and is within grace", function()
            registry.begin_generation(dict, env.now())
            assert.is_true(undecided())
            env.advance(GRACE - 0.001)
            assert.is_true(undecided())
            env.advance(0.001)
            assert.is_false(undecided())
        end)

        it("is false as soon as a newer worker arrived", function()
            registry.begin_generation(dict, env.now())
            registry.arrive(dict, 2, 0, 200, 1)
            assert.is_false(undecided())
        end)

        it("is false as soon as a newer worker is counted", function()
            registry.begin_generation(dict, env.now())
            registry.register(dict, 2, 0, 200, 1, env.now())
            assert.is_false(undecided())
        end)

        it("is true for a fresh reload after an earlier rolled-back one", function()
            registry.begin_generation(dict, env.now())      -- 2, rolled back
            env.advance(GRACE * 2)
            assert.is_false(undecided())
            registry.begin_generation(dict, env.now())      -- 3
            assert.is_true(undecided())
        end)

        it("only looks at newer generations", function()
            registry.begin_generation(dict, env.now())
            assert.is_false(registry.newer_undecided(dict, 2, env.now(), GRACE))
        end)
    end)

    describe("when the shm refuses a write", function()
        it("logs ERR naming each key it could not write (shm full)", function()
            small_shm()
            assert.equal(1, registry.begin_generation(dict, env.now()))
            fake_dict.fill(dict, "other:")
            local mine, _, counted = registry.register(dict, 1, 0, 100, 2, env.now())
            assert.equal(1, mine)
            -- not counted without its slot key: a heartbeat counts it later
            assert.is_false(counted)
            assert.equal(0, registry.count(dict, 1))
            for _, key in ipairs{ "g1:size", "g1:slot0" } do
                local errs = env.logs_at("ERR", "'" .. P .. key .. "'")
                assert.equal(1, #errs, key .. "\n" .. env.dump_logs())
                assert.matches("no memory", errs[1], 1, true)
                assert.matches("^%[worker%-manager%] ", errs[1])
            end
        end)

        it("logs ERR for a new generation's start time it cannot store", function()
            small_shm()
            registry.begin_generation(dict, env.now())
            fake_dict.fill(dict, "other:")
            assert.equal(2, registry.begin_generation(dict, env.now()))
            assert.equal(1, #env.logs_at("ERR", "'" .. P .. "g2'"), env.dump_logs())
        end)

        it("logs ERR when a counter holds something that is not a number", function()
            registry.begin_generation(dict, env.now())
            dict:set(P .. "g1:live", "garbage")
            local mine = registry.register(dict, 1, 0, 100, 1, env.now())
            assert.equal(1, mine)
            local errs = env.logs_at("ERR", "'" .. P .. "g1:live'")
            assert.equal(1, #errs, env.dump_logs())
            assert.matches("not a number", errs[1], 1, true)
        end)

        it("returns nil from begin_generation when the generation counter is unusable", function()
            dict:set(P .. "top", "garbage")
            assert.is_nil(registry.begin_generation(dict, env.now()))
            assert.equal(1, #env.logs_at("ERR", "'" .. P .. "top'"), env.dump_logs())
        end)

        it("logs nothing when all writes succeed", function()
            registry.begin_generation(dict, env.now())
            local pids = start_workers(1, 2, 100)
            stop_workers(1, pids)
            assert.same({}, env.logs)
        end)

        it("never evicts other users' keys when the shm is full", function()
            small_shm()
            registry.begin_generation(dict, env.now())
            fake_dict.fill(dict, "other:")
            local others = {}
            for _, k in ipairs(fake_dict.keys(dict, "^other:")) do
                others[k] = dict:get(k)
            end
            local g = registry.begin_generation(dict, env.now())
            registry.arrive(dict, g, 0, 100, 1)
            registry.register(dict, g, 0, 100, 1, env.now())
            registry.heartbeat(dict, g, 0, 100, env.now())
            registry.sweep(dict, env.now(), GRACE)
            registry.neighbours(dict, g, env.now(), GRACE)
            registry.uncount(dict, g, 0, 100)
            registry.end_generation(dict, g)
            for k, v in pairs(others) do
                assert.equal(v, dict:get(k), k)
            end
            -- every refused key was reported
            for _, key in ipairs{ "g2", "g2:arrived", "g2:size", "g2:slot0" } do
                assert.is_true(#env.logs_at("ERR", "'" .. P .. key .. "'") >= 1, key .. "\n" .. env.dump_logs())
            end
        end)

        it("reports a generation counter it cannot create in a full shm", function()
            fake_dict.fill(dict, "other:")
            assert.is_nil(registry.begin_generation(dict, env.now()))
            assert.equal(1, #env.logs_at("ERR", "'" .. P .. "top'"), env.dump_logs())
            assert.is_nil(dict:get(P .. "top"))
        end)
    end)
end)
