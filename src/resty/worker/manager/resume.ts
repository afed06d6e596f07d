/**
 * Which generation a worker belongs to when nginx starts workers of a
 * configuration after that configuration's master exit ran.
 *
 * A worker knows the generation of the configuration it was forked with
 * (its master's init_by_lua). Normally that generation runs and the worker
 * joins it. But on a fast exit (TERM) of a generation's last worker the
 * module cannot tell a stop from a worker recycled by a signal sent to it:
 * nginx tells the two apart to nobody, and keeps its listening sockets in
 * both. It assumes a stop and runs the master exit. If nginx then respawns
 * the worker, that configuration runs again: its workers open a new
 * generation (master start, run by the first of them) rather than go
 * untracked. One entry (keys.RESUME) remembers the last generation of the
 * configuration and whether its end was only assumed.
 */

import * as keys from "./keys";
import * as registry from "./registry";
import { write } from "./store";

/** The generation that carried configuration `config` last, and whether its master exit ran on an assumed stop. */
function last_of(dict: NgxSharedDict, config: number): LuaMultiReturn<[number | undefined, boolean]> {
    const [value, flags] = dict.get(keys.RESUME);
    if (typeof value !== "string") {
        return $multi(undefined, false);
    }
    const [from, last] = string.match(value, "^(%d+) (%d+)$");
    if (tonumber(from) !== config) {
        return $multi(undefined, false);
    }
    return $multi(tonumber(last), flags === 1);
}

/** The generation a worker of configuration `config` joins now: `config` itself, or the one that carries it since; nil if none runs. */
function carrier(dict: NgxSharedDict, config: number): number | undefined {
    if (registry.recorded(dict, config)) {
        return config;
    }
    const [last] = last_of(dict, config);
    return last !== undefined && registry.recorded(dict, last) ? last : undefined;
}

/**
 * True when a worker of configuration `config`, finding no generation that
 * carries it, opens a new one: its last generation ended on an assumed stop
 * and no newer configuration got a worker since (a late worker of an old
 * configuration stays untracked).
 */
function resumable(dict: NgxSharedDict, config: number): boolean {
    const [last, assumed] = last_of(dict, config);
    return last !== undefined && assumed && !registry.recorded(dict, last) && !registry.superseded(dict, last);
}

/** Opens a new generation to carry configuration `config`; its number, nil if the shm refused. */
function open(dict: NgxSharedDict, config: number, now: number): number | undefined {
    const g = registry.begin_generation(dict, now);
    if (g !== undefined) {
        write(dict, keys.RESUME, config + " " + g, 0);
    }
    return g;
}

/**
 * The master exit of `g`, carrying configuration `config`, ran. `assumed`:
 * on a stop the module could only assume, after which nginx may start that
 * configuration's workers again.
 */
function note_end(dict: NgxSharedDict, config: number, g: number, assumed: boolean): void {
    if (assumed) {
        // Only the master's current configuration can run again; an older
        // one ending later (its exits were slower) must not take its place.
        if (!registry.superseded(dict, g)) {
            write(dict, keys.RESUME, config + " " + g, 1);
        }
        return;
    }
    const [last] = last_of(dict, config);
    if (last === g) {
        write(dict, keys.RESUME, config + " " + g, 0);
    }
}

export { carrier, resumable, open, note_end };
