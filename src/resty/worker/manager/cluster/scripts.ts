/**
 * The fleet's state changes, each one Redis script: atomic, and timed by
 * Redis's clock (TIME inside the script), never a node's.
 *
 * Keys, all under one hash tag "{prefix}" (one slot of a sharded Redis):
 *   {p}:members  sorted set: node -> deadline (ms, Redis time)
 *   {p}:info     hash: node -> "incarnation started gen workers seen ttl"
 *   {p}:events   stream of joins and leaves: kind, node, n (members after it), reason,
 *                inc (the node's incarnation: readers drop a repeat of an event),
 *                info (a join's entry of {p}:info: readers add it to their view)
 *   {p}:fleet    this Redis's fleet id: a new one means Redis forgot the fleet
 *   {p}:token    the fencing token counter of cluster singletons
 *   {p}:clock    Redis's time when a script last ran
 *   {p}:born     Redis's time when a script first ran in this Redis (its data's birth)
 *
 * The stream is trimmed by age (MINID) at each event, so it holds the
 * events of the last `retention` ms, whatever the number of starts.
 */

import { script } from "./driver";
import type { Script } from "./driver";

/** The keys of a fleet with key prefix `prefix`, in the order the scripts take them. */
function keys(prefix: string): string[] {
    const tag = "{" + prefix + "}";
    return [tag + ":members", tag + ":info", tag + ":events", tag + ":fleet", tag + ":token", tag + ":clock",
            tag + ":born"];
}

// What every script starts with: Redis's time in ms; an event appended to
// the stream with the number of members after it; and the catch-up of the
// deadlines after a time when no script ran at all. No node could refresh
// its presence then (Redis was stopped, frozen or cut off from every
// node, or its clock jumped), so that time counts for nobody: the
// deadlines move on by the gap beyond one interval of the caller's.
const PRELUDE = `
local members, info, events, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[6]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[7], tostring(now), 'NX')
local function catch_up(interval)
    local last = tonumber(redis.call('GET', clock))
    redis.call('SET', clock, tostring(now))
    local gap = last and now - last - interval or 0
    if gap > 0 then
        local list = redis.call('ZRANGE', members, 0, -1, 'WITHSCORES')
        for i = 1, #list, 2 do
            redis.call('ZADD', members, tonumber(list[i + 1]) + gap, list[i])
        end
    end
end
local function event(kind, node, inc, reason, retention, about)
    local n = redis.call('ZCARD', members)
    return redis.call('XADD', events, 'MINID', '~', tostring(now - retention), '*',
                      'kind', kind, 'node', node, 'n', tostring(n), 'reason', reason, 'inc', inc,
                      'info', about or '')
end
local function remove(node, reason, retention)
    local inc = string.match(redis.call('HGET', info, node) or '?', '^(%S+)')
    redis.call('ZREM', members, node)
    redis.call('HDEL', info, node)
    return event('leave', node, inc, reason, retention)
end
`;

/**
 * A node's presence, every interval. ARGV: node, incarnation, the fleet id
 * the node knows ("" for none yet), ttl ms (interval + failed), generation,
 * workers, retention ms, interval ms, the highest cluster singleton token
 * the node saw, then its last view ("node incarnation started gen workers
 * seen ttl" each) to restore into a Redis that forgot the fleet.
 *
 * - Members whose deadline passed leave as "lost" (the caller too: it was
 *   late, and joins again below as a new event).
 * - A Redis without a fleet id forgot the fleet (restarted without
 *   persistence): the caller's last view is put back without events, so
 *   nodes that stayed up neither leave nor join; those that died meanwhile
 *   are lost once their restored deadline passes.
 * - The caller not a member: a join, unless the Redis is not the one it
 *   knew (then it comes back quietly); a member under an older incarnation
 *   (restarted before its loss was noticed) leaves as "lost" first.
 *
 * - The token counter is raised to the highest token the caller saw: a
 *   Redis that forgot it hears every live node's before it grants a lease
 *   (ACQUIRE waits one lease after the data's birth), so tokens never go
 *   back.
 *
 * Returns { fleet id, id of the caller's join or "", members, now, info of
 * each member as node, text pairs }.
 */
