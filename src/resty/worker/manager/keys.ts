/**
 * Names of the module's keys in the user's shm. Every key starts with PREFIX so
 * the dict can be shared with other code. One small set of keys per generation
 * `g`, removed when the generation ends; `slot` is ngx.worker.id().
 */

const PREFIX = "lua-resty-worker-manager:";

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

/** Pid of the last worker that reached init_worker in this slot (written without the lock). */
function arrival(g: number, s: number): string {
    return PREFIX + "g" + g + ":arrival" + s;
}

/** Pid of the worker counted in this slot. */
function slot(g: number, s: number): string {
    return PREFIX + "g" + g + ":slot" + s;
}

/** Time of the last heartbeat of the worker in this slot. */
function beat(g: number, s: number): string {
    return PREFIX + "g" + g + ":beat" + s;
}

/** When the worker in this slot started (its worker start). */
function started(g: number, s: number): string {
    return PREFIX + "g" + g + ":started" + s;
}

/**
 * The last few generations whose master exit ran ("g g ..."): a worker of
 * one of them that reaches init_worker only now must not bring it back.
 */
const ENDED = PREFIX + "ended";

/** Workers found dead since the node started. */
const CRASHES = PREFIX + "crashes";
/** The last of them: "<worker id> <pid> <slot> <time> <cause>". */
const LAST_CRASH = PREFIX + "last_crash";

/** Pids replaced in this slot by a respawn, dropped but not yet reported ("pid pid ..."). */
function replaced(g: number, s: number): string {
    return PREFIX + "g" + g + ":replaced" + s;
}

/** Pid of the process running the generation's master exit; negative once the callback was entered. */
function closing(g: number): string {
    return PREFIX + "g" + g + ":closing";
}

/** Pid of a worker dropped for an overdue heartbeat while its process still ran. */
function stalled(g: number, s: number): string {
    return PREFIX + "g" + g + ":stalled" + s;
}

export { PREFIX, LOCK, TOP, LOW, ENDED, CRASHES, LAST_CRASH, gen, live, arrived, size, arrival, slot, beat, started, replaced, stalled, closing };
