/**
 * The node's crash count and its last crash, for status(). The last crash
 * is one shm entry of at most 128 bytes (see record.ts): its pid is the
 * entry's flags, and the value "<generation> <slot> <time> <cause>", the
 * time as hex milliseconds and the cause as a short code.
 */

import * as keys from "./keys";
import { read_number, write, add } from "./store";
import { to_hex_ms, from_hex_ms } from "./record";
import type { CrashStatus } from "resty.worker.manager";

/** The causes liveness and the respawn path give, and their codes. */
const CODE_OF: { [cause: string]: string | undefined } = {
    "respawned": "r",
    "crashed while starting": "s",
    "its process is gone": "g",
};
const CAUSE_OF: { [code: string]: string | undefined } = {
    r: "respawned",
    s: "crashed while starting",
    g: "its process is gone",
};

/** "no heartbeat for 15.5s" is stored as "h15.5". */
function encode_cause(cause: string): string {
    const code = CODE_OF[cause];
    if (code !== undefined) {
        return code;
    }
    const [late] = string.match(cause, "^no heartbeat for (%S+)s$");
    return late !== undefined ? "h" + late : "?";
}

function decode_cause(code: string): string {
    const cause = CAUSE_OF[code];
    if (cause !== undefined) {
        return cause;
    }
    const [late] = string.match(code, "^h(.+)$");
    return late !== undefined ? "no heartbeat for " + late + "s" : "unknown";
}

/** Counts the crash of worker `pid` of generation `g`, found at `now`. */
function note(dict: NgxSharedDict, g: number, pid: number, slot: number, cause: string, now: number): void {
    add(dict, keys.CRASHES, 1);
    write(dict, keys.LAST_CRASH, g + " " + slot + " " + to_hex_ms(now) + " " + encode_cause(cause), pid);
}

/** Crashes counted since the node started. */
function count(dict: NgxSharedDict): number {
    return read_number(dict, keys.CRASHES) ?? 0;
}

/** The last crash, nil if none (or its entry is unreadable). */
function last(dict: NgxSharedDict): CrashStatus | undefined {
    const [value, pid] = dict.get(keys.LAST_CRASH);
    if (typeof value !== "string" || typeof pid !== "number") {
        return undefined;
    }
    const [g, slot, at, code] = string.match(value, "^(%d+) (%d+) (%x+) (%S+)$");
    if (g === undefined) {
        return undefined;
    }
    return {
        id: g + "-" + pid, pid, slot: tonumber(slot) ?? 0, at: from_hex_ms(at) ?? 0, cause: decode_cause(code ?? ""),
    };
}

export { note, count, last };