const PRESENCE = script(PRELUDE + `
local node, inc, known, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local gen, workers, retention = ARGV[5], ARGV[6], tonumber(ARGV[7])
catch_up(tonumber(ARGV[8]))
local top = tonumber(ARGV[9]) or 0
if (tonumber(redis.call('GET', KEYS[5])) or 0) < top then
    redis.call('SET', KEYS[5], tostring(top))
end
local fleet = redis.call('GET', KEYS[4])
if not fleet then
    fleet = tostring(now) .. '-' .. node
    redis.call('SET', KEYS[4], fleet)
    if known ~= '' then
        for i = 10, #ARGV do
            local n, rest = string.match(ARGV[i], '^(%S+) (.+)$')
            local r_ttl = tonumber(string.match(rest, '(%d+)$'))
            if n and r_ttl and n ~= node then
                redis.call('ZADD', members, now + r_ttl, n)
                redis.call('HSET', info, n, rest)
            end
        end
    end
end
for _, late in ipairs(redis.call('ZRANGEBYSCORE', members, '-inf', '(' .. now)) do
    remove(late, 'lost', retention)
end
local joined = ''
local mine = redis.call('HGET', info, node)
local started = now
if mine then
    local m_inc, m_started = string.match(mine, '^(%S+) (%d+)')
    if m_inc == inc then
        started = m_started
    else
        remove(node, 'lost', retention)
        mine = nil
    end
end
redis.call('ZADD', members, now + ttl, node)
local about = table.concat({ inc, started, gen, workers, now, ttl }, ' ')
redis.call('HSET', info, node, about)
if not mine and (known == '' or known == fleet) then
    joined = event('join', node, inc, '', retention, about)
end
return { fleet, joined, redis.call('ZCARD', members), now, redis.call('HGETALL', info) }
`);

/** A graceful stop: the node leaves as "stopped". ARGV: node, incarnation, retention ms, interval ms. */
const LEAVE = script(PRELUDE + `
local node, inc, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
catch_up(tonumber(ARGV[4]))
local mine = redis.call('HGET', info, node)
if mine and string.match(mine, '^(%S+)') == inc then
    return remove(node, 'stopped', retention)
end
return ''
`);

/** The lease key of cluster singleton `name`. */
function lease_key(prefix: string, name: string): string {
    return "{" + prefix + "}:lease:" + name;
}

// Cluster singletons: one lease per name (KEYS[8]), a hash of holder,
// token and expiry (ms, Redis time). Tokens come from the one counter
// {p}:token, never below a floor the caller saw (a Redis that lost writes
// in a failover must not hand out a token twice). The key outlives its
// last renewal by a day, then goes: a name dropped from the configuration
// leaves nothing behind for long.
const LEASE_PRELUDE = `
local lease, counter, born = KEYS[8], KEYS[5], tonumber(redis.call('GET', KEYS[7]))
local KEEP = 86400000
local holder, token, expires = unpack(redis.call('HMGET', lease, 'holder', 'token', 'expires'))
token, expires = tonumber(token), tonumber(expires)
`;

/**
 * Takes the lease if it is free, ran out, or is the caller's own (one it
 * counts as over, or whose reply it never got): always under a new token,
 * since the caller starts a new holding. ARGV: holder id, lease ms, floor.
 * Returns { 1, token } when taken, else { 0, token of the holder }. A Redis whose data is younger than a lease
 * (restarted empty) grants none yet: a holder it forgot may still count
 * on its lease, until that lease would have run out.
 */
const ACQUIRE = script(PRELUDE + LEASE_PRELUDE + `
local me, ms, floor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if now < born + ms then
    return { 0, token or 0 }
end
if holder and holder ~= me and expires and expires > now then
    return { 0, token }
end
local new = redis.call('INCR', counter)
local least = math.max(floor or 0, token or 0)
if new <= least then
    new = least + 1
    redis.call('SET', counter, tostring(new))
end
redis.call('HSET', lease, 'holder', me, 'token', tostring(new), 'expires', tostring(now + ms))
redis.call('PEXPIRE', lease, KEEP)
return { 1, new }
`);

/**
 * Extends the caller's lease. ARGV: holder id, token, lease ms. Returns 1,
 * or 0 when the lease is no longer the caller's (taken over, or forgotten).
 */
const RENEW = script(PRELUDE + LEASE_PRELUDE + `
if holder ~= ARGV[1] or token ~= tonumber(ARGV[2]) then
    return 0
end
redis.call('HSET', lease, 'expires', tostring(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', lease, KEEP)
return 1
`);

/** Gives the lease up at once (keeping its token). ARGV: holder id, token. Returns 1, or 0 if not the caller's. */
const RELEASE = script(PRELUDE + LEASE_PRELUDE + `
if holder ~= ARGV[1] or token ~= tonumber(ARGV[2]) then
    return 0
end
redis.call('HSET', lease, 'expires', '0')
return 1
`);

export { keys, lease_key, PRESENCE, LEAVE, ACQUIRE, RENEW, RELEASE };
export type { Script };
