/**
 * The fleet's state changes, each one Redis script: atomic, and timed by
 * Redis's clock (TIME inside the script), never a node's.
 *
 * Keys, all under one hash tag "{prefix}" (one slot of a sharded Redis):
 *   {p}:members  sorted set: node -> deadline (ms, Redis time)
 *   {p}:info     hash: node -> "incarnation started gen workers seen ttl"
 *   {p}:events   stream of joins and leaves: kind, node, n (members after it), reason
 *   {p}:fleet    this Redis's fleet id: a new one means Redis forgot the fleet
 *   {p}:token    the fencing token counter of cluster singletons
 *   {p}:clock    Redis's time when a script last ran
 *
 * The stream is trimmed by age (MINID) at each event, so it holds the
 * events of the last `retention` ms, whatever the number of starts.
 */

import { script } from "./driver";
import type { Script } from "./driver";

/** The keys of a fleet with key prefix `prefix`, in the order the scripts take them. */
function keys(prefix: string): string[] {
    const tag = "{" + prefix + "}";
    return [tag + ":members", tag + ":info", tag + ":events", tag + ":fleet", tag + ":token", tag + ":clock"];
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
local function event(kind, node, reason, retention)
    local n = redis.call('ZCARD', members)
    return redis.call('XADD', events, 'MINID', '~', tostring(now - retention), '*',
                      'kind', kind, 'node', node, 'n', tostring(n), 'reason', reason)
end
local function remove(node, reason, retention)
    redis.call('ZREM', members, node)
    redis.call('HDEL', info, node)
    return event('leave', node, reason, retention)
end
`;

/**
 * A node's presence, every interval. ARGV: node, incarnation, the fleet id
 * the node knows ("" for none yet), ttl ms (interval + failed), generation,
 * workers, retention ms, interval ms, then the node's last view ("node
 * incarnation started gen workers seen ttl" each) to restore into a Redis
 * that forgot the fleet.
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
 * Returns { fleet id, id of the caller's join or "", members, now, info of
 * each member as node, text pairs }.
 */
const PRESENCE = script(PRELUDE + `
local node, inc, known, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local gen, workers, retention = ARGV[5], ARGV[6], tonumber(ARGV[7])
catch_up(tonumber(ARGV[8]))
local fleet = redis.call('GET', KEYS[4])
if not fleet then
    fleet = tostring(now) .. '-' .. node
    redis.call('SET', KEYS[4], fleet)
    if known ~= '' then
        for i = 9, #ARGV do
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
redis.call('HSET', info, node, table.concat({ inc, started, gen, workers, now, ttl }, ' '))
if not mine and (known == '' or known == fleet) then
    joined = event('join', node, '', retention)
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

export { keys, PRESENCE, LEAVE };
export type { Script };
