-- Compiled from src/resty/worker/manager/cluster/fleet.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The node's membership in the fleet: an agent, a node singleton (one
-- worker of the node at a time, moved through reloads and crashes), every
-- `interval` refreshes the node's presence in Redis (scripts.ts), reads the
-- fleet's events from the node's own cursor and runs on_join / on_leave for
-- each, in order. The cursor and the last view live in the node's shm: an
-- agent that moves goes on where the last one stopped, so an event runs
-- late rather than never, and once (a callback cut off by its worker's
-- death runs again in the next agent).
--
-- Redis trouble stays out of the node: the agent logs one error per outage
-- and one notice when Redis is back, and tries again at its next interval.

local keys = require("resty.worker.manager.keys")
local driver = require("resty.worker.manager.cluster.driver")
local scripts = require("resty.worker.manager.cluster.scripts")
local singletons = require("resty.worker.manager.singletons")
local log = require("resty.worker.manager.log").log
local on_error = require("resty.worker.manager.callbacks").on_error
local store = require("resty.worker.manager.store")
local write = store.write
local write_expiring = store.write_expiring
local create = store.create
local ERR, NOTICE = ngx.ERR, ngx.NOTICE
local now, update_time = ngx.now, ngx.update_time

local _M = {}

--- The agent's singleton name: a name users cannot register (they are checked).
local AGENT = "[worker-manager] fleet"

--- Events read per round trip.
local BATCH = 100

--- Seconds of one blocking read of new events: how long a stop or a move of the agent may wait for it.
local LISTEN_STEP = 0.5

--- Seconds before its next round the agent stops listening (every() then re-arms it at once).
local LISTEN_GAP = 0.02

--- Seconds an event's claim is kept (longer than two agents can overlap).
local CLAIM_TTL = 60

--- How long the stream keeps an event, at least: a node away longer misses events.
local MIN_RETENTION = 3600 * 1000

local config = nil
local dict = nil
local census = nil
local fleet_keys = {}

local function retention(c)
    return math.max(MIN_RETENTION, (c.interval + c.failed) * 1000 * 100)
end

--- In init_by_lua: this configuration's fleet options (nil: not a member).
local function setup(c, d)
    config = c
    dict = d
    fleet_keys = c == nil and {} or scripts.keys(c.prefix)
end

local function enabled()
    return config ~= nil
end

--- This node's incarnation: made once per node start, by whichever worker asks first.
local function incarnation(d)
    local known = d:get(keys.FLEET.incarnation)
    if type(known) == "string" then
        return known
    end
    update_time()
    local made = string.format("%x-%x", math.floor(now() * 1000), ngx.worker.pid())
    if not create(d, keys.FLEET.incarnation, made) then
        return made
    end
    local kept = d:get(keys.FLEET.incarnation)
    return type(kept) == "string" and kept or made
end

--- Redis could not be reached or refused: one error per outage.
local function trouble(c, d, err)
    update_time()
    -- (a zone too full for the mark: an error per round, not per outage)
    local ok = d:safe_add(keys.FLEET.outage, now())
    if ok then
        log(
            ERR,
            "fleet: Redis at ",
            c.redis.label,
            " failed: ",
            err,
            "; the fleet is not updated until it is ",
            "back (the node itself goes on)"
        )
    end
end

local function recovered(c, d)
    local since = d:get(keys.FLEET.outage)
    if since ~= nil then
        d:delete(keys.FLEET.outage)
        update_time()
        log(NOTICE, "fleet: Redis at ", c.redis.label, " is back after ", string.format("%.1f", now() - since), " s")
    end
end

--- The stream id just before `id` ("ms-seq"): a cursor that reads `id` next.
local function before(id)
    local ms, seq = string.match(id, "^(%d+)%-(%d+)$")
    local s = tonumber(seq) or 0
    if s > 0 then
        return tostring(ms) .. "-" .. tostring(s - 1)
    end
    return string.format("%d-18446744073709551615", (tonumber(ms) or 1) - 1)
end

