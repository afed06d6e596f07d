-- resty.worker.manager.liveness: finding workers that died without exiting
-- (README.md, Crashes: "A worker killed by a signal ... runs no Lua. The
-- module finds it, drops it from the counts, logs an ERR line naming its
-- worker id, pid, slot and the cause"; "A generation whose last worker died
-- gets its master exit from the worker that finds out").
--
-- Generations and workers are set up through the registry, in a fake shdict;
-- which pids are alive is the host stub's env.live_pids. The finder is the
-- stub's own process (pid ME).

local stub = require("helpers.ngx_stub")
local fake_dict = require("helpers.fake_dict")

local P = "lua-resty-worker-manager:"
local INTERVAL, FAILED = 10, 5
local OVERDUE = INTERVAL + FAILED   -- what manager.ts passes as finder.overdue
local GRACE = FAILED                -- and as finder.failed
local ME = 1001

describe("liveness", function()
    local env, dict, registry, liveness, reports
    local crashes, master_exits, order

    local function install()
        env = stub.install{ pid = ME, phase = "timer", now = 20000 }
        dict = env.dict
        registry = require("resty.worker.manager.registry")
        liveness = require("resty.worker.manager.liveness")
        reports = require("resty.worker.manager.reports")
    end

    before_each(function()
        install()
        crashes, master_exits, order = {}, {}, {}
    end)

    after_each(function()
        stub.uninstall()
    end)

    local function finder(stopping)
        return {
            pid = ME, overdue = OVERDUE, failed = GRACE, stopping = stopping or false,
            on_crash = function(id, n_prev, n_mine, n_next)
                crashes[#crashes + 1] = { id, n_prev, n_mine, n_next }
                order[#order + 1] = "crash " .. id
            end,
            master_exit = function(id, n_prev, n_mine, n_next)
                master_exits[#master_exits + 1] = { id, n_prev, n_mine, n_next }
                order[#order + 1] = "master exit " .. id
            end,
        }
    end

    -- A generation whose workers are `pids` in slots 0, 1, ... (all alive and
    -- counted, as after on_init_worker_by_lua). Returns its number.
    local function generation(pids)
        local g = registry.begin_generation(dict, env.now())
        for s = 0, #pids - 1 do
            local pid = pids[s + 1]
            registry.arrive(dict, g, s, pid, #pids)
            registry.register(dict, g, s, pid, #pids, env.now())
            env.live_pids[pid] = true
        end
        return g
    end

    -- The worker counted in slot s of generation g beats now.
    local function beat(g, s)
        registry.heartbeat(dict, g, s, (registry.occupant(dict, g, s)), env.now())
    end

    local function kill(pid)
        env.live_pids[pid] = nil
    end

    -- Every slot whose pid is alive beats now (the others, dead, cannot).
    local function beat_live()
        local low, top = registry.span(dict)
        for g = low, top do
            for s = 0, registry.slots(dict, g) - 1 do
                local pid = registry.occupant(dict, g, s)
                if pid ~= nil and env.live_pids[pid] then
                    beat(g, s)
                end
            end
        end
    end

    local function look(own_gen, own_slot, turn, f)
        return liveness.look(dict, f or finder(), own_gen, own_slot, turn, env.now())
    end

    -- "g:slot:pid" of each suspect, sorted.
    local function names(suspects)
        local out = {}
        for _, x in ipairs(suspects) do
            out[#out + 1] = x.gen .. ":" .. x.slot .. ":" .. x.pid
        end
        table.sort(out)
        return out
    end

    -- Suspects found over turns first..last, by name (each once).
    local function look_turns(own_gen, own_slot, first, last, f)
        local seen, out = {}, {}
        for turn = first, last do
            for _, n in ipairs(names((look(own_gen, own_slot, turn, f)))) do
                if not seen[n] then
                    seen[n] = true
                    out[#out + 1] = n
                end
            end
        end
        table.sort(out)
        return out
    end

    local function gen_keys(g)
        local out = {}
        for _, k in ipairs(fake_dict.keys(dict)) do
            if k == P .. "g" .. g or k:sub(1, #(P .. "g" .. g .. ":")) == P .. "g" .. g .. ":" then
                out[#out + 1] = k
            end
        end
        return out
    end

    describe("look", function()
        it("reports a worker of an OLD generation whose process is gone, at once", function()
            generation{ 101, 102 }
            local g2 = generation{ ME, 201 }
            kill(102)
            -- own slot 0, turn 1: slot 1 of every generation
            local suspects, closing = look(g2, 0, 1)
            assert.equal(1, #suspects)
            assert.same({ gen = 1, slot = 1, pid = 102, cause = "its process is gone" }, suspects[1])
            assert.is_false(closing)
        end)

        it("leaves a gone pid of the NEWEST generation to its respawned successor while its beat is fresh", function()
            generation{ 101 }
            local g2 = generation{ ME, 201 }
            kill(201)
            assert.same({}, look_turns(g2, 0, 1, 4))
            env.advance(OVERDUE - 0.5)
            beat_live()
            env.advance(0.4)
            assert.same({}, look_turns(g2, 0, 1, 4))
            -- nginx did not respawn it (or the successor never came): once its
            -- heartbeat is overdue too, it is reported
            env.advance(0.2)
            local suspects = look(g2, 0, 1)
            assert.equal(1, #suspects)
            assert.same({ gen = 2, slot = 1, pid = 201, cause = "its process is gone" }, suspects[1])
        end)

        it("reports a gone pid of the newest generation at once when the finder exits for a stop", function()
            local g1 = generation{ ME, 102 }
            kill(102)
            assert.same({}, names((look(g1, 0, 1))))
            assert.same({ "1:1:102" }, names((look(g1, 0, 1, finder(true)))))
        end)

        it("reports a live pid whose heartbeat is older than finder.overdue, in any generation", function()
            generation{ 101 }
            local g2 = generation{ ME, 201 }
            env.advance(OVERDUE - 0.5)
            beat(g2, 0)
            assert.same({}, look_turns(g2, 0, 1, 2))
            env.advance(1)
            beat(g2, 0)
            local suspects = look(g2, 0, 1)
            assert.same({ "1:0:101", "2:1:201" }, names(suspects))
            for _, x in ipairs(suspects) do
                assert.equal("no heartbeat for 15.5s", x.cause)
            end
        end)

        it("reports a counted worker whose record has no readable heartbeat", function()
            local g1 = generation{ ME, 102 }
            dict:set(P .. "g1:slot1", "- 0004c4b400", 0, 102)
            assert.same({ "1:1:102" }, names((look(g1, 0, 1))))
        end)

        it("never reports the finder's own pid, however stale its own record looks", function()
            local g1 = generation{ ME }
            generation{ 201 }
            env.advance(OVERDUE * 3)
            beat(2, 0)
            kill(ME)    -- even if the pid check said so
            assert.same({}, look_turns(g1, 0, 1, 3))
            assert.same({}, look_turns(g1, 0, 1, 3, finder(true)))
            assert.same({}, liveness.look_in(dict, finder(true), g1, env.now()))
        end)

        it("covers every slot of every generation over successive turns, one slot per generation per turn", function()
            local g1 = generation{ 101, 102, 103, 104, 105 }
            local g2 = generation{ 201, 202, ME, 204 }
            for pid = 101, 105 do
                kill(pid)
            end
            env.advance(OVERDUE + 1)     -- 201, 202, 204 live but stalled
            beat(g2, 2)
            for turn = 1, 12 do
                local per_gen = {}
                for _, x in ipairs((look(g2, 2, turn))) do
                    per_gen[x.gen] = (per_gen[x.gen] or 0) + 1
                end
                assert.equal(1, per_gen[g1], "turn " .. turn)
                assert.equal(1, per_gen[g2], "turn " .. turn)
            end
            -- the finder's own generation: its 3 others within 3 turns
            -- (slot 2 + turn: 3, 0, 1 of generation 2; 3, 4, 0 of generation 1)
            local found = look_turns(g2, 2, 1, 3)
            assert.same({ "1:0:101", "1:3:104", "1:4:105", "2:0:201", "2:1:202", "2:3:204" }, found)
            -- an older generation of 5 slots: all of them within 5 turns, from any turn on
            assert.same({ "1:0:101", "1:1:102", "1:2:103", "1:3:104", "1:4:105",
                          "2:0:201", "2:1:202", "2:3:204" }, look_turns(g2, 2, 7, 11))
        end)

        it("reads the shm a constant number of times per look, whatever the number of workers", function()
            local function cost(n)
                stub.uninstall()
                install()
                local old, mine = {}, { ME }
                for i = 1, n do
                    old[i] = 100 + i
                end
                for i = 2, n do
                    mine[i] = 200 + i
                end
                generation(old)
                local g2 = generation(mine)
                local gets = fake_dict.calls(dict).get or 0
                local checks = #env.pid_checks
                local suspects = look(g2, 0, 1)
                assert.same({}, suspects)
                return (fake_dict.calls(dict).get or 0) - gets, #env.pid_checks - checks
            end
            local gets2, checks2 = cost(2)
            local gets16, checks16 = cost(16)
            assert.is_true(gets2 > 0)
            assert.equal(gets2, gets16)
            assert.equal(checks2, checks16)
            assert.equal(2, checks2)    -- one pid per generation
        end)

        describe("closing", function()
            it("is false while every generation has live workers or is young", function()
                local g1 = generation{ ME, 102 }
                local _, closing = look(g1, 0, 1)
                assert.is_false(closing)
                registry.begin_generation(dict, env.now())
                _, closing = look(g1, 0, 1)
                assert.is_false(closing)
            end)

            it("is true for a rolled-back generation (no worker within the grace)", function()
                local g1 = generation{ ME, 102 }
                registry.begin_generation(dict, env.now())
                env.advance(GRACE - 0.001)
                local _, closing = look(g1, 0, 1)
                assert.is_false(closing)
                env.advance(0.001)
                _, closing = look(g1, 0, 1)
                assert.is_true(closing)
            end)

            it("is true for an OLD generation whose workers are all gone", function()
                generation{ 101, 102 }
                local g2 = generation{ ME }
                registry.uncount(dict, 1, 0, 101)
                local _, closing = look(g2, 0, 1)
                assert.is_false(closing)
                registry.uncount(dict, 1, 1, 102)
                _, closing = look(g2, 0, 1)
                assert.is_true(closing)
            end)

            it("is false for the NEWEST generation whose workers are all gone (nginx respawns them)", function()
                local g1 = generation{ ME }
                generation{ 201 }
                registry.uncount(dict, 2, 0, 201)
                local _, closing = look(g1, 0, 1)
                assert.is_false(closing)
            end)

            it("is false for an old generation whose counted workers left while another still starts", function()
                generation{ 101 }
                local g2 = registry.begin_generation(dict, env.now())
                registry.arrive(dict, g2, 0, 201, 2)
                registry.arrive(dict, g2, 1, 202, 2)     -- 202 waits for the lock
                env.live_pids[202] = true
                registry.register(dict, g2, 0, 201, 2, env.now())
                local g3 = generation{ ME }
                registry.uncount(dict, g2, 0, 201)
                local _, closing = look(g3, 0, 1)
                assert.is_false(closing)
                registry.register(dict, g2, 1, 202, 2, env.now())
                registry.uncount(dict, g2, 1, 202)
                _, closing = look(g3, 0, 1)
                assert.is_true(closing)
            end)

            it("is true for an old generation whose worker still starting was killed", function()
                generation{ 101 }
                local g2 = registry.begin_generation(dict, env.now())
                registry.arrive(dict, g2, 0, 201, 2)
                registry.arrive(dict, g2, 1, 202, 2)     -- 202 waits for the lock
                env.live_pids[202] = true
                registry.register(dict, g2, 0, 201, 2, env.now())
                local g3 = generation{ ME }
                registry.uncount(dict, g2, 0, 201)
                local _, closing = look(g3, 0, 1)
                assert.is_false(closing)
                kill(202)
                _, closing = look(g3, 0, 1)
                assert.is_true(closing)
            end)
        end)
    end)

    describe("look_in", function()
        it("finds every other worker of the generation whose process is gone, fresh heartbeat or not", function()
            local g1 = generation{ 101, ME, 103, 104 }
            kill(101)
            kill(104)
            local suspects = liveness.look_in(dict, finder(true), g1, env.now())
            assert.same({ "1:0:101", "1:3:104" }, names(suspects))
            for _, x in ipairs(suspects) do
                assert.equal("its process is gone", x.cause)
            end
        end)

        it("looks only in the generation it is given", function()
            generation{ 101 }
            local g2 = generation{ ME, 202 }
            kill(101)
            assert.same({}, liveness.look_in(dict, finder(true), g2, env.now()))
        end)
    end)

    describe("settle", function()
        it("drops a suspect once: ERR naming '<g>-<pid>', pid and slot; on_crash once with the counts after the drop", function()
            generation{ 101, 102, 103 }
            local g2 = generation{ ME, 201 }
            kill(102)
            local suspects = look(g2, 0, 1)
            assert.same({ "1:1:102" }, names(suspects))
            liveness.settle(dict, finder(), suspects, env.now())
            assert.equal(2, registry.count(dict, 1))
            assert.equal(2, dict:get(P .. "g1:live"))
            assert.same({}, { registry.occupant(dict, 1, 1) })
            local errs = env.logs_at("ERR")
            assert.equal(1, #errs, env.dump_logs())
            assert.matches("^%[worker%-manager%] ", errs[1])
            assert.matches("worker 1-102 ", errs[1], 1, true)
            assert.matches("pid 102", errs[1], 1, true)
            assert.matches("slot 1", errs[1], 1, true)
            assert.matches("its process is gone", errs[1], 1, true)
            assert.same({ { "1-102", nil, 2, 2 } }, crashes)
            -- the same suspects again (a second finder, or a second beat): nothing more
            liveness.settle(dict, finder(), suspects, env.now())
            assert.equal(2, registry.count(dict, 1))
            assert.equal(2, dict:get(P .. "g1:live"))
            assert.equal(1, #env.logs_at("ERR"))
            assert.equal(1, #crashes)
            assert.same({}, master_exits)
        end)

        it("gives on_crash n_prev and n_next over all older and newer generations", function()
            generation{ 101 }
            generation{ 201, 202 }
            local g3 = generation{ ME, 302 }
            kill(202)
            liveness.settle(dict, finder(), look(g3, 0, 1), env.now())
            assert.same({ { "2-202", 1, 1, 2 } }, crashes)
            assert.same({}, master_exits)
        end)

        it("drops a stalled live worker of the newest generation, naming the missed heartbeat", function()
            local g1 = generation{ ME, 102 }
            env.advance(OVERDUE + 2)
            beat(g1, 0)
            liveness.settle(dict, finder(), look(g1, 0, 1), env.now())
            assert.same({ { "1-102", nil, 1, nil } }, crashes)
            assert.equal(1, #env.logs_at("ERR", "no heartbeat for 17.0s"), env.dump_logs())
            assert.same({}, master_exits)
        end)

        it("checks each suspect again: one that beat since the look is not dropped", function()
            local g1 = generation{ ME, 102 }
            env.advance(OVERDUE + 1)
            beat(g1, 0)
            local suspects = look(g1, 0, 1)
            assert.same({ "1:1:102" }, names(suspects))
            beat(g1, 1)   -- it was only slow
            liveness.settle(dict, finder(), suspects, env.now())
            assert.equal(2, registry.count(dict, 1))
            assert.same({}, crashes)
            assert.same({}, env.logs_at("ERR"))
        end)

        it("does not drop again a suspect whose slot a respawned worker took meanwhile", function()
            local g1 = generation{ ME, 102 }
            kill(102)
            env.advance(OVERDUE + 1)
            beat(g1, 0)
            local suspects = look(g1, 0, 1)
            assert.same({ "1:1:102" }, names(suspects))
            -- nginx respawns slot 1 as 150, which counts itself and drops 102
            registry.arrive(dict, g1, 1, 150, 2)
            local _, dead = registry.register(dict, g1, 1, 150, 2, env.now())
            assert.equal(102, dead)
            registry.replace_dead(dict, g1, 1, 102, 150)
            env.live_pids[150] = true
            liveness.settle(dict, finder(), suspects, env.now())
            assert.equal(2, registry.count(dict, 1))
            assert.equal(150, (registry.occupant(dict, 1, 1)))
            assert.same({}, crashes)
        end)

        it("reports the predecessor of a respawned worker killed in its start callback, when it drops that worker", function()
            generation{ 101, 102 }
            generation{ ME, 202 }                   -- a reload came since
            -- generation 1, slot 1: 102 died, nginx respawned 150, which
            -- dropped 102 (queued for its report) and was killed in its
            -- start callback; no respawn of generation 1 will follow
            kill(102)
            registry.arrive(dict, 1, 1, 150, 2)
            local _, dead = registry.register(dict, 1, 1, 150, 2, env.now())
            assert.equal(102, dead)
            registry.replace_dead(dict, 1, 1, 102, 150)
            liveness.settle(dict, finder(), { { gen = 1, slot = 1, pid = 150, cause = "its process is gone" } }, env.now())
            assert.same({ "crash 1-150", "crash 1-102" }, order)
            assert.same({ { "1-150", nil, 1, 2 }, { "1-102", nil, 1, 2 } }, crashes)
            assert.equal(1, #env.logs_at("ERR", "worker 1-102 (pid 102, slot 1) crashed: nginx respawned its slot as 1-150"),
                         env.dump_logs())
            assert.equal(1, registry.count(dict, 1))
            assert.same({}, registry.take_replaced(dict, 1, 1))
        end)

        it("runs an OLD generation's master exit once when its last worker is dropped, and removes its keys", function()
            generation{ 101 }
            generation{ 201 }
            local g3 = generation{ ME, 302 }
            kill(201)
            local suspects = look(g3, 0, 1)
            assert.same({ "2:0:201" }, names(suspects))
            liveness.settle(dict, finder(), suspects, env.now())
            assert.same({ { "2-201", 1, 0, 2 } }, crashes)
            assert.same({ { 2, 1, 0, 2 } }, master_exits)
            assert.same({ "crash 2-201", "master exit 2" }, order)
            assert.same({}, gen_keys(2))
            assert.equal(1, #env.logs_at("NOTICE", "generation 2"), env.dump_logs())
            -- again, and from a later beat: nothing more
            liveness.settle(dict, finder(), suspects, env.now())
            local again, closing = look(g3, 0, 2)
            assert.same({}, again)
            assert.is_false(closing)
            liveness.settle(dict, finder(), {}, env.now())
            assert.equal(1, #master_exits)
            assert.equal(1, #crashes)
            -- the node still counts right
            assert.same({ 1, nil }, { registry.neighbours(dict, g3, env.now(), GRACE) })
        end)

        describe("a master exit whose runner died (its records marked closing)", function()
            -- generation 1's last worker (102) exited, marked the closing and
            -- died; ME, of generation 2, finds it
            local function closing_by_dead(entered)
                generation{ 101, 102 }
                local g2 = generation{ ME, 202 }
                registry.uncount(dict, 1, 0, 101)
                registry.uncount(dict, 1, 1, 102)
                registry.begin_close(dict, 1, 102)
                if entered then
                    registry.enter_close(dict, 1, 102)
                end
                kill(101)
                kill(102)
                return g2
            end

            it("runs it here when the runner died before it entered the callback", function()
                local g2 = closing_by_dead(false)
                local _, closing = look(g2, 0, 1)
                assert.is_true(closing)
                liveness.settle(dict, finder(), {}, env.now())
                assert.same({ { 1, nil, 0, 2 } }, master_exits)
                assert.same({}, gen_keys(1))
                assert.equal(1, #env.logs_at("NOTICE", "generation 1 lost its last worker (pid 102)"), env.dump_logs())
                liveness.settle(dict, finder(), {}, env.now())
                assert.equal(1, #master_exits)
            end)

            it("counts it as run once the runner entered the callback: not run again", function()
                local g2 = closing_by_dead(true)
                local _, closing = look(g2, 0, 1)
                assert.is_true(closing)
                liveness.settle(dict, finder(), {}, env.now())
                assert.same({}, master_exits)
                assert.same({}, gen_keys(1))
                assert.equal(1, #env.logs_at("NOTICE", "cut short by the death of process 102"), env.dump_logs())
            end)

            it("leaves it alone while the runner lives", function()
                generation{ 101 }
                local g2 = generation{ ME, 202 }
                registry.uncount(dict, 1, 0, 101)
                registry.begin_close(dict, 1, 101)
                local _, closing = look(g2, 0, 1)
                assert.is_false(closing)
                liveness.settle(dict, finder(), {}, env.now())
                assert.same({}, master_exits)
                assert.same({ 101, false }, { registry.closer(dict, 1) })
            end)
        end)

        it("end_with_master_exit marks the callback entered before it runs, then forgets the generation", function()
            generation{ 201 }
            local seen
            reports.end_with_master_exit(dict, function(id)
                seen = { registry.closer(dict, id) }
            end, 1, ME, env.now(), GRACE)
            assert.same({ ME, true }, seen)
            assert.same({}, gen_keys(1))
        end)

        it("does not close an old generation whose other worker is still starting (double HUP)", function()
            generation{ 101 }
            local g2 = registry.begin_generation(dict, env.now())
            registry.arrive(dict, g2, 0, 201, 2)
            registry.arrive(dict, g2, 1, 202, 2)         -- 202 waits for the lock
            env.live_pids[202] = true
            registry.register(dict, g2, 0, 201, 2, env.now())
            env.live_pids[201] = true
            local g3 = generation{ ME }
            kill(201)
            local suspects = look(g3, 0, 2)      -- slot 0 of generation 2
            assert.same({ "2:0:201" }, names(suspects))
            liveness.settle(dict, finder(), suspects, env.now())
            assert.same({ { "2-201", 1, 0, 1 } }, crashes)
            assert.same({}, master_exits)
            assert.is_true(registry.recorded(dict, g2))
            assert.is_false(liveness.over(dict, g2))
            -- 202 is killed before it got the lock: nothing holds generation 2 open any more
            kill(202)
            assert.is_true(liveness.over(dict, g2))
            liveness.settle(dict, finder(), {}, env.now())
            liveness.settle(dict, finder(), {}, env.now())
            assert.same({ { 2, 1, 0, 1 } }, master_exits)
            assert.is_false(registry.recorded(dict, g2))
        end)

        describe("a worker killed while it waited for the lock (arrived, never counted)", function()
            -- worker_processes 2. 101 (slot 1) holds the lock for its start
            -- callback; 100 (slot 0) arrived and waits for the lock; it is
            -- killed there. Where nginx respawns, slot 0 arrives again as 150.
            local function killed_while_waiting(g, respawn)
                registry.arrive(dict, g, 1, 101, 2)
                registry.register(dict, g, 1, 101, 2, env.now())
                env.live_pids[101] = true
                registry.arrive(dict, g, 0, 100, 2)
                if respawn then
                    registry.arrive(dict, g, 0, 150, 2)
                    local _, dead = registry.register(dict, g, 0, 150, 2, env.now())
                    assert.is_nil(dead)     -- 100 never reached its slot: nothing to drop
                    env.live_pids[150] = true
                end
            end

            it("does not keep its generation from ending at a stop (the last exit finds it over)", function()
                local g = registry.begin_generation(dict, env.now())
                killed_while_waiting(g, true)
                assert.equal(2, registry.count(dict, g))
                -- nginx -s quit: 101 exits, then 150, the last one
                registry.uncount(dict, g, 1, 101)
                assert.is_false(liveness.over(dict, g))
                assert.same({ true, 0 }, { registry.uncount(dict, g, 0, 150) })
                -- what leave() asks before it runs the master exit
                assert.is_true(liveness.over(dict, g))
            end)

            it("does not keep an old generation from being closed after a reload", function()
                local g1 = registry.begin_generation(dict, env.now())
                killed_while_waiting(g1, false)      -- old generations are not respawned
                env.advance(60)
                local g2 = generation{ ME }
                -- 101 exits gracefully after the HUP
                assert.same({ true, 0 }, { registry.uncount(dict, g1, 1, 101) })
                kill(101)
                assert.is_true(liveness.over(dict, g1))
                -- were that exit's master exit lost, a heartbeat of the new generation closes it
                env.advance(3600)
                beat(g2, 0)
                local _, closing = look(g2, 0, 1)
                assert.is_true(closing)
                liveness.settle(dict, finder(), {}, env.now())
                assert.same({ { g1, nil, 0, 1 } }, master_exits)
                assert.is_false(registry.recorded(dict, g1))
            end)
        end)

        it("does NOT close the newest generation when its last worker dies (nginx respawns it) unless the node stops", function()
            local g1 = generation{ ME }
            local g2 = generation{ 201 }
            kill(201)
            env.advance(OVERDUE + 1)
            beat(g1, 0)
            local suspects = look(g1, 0, 1)
            assert.same({ "2:0:201" }, names(suspects))
            liveness.settle(dict, finder(), suspects, env.now())
            assert.same({ { "2-201", 1, 0, nil } }, crashes)
            assert.same({}, master_exits)
            assert.is_true(registry.recorded(dict, g2))
            liveness.settle(dict, finder(), {}, env.now())
            assert.same({}, master_exits)
            -- a finder that exits for a stop knows nothing will be respawned any more
            liveness.settle(dict, finder(true), {}, env.now())
            assert.same({ { 2, 1, 0, nil } }, master_exits)
            assert.same({}, gen_keys(2))
            liveness.settle(dict, finder(true), {}, env.now())
            assert.equal(1, #master_exits)
        end)

        it("never closes a generation while a worker of it is still counted (the finder, exiting for a stop, itself)", function()
            local g1 = generation{ ME, 102 }
            kill(102)
            local f = finder(true)
            liveness.settle(dict, f, liveness.look_in(dict, f, g1, env.now()), env.now())
            assert.same({ { "1-102", nil, 1, nil } }, crashes)
            assert.same({}, master_exits)
            assert.is_true(registry.recorded(dict, g1))
        end)

        it("keeps an old generation open while a worker dropped for a late heartbeat still runs", function()
            generation{ 101 }
            local g2 = generation{ ME }
            env.advance(OVERDUE + 1)
            beat(g2, 0)
            local suspects = look(g2, 0, 1)
            assert.same({ "1:0:101" }, names(suspects))
            liveness.settle(dict, finder(), suspects, env.now())
            assert.same({ { "1-101", nil, 0, 1 } }, crashes)
            -- only busy, maybe: its generation's master exit must not come before its own exit
            assert.same({}, master_exits)
            assert.is_true(registry.recorded(dict, 1))
            assert.is_false(liveness.over(dict, 1))
            local _, closing = look(g2, 0, 2)
            assert.is_false(closing)
            liveness.settle(dict, finder(), {}, env.now())
            assert.same({}, master_exits)
            -- it dies at last: the generation is closed on its behalf, once
            kill(101)
            assert.is_true(liveness.over(dict, 1))
            _, closing = look(g2, 0, 3)
            assert.is_true(closing)
            liveness.settle(dict, finder(), {}, env.now())
            liveness.settle(dict, finder(), {}, env.now())
            assert.same({ { 1, nil, 0, 1 } }, master_exits)
            assert.same({}, gen_keys(1))
        end)

        it("lets a stalled worker that beats again be counted again, and then end its generation by exiting", function()
            generation{ 101 }
            local g2 = generation{ ME }
            env.advance(OVERDUE + 1)
            beat(g2, 0)
            liveness.settle(dict, finder(), look(g2, 0, 1), env.now())
            assert.equal("slot 0", registry.restore(dict, 1, 0, 101, 2, env.now()))
            assert.equal(1, registry.count(dict, 1))
            assert.is_false(liveness.over(dict, 1))
            assert.same({ true, 0 }, { registry.uncount(dict, 1, 0, 101) })
            assert.is_true(liveness.over(dict, 1))
        end)

        it("forgets rolled-back generations, with no callback for them", function()
            local g1 = generation{ ME, 102 }
            registry.begin_generation(dict, env.now())
            env.advance(GRACE)
            beat_live()
            local suspects, closing = look(g1, 0, 1)
            assert.same({}, suspects)
            assert.is_true(closing)
            liveness.settle(dict, finder(), suspects, env.now())
            assert.same({}, gen_keys(2))
            assert.equal(1, #env.logs_at("NOTICE", "generation 2"), env.dump_logs())
            assert.same({}, crashes)
            assert.same({}, master_exits)
            assert.equal(1, registry.newest(dict, env.now(), GRACE))
            local _
            _, closing = look(g1, 0, 2)
            assert.is_false(closing)
        end)

        it("goes on after a crash callback that raises: logged, the others still dropped, master exit still run", function()
            generation{ 101, 102 }
            local g2 = generation{ ME }
            kill(101)
            kill(102)
            local f = finder()
            f.on_crash = function(id)
                crashes[#crashes + 1] = id
                error("boom " .. id)
            end
            local suspects = liveness.look_in(dict, f, 1, env.now())
            assert.equal(2, #suspects)
            liveness.settle(dict, f, suspects, env.now())
            assert.same({ "1-101", "1-102" }, crashes)
            assert.equal(2, #env.logs_at("ERR", "boom"), env.dump_logs())
            assert.same({ { 1, nil, 0, 1 } }, master_exits)
            assert.same({}, gen_keys(1))
            assert.equal(2, dict:get(P .. "low"))
            assert.same({ 0, nil }, { registry.neighbours(dict, g2, env.now(), GRACE) })
        end)
    end)

    -- An idle generation: its last worker left gracefully while nginx's master
    -- kept its configuration (a worker replaced by a signal sent to it, WINCH).
    describe("an idle generation", function()
        -- generation g whose only worker (pid) exited, leaving it idle
        local function idle_generation(pid)
            local g = generation{ pid }
            registry.uncount(dict, g, 0, pid)
            kill(pid)
            registry.suspend(dict, g, env.now())
            return g
        end

        it("is not closed by a heartbeat, nor by an exit that is no stop, while it is the newest", function()
            local g = idle_generation(101)
            assert.is_true(registry.idle(dict, g))
            assert.is_false(liveness.over(dict, g, false))
            local _, closing = look(g, 0, 1)
            assert.is_false(closing)
            liveness.settle(dict, finder(false), {}, env.now())
            assert.same({}, master_exits)
            assert.is_true(registry.recorded(dict, g))
        end)

        it("is joined again by the worker nginx starts for it, and is no longer idle", function()
            local g = idle_generation(101)
            registry.arrive(dict, g, 0, 102, 1)
            local mine = registry.register(dict, g, 0, 102, 1, env.now())
            assert.equal(1, mine)
            assert.is_false(registry.idle(dict, g))
            assert.same({ 1 }, { registry.count(dict, g) })
        end)

        it("is closed by whoever exits for a stop, with a note that it went idle", function()
            local g = idle_generation(101)
            liveness.settle(dict, finder(true), {}, env.now())
            assert.same({ { g, nil, 0, nil } }, master_exits)
            assert.equal(1, #env.logs_at("NOTICE", "generation 1 went idle and the node stops; running its master exit here"),
                         env.dump_logs())
            assert.same({}, gen_keys(g))
        end)

        it("is not closed while a newer generation only exists (a reload that may be rolled back)", function()
            local g = idle_generation(101)
            local g2 = registry.begin_generation(dict, env.now())
            assert.equal(g2, registry.newest(dict, env.now(), GRACE))
            assert.is_false(registry.superseded(dict, g))
            liveness.settle(dict, finder(false), {}, env.now())
            assert.same({}, master_exits)
        end)

        it("is closed once a newer generation got a worker: nginx will not run its configuration again", function()
            local g = idle_generation(101)
            local g2 = generation{ ME }
            assert.is_true(registry.superseded(dict, g))
            local _, closing = look(g2, 0, 1)
            assert.is_true(closing)
            liveness.settle(dict, finder(false), {}, env.now())
            assert.same({ { g, nil, 0, 1 } }, master_exits)
            assert.equal(1, #env.logs_at("NOTICE", "generation 1 went idle and a newer one took over"), env.dump_logs())
        end)
    end)
end)
