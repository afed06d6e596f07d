-- resty.worker.manager.lock: the node-wide lock in the shm (README.md,
-- Callbacks, "One at a time"; Crashes: "a worker killed holding the node
-- lock does not block it"), against a fake shdict whose expiry follows
-- nginx's cached clock. Several processes are played by switching the stub's
-- pid; host.pause and ngx.sleep advance the stub's clock.

local stub = require("helpers.ngx_stub")
local fake_dict = require("helpers.fake_dict")

local LOCK = "lua-resty-worker-manager:lock"
local A, B = 1001, 2002

describe("lock", function()
    local env, dict, lock

    before_each(function()
        env = stub.install{ pid = A, phase = "init_worker", now = 10000 }
        env.live_pids[B] = true
        dict = env.dict
        lock = require("resty.worker.manager.lock")
    end)

    after_each(function()
        stub.uninstall()
    end)

    local function as(pid)
        env.pid = pid
    end

    local function waited()
        return #env.pauses + #env.sleeps
    end

    it("hands out a 'pid:n' token stored in the lock key with a 30 s expiry", function()
        assert.equal(30, lock.EXPTIME)
        local hold = lock.acquire(dict, false)
        assert.equal(A .. ":1", hold)
        assert.equal(hold, dict:get(LOCK))
        assert.equal(30, dict:ttl(LOCK))
        assert.equal(0, waited())
        assert.same({}, env.logs)
        lock.release(dict, hold)
        assert.is_nil(dict:get(LOCK))
        local again = lock.acquire(dict, false)
        assert.equal(A .. ":2", again)
        lock.release(dict, again)
        as(B)
        assert.equal(B .. ":3", lock.acquire(dict, false))
    end)

    it("keeps a reserve of its key's size, so it is still taken in a full shm", function()
        local hold = lock.acquire(dict, false)
        lock.release(dict, hold)                    -- the reserve is put in place
        assert.is_true(dict:get(LOCK .. ":reserve"))
        fake_dict.fill(dict, "other:")
        as(B)
        hold = lock.acquire(dict, false)
        assert.equal(B .. ":2", hold)
        assert.equal(0, #env.logs_at("ERR"), env.dump_logs())
        lock.release(dict, hold)
        assert.is_true(dict:get(LOCK .. ":reserve"))
        -- without the reserve (someone took its room) it goes on unlocked, and says so
        dict:delete(LOCK .. ":reserve")
        fake_dict.fill(dict, "more:")
        assert.equal(lock.UNLOCKED, lock.acquire(dict, false))
        assert.equal(1, #env.logs_at("ERR", "no memory"), env.dump_logs())
    end)

    it("judges expiry by a fresh clock, not a stale cached one", function()
        dict:safe_add(LOCK, B .. ":9", 30)
        env.advance_os(40)                  -- the hold expired in real time
        local hold = lock.acquire(dict, false)
        assert.equal(A .. ":1", hold)
        assert.equal(0, waited())
        assert.equal(30, dict:ttl(LOCK))
    end)

    it("makes a second process wait until the first hold expires (30 s)", function()
        local first = lock.acquire(dict, false)
        as(B)
        local t0 = env.now()
        local second = lock.acquire(dict, false)
        local elapsed = env.now() - t0
        assert.equal(B .. ":2", second)
        assert.equal(second, dict:get(LOCK))
        assert.is_true(elapsed >= 30, "waited only " .. elapsed .. " s")
        assert.is_true(elapsed < 35, "waited " .. elapsed .. " s")
        assert.is_true(#env.pauses > 1)
        assert.same({}, env.logs_at("WARN"))
        assert.same({}, env.logs_at("ERR"))
        assert.are_not.equal(first, second)
    end)

    it("waits in short steps: it gets a lock released early without waiting the expiry", function()
        dict:safe_add(LOCK, B .. ":1", 30)
        -- B releases after about 2 s: simulate by a pause hook
        local pause = env.host.pause
        local released = false
        env.host.pause = function(s)
            pause(s)
            if not released and env.os_time >= 10002 then
                released = true
                dict:delete(LOCK)
            end
        end
        package.loaded["resty.worker.manager.lock"] = nil
        lock = require("resty.worker.manager.lock")
        local t0 = env.os_time
        local hold = lock.acquire(dict, false)
        assert.equal(A .. ":1", hold)
        local elapsed = env.os_time - t0
        assert.is_true(elapsed >= 2 and elapsed < 2.02, "elapsed " .. elapsed)
    end)

    it("takes over at once, with a WARN, from a holder whose pid is dead", function()
        dict:safe_add(LOCK, "4242:7", 30)
        local t0 = env.now()
        local hold = lock.acquire(dict, false)
        assert.equal(A .. ":1", hold)
        assert.equal(hold, dict:get(LOCK))
        assert.equal(t0, env.now())
        assert.equal(0, waited())
        local warns = env.logs_at("WARN", "4242")
        assert.equal(1, #warns, env.dump_logs())
        assert.matches("^%[worker%-manager%] ", warns[1])
        assert.same({ 4242 }, env.pid_checks)
    end)

    it("asks whether a live holder lives when it first sees the hold, then every 5 ms, not at every step", function()
        dict:safe_add(LOCK, B .. ":9", 30)      -- B lives and keeps it
        assert.is_nil(lock.try_acquire(dict, false, 0.1))
        assert.is_true(#env.pauses > 60, "steps: " .. #env.pauses)
        assert.is_true(#env.pid_checks >= 18 and #env.pid_checks <= 22, "checks: " .. #env.pid_checks)
        -- a new hold is checked at once
        env.pid_checks = {}
        dict:delete(LOCK)
        dict:safe_add(LOCK, "4242:1", 30)       -- 4242 is dead
        assert.equal(A .. ":2", lock.acquire(dict, false))
        assert.same({ 4242 }, env.pid_checks)
    end)

    it("does not delete a hold that another process took over in the meantime", function()
        dict:safe_add(LOCK, "4242:7", 30)
        -- While A checks whether 4242 lives, B (faster) takes the lock over.
        local pid_alive = env.host.pid_alive
        env.host.pid_alive = function(pid)
            if pid == 4242 and dict:get(LOCK) == "4242:7" then
                dict:delete(LOCK)
                dict:safe_add(LOCK, B .. ":77", 30)
            end
            return pid_alive(pid)
        end
        package.loaded["resty.worker.manager.lock"] = nil
        lock = require("resty.worker.manager.lock")
        local t0 = env.now()
        local hold = lock.acquire(dict, false)
        local elapsed = env.now() - t0
        assert.equal(A .. ":1", hold)
        assert.is_true(elapsed >= 30 and elapsed < 35, "B's hold was cut short: " .. elapsed)
    end)

    it("waits for a resty.lock-style holder (value true) instead of taking it over", function()
        assert.is_true((dict:add(LOCK, true, 30)))   -- what resty.lock's lock() does
        local t0 = env.now()
        local hold = lock.acquire(dict, false)
        local elapsed = env.now() - t0
        assert.equal(A .. ":1", hold)
        assert.is_true(elapsed >= 30 and elapsed < 35, "elapsed " .. elapsed)
        assert.same({}, env.logs_at("WARN"))
        assert.same({}, env.pid_checks)
    end)

    it("waits for a live holder it cannot parse as ours, without taking over", function()
        dict:safe_add(LOCK, "somebody", 3)
        local t0 = env.now()
        assert.equal(A .. ":1", lock.acquire(dict, false))
        assert.is_true(env.now() - t0 >= 3)
        assert.same({}, env.logs_at("WARN"))
    end)

    it("gives up after 35 s on a hold that never expires: ERR, UNLOCKED token", function()
        dict:set(LOCK, B .. ":1")            -- no expiry, B alive
        local t0 = env.now()
        local hold = lock.acquire(dict, false)
        local elapsed = env.now() - t0
        assert.equal("", hold)
        assert.is_true(elapsed >= 35 and elapsed < 36, "elapsed " .. elapsed)
        assert.equal(1, #env.logs_at("ERR", B .. ":1"), env.dump_logs())
        assert.equal(B .. ":1", dict:get(LOCK))
        lock.release(dict, hold)
        assert.equal(B .. ":1", dict:get(LOCK))
    end)

    describe("two waiters and one dead holder (takeover race)", function()
        local DEAD = "4242:7"
        local MARKER = LOCK .. ":takeover:" .. DEAD
        local procs        -- the simulated processes, by name
        local running      -- the process whose coroutine runs now
        local ops          -- every shm operation performed: { name, op, key }
        local violations   -- moments when two processes held the lock at once

        -- Each process runs in a coroutine that stops right before every shm
        -- operation, so the test decides which process performs its next
        -- operation; an operation itself is atomic, as in nginx's shm.
        local function instrument()
            for _, m in ipairs{ "get", "safe_add", "add", "delete", "safe_set", "set", "incr" } do
                local orig = dict[m]
                dict[m] = function(self, key, ...)
                    local p = running
                    if p then
                        p.pending = m .. " " .. tostring(key)
                        coroutine.yield()
                        p.pending = nil
                        ops[#ops + 1] = { p.name, m, key, p.state }
                    end
                    return orig(self, key, ...)
                end
            end
        end

        local function resume(p)
            running = p
            env.pid = p.pid
            local ok, err = coroutine.resume(p.co)
            running = nil
            assert(ok, err)
            p.done = coroutine.status(p.co) == "dead"
        end

        -- A process that takes the lock, works `work` steps under it, releases it.
        local function spawn(name, pid, work)
            local p = { name = name, pid = pid, state = "acquire" }
            p.co = coroutine.create(function()
                p.hold = lock.acquire(dict, false)
                for _, q in pairs(procs) do
                    if q ~= p and q.state == "holding" then
                        violations[#violations + 1] = p.name .. " took the lock while " .. q.name .. " held it"
                    end
                end
                p.state = "holding"
                for _ = 1, work do
                    coroutine.yield()
                end
                p.state = "release"
                lock.release(dict, p.hold)
                p.state = "done"
            end)
            procs[name] = p
            resume(p)       -- runs up to its first shm operation
            return p
        end

        local function step(p)
            if not p.done then
                resume(p)
            end
        end

        local function run_all(limit)
            local n = 0
            while not (procs.A.done and procs.B.done) do
                step(procs.A)
                step(procs.B)
                n = n + 1
                assert(n < limit, "processes did not finish")
            end
        end

        local function deletes_of_lock(state)
            local out = {}
            for _, o in ipairs(ops) do
                if o[2] == "delete" and o[3] == LOCK and o[4] == state then
                    out[#out + 1] = o[1]
                end
            end
            return out
        end

        local function setup()
            procs, ops, violations = {}, {}, {}
            running = nil
            env.live_pids[A] = true
            env.live_pids[B] = true
            assert.is_true((dict:safe_add(LOCK, DEAD, 30)))   -- 4242 was killed holding it
            instrument()
        end

        before_each(setup)

        it("lets only the marker's winner delete the dead hold; the other waits for the winner's hold", function()
            local a = spawn("A", A, 3)
            local b = spawn("B", B, 3)
            -- B finds the lock taken, reads the dead token ...
            step(b)
            step(b)
            assert.equal("safe_add " .. MARKER, b.pending)
            -- ... and before it marks the takeover, A does it all and holds the lock
            while a.state ~= "holding" do
                step(a)
            end
            assert.equal(A .. ":1", a.hold)
            assert.equal(a.hold, dict:get(LOCK))
            -- B goes on: it loses the marker, leaves A's hold alone, waits
            local pauses = #env.pauses
            for _ = 1, 60 do
                step(b)
                assert.equal(a.hold, dict:get(LOCK))
                assert.equal("acquire", b.state)
            end
            assert.is_true(#env.pauses > pauses)
            assert.same({ "A" }, deletes_of_lock("acquire"))
            -- A finishes; B gets the lock then
            run_all(100000)
            assert.equal(B .. ":2", b.hold)
            assert.same({}, violations)
            assert.same({ "A" }, deletes_of_lock("acquire"))
            assert.equal(1, #env.logs_at("WARN", "4242"), env.dump_logs())
            assert.same({}, env.logs_at("ERR"))
            assert.is_nil(dict:get(LOCK))
        end)

        it("keeps the two apart in every interleaving of their first operations", function()
            -- all orders of 6 operations of A and 6 of B (the whole takeover
            -- path is safe_add, get, safe_add marker, get, delete, safe_add),
            -- then turn by turn
            local schedules = {}
            local function gen(prefix, na, nb)
                if na == 0 and nb == 0 then
                    schedules[#schedules + 1] = prefix
                    return
                end
                if na > 0 then gen(prefix .. "A", na - 1, nb) end
                if nb > 0 then gen(prefix .. "B", na, nb - 1) end
            end
            gen("", 6, 6)
            assert.equal(924, #schedules)
            for i, schedule in ipairs(schedules) do
                if i > 1 then
                    stub.uninstall()
                    env = stub.install{ pid = A, phase = "init_worker", now = 10000 }
                    dict = env.dict
                    lock = require("resty.worker.manager.lock")
                    setup()
                end
                spawn("A", A, 2)
                spawn("B", B, 2)
                for c in schedule:gmatch(".") do
                    step(procs[c])
                end
                run_all(100000)
                local where = "schedule " .. schedule
                assert.same({}, violations, where)
                assert.equal(1, #deletes_of_lock("acquire"), where)
                assert.equal(1, #env.logs_at("WARN", "took over"), where .. "\n" .. env.dump_logs())
                assert.are_not.equal("", procs.A.hold, where)
                assert.are_not.equal("", procs.B.hold, where)
                assert.is_nil(dict:get(LOCK), where)
            end
        end)
    end)

    describe("release", function()
        it("deletes its own hold", function()
            local hold = lock.acquire(dict, false)
            lock.release(dict, hold)
            assert.is_nil(dict:get(LOCK))
            assert.same({}, env.logs)
        end)

        it("leaves another's hold after its own expired and was retaken, with a WARN", function()
            local mine = lock.acquire(dict, false)
            env.advance(31)
            as(B)
            local t0 = env.now()
            local theirs = lock.acquire(dict, false)
            assert.equal(t0, env.now())          -- expired: no wait
            assert.equal(B .. ":2", theirs)
            as(A)
            lock.release(dict, mine)
            assert.equal(theirs, dict:get(LOCK))
            local warns = env.logs_at("WARN", mine)
            assert.equal(1, #warns, env.dump_logs())
            as(B)
            lock.release(dict, theirs)
            assert.is_nil(dict:get(LOCK))
        end)

        it("leaves a resty.lock user's hold alone", function()
            local mine = lock.acquire(dict, false)
            env.advance(31)
            dict:add(LOCK, true, 30)
            lock.release(dict, mine)
            assert.is_true(dict:get(LOCK))
            assert.equal(1, #env.logs_at("WARN"))
        end)
    end)

    describe("renew", function()
        it("extends the expiry of a hold still held", function()
            local hold = lock.acquire(dict, false)
            env.advance(20)
            assert.equal(10, dict:ttl(LOCK))
            assert.equal(hold, lock.renew(dict, hold, false))
            assert.equal(hold, dict:get(LOCK))
            assert.equal(30, dict:ttl(LOCK))
            assert.same({}, env.logs)
            assert.equal(0, waited())
        end)

        it("re-acquires a hold that expired, with a WARN", function()
            local hold = lock.acquire(dict, false)
            env.advance(31)
            local renewed = lock.renew(dict, hold, false)
            assert.equal(A .. ":2", renewed)
            assert.equal(renewed, dict:get(LOCK))
            assert.equal(30, dict:ttl(LOCK))
            assert.equal(1, #env.logs_at("WARN", hold), env.dump_logs())
        end)

        it("waits for whoever took the expired hold, then re-acquires", function()
            local hold = lock.acquire(dict, false)
            env.advance(31)
            as(B)
            local theirs = lock.acquire(dict, false)
            as(A)
            local t0 = env.now()
            local renewed = lock.renew(dict, hold, false)
            local elapsed = env.now() - t0
            assert.equal(A .. ":3", renewed)
            assert.equal(renewed, dict:get(LOCK))
            assert.is_true(elapsed >= 30 and elapsed < 35, "elapsed " .. elapsed)
            assert.are_not.equal(theirs, renewed)
        end)

        it("acquires when called with the UNLOCKED token", function()
            local renewed = lock.renew(dict, "", false)
            assert.equal(A .. ":1", renewed)
            assert.equal(renewed, dict:get(LOCK))
        end)
    end)

    describe("when the shm is full", function()
        before_each(function()
            stub.uninstall()
            env = stub.install{ pid = A, phase = "init_worker", capacity = 2048 }
            env.live_pids[B] = true
            dict = env.dict
            lock = require("resty.worker.manager.lock")
            fake_dict.fill(dict, "other:")
        end)

        it("logs ERR and returns the UNLOCKED token '' without waiting", function()
            local hold = lock.acquire(dict, false)
            assert.equal("", hold)
            assert.is_nil(dict:get(LOCK))
            local errs = env.logs_at("ERR", LOCK)
            assert.equal(1, #errs, env.dump_logs())
            assert.matches("no memory", errs[1], 1, true)
            assert.equal(0, waited())
            assert.equal(0, dict:get("other:0"))    -- nobody else's key was evicted
        end)

        it("makes release of the UNLOCKED token a no-op", function()
            local hold = lock.acquire(dict, false)
            -- room appears and someone else takes the lock
            dict:delete("other:0")
            dict:delete("other:1")
            assert.is_true((dict:safe_add(LOCK, B .. ":5", 30)))
            local deletes = fake_dict.calls(dict).delete or 0
            local logged = #env.logs
            lock.release(dict, hold)
            assert.equal(B .. ":5", dict:get(LOCK))
            assert.equal(deletes, fake_dict.calls(dict).delete or 0)
            assert.equal(logged, #env.logs)
        end)
    end)

    describe("waiting", function()
        before_each(function()
            as(B)
            dict:safe_add(LOCK, B .. ":1", 2)      -- B holds it for 2 s
            as(A)
        end)

        it("uses ngx.sleep where it can yield", function()
            env.phase = "timer"
            local t0 = env.now()
            assert.equal(A .. ":1", lock.acquire(dict, true))
            assert.is_true(#env.sleeps > 0)
            assert.equal(0, #env.pauses)
            assert.is_true(env.now() - t0 >= 2)
            -- nginx sleeps whole milliseconds: less would be ngx.sleep(0),
            -- which warns in the error log on a stock nginx
            for _, s in ipairs(env.sleeps) do
                assert.is_true(s >= 0.001, "a sleep of " .. s .. " s")
            end
        end)

        it("blocks with host.pause where it cannot (ngx.sleep is disabled)", function()
            env.phase = "init_worker"
            local t0 = env.now()
            assert.equal(A .. ":1", lock.acquire(dict, false))
            assert.is_true(#env.pauses > 0)
            assert.equal(0, #env.sleeps)
            assert.is_true(env.now() - t0 >= 2)
        end)

        it("starts with short steps and never steps longer than 10 ms", function()
            lock.acquire(dict, false)
            assert.is_true(env.pauses[1] <= 0.001)
            for _, s in ipairs(env.pauses) do
                assert.is_true(s > 0 and s <= 0.01, tostring(s))
            end
        end)
    end)
end)
