-- Compiled from src/resty/worker/manager/keys.ts by TypeScriptToLua (make build):
-- change the TypeScript source, not this file.

local _M = {}

--- Names of the module's keys in the user's shm. Every key starts with PREFIX so
-- the dict can be shared with other code. One small set of keys per generation
-- `g`, removed when the generation ends; `slot` is ngx.worker.id().
local PREFIX = "lua-resty-worker-manager:"

--- The keys of a kind named by a string (a singleton's name, a fleet member): PREFIX, `tag`, the name.
local function keyed(tag)
    return function(name)
        return PREFIX .. tag .. name
    end
end

--- The node lock; resty.lock users may take it too (add with expiry, delete).
local LOCK = PREFIX .. "lock"

--- Highest generation number handed out (incremented in init_by_lua).
local TOP = PREFIX .. "top"

--- Lowest generation that may still have records; scans start there.
local LOW = PREFIX .. "low"

--- Time of the generation's master start; absent once it ended.
local function gen(g)
    return PREFIX .. "g" .. tostring(g)
end

--- Workers of the generation currently counted.
local function live(g)
    return PREFIX .. "g" .. tostring(g) .. ":live"
end

--- Workers of the generation that ever reached init_worker (taken without the lock).
local function arrived(g)
    return PREFIX .. "g" .. tostring(g) .. ":arrived"
end

--- worker_processes of the generation: how many slots to look at.
local function size(g)
    return PREFIX .. "g" .. tostring(g) .. ":size"
end

--- Pid of a worker of this slot that reached init_worker and is not counted
-- yet (written without the lock; removed once it is counted).
local function arrival(g, s)
    return PREFIX .. "g" .. tostring(g) .. ":arrival" .. tostring(s)
end

--- The worker counted in this slot, as "<pid> <last heartbeat> <started>":
-- one key per worker, so that a small shm holds many (see registry.ts).
local function slot(g, s)
    return PREFIX .. "g" .. tostring(g) .. ":slot" .. tostring(s)
end

--- The generations whose master exit ran (registry.note_ended): a worker of
-- one of them that reaches init_worker only now must not bring it back.
local ENDED = PREFIX .. "ended"

--- Workers found dead since the node started.
local CRASHES = PREFIX .. "crashes"

--- The last of them (crash_record.ts).
local LAST_CRASH = PREFIX .. "crash"

--- Pids replaced in this slot by a respawn, dropped but not yet reported ("pid pid ...").
local function replaced(g, s)
    return PREFIX .. "g" .. tostring(g) .. ":replaced" .. tostring(s)
end

--- Pid of the process running the generation's master exit; negative once the callback was entered.
local function closing(g)
    return PREFIX .. "g" .. tostring(g) .. ":closing"
end

--- A worker dropped for an overdue heartbeat while its process still ran: "<pid> <started>".
local function stalled(g, s)
    return PREFIX .. "g" .. tostring(g) .. ":stalled" .. tostring(s)
end

--- Inodes of the generation's listening sockets, "ino ino ..." (listeners.ts).
local function listeners(g)
    return PREFIX .. "g" .. tostring(g) .. ":listeners"
end

--- Set while the generation has no worker but its master keeps running its
-- configuration (a worker being replaced, WINCH): when its last worker left.
local function idle(g)
    return PREFIX .. "g" .. tostring(g) .. ":idle"
end

--- The last generation of a configuration whose master exit ran on a fast
-- exit, where the module could only assume a stop: "<configuration's
-- generation> <last generation>". A worker nginx then starts from that
-- configuration opens a new generation for it (resume.ts).
local RESUME = PREFIX .. "resume"

--- Who holds the name: "<gen> <slot> <token> <since> <state>", the holder's pid as flags.
local holder = keyed("sh:")

--- The name's last token handed out (1 for its first holding).
local token = keyed("st:")

--- The newest generation whose workers registered the name: the job belongs there.
local registered = keyed("sr:")

--- Every name registered in the node, "\n"-separated and framed ("\na\nb\n"), for status() and drops.
local NAMES = PREFIX .. "s:names"

--- Grows with every change of a holding or registration: what idle workers watch.
local EPOCH = PREFIX .. "s:epoch"

--- The fleet (cluster/fleet.ts): what this node knows of it, kept in shm so
-- that the agent can move to another worker or generation and go on.
local FLEET = {
    incarnation = PREFIX .. "f:incarnation",
    id = PREFIX .. "f:fleet",
    cursor = PREFIX .. "f:cursor",
    view = PREFIX .. "f:view",
    outage = PREFIX .. "f:outage",
    left = PREFIX .. "f:left",
    token_max = PREFIX .. "f:token",
}

--- What this node last ran for member `node`: "<incarnation> in" after its
-- join, "<incarnation> out" after its leave; a repeat of either (a write
-- a Redis failover lost, written again) is not run twice.
local fleet_member = keyed("f:member:")

--- Event `id` of the fleet's stream is being run or was run by an agent of
-- this node: a second agent (a stalled one that resumed beside its
-- successor) skips it. Kept a minute.
local fleet_ran = keyed("f:ran:")

--- The highest token of cluster singleton `name` this node saw: the floor of its next one.
local fleet_seen = keyed("f:seen:")

_M.FLEET = FLEET
_M.fleet_seen = fleet_seen
_M.fleet_member = fleet_member
_M.fleet_ran = fleet_ran
_M.holder = holder
_M.token = token
_M.registered = registered
_M.NAMES = NAMES
_M.EPOCH = EPOCH
_M.LOCK = LOCK
_M.TOP = TOP
_M.LOW = LOW
_M.ENDED = ENDED
_M.CRASHES = CRASHES
_M.LAST_CRASH = LAST_CRASH
_M.RESUME = RESUME
_M.gen = gen
_M.live = live
_M.arrived = arrived
_M.size = size
_M.arrival = arrival
_M.slot = slot
_M.replaced = replaced
_M.stalled = stalled
_M.closing = closing
_M.listeners = listeners
_M.idle = idle

return _M
