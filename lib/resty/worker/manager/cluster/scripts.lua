-- Compiled from src/resty/worker/manager/cluster/scripts.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

-- The fleet's state changes, each one Redis script: atomic, and timed by
-- Redis's clock (TIME inside the script), never a node's.
--
-- Keys, all under one hash tag "{prefix}" (one slot of a sharded Redis):
--   {p}:members  sorted set: node -> deadline (ms, Redis time)
--   {p}:info     hash: node -> "incarnation started gen workers seen ttl"
--   {p}:events   stream of joins and leaves: kind, node, n (members after it), reason,
--                inc (the node's incarnation: readers drop a repeat of an event),
--                info (a join's entry of {p}:info: readers add it to their view)
--   {p}:fleet    this Redis's fleet id: a new one means Redis forgot the fleet
--   {p}:token    the fencing token counter of cluster singletons
--   {p}:clock    Redis's time when a script last ran
--   {p}:born     Redis's time when a script first ran in this Redis (its data's birth)
--
-- The stream is trimmed by age (MINID) at each event, so it holds the
-- events of the last `retention` ms, whatever the number of starts.

local script = require("resty.worker.manager.cluster.driver").script

local _M = {}

--- The keys of a fleet with key prefix `prefix`, in the order the scripts take them.
local function keys(prefix)
    local tag = "{" .. prefix .. "}"
    return {
        tag .. ":members",
        tag .. ":info",
        tag .. ":events",
        tag .. ":fleet",
        tag .. ":token",
        tag .. ":clock",
        tag .. ":born",
    }
end

-- What every script starts with: Redis's time in ms; an event appended to
-- the stream with the number of members after it; and the catch-up of the
-- deadlines after a time when no script ran at all. No node could refresh
-- its presence then (Redis was stopped, frozen or cut off from every
-- node, or its clock jumped), so that time counts for nobody: the
-- deadlines move on by the gap beyond one interval of the caller's.
local PRELUDE =
    "\nlocal members, info, events, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[6]\nlocal t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\nredis.call('SET', KEYS[7], tostring(now), 'NX')\nlocal function catch_up(interval)\n    local last = tonumber(redis.call('GET', clock))\n    redis.call('SET', clock, tostring(now))\n    local gap = last and now - last - interval or 0\n    if gap > 0 then\n        local list = redis.call('ZRANGE', members, 0, -1, 'WITHSCORES')\n        for i = 1, #list, 2 do\n            redis.call('ZADD', members, tonumber(list[i + 1]) + gap, list[i])\n        end\n    end\nend\nlocal function event(kind, node, inc, reason, retention, about)\n    local n = redis.call('ZCARD', members)\n    return redis.call('XADD', events, 'MINID', '~', tostring(now - retention), '*',\n                      'kind', kind, 'node', node, 'n', tostring(n), 'reason', reason, 'inc', inc,\n                      'info', about or '')\nend\nlocal function remove(node, reason, retention)\n    local inc = string.match(redis.call('HGET', info, node) or '?', '^(%S+)')\n    redis.call('ZREM', members, node)\n    redis.call('HDEL', info, node)\n    return event('leave', node, inc, reason, retention)\nend\n"

--- A node's presence, every interval. ARGV: node, incarnation, the fleet id
-- the node knows ("" for none yet), ttl ms (interval + failed), generation,
-- workers, retention ms, interval ms, the highest cluster singleton token
-- the node saw, then its last view ("node incarnation started gen workers
-- seen ttl" each) to restore into a Redis that forgot the fleet.
--
-- - Members whose deadline passed leave as "lost" (the caller too: it was
--   late, and joins again below as a new event).
-- - A Redis without a fleet id forgot the fleet (restarted without
--   persistence): the caller's last view is put back without events, so
--   nodes that stayed up neither leave nor join; those that died meanwhile
--   are lost once their restored deadline passes.
-- - The caller not a member: a join, unless the Redis is not the one it
--   knew (then it comes back quietly); a member under an older incarnation
--   (restarted before its loss was noticed) leaves as "lost" first.
--
-- - The token counter is raised to the highest token the caller saw: a
--   Redis that forgot it hears every live node's before it grants a lease
--   (ACQUIRE waits one lease after the data's birth), so tokens never go
--   back.
--
-- Returns { fleet id, id of the caller's join or "", members, now, info of
-- each member as node, text pairs }.
local PRESENCE = script(
    PRELUDE
        .. "\nlocal node, inc, known, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])\nlocal gen, workers, retention = ARGV[5], ARGV[6], tonumber(ARGV[7])\ncatch_up(tonumber(ARGV[8]))\nlocal top = tonumber(ARGV[9]) or 0\nif (tonumber(redis.call('GET', KEYS[5])) or 0) < top then\n    redis.call('SET', KEYS[5], tostring(top))\nend\nlocal fleet = redis.call('GET', KEYS[4])\nif not fleet then\n    fleet = tostring(now) .. '-' .. node\n    redis.call('SET', KEYS[4], fleet)\n    if known ~= '' then\n        for i = 10, #ARGV do\n            local n, rest = string.match(ARGV[i], '^(%S+) (.+)$')\n            local r_ttl = tonumber(string.match(rest, '(%d+)$'))\n            if n and r_ttl and n ~= node then\n                redis.call('ZADD', members, now + r_ttl, n)\n                redis.call('HSET', info, n, rest)\n            end\n        end\n    end\nend\nfor _, late in ipairs(redis.call('ZRANGEBYSCORE', members, '-inf', '(' .. now)) do\n    remove(late, 'lost', retention)\nend\nlocal joined = ''\nlocal mine = redis.call('HGET', info, node)\nlocal started = now\nif mine then\n    local m_inc, m_started = string.match(mine, '^(%S+) (%d+)')\n    if m_inc == inc then\n        started = m_started\n    else\n        remove(node, 'lost', retention)\n        mine = nil\n    end\nend\nredis.call('ZADD', members, now + ttl, node)\nlocal about = table.concat({ inc, started, gen, workers, now, ttl }, ' ')\nredis.call('HSET', info, node, about)\nif not mine and (known == '' or known == fleet) then\n    joined = event('join', node, inc, '', retention, about)\nend\nreturn { fleet, joined, redis.call('ZCARD', members), now, redis.call('HGETALL', info) }\n"
)

--- A graceful stop: the node leaves as "stopped". ARGV: node, incarnation, retention ms, interval ms.
local LEAVE = script(
    PRELUDE
        .. "\nlocal node, inc, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])\ncatch_up(tonumber(ARGV[4]))\nlocal mine = redis.call('HGET', info, node)\nif mine and string.match(mine, '^(%S+)') == inc then\n    return remove(node, 'stopped', retention)\nend\nreturn ''\n"
)

--- The lease key of cluster singleton `name`.
local function lease_key(prefix, name)
    return "{" .. prefix .. "}:lease:" .. name
end

-- Cluster singletons: one lease per name (KEYS[8]), a hash of holder,
-- token and expiry (ms, Redis time). Tokens come from the one counter
-- {p}:token, never below a floor the caller saw (a Redis that lost writes
-- in a failover must not hand out a token twice). The key outlives its
-- last renewal by a day, then goes: a name dropped from the configuration
-- leaves nothing behind for long.
local LEASE_PRELUDE =
    "\nlocal lease, counter, born = KEYS[8], KEYS[5], tonumber(redis.call('GET', KEYS[7]))\nlocal KEEP = 86400000\nlocal holder, token, expires = unpack(redis.call('HMGET', lease, 'holder', 'token', 'expires'))\ntoken, expires = tonumber(token), tonumber(expires)\n"

--- Takes the lease if it is free, ran out, or is the caller's own (one it
-- counts as over, or whose reply it never got): always under a new token,
-- since the caller starts a new holding. ARGV: holder id, lease ms, floor.
-- Returns { 1, token } when taken, else { 0, token of the holder }. A Redis whose data is younger than a lease
-- (restarted empty) grants none yet: a holder it forgot may still count
-- on its lease, until that lease would have run out.
local ACQUIRE = script(
    PRELUDE
        .. LEASE_PRELUDE
        .. "\nlocal me, ms, floor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\nif now < born + ms then\n    return { 0, token or 0 }\nend\nif holder and holder ~= me and expires and expires > now then\n    return { 0, token }\nend\nlocal new = redis.call('INCR', counter)\nlocal least = math.max(floor or 0, token or 0)\nif new <= least then\n    new = least + 1\n    redis.call('SET', counter, tostring(new))\nend\nredis.call('HSET', lease, 'holder', me, 'token', tostring(new), 'expires', tostring(now + ms))\nredis.call('PEXPIRE', lease, KEEP)\nreturn { 1, new }\n"
)

--- Extends the caller's lease. ARGV: holder id, token, lease ms. Returns 1,
-- or 0 when the lease is no longer the caller's (taken over, or forgotten).
local RENEW = script(
    PRELUDE
        .. LEASE_PRELUDE
        .. "\nif holder ~= ARGV[1] or token ~= tonumber(ARGV[2]) then\n    return 0\nend\nredis.call('HSET', lease, 'expires', tostring(now + tonumber(ARGV[3])))\nredis.call('PEXPIRE', lease, KEEP)\nreturn 1\n"
)

--- Gives the lease up at once (keeping its token). ARGV: holder id, token. Returns 1, or 0 if not the caller's.
local RELEASE = script(
    PRELUDE
        .. LEASE_PRELUDE
        .. "\nif holder ~= ARGV[1] or token ~= tonumber(ARGV[2]) then\n    return 0\nend\nredis.call('HSET', lease, 'expires', '0')\nreturn 1\n"
)

_M.keys = keys
_M.lease_key = lease_key
_M.PRESENCE = PRESENCE
_M.LEAVE = LEAVE
_M.ACQUIRE = ACQUIRE
_M.RENEW = RENEW
_M.RELEASE = RELEASE

return _M
