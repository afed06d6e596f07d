--[[ Generated with https://github.com/TypeScriptToLua/TypeScriptToLua ]]
local ____exports = {}
--- Names of the module's keys in the user's shm. Every key starts with PREFIX so
-- the dict can be shared with other code. One small set of keys per generation
-- `g`, removed when the generation ends; `slot` is ngx.worker.id().
local PREFIX = "lua-resty-worker-manager:"
--- The node lock; resty.lock users may take it too (add with expiry, delete).
local LOCK = PREFIX .. "lock"
--- Highest generation number handed out (incremented in init_by_lua).
local TOP = PREFIX .. "top"
--- Lowest generation that may still have records; scans start there.
local LOW = PREFIX .. "low"
--- Time of the generation's master start; absent once it ended.
local function gen(g)
    return (PREFIX .. "g") .. tostring(g)
end
--- Workers of the generation currently counted.
local function live(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":live"
end
--- Workers of the generation that ever reached init_worker (taken without the lock).
local function arrived(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":arrived"
end
--- worker_processes of the generation: how many slots to look at.
local function size(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":size"
end
--- Pid of a worker of this slot that reached init_worker and is not counted
-- yet (written without the lock; removed once it is counted).
local function arrival(g, s)
    return (((PREFIX .. "g") .. tostring(g)) .. ":arrival") .. tostring(s)
end
--- The worker counted in this slot, as "<pid> <last heartbeat> <started>":
-- one key per worker, so that a small shm holds many (see registry.ts).
local function slot(g, s)
    return (((PREFIX .. "g") .. tostring(g)) .. ":slot") .. tostring(s)
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
    return (((PREFIX .. "g") .. tostring(g)) .. ":replaced") .. tostring(s)
end
--- Pid of the process running the generation's master exit; negative once the callback was entered.
local function closing(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":closing"
end
--- A worker dropped for an overdue heartbeat while its process still ran: "<pid> <started>".
local function stalled(g, s)
    return (((PREFIX .. "g") .. tostring(g)) .. ":stalled") .. tostring(s)
end
--- Inodes of the generation's listening sockets, "ino ino ..." (listeners.ts).
local function listeners(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":listeners"
end
--- Set while the generation has no worker but its master keeps running its
-- configuration (a worker being replaced, WINCH): when its last worker left.
local function idle(g)
    return ((PREFIX .. "g") .. tostring(g)) .. ":idle"
end
--- The last generation of a configuration whose master exit ran on a fast
-- exit, where the module could only assume a stop: "<configuration's
-- generation> <last generation>". A worker nginx then starts from that
-- configuration opens a new generation for it (resume.ts).
local RESUME = PREFIX .. "resume"
--- Who holds the name: "<gen> <slot> <token> <since> <state>", the holder's pid as flags.
local function holder(name)
    return (PREFIX .. "sh:") .. name
end
--- The name's last token handed out (1 for its first holding).
local function token(name)
    return (PREFIX .. "st:") .. name
end
--- The newest generation whose workers registered the name: the job belongs there.
local function registered(name)
    return (PREFIX .. "sr:") .. name
end
--- Every name registered in the node, "\n"-separated and framed ("\na\nb\n"), for status() and drops.
local NAMES = PREFIX .. "s:names"
--- Grows with every change of a holding or registration: what idle workers watch.
local EPOCH = PREFIX .. "s:epoch"
--- This node's incarnation: set once per node start (a new shm).
local FLEET_INCARNATION = PREFIX .. "f:incarnation"
--- The fleet id of the Redis this node last talked to.
local FLEET_ID = PREFIX .. "f:fleet"
--- The id of the last event of the fleet's stream this node ran.
local FLEET_CURSOR = PREFIX .. "f:cursor"
--- The members as last seen: one "node incarnation started gen workers seen ttl" line each.
local FLEET_VIEW = PREFIX .. "f:view"
--- Since when Redis cannot be reached (absent while it can): one error per outage.
local FLEET_OUTAGE = PREFIX .. "f:outage"
--- Set once the node's leave was written to Redis on its stop.
local FLEET_LEFT = PREFIX .. "f:left"
--- What this node last ran for member `node`: "<incarnation> in" after its
-- join, "<incarnation> out" after its leave; a repeat of either (a write
-- a Redis failover lost, written again) is not run twice.
local function fleet_member(node)
    return (PREFIX .. "f:member:") .. node
end
--- Event `id` of the fleet's stream is being run or was run by an agent of
-- this node: a second agent (a stalled one that resumed beside its
-- successor) skips it. Kept a minute.
local function fleet_ran(id)
    return (PREFIX .. "f:ran:") .. id
end
--- The highest token of any cluster singleton this node saw: its presence raises the fleet's counter to it.
local FLEET_TOKEN_MAX = PREFIX .. "f:token"
--- The highest token of cluster singleton `name` this node saw: the floor of its next one.
local function fleet_seen(name)
    return (PREFIX .. "f:seen:") .. name
end
____exports.FLEET_INCARNATION = FLEET_INCARNATION
____exports.FLEET_ID = FLEET_ID
____exports.FLEET_CURSOR = FLEET_CURSOR
____exports.FLEET_VIEW = FLEET_VIEW
____exports.FLEET_OUTAGE = FLEET_OUTAGE
____exports.FLEET_LEFT = FLEET_LEFT
____exports.FLEET_TOKEN_MAX = FLEET_TOKEN_MAX
____exports.fleet_seen = fleet_seen
____exports.fleet_member = fleet_member
____exports.fleet_ran = fleet_ran
____exports.holder = holder
____exports.token = token
____exports.registered = registered
____exports.NAMES = NAMES
____exports.EPOCH = EPOCH
____exports.LOCK = LOCK
____exports.TOP = TOP
____exports.LOW = LOW
____exports.ENDED = ENDED
____exports.CRASHES = CRASHES
____exports.LAST_CRASH = LAST_CRASH
____exports.RESUME = RESUME
____exports.gen = gen
____exports.live = live
____exports.arrived = arrived
____exports.size = size
____exports.arrival = arrival
____exports.slot = slot
____exports.replaced = replaced
____exports.stalled = stalled
____exports.closing = closing
____exports.listeners = listeners
____exports.idle = idle
return ____exports