--- The view's lines, one per member.
local function lines(view)
    local out = {}
    for line in string.gmatch(view, "[^\n]+") do
        out[#out + 1] = line
    end
    return out
end

--- Puts `node` in the view with its entry `info` ("inc started gen workers seen ttl"), or takes it out (nil).
local function note_in_view(d, node, info)
    local last = d:get(keys.FLEET.view)
    local kept = {}
    for _, l in ipairs(lines(type(last) == "string" and last or "")) do
        if (string.match(l, "^(%S+)")) ~= node then
            kept[#kept + 1] = l
        end
    end
    if info ~= nil and info ~= "" then
        kept[#kept + 1] = node .. " " .. info
        table.sort(kept)
    end
    write(d, keys.FLEET.view, table.concat(kept, "\n"))
end

--- The members in PRESENCE's reply (node, text pairs) as the view's lines.
local function view_of(flat)
    local out = {}
    do
        local i = 0
        while i + 1 < #flat do
            out[#out + 1] = tostring(flat[i + 1]) .. " " .. tostring(flat[i + 1 + 1])
            i = i + 2
        end
    end
    table.sort(out)
    return table.concat(out, "\n")
end

local function call(what, cb, node, n, reason)
    -- on_join gets two arguments, on_leave three
    if reason == nil then
        local ok, err = xpcall(cb, on_error, node, n)
        if not ok then
            log(ERR, "fleet: ", what, "('", node, "', ", n, ") failed: ", err)
        end
        return
    end
    local ok, err = xpcall(cb, on_error, node, n, reason)
    if not ok then
        log(ERR, "fleet: ", what, "('", node, "', ", n, ', "', reason, '") failed: ', err)
    end
end

--- One event, unless it repeats what this node ran last for that member's
-- incarnation (a join or leave written again after a Redis failover lost
-- the first write).
local function run_event(c, d, e)
    local node = e.node or "?"
    local n = tonumber(e.n) or 0
    local joins = e.kind == "join"
    local state = (e.inc or "?") .. (joins and " in" or " out")
    local last = d:get(keys.fleet_member(node))
    if last == state then
        return
    end
    write_expiring(d, keys.fleet_member(node), state, retention(c) / 1000)
    -- the view follows the events between two presences: a Redis that
    -- forgets the fleet meanwhile gets it back from this view, whole
    if joins then
        note_in_view(d, node, e.info)
        if c.on_join ~= nil then
            call("on_join", c.on_join, node, n, nil)
        end
        return
    end
    note_in_view(d, node, nil)
    if c.on_leave ~= nil then
        call("on_leave", c.on_leave, node, n, e.reason == "stopped" and "stopped" or "lost")
    end
end

--- Runs stream entries in order, moving the cursor past each. Each event is
-- claimed first: of two agents of this node that overlap (a stalled one
-- resumed beside its successor), one runs it.
local function run_entries(c, d, entries)
    for _, entry in ipairs(entries) do
        local id = entry[1]
        local fields = entry[2]
        local claimed, err = d:safe_add(keys.fleet_ran(id), true, CLAIM_TTL)
        if not claimed and err ~= "exists" then
            -- better run twice (two overlapping agents) than never
            log(ERR, "fleet: cannot claim event ", id, " in the shm: ", err, "; running it unclaimed")
        end
        if claimed or err ~= "exists" then
            local e = {}
            do
                local i = 0
                while i + 1 < #fields do
                    e[fields[i + 1]] = fields[i + 1 + 1]
                    i = i + 2
                end
            end
            run_event(c, d, e)
        end
        write(d, keys.FLEET.cursor, id)
    end
end

local function cursor_of(d)
    local at = d:get(keys.FLEET.cursor)
    return type(at) == "string" and at or "0-0"
end

--- Runs the events after the cursor, in order.
local function run_events(c, d, red)
    do
        while true do
            local res, err = red:xrange(fleet_keys[3], "(" .. cursor_of(d), "+", "COUNT", BATCH)
            if res == nil or res == false then
                return "XRANGE: " .. tostring(err)
            end
            local entries = res
            run_entries(c, d, entries)
            if #entries < BATCH then
                return nil
            end
        end
    end
end

--- Until `deadline` (or a stop of the agent, or the worker's exit): waits in
-- Redis for new events (XREAD BLOCK, LISTEN_STEP at a time) and runs each
-- as it comes, so that a node hears of a join or a stop within
-- milliseconds rather than at its next interval.
local function listen(c, d, red, deadline)
    local read_ms = c.redis.read_timeout * 1000
    do
        while true do
            update_time()
            local left = deadline - now()
            if left < 0.01 or not singletons.keeps(AGENT) then
                red:set_timeout(read_ms)
                return nil
            end
            local block = math.floor(math.min(left, LISTEN_STEP) * 1000)
            red:set_timeout(block + read_ms)
            local res, err = red:xread("COUNT", BATCH, "BLOCK", block, "STREAMS", fleet_keys[3], cursor_of(d))
            if res == nil or res == false then
                -- no outage of its own: the next presence tells (a read cut
                -- short by this worker's own stall is none)
                return "XREAD: " .. tostring(err)
            end
            if type(res) == "table" then
                local streams = res
                for _, stream in ipairs(streams) do
                    run_entries(c, d, stream[2])
                end
            end
        end
    end
end

--- The highest cluster singleton token this node saw (0 for none).
local function top_token(d)
    local top = d:get(keys.FLEET.token_max)
    return type(top) == "number" and top or 0
end

--- One round of the agent: presence, the events, then listening for new ones until `deadline`.
local function round(c, d, deadline)
    local red, cerr = driver.connect(c.redis)
    if red == nil then
        return cerr
    end
    local gen, workers = 0, 0
    if census ~= nil then
        gen, workers = census()
    end
    local id = d:get(keys.FLEET.id)
    local last = d:get(keys.FLEET.view)
    local known = type(id) == "string" and id or ""
    local view = type(last) == "string" and last or ""
    local args = {
        c.node,
        incarnation(d),
        known,
        math.floor((c.interval + c.failed) * 1000),
        gen,
        workers,
        retention(c),
        math.floor(c.interval * 1000),
        top_token(d),
    }
    if known ~= "" then
        -- for a Redis that forgot the fleet: the members as this node saw them
        for _, line in ipairs(lines(view)) do
            args[#args + 1] = line
        end
    end
    local res, err = driver.run(red, scripts.PRESENCE, fleet_keys, args)
    if res == nil then
        driver.done(red, c.redis, true)
        return "presence: " .. tostring(err)
    end
    local reply = res
    local fleet = reply[1]
    local joined = reply[2]
    local members = reply[5]
    if fleet ~= known then
        -- first contact: read from this node's own join on; a Redis that
        -- forgot the fleet: its new stream from the start
        write(d, keys.FLEET.cursor, joined ~= "" and known == "" and before(joined) or "0-0")
        write(d, keys.FLEET.id, fleet)
    end
    write(d, keys.FLEET.view, view_of(members))
    local rerr = run_events(c, d, red)
    if rerr ~= nil then
        driver.done(red, c.redis, true)
        return rerr
    end
    local lerr = listen(c, d, red, deadline)
    driver.done(red, c.redis, lerr ~= nil)
    return nil
end

--- The agent's every() function.
local function agent()
    local c = config
    local d = dict
    if c == nil or d == nil then
        return
    end
    update_time()
    local err = round(c, d, now() + math.max(0, c.interval - LISTEN_GAP))
    if err ~= nil then
        trouble(c, d, err)
    else
        recovered(c, d)
    end
end

--- In init_worker: what the agent reports of the node.
local function attach(counts)
    census = counts
end

--- LEAVE in Redis; an error text when it could not be written.
local function write_leave(c, d)
    local red, cerr = driver.connect(c.redis)
    if red == nil then
        return cerr
    end
    local res, err = driver.run(red, scripts.LEAVE, fleet_keys, {
        c.node,
        incarnation(d),
        retention(c),
        math.floor(c.interval * 1000),
    })
    driver.done(red, c.redis, res == nil)
    if res == nil then
        return err
    end
    return nil
end

--- The node stops (its last master exit, on QUIT): it leaves as "stopped".
-- Needs cosockets: on a fast stop (TERM) it cannot run, and the node is
-- lost once its presence runs out.
local function leave_on_stop()
    local c = config
    local d = dict
    if c == nil or d == nil or (d:get(keys.FLEET.left)) ~= nil then
        return
    end
    write(d, keys.FLEET.left, 1)
    local err = write_leave(c, d)
    if err ~= nil then
        log(
            ERR,
            "fleet: could not tell Redis at ",
            c.redis.label,
            " that node '",
            c.node,
            "' stops: ",
            err,
            "; the fleet will find it lost"
        )
    end
end

--- The fleet as this node last saw it (no network call).
local function nodes()
    local list = {}
    local d = dict
    if d == nil then
        return list
    end
    local view = d:get(keys.FLEET.view)
    if type(view) ~= "string" then
        return list
    end
    for _, line in ipairs(lines(view)) do
        local name, started, gen, workers, seen = string.match(line, "^(%S+) %S+ (%d+) (%d+) (%d+) (%d+)")
        if name ~= nil then
            list[#list + 1] = {
                node = name,
                started = (tonumber(started) or 0) / 1000,
                generation = tonumber(gen) or 0,
                workers = tonumber(workers) or 0,
                seen = (tonumber(seen) or 0) / 1000,
            }
        end
    end
    return list
end

--- Who this worker is in the fleet: "<node>/<incarnation>/<pid>" (a lease's holder).
local function holder_id()
    local c = config
    local d = dict
    if c == nil or d == nil then
        return "?"
    end
    return c.node .. "/" .. incarnation(d) .. "/" .. tostring(ngx.worker.pid())
end

_M.AGENT = AGENT
_M.setup = setup
_M.enabled = enabled
_M.attach = attach
_M.agent = agent
_M.leave_on_stop = leave_on_stop
_M.nodes = nodes
_M.holder_id = holder_id

return _M
