-- resty.worker.manager.resume: which generation a worker joins when nginx
-- starts workers of a configuration after that configuration's master exit
-- ran on a fast exit (TERM), where the module could only assume a stop.

local stub = require("helpers.ngx_stub")

describe("resume", function()
    local env, dict, registry, resume

    before_each(function()
        env = stub.install{ phase = "init_worker", now = 1000 }
        dict = env.dict
        registry = require("resty.worker.manager.registry")
        resume = require("resty.worker.manager.resume")
    end)

    after_each(function()
        stub.uninstall()
    end)

    -- generation with one worker `pid` in slot 0, ended by its master exit
    local function ended_generation(pid)
        local g = registry.begin_generation(dict, env.now())
        registry.arrive(dict, g, 0, pid, 1)
        registry.register(dict, g, 0, pid, 1, env.now())
        registry.uncount(dict, g, 0, pid)
        registry.end_generation(dict, g)
        return g
    end

    it("joins the configuration's own generation while it runs", function()
        local g = registry.begin_generation(dict, env.now())
        assert.equal(g, resume.carrier(dict, g))
        assert.is_false(resume.resumable(dict, g))
    end)

    it("opens a new generation after an assumed stop, and later workers join it", function()
        local g = ended_generation(101)
        assert.is_nil(resume.carrier(dict, g))
        assert.is_false(resume.resumable(dict, g))
        resume.note_end(dict, g, g, true)
        assert.is_true(resume.resumable(dict, g))
        local g2 = resume.open(dict, g, env.now())
        assert.equal(g + 1, g2)
        assert.equal(g2, resume.carrier(dict, g))
        assert.is_false(resume.resumable(dict, g))
    end)

    it("does not resume after a known stop or a reload", function()
        local g = ended_generation(101)
        resume.note_end(dict, g, g, false)
        assert.is_false(resume.resumable(dict, g))
    end)

    it("opens again after the resumed generation also ended on an assumed stop", function()
        local g = ended_generation(101)
        resume.note_end(dict, g, g, true)
        local g2 = resume.open(dict, g, env.now())
        registry.arrive(dict, g2, 0, 102, 1)
        registry.register(dict, g2, 0, 102, 1, env.now())
        registry.uncount(dict, g2, 0, 102)
        registry.end_generation(dict, g2)
        assert.is_false(resume.resumable(dict, g))
        resume.note_end(dict, g, g2, true)
        assert.is_true(resume.resumable(dict, g))
        assert.equal(g2 + 1, resume.open(dict, g, env.now()))
    end)

    it("leaves a late worker of a configuration a newer one replaced untracked", function()
        local g = ended_generation(101)
        resume.note_end(dict, g, g, true)
        local g2 = registry.begin_generation(dict, env.now())
        registry.arrive(dict, g2, 0, 201, 1)
        assert.is_true(registry.superseded(dict, g))
        assert.is_false(resume.resumable(dict, g))
    end)

    it("keeps the newest configuration's record when an older generation ends after it", function()
        local g1 = ended_generation(101)
        local g2 = ended_generation(201)
        resume.note_end(dict, g2, g2, true)
        resume.note_end(dict, g1, g1, true)
        assert.is_true(resume.resumable(dict, g2))
        assert.is_false(resume.resumable(dict, g1))
    end)

    it("ignores what it remembers of another configuration", function()
        local g = ended_generation(101)
        resume.note_end(dict, g, g, true)
        assert.is_false(resume.resumable(dict, g + 5))
        assert.is_nil(resume.carrier(dict, g + 5))
    end)
end)
