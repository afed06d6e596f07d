-- The demo's run as an SVG swim-lane timeline: one lane per process,
-- workers grouped by generation, each callback a mark whose four counts
-- show on hover, crashes, signals and the node lock's holds; with more
-- than one node (or a fleet), a group of lanes per node, its fleet events
-- (on_join, on_leave) on the node's own lane.
--
-- Plain Lua, no ngx: nginx/demo.conf serves it live (/timeline.svg, drawn
-- from the journal of nginx/demo_helpers.lua) and nginx/demo.pl runs it
-- with luajit on a finished run:
--
--   luajit nginx/demo_timeline.lua EVENTS SVG
--
--   parse(text)          the events of a journal: one per line,
--                        "event=<name> key=value ...", as demo_helpers.lua
--                        writes them ("event=signal name=HUP pid=.. to=master
--                        t=.." for a signal the demo sent, to=node for a
--                        kill of the whole node); "self=<node>" says which
--                        node's line it is (demo.pl adds it; default:
--                        opts.node); a line "conf <text>" is a line of
--                        nginx.conf to show
--   svg(events, opts)    the SVG document, a string; opts:
--                          now    where the picture ends (default: the
--                                 last event); bars still open reach it
--                          conf   lines of nginx.conf to show below
--                          title  the heading
--                          node   the node's name, for lines without self=

local M = {}

local fmt = string.format
local concat = table.concat
local floor, max, min = math.floor, math.max, math.min

local LABEL_W = 200      -- the lanes' names
local ROW_H = 22
local TOP = 54           -- title and axis
local GAP = 0.3          -- seconds without an event that are drawn shortened
local BREAK_W = 36       -- the width of such a gap
local LEAD_IN = GAP / 4  -- drawn to scale before a burst that follows a gap
local WIDTH = 1150       -- about the width of the drawing, labels included

-- a singleton's holdings
local GOLD = "#d9a300"

-- generation colours, in turn
local PALETTE = { "#3b7dd8", "#2a9d6f", "#c7822b", "#8a5cc2", "#c2477a", "#4a9ab0" }

-- the fleet's events: a join, a leave (lost, or stopped)
local JOIN = "#2f9e44"
local LEAVE = { lost = "#e8590c", stopped = "#868e96" }

local CALLBACKS = {
    master_start = true, master_exit = true, worker_start = true,
    worker_exit = true, crash = true,
}

local function esc(s)
    return (tostring(s):gsub("[&<>\"]", {
        ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    }))
end

