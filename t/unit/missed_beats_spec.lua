-- resty.worker.manager.missed_beats: a heartbeat that did not run on time.
-- nginx skips an ngx.timer.every run while all lua_max_running_timers are
-- busy, and runs no timer while the worker's event loop is blocked.

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

    it("sees nothing missing in a beat on time or late by less than an interval", function()
        assert.equal(0, missed_beats.missing(1.0, 1))
        assert.equal(0, missed_beats.missing(1.003, 1))
        assert.equal(0, missed_beats.missing(1.85, 1))
        assert.equal(0, missed_beats.missing(10.4, 10))
        assert.equal(0, missed_beats.missing(0.2, 1))
    end)

    it("counts the runs missing between two beats", function()
        assert.equal(1, missed_beats.missing(2.0, 1))
        assert.equal(1, missed_beats.missing(1.95, 1))
        assert.equal(2, missed_beats.missing(3.004, 1))
        assert.equal(4, missed_beats.missing(49.7, 10))
        assert.equal(1, missed_beats.missing(0.205, 0.1))
    end)

    it("explains it naming the worker, the gap and both ways nginx skips a timer run", function()
        local text = missed_beats.explain("1-123", 2, 3.04, 1)
        assert.matches("the heartbeat of worker 1%-123 did not run for 3%.0s %(every 1s: 2 run%(s%) missing%)", text)
        assert.matches("lua_max_running_timers are not enough", text, 1, true)
        assert.matches("event loop is blocked", text, 1, true)
    end)
end)
