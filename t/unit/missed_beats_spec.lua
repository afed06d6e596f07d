-- resty.worker.manager.missed_beats: why a heartbeat did not run on time.
-- nginx arms an ngx.timer.every timer's next run before it runs the current
-- one and drops a run while all lua_max_running_timers are busy, so runs
-- that do come stay on schedule; a blocked event loop runs the timer late.

local stub = require("helpers.ngx_stub")

describe("missed_beats", function()
    local missed_beats

    before_each(function()
        stub.install{ phase = "timer" }
        missed_beats = require("resty.worker.manager.missed_beats")
    end)

    after_each(function()
        stub.uninstall()
    end)

    local function judge(gap, interval)
        return { missed_beats.judge(gap, interval) }
    end

    it("sees nothing missing in a beat on time or a little late", function()
        assert.same({ nil, 0 }, judge(1.0, 1))
        assert.same({ nil, 0 }, judge(1.003, 1))
        assert.same({ nil, 0 }, judge(1.6, 1))
        assert.same({ nil, 0 }, judge(10.4, 10))
    end)

    it("calls runs dropped when the beats came a whole number of intervals apart", function()
        assert.same({ "dropped", 1 }, judge(2.0, 1))
        assert.same({ "dropped", 2 }, judge(3.004, 1))
        assert.same({ "dropped", 4 }, judge(49.7, 10))
        assert.same({ "dropped", 1 }, judge(0.205, 0.1))
    end)

    it("calls the worker blocked when the beat came late by an odd amount", function()
        assert.same({ "blocked", 1 }, judge(2.5, 1))
        assert.same({ "blocked", 2 }, judge(3.4, 1))
        assert.same({ "blocked", 2 }, judge(35, 10))
    end)

    it("explains each cause in its own words, naming the worker and lua_max_running_timers", function()
        local dropped = missed_beats.explain("1-123", "dropped", 2, 3.0, 1)
        assert.matches("nginx dropped 2 run%(s%) of the heartbeat timer of worker 1%-123 %(two runs came 3%.0s apart, every 1s%)",
                       dropped)
        assert.matches("lua_max_running_timers", dropped)
        local blocked = missed_beats.explain("1-123", "blocked", 1, 2.5, 1)
        assert.matches("the heartbeat of worker 1%-123 ran 2%.5s after the previous one %(every 1s%): the worker's event loop was blocked",
                       blocked)
    end)
end)
