/**
 * The node's listening sockets: what a worker can see of whether nginx's
 * master goes on running a configuration. A worker cannot tell who told it
 * to quit, the master (a stop, WINCH) or an operator's signal sent to it
 * (nginx then respawns it): both set the same flag. But a master told to
 * stop gracefully closes its copies of the listening sockets right after it
 * tells its workers to quit (ngx_master_process_cycle), and a master that
 * goes on keeps them, so once this worker closed its own (nginx does that
 * first thing on a graceful exit) the sockets vanish from the kernel's
 * tables exactly when the node stops. A fast stop (TERM) gives no such sign:
 * the master keeps its sockets until it exits.
 *
 * Each socket is known by its inode, recorded while a worker still holds it.
 * Linux only (/proc); elsewhere nothing is known.
 */

import { fd_table_size, listening_inode, read_file } from "./host";

const TCP_TABLE = "/proc/self/net/tcp";
const TCP6_TABLE = "/proc/self/net/tcp6";
const UNIX_TABLE = "/proc/self/net/unix";
/** A TCP socket in the LISTEN state (include/net/tcp_states.h). */
const TCP_LISTEN = "0A";
/** __SO_ACCEPTCON in a unix socket's flags: it listens. */
const UNIX_ACCEPTING = 0x10000;

/** The inodes of the listening sockets this process holds, as "ino ino ..."; nil when none is seen. */
function held(): string | undefined {
    const size = fd_table_size();
    if (size === undefined) {
        return undefined;
    }
    const found: string[] = [];
    for (const fd of $range(0, size - 1)) {
        const inode = listening_inode(fd);
        if (inode !== undefined) {
            found.push(inode);
        }
    }
    return found.length > 0 ? table.concat(found, " ") : undefined;
}

/** The line of `text` around position `at`. */
function line_at(text: string, at: number): string {
    let first = at;
    while (first > 1 && string.sub(text, first - 1, first - 1) !== "\n") {
        first = first - 1;
    }
    const [last] = string.find(text, "\n", at, true);
    return string.sub(text, first, last !== undefined ? last - 1 : -1);
}

/** Whether the line of a tcp table is socket `inode` in the LISTEN state. */
function tcp_listens(line: string, inode: string): boolean {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    const [st, ino] = string.match(line, "^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)");
    return ino === inode && st === TCP_LISTEN;
}

/** Whether the line of the unix table is socket `inode`, listening. */
function unix_listens(line: string, inode: string): boolean {
    // Num RefCount Protocol Flags Type St Inode Path
    const [flags, ino] = string.match(line, "^%x+:%s+%x+%s+%x+%s+(%x+)%s+%x+%s+%x+%s+(%d+)");
    return ino === inode && math.floor((tonumber(flags, 16) ?? 0) / UNIX_ACCEPTING) % 2 === 1;
}

function listed(text: string, inode: string, listens: (line: string, inode: string) => boolean): boolean {
    let from = 1;
    while (true) {
        const [at] = string.find(text, " " + inode, from, true);
        if (at === undefined) {
            return false;
        }
        if (listens(line_at(text, at), inode)) {
            return true;
        }
        from = at + 1;
    }
}

/** Whether one of `inodes` listens in the kernel table at `path`; nil when it cannot be read. */
function listens_in(path: string, inodes: string[], listens: (line: string, inode: string) => boolean):
    boolean | undefined {
    const text = read_file(path);
    if (text === undefined) {
        return undefined;
    }
    for (const inode of inodes) {
        if (listed(text, inode, listens)) {
            return true;
        }
    }
    return false;
}

/**
 * Whether any of the sockets `inodes` (as `held` gives them) still listens,
 * whoever holds it: true or false, nil when the kernel's tables cannot be read.
 */
function open_anywhere(inodes: string): boolean | undefined {
    const wanted: string[] = [];
    for (const [inode] of string.gmatch(inodes, "(%d+)")) {
        wanted.push(inode as string);
    }
    const tcp = listens_in(TCP_TABLE, wanted, tcp_listens);
    if (tcp === true) {
        return true;
    }
    const tcp6 = listens_in(TCP6_TABLE, wanted, tcp_listens);
    if (tcp6 === true) {
        return true;
    }
    const unix = listens_in(UNIX_TABLE, wanted, unix_listens);
    if (unix === true) {
        return true;
    }
    if (tcp === undefined && tcp6 === undefined && unix === undefined) {
        return undefined;
    }
    return false;
}

export { held, open_anywhere };
