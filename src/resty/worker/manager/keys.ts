/**
 * Names of the module's keys in the user's shm. Every key starts with PREFIX so
 * the dict can be shared with other code. One small set of keys per generation
 * `g`, removed when the generation ends; `slot` is ngx.worker.id().
 */

const PREFIX = "lua-resty-worker-manager:";

/** The keys of a kind named by a string (a singleton's name, a fleet member): PREFIX, `tag`, the name. */
function keyed(tag: string): (this: void, name: string) => string {
    return (name) => PREFIX + tag + name;
}

/** The node lock; resty.lock users may take it too (add with expiry, delete). */
const LOCK = PREFIX + "lock";
/** Highest generation number handed out (incremented in init_by_lua). */
const TOP = PREFIX + "top";
/** Lowest generation that may still have records; scans start there. */
const LOW = PREFIX + "low";

/** Time of the generation's master start; absent once it ended. */
function gen(g: number): string {
    return PREFIX + "g" + g;
}

/** Workers of the generation currently counted. */
function live(g: number): string {
    return PREFIX + "g" + g + ":live";
}

/** Workers of the generation that ever reached init_worker (taken without the lock). */
function arrived(g: number): string {
    return PREFIX + "g" + g + ":arrived";
}

/** worker_processes of the generation: how many slots to look at. */
function size(g: number): string {
    return PREFIX + "g" + g + ":size";
}

/**
 * Pid of a worker of this slot that reached init_worker and is not counted
 * yet (written without the lock; removed once it is counted).
 */
function arrival(g: number, s: number): string {
    return PREFIX + "g" + g + ":arrival" + s;
}

/**
 * The worker counted in this slot, as "<pid> <last heartbeat> <started>":
 * one key per worker, so that a small shm holds many (see registry.ts).
 */
function slot(g: number, s: number): string {
    return PREFIX + "g" + g + ":slot" + s;
}

/**
 * The generations whose master exit ran (registry.note_ended): a worker of
 * one of them that reaches init_worker only now must not bring it back.
 */
const ENDED = PREFIX + "ended";

/** Workers found dead since the node started. */
const CRASHES = PREFIX + "crashes";
/** The last of them (crash_record.ts). */
const LAST_CRASH = PREFIX + "crash";

/** Pids replaced in this slot by a respawn, dropped but not yet reported ("pid pid ..."). */
function replaced(g: number, s: number): string {
    return PREFIX + "g" + g + ":replaced" + s;
}

/** Pid of the process running the generation's master exit; negative once the callback was entered. */
function closing(g: number): string {
    return PREFIX + "g" + g + ":closing";
}

/** A worker dropped for an overdue heartbeat while its process still ran: "<pid> <started>". */
function stalled(g: number, s: number): string {
    return PREFIX + "g" + g + ":stalled" + s;
}

/** Inodes of the generation's listening sockets, "ino ino ..." (listeners.ts). */
function listeners(g: number): string {
    return PREFIX + "g" + g + ":listeners";
}

/**
 * Set while the generation has no worker but its master keeps running its
 * configuration (a worker being replaced, WINCH): when its last worker left.
 */
function idle(g: number): string {
    return PREFIX + "g" + g + ":idle";
}

/**
 * The last generation of a configuration whose master exit ran on a fast
 * exit, where the module could only assume a stop: "<configuration's
 * generation> <last generation>". A worker nginx then starts from that
 * configuration opens a new generation for it (resume.ts).
 */
const RESUME = PREFIX + "resume";

/**
 * Singletons (holding.ts), one set of keys per name, never removed (a
 * name's token must keep growing over the node's life). The letter after
 * "s" says which key of the name it is, so that no name can make one
 * name's key another's.
 */

/** Who holds the name: "<gen> <slot> <token> <since> <state>", the holder's pid as flags. */
const holder = keyed("sh:");

/** The name's last token handed out (1 for its first holding). */
const token = keyed("st:");

/** The newest generation whose workers registered the name: the job belongs there. */
const registered = keyed("sr:");

/** Every name registered in the node, "\n"-separated and framed ("\na\nb\n"), for status() and drops. */
const NAMES = PREFIX + "s:names";
/** Grows with every change of a holding or registration: what idle workers watch. */
const EPOCH = PREFIX + "s:epoch";

/**
 * The fleet (cluster/fleet.ts): what this node knows of it, kept in shm so
 * that the agent can move to another worker or generation and go on.
 */
const FLEET = {
    /** This node's incarnation: set once per node start (a new shm). */
    incarnation: PREFIX + "f:incarnation",
    /** The fleet id of the Redis this node last talked to. */
    id: PREFIX + "f:fleet",
    /** The id of the last event of the fleet's stream this node ran. */
    cursor: PREFIX + "f:cursor",
    /** The members as last seen: one "node incarnation started gen workers seen ttl" line each. */
    view: PREFIX + "f:view",
    /** Since when Redis cannot be reached (absent while it can): one error per outage. */
    outage: PREFIX + "f:outage",
    /** Set once the node's leave was written to Redis on its stop. */
    left: PREFIX + "f:left",
    /** The highest cluster singleton token the node saw: the floor the next presence raises Redis's counter to. */
    token_max: PREFIX + "f:token",
};

/**
 * What this node last ran for member `node`: "<incarnation> in" after its
 * join, "<incarnation> out" after its leave; a repeat of either (a write
 * a Redis failover lost, written again) is not run twice.
 */
const fleet_member = keyed("f:member:");

/**
 * Event `id` of the fleet's stream is being run or was run by an agent of
 * this node: a second agent (a stalled one that resumed beside its
 * successor) skips it. Kept a minute.
 */
const fleet_ran = keyed("f:ran:");

/** The highest token of cluster singleton `name` this node saw: the floor of its next one. */
const fleet_seen = keyed("f:seen:");

export {
    FLEET, fleet_seen, fleet_member, fleet_ran,
    holder, token, registered, NAMES, EPOCH,
    LOCK, TOP, LOW, ENDED, CRASHES, LAST_CRASH, RESUME, gen, live, arrived, size, arrival, slot, replaced, stalled,
    closing, listeners, idle,
};