function M.parse(text)
    local events, conf = {}, {}
    for line in text:gmatch("[^\n]+") do
        local shown = line:match("^conf (.*)$")
        if shown then
            conf[#conf + 1] = shown
        elseif line:match("^event=") then
            local e = {}
            for k, v in line:gmatch("(%w[%w_]*)=(%S+)") do
                e[k] = v
            end
            e.t = tonumber(e.t)
            e.t_end = tonumber(e.t_end)
            e.lock_at = tonumber(e.lock_at)
            if e.t then
                events[#events + 1] = e
            end
        end
    end
    return events, conf
end

-- Times to x: a piecewise-linear scale in which every stretch of more than
-- GAP seconds without an event is drawn BREAK_W wide, so that the bursts
-- (a reload's dozen callbacks within a few milliseconds) stay readable.
local function time_scale(times, t0, t1)
    table.sort(times)
    local knots = {}            -- { t, x } pairs, t increasing
    local breaks = {}           -- { x, seconds } of the shortened gaps
    -- the seconds drawn to scale (a shortened gap keeps a lead-in of
    -- LEAD_IN s before the next burst), and how many gaps are shortened
    local active, n_breaks = 0, 0
    local prev = t0
    local function measure(t)
        if t - prev > GAP then
            n_breaks = n_breaks + 1
            active = active + LEAD_IN
        else
            active = active + (t - prev)
        end
        prev = t
    end
    for _, t in ipairs(times) do
        measure(t)
    end
    measure(t1)
    local room = WIDTH - LABEL_W - 40 - n_breaks * BREAK_W
    local px = active > 0 and min(max(room / active, 100), 20000) or 1000

    local x = LABEL_W + 10
    prev = t0
    knots[1] = { t0, x }
    local function advance(t)
        if t - prev > GAP then
            -- the gap ends LEAD_IN s before t, so the burst at t starts
            -- after a short, true-to-scale lead-in
            breaks[#breaks + 1] = { x, t - prev - LEAD_IN }
            x = x + BREAK_W
            knots[#knots + 1] = { t - LEAD_IN, x }
            x = x + LEAD_IN * px
        else
            x = x + (t - prev) * px
        end
        knots[#knots + 1] = { t, x }
        prev = t
    end
    for _, t in ipairs(times) do
        if t > prev then
            advance(t)
        end
    end
    if t1 > prev then
        advance(t1)
    end

    local function to_x(t)
        if t <= knots[1][1] then
            return knots[1][2]
        end
        for i = 2, #knots do
            local a, b = knots[i - 1], knots[i]
            if t <= b[1] then
                if b[1] == a[1] then
                    return b[2]
                end
                return a[2] + (t - a[1]) / (b[1] - a[1]) * (b[2] - a[2])
            end
        end
        return knots[#knots][2]
    end
    return to_x, breaks, knots[#knots][2]
end

local function count(v)
    return v == nil and "nil" or v
end

local function args_of(e)
    local id = e.event:match("^master") and e.id or fmt("%q", e.id)
    return fmt("%s(%s, %s, %s, %s)", e.event, id, count(e.n_prev),
               count(e.n_mine), count(e.n_next))
end

local function runner_of(e)
    if e.process == "master" then
        return "the master (pid " .. (e.pid or "?") .. ")"
    end
    return fmt("worker pid %s, slot %s", e.pid or "?", e.slot or "?")
end

-- Sort the events into nodes (self=), each node's runs (a start or restart
-- begins one), generations and worker lanes, and each node's fleet events.
local function build_model(events, default_node)
    local nodes, by_name = {}, {}
    local gens = {}
    local function node_of(name)
        local node = by_name[name]
        if not node then
            node = { name = name, runs = {}, fleet = {}, workers = {}, by_pid = {} }
            by_name[name] = node
            nodes[#nodes + 1] = node
        end
        return node
    end
    local function gen_of(run_, g)
        local key = run_.node.name .. ":" .. run_.n .. ":" .. g
        local gen = gens[key]
        if not gen then
            gen = { id = g, run = run_, workers = {}, colour = PALETTE[(#run_.gens) % #PALETTE + 1] }
            gens[key] = gen
            run_.gens[#run_.gens + 1] = gen
        end
        return gen
    end
    for _, e in ipairs(events) do
        local node = node_of(e.self or default_node or "")
        if e.event == "master_start" and (e.n_prev == "nil" or not node.run) then
            node.run = { n = #node.runs + 1, node = node, gens = {}, signals = {}, first = e.t, last = e.t }
            node.runs[#node.runs + 1] = node.run
        end
        local run = node.run
        if run then
            run.last = max(run.last, e.t_end or e.t)
            if e.event == "signal" then
                run.signals[#run.signals + 1] = e
                run.master_pid = run.master_pid or (e.to ~= "worker" and e.pid) or nil
                if e.to == "node" then
                    run.killed = run.killed or e
                end
            elseif e.event == "fleet_join" or e.event == "fleet_leave" then
                node.fleet[#node.fleet + 1] = e
            elseif e.event == "master_start" or e.event == "master_exit" then
                local gen = gen_of(run, e.id)
                gen[e.event] = e
                if e.event == "master_start" and e.process == "master" and e.n_prev ~= "nil" then
                    run.master_pid = run.master_pid or e.pid
                end
            elseif e.event == "worker_start" or e.event == "worker_exit" or e.event == "crash" then
                local g = e.id:match("^(%d+)%-")
                local w = node.workers[e.id]
                if not w and g then
                    w = { id = e.id, pid = e.id:match("%-(%d+)$"), jobs = {}, run = run }
                    node.workers[e.id] = w
                    node.by_pid[w.pid] = w
                    local gen = gen_of(run, g)
                    gen.workers[#gen.workers + 1] = w
                end
                if w then
                    w[e.event] = w[e.event] or e
                    w.slot = w.slot or (e.event == "worker_start" and e.slot) or nil
                end
            elseif e.event == "singleton_start" or e.event == "singleton_stop" then
                -- a singleton's holding, on the lane of the worker that held it
                local w = node.by_pid[e.pid]
                if w and e.event == "singleton_start" then
                    w.jobs[#w.jobs + 1] = { start = e }
                elseif w then
                    for _, j in ipairs(w.jobs) do
                        if j.start.name == e.name and j.start.token == e.token then
                            j.stop = e
                        end
                    end
                end
            end
        elseif e.event == "fleet_join" or e.event == "fleet_leave" then
            node.fleet[#node.fleet + 1] = e
        end
    end
    return nodes
end

-- the end of a worker's bar and how it ended
local function worker_end(w, kills, now)
    if w.worker_exit then
        return w.worker_exit.t_end or w.worker_exit.t, "exit"
    end
    local kill = kills[w.pid]
    if kill then
        return kill.t, "killed"
    end
    if w.crash then
        return w.crash.t, "dead"
    end
    -- killed with its whole node
    if w.run and w.run.killed then
        return w.run.killed.t, "killed"
    end
    return now, "open"
end

function M.svg(events, opts)
    opts = opts or {}
    local sorted = {}
    for i, e in ipairs(events) do
        sorted[i] = e
        e.seq = i
    end
    table.sort(sorted, function(a, b)
        if a.t ~= b.t then return a.t < b.t end
        return a.seq < b.seq
    end)

    local t0, t1 = math.huge, -math.huge
    local times = {}
    for _, e in ipairs(sorted) do
        for _, t in ipairs({ e.lock_at or e.t, e.t, e.t_end or e.t }) do
            t0, t1 = min(t0, t), max(t1, t)
            times[#times + 1] = t
        end
    end
    if t0 == math.huge then
        t0, t1 = opts.now or 0, opts.now or 0
    end
    local now = max(opts.now or t1, t1)

    local nodes = build_model(sorted, opts.node)
    local kills = {}
    local n_fleet = 0
    for _, e in ipairs(sorted) do
        if e.event == "signal" and e.to == "worker" then
            kills[e.pid] = e
        elseif e.event == "fleet_join" or e.event == "fleet_leave" then
            n_fleet = n_fleet + 1
        end
    end
    -- a lane per node (its name, its fleet events) when there is a fleet
    local named = #nodes > 1 or n_fleet > 0

    local x_of, breaks, x_end = time_scale(times, t0, now)
    local function rel(t)
        return fmt("%.3f s", t - t0)
    end

    -- rows: per node (its own lane first, when named), its lock, then
    -- per run its master and its generations
    local rows = {}
    if #nodes == 0 then
        rows[1] = { kind = "lock", node = { name = "", runs = {}, fleet = {} } }
    end
    for _, node in ipairs(nodes) do
        node.first_row = #rows + 1
        if named then
            rows[#rows + 1] = { kind = "node", node = node }
        end
        rows[#rows + 1] = { kind = "lock", node = node }
        node.lock_row = #rows
        for _, run in ipairs(node.runs) do
            rows[#rows + 1] = { kind = "master", run = run, node = node }
            for _, gen in ipairs(run.gens) do
                rows[#rows + 1] = { kind = "generation", gen = gen, node = node }
                for _, w in ipairs(gen.workers) do
                    rows[#rows + 1] = { kind = "worker", worker = w, gen = gen, node = node }
                end
            end
        end
        node.last_row = #rows
    end

    local width = max(x_end + 70, 760)

    -- the legend, in as many lines as the width needs
    local legends = {
        { '<path d="M-6,5 l6,-11 l6,11 z" fill="#666"/>', "master start" },
        { '<rect x="-5" y="-5" width="10" height="10" fill="#666"/>', "master exit" },
        { '<circle r="5" fill="#666"/>', "worker start" },
        { '<path d="M0,-6 l6,6 l-6,6 l-6,-6 z" fill="#666"/>', "worker exit" },
        { '<path d="M-5,-5 l10,10 m0,-10 l-10,10" stroke="#d33" stroke-width="3"/>', "crash (on_crash)" },
        { '<rect x="-6" y="-6" width="12" height="12" fill="#333"/>', "node lock held" },
        { '<path d="M0,-7 l0,14 M0,-7 l9,4 l-9,4" stroke="#444" fill="#444"/>', "signal sent" },
        { '<path d="M-8,0 l16,0" stroke="' .. GOLD .. '" stroke-width="3"/><path d="M0,-6 l2,4.5 l4.5,0.5 '
          .. 'l-3.5,3 l1,4.5 l-4,-2.5 l-4,2.5 l1,-4.5 l-3.5,-3 l4.5,-0.5 z" fill="' .. GOLD .. '"/>',
          "singleton held (start, stop)" },
    }
    if n_fleet > 0 then
        legends[#legends + 1] = { '<circle r="6" fill="' .. JOIN .. '"/><path d="M-3.5,0 h7 M0,-3.5 v7" '
                                  .. 'stroke="#fff" stroke-width="2"/>', "a node joins (on_join)" }
        legends[#legends + 1] = { '<circle r="6" fill="' .. LEAVE.lost .. '"/><path d="M-3.5,0 h7" '
                                  .. 'stroke="#fff" stroke-width="2"/>', "a node leaves (on_leave: lost, stopped)" }
    end
    local legend_lines = 1
    do
        local lx = 10
        for _, l in ipairs(legends) do
            local w = 22 + #l[2] * 6.2
            if lx > 10 and lx + w > width then
                legend_lines = legend_lines + 1
                lx = 10
            end
            l.x, l.line = lx, legend_lines
            lx = lx + w
        end
    end

    local conf = opts.conf or {}
    local lanes_h = #rows * ROW_H
    local legend_y = TOP + lanes_h + 26
    local conf_y = legend_y + 34 + (legend_lines - 1) * 20
    local height = conf_y + (#conf > 0 and (#conf + 1) * 15 + 10 or 0)

    local out = {}
    local function add(...)
        out[#out + 1] = concat({ ... })
    end

    add('<svg xmlns="http://www.w3.org/2000/svg" class="wm-timeline" width="', floor(width),
        '" height="', floor(height), '" viewBox="0 0 ', floor(width), " ", floor(height),
        '" font-family="sans-serif" font-size="12">')
    add('<style>',
        '.lane-label{fill:#222}.sub{fill:#777;font-size:11px}',
        '.bar{opacity:.85}.mark{stroke:#fff;stroke-width:1;cursor:help}',
        '.mark:hover{stroke:#000;stroke-width:2}.mark.crash{stroke:#d33;stroke-width:3}',
        '.mark.crash:hover{stroke:#900}.hold{fill:#333;cursor:help}',
        '.hold:hover{fill:#000}.signal-line{stroke:#999;stroke-dasharray:3 3}',
        '.conf{font-family:monospace;font-size:12px;fill:#333}',
        '</style>')
    add('<rect width="100%" height="100%" fill="#fff"/>')
    add('<text x="10" y="20" font-size="15" font-weight="bold">',
        esc(opts.title or "resty.worker.manager: the node's run"), '</text>')
    add('<text x="10" y="38" class="sub">seconds since the first event; a gap of more than ',
        GAP, ' s without events is drawn short (', "≈", '); hover a mark for its callback and counts</text>')

    -- zebra rows and lane names
    for i, row in ipairs(rows) do
        local y = TOP + (i - 1) * ROW_H
        if i % 2 == 0 then
            add('<rect x="0" y="', y, '" width="', floor(width), '" height="', ROW_H, '" fill="#f6f6f6"/>')
        end
        -- (under a node's own lane, its lanes are indented one step more)
        local label, sub, indent
        local deeper = named and 8 or 0
        if row.kind == "node" then
            label, sub, indent = "node " .. row.node.name, "fleet events", 10
            if i > 1 then
                add('<line x1="0" y1="', y, '" x2="', floor(width), '" y2="', y, '" stroke="#bbb"/>')
            end
        elseif row.kind == "lock" then
            label, sub, indent = "node lock", "one holder", 10 + deeper
        elseif row.kind == "master" then
            label = "master" .. (row.run.master_pid and (" " .. row.run.master_pid) or "")
            sub, indent = #row.node.runs > 1 and ("run " .. row.run.n) or nil, 10 + deeper
        elseif row.kind == "generation" then
            label, indent = "generation " .. row.gen.id, 18 + deeper
        else
            local w = row.worker
            label = "worker " .. w.id
            sub, indent = w.slot and ("slot " .. w.slot) or nil, 30 + deeper
        end
        add('<text class="lane-label ', row.kind, '" x="', indent, '" y="', y + 15, '"',
            row.kind == "worker" and (' data-id="' .. esc(row.worker.id) .. '"') or "",
            named and (' data-node="' .. esc(row.node.name) .. '"') or "",
            (row.kind == "generation" or row.kind == "node") and ' font-weight="bold"' or "", '>', esc(label), '</text>')
        if sub then
            add('<text class="sub" x="', LABEL_W - 8, '" y="', y + 15, '" text-anchor="end">', esc(sub), '</text>')
        end
    end

    -- the axis: a tick at the start of each burst, breaks drawn as zigzags
    add('<line x1="', LABEL_W, '" y1="', TOP - 2, '" x2="', floor(x_end + 10), '" y2="', TOP - 2, '" stroke="#999"/>')
    local last_tick = -math.huge
    for _, t in ipairs(times) do
        local x = x_of(t)
        if x - last_tick > 60 then
            add('<text class="sub" x="', fmt("%.1f", x), '" y="', TOP - 6, '" text-anchor="middle">',
                fmt("%.2f", t - t0), '</text>')
            last_tick = x
        end
    end
    for _, b in ipairs(breaks) do
        local x = b[1] + BREAK_W / 2
        add('<path d="M', fmt("%.1f", x - 4), ',', TOP - 8, ' l4,4 l-4,4 l4,4" fill="none" stroke="#999"/>')
        add('<text class="sub" x="', fmt("%.1f", x), '" y="', TOP + lanes_h + 12, '" text-anchor="middle">',
            "≈", fmt("%.1f", b[2]), ' s</text>')
        add('<rect x="', fmt("%.1f", b[1] + 6), '" y="', TOP, '" width="', BREAK_W - 12, '" height="', lanes_h,
            '" fill="#fafafa" opacity=".7"/>')
    end

    local function y_of(i)
        return TOP + (i - 1) * ROW_H
    end

    -- a mark: a callback, with its counts on hover
    local function mark(e, y, shape, colour, extra)
        local x = x_of(e.t)
        local tip = { args_of(e), "at " .. rel(e.t) .. " in " .. runner_of(e) }
        if e.phase then
            tip[#tip + 1] = "phase " .. e.phase
        end
        if e.reason then
            tip[#tip + 1] = "exit_reason() = " .. e.reason
        end
        if extra then
            tip[#tip + 1] = extra
        end
        local attrs = fmt(' class="mark cb %s" data-event="%s" data-id="%s" data-n-prev="%s" data-n-mine="%s" data-n-next="%s" fill="%s"',
                          e.event, e.event, esc(e.id), count(e.n_prev), count(e.n_mine), count(e.n_next), colour)
        local cy = y + ROW_H / 2
        if shape == "circle" then
            add('<circle', attrs, ' cx="', fmt("%.1f", x), '" cy="', cy, '" r="5">')
        elseif shape == "square" then
            add('<rect', attrs, ' x="', fmt("%.1f", x - 5), '" y="', cy - 5, '" width="10" height="10">')
        elseif shape == "diamond" then
            add('<path', attrs, ' d="M', fmt("%.1f", x), ',', cy - 6, ' l6,6 l-6,6 l-6,-6 z">')
        elseif shape == "triangle" then
            add('<path', attrs, ' d="M', fmt("%.1f", x - 6), ',', cy + 5, ' l6,-11 l6,11 z">')
        else -- a cross
            add('<path', attrs, ' d="M', fmt("%.1f", x - 5), ',', cy - 5, ' l10,10 m0,-10 l-10,10">')
        end
        add('<title>', esc(concat(tip, "\n")), '</title>')
        add(shape == "circle" and '</circle>' or shape == "square" and '</rect>' or '</path>')
    end

    -- a process's or a generation's life; one still going ends in an arrow
    local function bar(x1, x2, y, colour, cls, open)
        add('<rect class="', cls, '" x="', fmt("%.1f", x1), '" y="', y + 7, '" width="', fmt("%.1f", max(x2 - x1, 2)),
            '" height="8" rx="3" fill="', colour, '"/>')
        if open then
            add('<path d="M', fmt("%.1f", x2), ',', y + 5, ' l7,6 l-7,6 z" fill="', colour, '"/>')
        end
    end

    -- a signal the demo sent: a flag on the lane of the process it went to;
    -- one to the master (or the whole node) also gets a dashed line across
    -- the node's lanes
    local function signal(s, y, across)
        local x = fmt("%.1f", x_of(s.t))
        if across then
            add('<line class="signal-line" x1="', x, '" y1="', y_of(across.first_row), '" x2="', x, '" y2="',
                y_of(across.last_row + 1), '"/>')
        end
        local what = s.to == "node"
            and fmt("kill -%s %s and its workers at once (the whole node%s) at %s", s.name, s.pid or "?",
                    across and across.name ~= "" and (" " .. across.name) or "", rel(s.t))
            or fmt("kill -%s %s (the %s) at %s", s.name, s.pid or "?", s.to or "?", rel(s.t))
        add('<g class="signal" data-signal="', esc(s.name), '" data-to="', esc(s.to or "?"), '"><path d="M', x, ',',
            y + 3, ' l0,16 M', x, ',', y + 3, ' l9,4 l-9,4" stroke="#444" fill="#444"/><text class="sub" x="',
            fmt("%.1f", x_of(s.t) + 11), '" y="', y + 11, '">', esc(s.to == "node" and (s.name .. " (node)") or s.name),
            '</text><title>', esc(what), '</title></g>')
    end

    -- on_join / on_leave, on the lane of the node that ran it: a circle
    -- with a plus (join) or a minus (leave), the member's name beside it
    local function fleet_mark(e, y)
        local x = x_of(e.t)
        local join = e.event == "fleet_join"
        local colour = join and JOIN or LEAVE[e.reason] or LEAVE.lost
        local cy = y + ROW_H / 2
        local call = join and fmt('on_join("%s", %s)', e.node or "?", e.n_nodes or "?")
            or fmt('on_leave("%s", %s, "%s")', e.node or "?", e.n_nodes or "?", e.reason or "?")
        local tip = { call, fmt("at %s in %s%s", rel(e.t), e.self and (e.self .. ", ") or "", runner_of(e)) }
        if e.phase then
            tip[#tip + 1] = "phase " .. e.phase
        end
        tip[#tip + 1] = join and fmt("%s joined the fleet: %s member%s", e.node or "?", e.n_nodes or "?",
                                     e.n_nodes == "1" and "" or "s")
            or fmt("%s left the fleet (%s): %s member%s", e.node or "?", e.reason or "?", e.n_nodes or "?",
                   e.n_nodes == "1" and "" or "s")
        add('<g class="mark fleet ', e.event, '" data-event="', e.event, '" data-node="', esc(e.node or ""),
            '" data-n-nodes="', esc(e.n_nodes or ""), '" data-reason="', esc(e.reason or ""), '" data-self="',
            esc(e.self or ""), '">')
        add('<circle cx="', fmt("%.1f", x), '" cy="', cy, '" r="6" fill="', colour, '"/>')
        add('<path d="M', fmt("%.1f", x - 3.5), ',', cy, ' h7', join and fmt(" M%.1f,%s v7", x, cy - 3.5) or "",
            '" stroke="#fff" stroke-width="2"/>')
        add('<title>', esc(concat(tip, "\n")), '</title></g>')
        add('<text class="sub fleet-label" x="', fmt("%.1f", x + 9), '" y="', y + 15, '">',
            esc((e.node or "?") .. (join and " joins" or (" " .. (e.reason or "leaves")))), '</text>')
    end

    -- a singleton held by a worker: a gold line under its bar from the
    -- start to the stop (or the worker's end), a star at each end
    local function star(e, x, y, filled, tip)
        add('<path class="mark job singleton_', e.event == "singleton_start" and "start" or "stop",
            '" data-name="', esc(e.name), '" data-token="', esc(e.token), '" d="M', fmt("%.1f", x), ',', y - 6,
            ' l2,4.5 l4.5,0.5 l-3.5,3 l1,4.5 l-4,-2.5 l-4,2.5 l1,-4.5 l-3.5,-3 l4.5,-0.5 z" fill="',
            filled and GOLD or "#fff", '" stroke="', GOLD, '" stroke-width="1.5"><title>', esc(tip), '</title></path>')
    end
    local function holding(j, w, y)
        local s = j.start
        local t_end = j.stop and j.stop.t or (worker_end(w, kills, now))
        local x1, x2 = x_of(s.t), x_of(t_end)
        local ly = y + ROW_H - 3
        add('<line class="holding" x1="', fmt("%.1f", x1), '" y1="', ly, '" x2="', fmt("%.1f", math.max(x2, x1 + 2)),
            '" y2="', ly, '" stroke="', GOLD, '" stroke-width="3"/>')
        star(s, x1, ly, true, fmt("singleton '%s' starts, token %s\nin worker pid %s at %s", s.name, s.token,
                                   s.pid or "?", rel(s.t)))
        if j.stop then
            star(j.stop, x_of(j.stop.t), ly, false, fmt("singleton '%s' stops, token %s, reason \"%s\"\nin "
                 .. "worker pid %s at %s (phase %s)", j.stop.name, j.stop.token, j.stop.reason or "?",
                 j.stop.pid or "?", rel(j.stop.t), j.stop.phase or "?"))
        end
    end

    for i, row in ipairs(rows) do
        local y = y_of(i)
        if row.kind == "node" then
            for _, e in ipairs(row.node.fleet) do
                fleet_mark(e, y)
            end
        elseif row.kind == "master" then
            local run = row.run
            -- the master lives on while a generation of it is open (and
            -- its node was not killed)
            local open = false
            for _, gen in ipairs(run.gens) do
                open = open or not gen.master_exit
            end
            local t_end = run.killed and run.killed.t or open and now or run.last
            open = open and not run.killed
            bar(x_of(run.first), x_of(t_end), y, "#888", "bar master", open)
            for _, s in ipairs(run.signals) do
                if s.to == "master" or s.to == "node" then
                    signal(s, y, row.node)
                end
            end
        elseif row.kind == "generation" then
            local gen = row.gen
            local ms, me = gen.master_start, gen.master_exit
            local killed = not me and gen.run.killed
            if ms then
                local x2 = me and x_of(me.t_end or me.t) or killed and x_of(killed.t) or x_of(now)
                bar(x_of(ms.t), x2, y, gen.colour, "bar generation", not me and not killed)
                mark(ms, y, "triangle", gen.colour)
            end
            if me then
                mark(me, y, "square", gen.colour, "the generation's last callback")
            end
        elseif row.kind == "worker" then
            local w, gen = row.worker, row.gen
            local ws = w.worker_start
            if ws then
                local t_end, how = worker_end(w, kills, now)
                bar(x_of(ws.t), x_of(t_end), y, gen.colour, "bar worker " .. how, how == "open")
                if how == "killed" and w.crash then
                    -- dead, not found yet: from the kill to the crash report
                    add('<line x1="', fmt("%.1f", x_of(t_end)), '" y1="', y + 11, '" x2="', fmt("%.1f", x_of(w.crash.t)),
                        '" y2="', y + 11, '" stroke="#d33" stroke-dasharray="2 3"/>')
                end
                mark(ws, y, "circle", gen.colour)
            end
            if kills[w.pid] then
                signal(kills[w.pid], y, false)
            end
            if w.worker_exit then
                mark(w.worker_exit, y, "diamond", gen.colour)
            end
            if w.crash then
                mark(w.crash, y, "cross", "#d33", "found dead and dropped from the counts")
            end
            for _, j in ipairs(w.jobs) do
                holding(j, w, y)
            end
        end
    end

    -- the lock's holds, one block per callback on its node's lock lane:
    -- from when the lock was taken (or last renewed) to the callback's end
    local lock_row_of = {}
    for _, node in ipairs(nodes) do
        lock_row_of[node.name] = node.lock_row
    end
    for _, e in ipairs(sorted) do
        local lock_row = lock_row_of[e.self or opts.node or ""]
        if CALLBACKS[e.event] and e.lock_at and lock_row then
            local x1, x2 = x_of(e.lock_at), x_of(e.t_end or e.t)
            add('<rect class="hold" data-event="', e.event, '" x="', fmt("%.1f", x1), '" y="', y_of(lock_row) + 5,
                '" width="', fmt("%.1f", max(x2 - x1, 2)), '" height="12">',
                '<title>', esc(fmt("node lock held by %s for %s\n%s from %s (%s) to the callback's end, %s",
                    runner_of(e), args_of(e), fmt("%.1f ms", ((e.t_end or e.t) - e.lock_at) * 1000),
                    rel(e.lock_at), "taken or renewed", rel(e.t_end or e.t))),
                '</title></rect>')
        end
    end

    -- legend (laid out above)
    for _, l in ipairs(legends) do
        add('<g transform="translate(', fmt("%.1f", l.x), ',', legend_y + (l.line - 1) * 20, ')">', l[1],
            '<text class="sub" x="14" y="4">', esc(l[2]), '</text></g>')
    end

    if #conf > 0 then
        add('<text x="10" y="', conf_y, '" font-weight="bold">the nginx.conf lines behind this run</text>')
        for i, line in ipairs(conf) do
            add('<text class="conf" x="18" y="', conf_y + i * 15, '" xml:space="preserve">', esc(line), '</text>')
        end
    end

    add('</svg>')
    return concat(out, "\n") .. "\n"
end

-- luajit nginx/demo_timeline.lua EVENTS SVG [TITLE]
if arg and arg[0] and arg[0]:match("demo_timeline%.lua$") and not ngx then
    local input, output, title = arg[1], arg[2], arg[3]
    if not input or not output then
        io.stderr:write("usage: luajit demo_timeline.lua EVENTS SVG [TITLE]\n")
        os.exit(2)
    end
    local f = assert(io.open(input, "r"))
    local text = f:read("*a")
    f:close()
    local events, conf = M.parse(text)
    local o = assert(io.open(output, "w"))
    o:write(M.svg(events, { conf = conf, title = title }))
    o:close()
end

return M
