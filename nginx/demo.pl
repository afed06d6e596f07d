#!/usr/bin/env perl
# A tour of resty.worker.manager on a real nginx, run from nginx/demo.conf.
#
#   perl -I t/lib nginx/demo.pl           `make demo`: a scripted tour (start, a request,
#                                         reload, kill -9 of a worker, two reloads in a row,
#                                         a second node joining the fleet and killed,
#                                         graceful stop, restart and fast stop), printing
#                                         every callback as it runs, then drawing the run as
#                                         an SVG timeline
#   perl -I t/lib nginx/demo.pl --check   the same tour, fast; exits non-zero unless the
#                                         timeline has every expected event (t/21-demo.t)
#        [--svg FILE]                     where the timeline goes (default:
#                                         demo-out/timeline.svg in the repository)
#   perl -I t/lib nginx/demo.pl --serve   `make demo-serve`: start the node and keep it up
#                                         for hands-on play, its timeline live at /timeline;
#                                         Ctrl-C stops it
#        [--port N]                       (--serve) listen on 127.0.0.1:N, not a free port
#
# Run from the repository root after `make build` (`make demo` does both).
# WM_NGINX / WM_LOAD_MODULES choose the nginx binary as for the tests;
# WM_REDIS_SERVER picks the redis-server binary (default /usr/bin/redis-server):
# the demo starts a private one, without persistence, on a free port of
# 127.0.0.1, the fleet's Redis for its nodes (cluster = { ... } in demo.conf).
# WM_KEEP=2 keeps the temporary prefix (conf and error.log) for a look.
# Nothing is left running: the drivers (t/lib/WorkerManager/Nginx.pm and
# Redis.pm) kill what is left of the nodes and of Redis on any exit, die or
# Ctrl-C.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long qw(GetOptions);
use IO::Select;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Test::More ();
use File::Spec;
use WorkerManager::Nginx;
use WorkerManager::Redis;

my ($CHECK, $SERVE, $PORT, $SVG) = (0, 0, undef, undef);
GetOptions('check' => \$CHECK, 'serve' => \$SERVE, 'port=i' => \$PORT, 'svg=s' => \$SVG,
           'help|h' => sub { usage(0) })
    or usage(2);
sub usage {
    open my $fh, '<', __FILE__ or exit $_[0];
    while (<$fh>) { last unless /^#/; next if /^#!/; s/^# ?//; print }
    exit $_[0];
}

# The driver reports through Test::More: no TAP here.
my $tb = Test::More->builder;
$tb->no_ending(1);
$tb->output(\my $tap_out);
$tb->failure_output(\my $tap_err);
$tb->todo_output(\my $tap_todo);
$| = 1;

my $REPO  = $WorkerManager::Nginx::REPO;
my $NGINX = $WorkerManager::Nginx::NGINX;
my $LIB   = "$REPO/lib";
my $TEMPLATE = "$FindBin::Bin/demo.conf";
my $WORKERS = 2;                               # worker_processes in demo.conf
my $WIDTH = ($ENV{COLUMNS} // '') =~ /^(\d+)$/ && $1 >= 72 ? $1 : 100;

die "$LIB/resty/worker/manager.lua is not built: run `make build` (or `make demo`)\n"
    unless -f "$LIB/resty/worker/manager.lua";
die "$NGINX: no such nginx binary (set WM_NGINX)\n" unless -x $NGINX;
die "$WorkerManager::Redis::REDIS: no such redis-server binary (set WM_REDIS_SERVER, or run `make demo`)\n"
    unless -x $WorkerManager::Redis::REDIS;

# demo.conf gets the load_module lines itself, so the driver must not pass them with -g.
my @MODULES = @WorkerManager::Nginx::LOAD_MODULES;
@WorkerManager::Nginx::LOAD_MODULES = ();

# The nodes of the fleet: demo-1 is the node of the tour (its driver $n,
# prefix $PREFIX, master $MASTER and port $PORT); the tour starts demo-2
# beside it once, and kills it.
my $n = WorkerManager::Nginx->new(raw_conf => '', workers => $WORKERS, lib_dir => $LIB);
my $PREFIX = $n->prefix;
my $MASTER;
my %NODE1 = (name => 'demo-1', n => $n, seen => 0);
my %NODE2 = (name => 'demo-2', seen => 0);
my @NODES;       # the nodes started so far: \%NODE1, then \%NODE2
my $REDIS;       # the fleet's Redis (WorkerManager::Redis), started first
my $T0;
my @CONF_LINES;  # shown_conf_lines() of the running conf
my $RUN = 1;     # demo-1's lifetime: the tour restarts nginx once
my @SIGNALS;     # the signals the tour sent, for the timeline

my $interrupted = 0;
$SIG{INT} = sub {
    $interrupted++;
    return if $SERVE && $interrupted == 1 && $MASTER;    # the serve loop stops nginx gracefully
    print "\ninterrupted: stopping nginx\n";
    exit 130;
};
$SIG{TERM} = $SIG{HUP} = sub { exit 143 };
$SIG{PIPE} = sub { exit 141 };

# ------------------------------------------------------------------ the conf

sub slurp { my $f = shift; open my $fh, '<', $f or die "$f: $!\n"; local $/; <$fh> }

sub conf_text {
    my ($port, $node) = @_;
    $node //= \%NODE1;
    my $prefix = $node->{n} ? $node->{n}->prefix : $PREFIX;
    my $redis = $REDIS ? $REDIS->address : '{ host = "127.0.0.1", port = 6379 }';
    my $text = slurp($TEMPLATE);
    my $mods = @MODULES
        ? join("\n", map { "load_module $_;" } @MODULES)
        : '# (no load_module: this nginx has the lua module built in)';
    # as root the workers run as "nobody": they must be able to read the Lua files
    $mods .= "\nuser root;   # (demo.pl: the Lua files are not readable by nobody)"
        if $> == 0 && grep { !WorkerManager::Nginx::_others_can_read($_) }
                      ("$LIB/resty/worker/manager.lua", map { "$FindBin::Bin/$_" }
                       qw(demo_helpers.lua demo_timeline.lua demo_page.html));
    my %fill = (PREFIX => $prefix, LOAD_MODULES => $mods, LIB => $LIB,
                HERE => $FindBin::Bin, PORT => $port, NODE => $node->{name}, REDIS => $redis);
    $text =~ s/^\@LOAD_MODULES\@$/$fill{LOAD_MODULES}/m;
    $text =~ s/\@(PREFIX|LIB|HERE|PORT|NODE|REDIS)\@/$fill{$1}/g;
    # temp-path directives of modules this nginx was built without
    my $v = `'$NGINX' -V 2>&1` // '';
    $text =~ s/^(\s*)((\w+)_temp_path\b)/$1# $2/mg
        for grep { $v =~ /--without-http_${_}_module/ } qw(proxy fastcgi uwsgi scgi);
    return $text;
}

# The few lines of the conf that make the run: worker_processes, the shm,
# lua_socket_log_errors, and the three *_by_lua_block blocks without their
# comments.
sub shown_conf_lines {
    my ($text) = @_;
    my (@lines, $block);
    for my $line (split /\n/, $text) {
        if (defined $block) {
            push @lines, $line unless $line =~ /^\s*(?:--.*)?$/;
            undef $block if $line =~ /^$block\}\s*$/;
        } elsif ($line =~ /^\s*(?:worker_processes|lua_shared_dict worker_manager|lua_socket_log_errors)\b/) {
            push @lines, $line;
        } elsif ($line =~ /^(\s*)(?:init|init_worker|exit_worker)_by_lua_block \{/) {
            ($block = $1) =~ s/\t/    /g;
            push @lines, $line;
        }
    }
    # as written in http {}: four spaces less
    s/^    // for @lines;
    return @lines;
}

# Start the fleet's Redis: a private redis-server, nothing persisted, on a
# free port of 127.0.0.1 (WorkerManager::Redis kills it on any exit).
sub start_redis {
    $REDIS = WorkerManager::Redis->new;
    $REDIS->start;
    my $v = `'$WorkerManager::Redis::REDIS' --version 2>&1` // '';
    return sprintf '%s%s on 127.0.0.1:%d (pid %d), no persistence', $WorkerManager::Redis::REDIS,
        ($v =~ /\bv=(\S+)/ ? " $1" : ''), $REDIS->port, $REDIS->pid;
}

# Start a node's nginx (demo-1 unless $node says otherwise) on $port (or a
# free port, taking another one if it is taken meanwhile).
sub start_nginx {
    my ($want, $node) = @_;
    $node //= \%NODE1;
    my $nn = $node->{n} //= WorkerManager::Nginx->new(raw_conf => '', workers => $WORKERS, lib_dir => $LIB);
    my $prefix = $nn->prefix;
    push @NODES, $node unless grep { $_ == $node } @NODES;
    for my $try (1 .. 3) {
        my $port = $want // WorkerManager::Nginx::free_port();
        my $conf = conf_text($port, $node);
        $nn->write_conf(raw_conf => $conf);
        my @shown = shown_conf_lines($conf);
        @CONF_LINES = @shown if $node == \%NODE1;
        # for the live timeline (/timeline.svg in demo.conf)
        open my $fh, '>', "$prefix/conf/shown.txt" or die "$prefix/conf/shown.txt: $!\n";
        print $fh map { "conf $_\n" } @shown;
        close $fh;
        my $mark = $nn->mark;
        $T0 //= time;
        my $rc = $nn->start(wait => 0, expect_fail => 1);
        if ($rc == 0) {
            $node->{master} = $nn->master_pid;
            $node->{port} = $port;
            $MASTER = $node->{master} if $node == \%NODE1;
            return $port;
        }
        my $bind = grep { $_->{text} =~ /bind\(\) to 127\.0\.0\.1:$port failed/ } $nn->entries;
        next if $bind && !defined $want;
        my $err = -f "$prefix/logs/stderr.log" ? slurp("$prefix/logs/stderr.log") : '';
        $err .= join '', map { "$_->{line}\n" } grep { $_->{level} =~ /^(?:error|crit|alert|emerg)$/ }
            $nn->grep_log(qr//, since => $mark);
        die "nginx ($node->{name}) failed to start (exit $rc):\n$err";
    }
    die "nginx failed to start: no free port\n";
}

# ------------------------------------------------------------------ the timeline

my @EV;          # callbacks seen: { event id prev mine next process pid slot t gen wpid self run }
                 # (self: the node whose log said it)
my @ROWS;        # everything printed: callbacks and log lines
my $last_t = 0;

my $TIME_FMT = $SERVE ? '%8.3f' : '%7.3f';
my $MSG_COL  = 2 + ($SERVE ? 8 : 7) + 2 + 12 + 2;

# The column header, printed before the next row (none if nothing follows).
my $need_header = 0;
sub header { $need_header = 1 }
sub print_header {
    $need_header = 0;
    my $t = $SERVE ? '    time' : '   time';
    print "\n";
    printf "  %s  %-12s  %-10s  %-6s  %-6s  %-6s  %s\n", $t, 'event', 'id', 'n_prev', 'n_mine', 'n_next', 'runs in';
    printf "  %s  %s  %s  %s  %s  %s  %s\n", '-' x length($t), '-' x 12, '-' x 10, ('-' x 6) x 3, '-' x 22;
}

# Wrap $text to the width, continuation lines indented to column $col;
# breaks at spaces (or after each $sep, e.g. ',' for JSON).
sub wrap {
    my ($text, $col, $sep) = @_;
    my $w = $WIDTH - $col;
    $w = 40 if $w < 40;
    my $join = defined $sep ? '' : ' ';
    my @lines;
    my $cur = '';
    for my $word (defined $sep ? split(/(?<=\Q$sep\E)/, $text) : split(/ /, $text)) {
        if (length $cur && length($cur) + length($join) + length($word) > $w) {
            push @lines, $cur;
            $cur = $word;
        } else {
            $cur = length $cur ? "$cur$join$word" : $word;
        }
    }
    push @lines, $cur if length $cur;
    return join("\n" . (' ' x $col), @lines);
}

sub kv {
    my $s = shift;
    $s =~ s/, (?:context|client|server|request|host|upstream): .*\z//s;
    my %h;
    $h{$1} = $2 while $s =~ /(\w+)=(\S+)/g;
    return %h;
}

# One log entry of a node as a row of the timeline, or nothing.
sub row_of {
    my ($e, $node) = @_;
    my $r = _row_of($e, $node) or return;
    $r->{self} = $node->{name};
    return $r;
}
sub _row_of {
    my ($e, $node) = @_;
    my $text = $e->{text};
    my $run = $node == \%NODE1 ? $RUN : 1;
    if ($text =~ /\bdemo: fleet_(join|leave) (node=.*)\z/s) {
        my %h = (kind => 'fleet', event => "fleet_$1", kv($2), run => $run);
        ($h{line} = "event=fleet_$1 $2") =~ s/, (?:context|client|server|request|host|upstream): .*\z//s;
        $h{t} = defined $h{t} && $h{t} =~ /^[\d.]+$/ ? $h{t} - $T0 : undef;
        return \%h;
    }
    if ($text =~ /\bdemo: singleton_(start|stop) (name=.*)\z/s) {
        my %h = (kind => 'job', event => "singleton_$1", kv($2), run => $run);
        ($h{line} = "event=singleton_$1 $2") =~ s/, (?:context|client|server|request|host|upstream): .*\z//s;
        $h{t} = defined $h{t} && $h{t} =~ /^[\d.]+$/ ? $h{t} - $T0 : undef;
        return \%h;
    }
    if ($text =~ /\bdemo: (\w+) (id=.*)\z/s) {
        my %h = (kind => 'cb', event => $1, kv($2), run => $run);
        ($h{line} = "event=$1 $2") =~ s/, (?:context|client|server|request|host|upstream): .*\z//s;
        $h{t} = defined $h{t} && $h{t} =~ /^[\d.]+$/ ? $h{t} - $T0 : undef;
        if ($h{event} =~ /^master/) { $h{gen} = $h{id} }
        elsif ($h{id} =~ /^(\d+)-(\d+)$/) { ($h{gen}, $h{wpid}) = ($1, $2) }
        return \%h;
    }
    (my $msg = $text) =~ s/, (?:context|client|server|request|host|upstream): .*\z//s;
    if ($msg =~ /(\[worker-manager\] .*)\z/s) {
        my %lvl = (notice => 'NOTICE', warn => 'WARN', error => 'ERR', crit => 'CRIT', alert => 'ALERT', emerg => 'EMERG');
        return { kind => 'log', event => 'log ' . ($lvl{ $e->{level} } // uc $e->{level}), msg => $1, level => $e->{level} };
    }
    # the master's word on the signals the tour sends, and on a killed worker
    if ($msg =~ /^(signal \d+ \(SIG(?:HUP|QUIT|TERM|INT|USR1|USR2|WINCH)\) received.*|worker process \d+ exited on signal \d+.*)$/s) {
        return { kind => 'nginx', event => 'nginx', msg => $1, level => $e->{level} };
    }
    if ($e->{level} =~ /^(?:error|crit|alert|emerg)$/) {
        return { kind => 'other', event => "nginx " . uc($e->{level} eq 'error' ? 'err' : $e->{level}),
                 msg => $msg, level => $e->{level} };
    }
    return { kind => 'warn', event => 'nginx WARN', msg => $msg, level => 'warn' } if $e->{level} eq 'warn';
    return;
}

sub print_row {
    my $r = shift;
    print_header() if $need_header;
    my $t = sprintf $TIME_FMT, $r->{t};
    # once there is a second node, every row says which node it comes from
    my $node = @NODES > 1 ? "$r->{self} " : '';
    if ($r->{kind} eq 'cb') {
        # nginx runs init_by_lua of the first start before it daemonizes: in
        # the process that then forks the master
        my $master = $r->{self} eq 'demo-2' ? $NODE2{master} : $MASTER;
        my $where = $r->{process} && $r->{process} eq 'master'
            ? "master $r->{pid}" . ($master && $r->{pid} ne $master ? ' (before daemonizing)' : '')
            : sprintf('worker %s (slot %s)', $r->{pid} // '?', $r->{slot} // '?');
        printf "  %s  %-12s  %-10s  %-6s  %-6s  %-6s  %s\n", $t, $r->{event}, $r->{id},
            $r->{n_prev} // '?', $r->{n_mine} // '?', $r->{n_next} // '?', "$node$where";
    } elsif ($r->{kind} eq 'job') {
        # a singleton's start or stop: its name and token, and the stop's reason
        (my $what = $r->{event}) =~ s/^singleton_/job /;
        printf "  %s  %-12s  %-10s  %-22s  %s\n", $t, $what, "$r->{name} #$r->{token}",
            $r->{reason} eq 'nil' ? '' : "reason \"$r->{reason}\"",
            sprintf('%sworker %s (slot %s)', $node, $r->{pid} // '?', $r->{slot} // '?');
    } elsif ($r->{kind} eq 'fleet') {
        # on_join / on_leave: the member, n_nodes, the leave's reason, and
        # always the node that ran it (the member is another node, mostly)
        (my $what = $r->{event}) =~ s/^fleet_/fleet /;
        printf "  %s  %-12s  %-10s  %-22s  %s\n", $t, $what, $r->{node},
            "n_nodes $r->{n_nodes}" . (defined $r->{reason} ? "  reason \"$r->{reason}\"" : ''),
            sprintf('%s worker %s (slot %s)', $r->{self}, $r->{pid} // '?', $r->{slot} // '?');
    } else {
        my $msg = @NODES > 1 ? "$r->{self}: $r->{msg}" : $r->{msg};
        printf "  %s  %-12s  %s\n", $t, $r->{event}, wrap($msg, $MSG_COL);
    }
}

# Read what the nodes' error logs gained, print it as timeline rows, in the
# order of their times; returns how many.
sub pump {
    my $obs = time - $T0;
    my @rows;
    for my $node (@NODES) {
        my @all = $node->{n}->entries;
        next if $node->{seen} > $#all;
        my @new = @all[$node->{seen} .. $#all];
        $node->{seen} = @all;
        my @mine = grep { defined } map { row_of($_, $node) } @new;
        # log lines have no sub-second time: take the next callback's time in this
        # batch (they are logged right around it), else the time we read them
        for my $i (0 .. $#mine) {
            next if defined $mine[$i]{t};
            my ($next) = grep { defined } map { $_->{kind} eq 'cb' ? $_->{t} : undef } @mine[$i + 1 .. $#mine];
            $mine[$i]{t} = defined $next && $next < $obs ? $next : $obs;
        }
        push @rows, @mine;
    }
    # (sort is stable: the rows of one node keep the order of its log)
    for my $r (sort { $a->{t} <=> $b->{t} } @rows) {
        $r->{t} = $last_t if $r->{t} < $last_t;
        $last_t = $r->{t};
        print_row($r);
        push @ROWS, $r;
        push @EV, $r if $r->{kind} eq 'cb' || $r->{kind} eq 'job' || $r->{kind} eq 'fleet';
    }
    return scalar @rows;
}

# callbacks seen, of demo-1 in its first run unless self => / run => say otherwise
sub evs {
    my %f = (run => 1, self => 'demo-1', @_);
    return grep { my $e = $_; !grep { !defined $e->{$_} || $e->{$_} ne $f{$_} } keys %f } @EV;
}

# Print the timeline until $cond is true, then until it is quiet for $settle s.
my $TIMEOUT = $ENV{WM_TIMEOUT} || 15;
my $SETTLE = $CHECK ? 0.15 : 0.8;
sub follow {
    my ($desc, $cond, %o) = @_;
    my $settle = $o{settle} // $SETTLE;
    my $t0 = time;
    until ($cond->()) {
        pump();
        last if $cond->();
        die "timed out after ${TIMEOUT}s waiting for $desc\n" if time - $t0 > $TIMEOUT;
        sleep 0.02;
    }
    my $quiet = time;
    while (time - $quiet < $settle) {
        $quiet = time if pump();
        sleep 0.02;
    }
}

# Send a signal (to demo-1) and note it for the timeline.
sub send_signal {
    my ($sig, $pid) = @_;
    push @SIGNALS, sprintf 'event=signal name=%s pid=%d to=%s self=demo-1 t=%.3f', $sig, $pid // $MASTER,
        defined $pid ? 'worker' : 'master', time;
    if (defined $pid) { $n->kill_worker($pid, $sig) } else { $n->signal($sig) }
}

# kill -9 of a whole node at once, its master and every worker, as when its
# machine dies; noted for the timeline. Returns the time (since $T0) and the pids.
sub kill_node {
    my ($node) = @_;
    my $t = time;
    push @SIGNALS, sprintf 'event=signal name=KILL pid=%d to=node self=%s t=%.3f', $node->{master}, $node->{name}, $t;
    my @pids = $node->{n}->signal_node('KILL');
    return ($t - $T0, @pids);
}

# ------------------------------------------------------------------ status()

sub fetch_status {
    my ($code, $body) = $n->get('/status', port => $PORT);
    return (undef, "GET /status: " . ($code ? "HTTP $code $body" : $body)) unless $code == 200;
    my $st = eval { JSON::PP->new->decode($body) };
    return (undef, "GET /status: not JSON: $body") unless $st;
    return ($st, undef, $body);
}

sub show_status {
    my ($st, $err) = fetch_status();
    my $pad = ' ' x 12;
    unless ($st) { print "\n  status()  $err\n"; return }
    my @lines = sprintf 'generation %s, crashes %s%s%s', $st->{generation} // 'none', $st->{crashes} // 0,
        ($st->{last_crash} ? " (last: $st->{last_crash}{id}, $st->{last_crash}{cause})" : ''),
        ($st->{consistent} ? '' : ', not consistent (lock busy)');
    for my $g (@{ $st->{generations} || [] }) {
        my @w = map { "$_->{id} slot $_->{slot}" } @{ $g->{workers} || [] };
        my $line = "gen $g->{id}: " . (@w ? join(', ', @w) : 'no workers');
        $line .= ", $g->{starting} starting" if $g->{starting};
        $line .= ', stalled ' . join(' ', @{ $g->{stalled} }) if @{ $g->{stalled} || [] };
        push @lines, $line;
    }
    for my $j (@{ $st->{singletons} || [] }) {
        push @lines, "singleton $j->{name}: " . ($j->{holder} ? "held by $j->{holder}, token $j->{token}"
                                                               : "free (last token $j->{token})");
    }
    print "\n  status()  ", join("\n$pad", @lines), "\n";
    # the fleet as the node last saw it: manager.nodes(), from its shm
    my ($code, $body) = $n->get('/nodes', port => $PORT);
    my $nodes = $code && $code == 200 ? eval { JSON::PP->new->decode($body) } : undef;
    my $fleet = ref $nodes eq 'ARRAY'
        ? (@$nodes ? join(', ', map { "$_->{node} (generation $_->{generation}, $_->{workers} worker" . ($_->{workers} == 1 ? '' : 's') . ')' } @$nodes)
                   : 'none yet')
        : 'GET /nodes: ' . ($code ? "HTTP $code $body" : $body);
    print "  nodes()   ", wrap($fleet, 12), "\n";
}

sub step {
    my ($i, $total, $title, $notice) = @_;
    print "\n", '=' x 3, " [$i/$total] $title ", '=' x (($WIDTH > 100 ? 100 : $WIDTH) - 9 - length("$i/$total $title")), "\n";
    print '  ', wrap($notice, 2), "\n";
}

# ------------------------------------------------------------------ the tour

sub nginx_version {
    my $v = `'$NGINX' -v 2>&1` // '';
    return $v =~ m{nginx version: (\S+)} ? $1 : 'nginx';
}

sub tour {
    print "resty.worker.manager tour", ($CHECK ? ' (--check)' : ''), "\n";
    printf "  nginx   %s (%s)%s\n", $NGINX, nginx_version(), @MODULES ? ', lua module loaded with load_module' : '';
    print  "  redis   ", start_redis(), "\n";
    print  "  conf    nginx/demo.conf -> $PREFIX/conf/nginx.conf\n";
    print  "  opts    { shm = \"worker_manager\", interval = 1, failed = 2, on_crash = ...,\n",
           "            cluster = { redis = ..., node = \"demo-1\", interval = 1, failed = 1, on_join = ..., on_leave = ... } }\n";
    print  "  every callback is cb(id, n_prev, n_mine, n_next); nil means no such generation;\n";
    print  "  the fleet's are on_join(node, n_nodes) and on_leave(node, n_nodes, reason);\n";
    print  "  times are seconds since nginx was started\n";
    my $total = 8;
    print  "  the conf lines that make the run:\n", map { "    $_\n" } shown_conf_lines(conf_text(0));

    step(1, $total, 'start nginx with 2 workers',
         'master_start runs in the master (generation 1; n_prev nil: a fresh start), then each worker '
       . 'runs worker_start and counts itself: n_mine 1, then 2. One of them starts the singleton job '
       . '"reporter", token 1, and the node joins the fleet: it runs on_join for itself, the only member '
       . '(status() lists the module\'s own singleton "[worker-manager] fleet" too: the node\'s agent in the fleet).');
    $PORT = start_nginx();
    header();
    follow('generation 1 to start', sub { evs(event => 'master_start', id => 1) && evs(event => 'worker_start', gen => 1) >= $WORKERS
                                          && evs(event => 'singleton_start', token => 1)
                                          && evs(event => 'fleet_join', node => 'demo-1') });
    show_status();

    step(2, $total, 'a request: GET /',
         'A worker serves it; the handler finds itself in status(), the module\'s view of the node. '
       . 'Requests run no callback: notice that the timeline stays quiet.');
    my ($code, $body) = $n->get('/', port => $PORT);
    $body =~ s/\s+\z//;
    print "\n  GET http://127.0.0.1:$PORT/        -> $code  $body\n";
    my (undef, $err, $json) = fetch_status();
    $json //= $err;
    $json =~ s/\s+\z//;
    my $get = "  GET http://127.0.0.1:$PORT/status  -> ";
    print $get, wrap($json, length $get, ','), "\n";
    follow('nothing', sub { 1 });
    show_status();

    step(3, $total, "reload: kill -HUP $MASTER",
         'Generation 2 starts beside generation 1 (its master_start sees n_prev=2: the old workers still run). '
       . 'The singleton moves to it: the old holder\'s stop (reason "reload") returns, then a worker of '
       . 'generation 2 starts it, token 2. Then the old workers exit with a number in n_next (a reload, not '
       . 'a stop); the last one runs master_exit 1.');
    header();
    send_signal('HUP');
    follow('generation 2 to start and generation 1 to exit', sub {
        evs(event => 'master_start', id => 2) && evs(event => 'worker_start', gen => 2) >= $WORKERS
            && evs(event => 'master_exit', id => 1) && evs(event => 'singleton_start', token => 2) });
    show_status();

    # the worker that holds the singleton now
    my ($victim) = grep { $n->alive($_) } map { $_->{pid} } (evs(event => 'singleton_start'))[-1];
    die "no live holder of the singleton to kill\n" unless $victim;
    step(4, $total, "kill -9 $victim (worker 2-$victim, the singleton's holder)",
         'A killed worker runs no Lua, so no exit callback and no stop of its job. nginx respawns its slot; the '
       . "new worker's worker_start still counts the dead one (n_mine=3 with 2 workers; n_prev=0, not nil: "
       . 'older generations existed), then the module drops it (the ERR line), calls on_crash, and the '
       . 'singleton starts again (token 3), in the respawn or the other worker.');
    header();
    send_signal('KILL', $victim);
    follow("the respawn and the crash report for 2-$victim", sub {
        (grep { $_->{wpid} != $victim } evs(event => 'worker_start', gen => 2)) >= $WORKERS
            && evs(event => 'crash', id => "2-$victim")
            && grep({ $_->{kind} eq 'log' && $_->{msg} =~ /\b2-$victim\b/ } @ROWS)
            && evs(event => 'singleton_start', token => 3) });
    show_status();

    step(5, $total, "two reloads in a row: kill -HUP $MASTER; kill -HUP $MASTER",
         'The master handles the second HUP right after the first: generation 4 starts about 0.1 s '
       . 'after generation 3, while older workers may still be exiting. Notice that every exit of '
       . 'generations 2 and 3 has a number in n_next (a reload, not a stop), and that each generation '
       . 'ends with exactly one master_exit.');
    header();
    send_signal('HUP');
    follow('master_start 3', sub { evs(event => 'master_start', id => 3) }, settle => 0);
    send_signal('HUP');
    my %gen4;
    follow('generations 3 and 4 to start and generations 2 and 3 to exit', sub {
        %gen4 = map { $_->{wpid} => 1 } evs(event => 'worker_start', gen => 4);
        evs(event => 'master_start', id => 4) && evs(event => 'worker_start', gen => 3) >= $WORKERS
            && keys(%gen4) >= $WORKERS
            && evs(event => 'master_exit', id => 2) && evs(event => 'master_exit', id => 3)
            && grep { $gen4{ $_->{pid} } } evs(event => 'singleton_start') });
    show_status();

    step(6, $total, 'a second node: start demo-2, then kill -9 of all its processes',
         'demo-2 is nginx/demo.conf again with node = "demo-2" (its rows say demo-2): it starts on its own, '
       . 'generation 1, and joins the fleet on the same Redis, so both nodes run on_join("demo-2", 2), '
       . 'demo-2 for itself. Then its master and workers are killed at once, as when its machine dies: '
       . 'nothing of it runs to say goodbye, and once its presence is overdue by Redis\'s clock demo-1 runs '
       . 'on_leave("demo-2", 1, "lost"), within interval + failed + interval (3 s) of the kill.');
    header();
    start_nginx(undef, \%NODE2);
    print "\n  conf    nginx/demo.conf -> ", $NODE2{n}->prefix, "/conf/nginx.conf (node = \"demo-2\"), ",
          "master pid $NODE2{master}\n";
    follow('demo-2 to start and both nodes to run its join', sub {
        evs(self => 'demo-2', event => 'worker_start', gen => 1) >= $WORKERS
            && evs(self => 'demo-2', event => 'singleton_start', token => 1)
            && evs(self => 'demo-2', event => 'fleet_join', node => 'demo-2')
            && evs(event => 'fleet_join', node => 'demo-2') });
    show_status();
    my ($kill_t, @pids) = kill_node(\%NODE2);
    print "\n  kill -9 @pids (demo-2: its master and its $WORKERS workers)\n";
    $NODE2{killed} = $kill_t;
    header();
    follow('demo-1 to run the leave of demo-2', sub { evs(event => 'fleet_leave', node => 'demo-2') });
    my ($leave) = evs(event => 'fleet_leave', node => 'demo-2');
    printf "\n  demo-1 heard of the loss %.1f s after the kill\n", $leave->{t} - $kill_t;
    show_status();

    step(7, $total, "graceful stop: kill -QUIT $MASTER",
         'The singleton\'s holder runs its stop with reason "stop", and nobody starts it again. Each worker of '
       . 'generation 4 exits with n_next=nil (no newer generation: the node is stopping); the last one runs '
       . 'master_exit 4, also with n_next=nil, then tells Redis that demo-1 leaves ("stopped": no node is '
       . 'left to hear it). Then nginx is gone, and its shm with it.');
    header();
    send_signal('QUIT');
    follow('nginx to stop', sub { evs(event => 'master_exit', id => 4) && !$n->alive($MASTER) });
    print "\n  nginx has exited (no status(): the shm went with the node)\n";

    $RUN = 2;
    step(8, $total, 'start again, then a fast stop: kill -TERM',
         'A new node with a new, empty shm: generation 1 again, n_prev nil, exactly like the first start, '
       . 'and it joins the fleet again. '
       . 'TERM stops nginx fast: nginx fires no timers then, so each worker\'s exit runs from '
       . 'exit_worker_by_lua (the third hook, phase exit_worker), with n_next=nil and exit_reason() "stop"; '
       . 'the last one runs master_exit 1. The singleton starts with token 1 again (a new node), and its '
       . 'stop runs there too.');
    header();
    $PORT = start_nginx();
    follow('the new node to start', sub {
        evs(run => 2, event => 'master_start', id => 1) && evs(run => 2, event => 'worker_start', gen => 1) >= $WORKERS
            && evs(run => 2, event => 'singleton_start', token => 1)
            && evs(run => 2, event => 'fleet_join', node => 'demo-1') });
    send_signal('TERM');
    follow('nginx to stop', sub { evs(run => 2, event => 'master_exit', id => 1) && !$n->alive($MASTER) });
    print "\n  nginx has exited\n";
    $REDIS->stop;
    print "  redis   stopped\n";

    draw_timeline();
    return verify();
}

# The run as an SVG swim-lane timeline (nginx/demo_timeline.lua, run with luajit).
my $SVG_DRAWN;
sub draw_timeline {
    my $svg = $SVG // "$REPO/demo-out/timeline.svg";
    my $luajit = luajit();
    unless ($luajit) {
        print "\n  timeline  not drawn: no luajit in PATH\n";
        return;
    }
    (my $dir = $svg) =~ s{/[^/]*\z}{};
    mkdir $dir if length $dir && !-d $dir;
    my $events = "$PREFIX/timeline.txt";
    open my $fh, '>', $events or die "$events: $!\n";
    # each line says the node it comes from (self=demo-1, self=demo-2)
    print $fh map { "$_\n" } (map { "$_->{line} self=$_->{self}" } grep { $_->{kind} =~ /^(?:cb|job|fleet)$/ } @ROWS),
                             @SIGNALS, map { "conf $_" } @CONF_LINES;
    close $fh;
    my $rc = system $luajit, "$FindBin::Bin/demo_timeline.lua", $events, $svg,
        'resty.worker.manager: the tour of make demo';
    if ($rc != 0 || !-s $svg) {
        print "\n  timeline  not drawn: $luajit failed (exit ", $? >> 8, ")\n";
        return;
    }
    $SVG_DRAWN = File::Spec->rel2abs($svg);
    print "\n  timeline  $SVG_DRAWN\n",
          "            open it in a browser: one lane per process, hover a mark for its counts\n";
}

# luajit from PATH, or OpenResty's beside its nginx
sub luajit {
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/luajit" if length $dir && -x "$dir/luajit";
    }
    (my $bundled = $NGINX) =~ s{/nginx/sbin/nginx\z}{/luajit/bin/luajit};
    return $bundled ne $NGINX && -x $bundled ? $bundled : undef;
}

# Does the timeline have every expected event?  Prints the checks; returns the failures.
sub verify {
    my @checks;
    my $check = sub { push @checks, [ $_[0] ? 1 : 0, $_[1], $_[2] ] };

    my @ms = evs(event => 'master_start');
    $check->(join(',', map { $_->{id} } @ms) eq '1,2,3,4'
             && ($ms[0]{n_prev} // '') eq 'nil' && !grep({ $_->{n_prev} !~ /^\d+$/ } @ms[1 .. $#ms]),
             'master_start 1, 2, 3, 4 in order; n_prev nil only for generation 1',
             'got ' . join(' ', map { "($_->{id}, $_->{n_prev})" } @ms));

    my %ws = map { $_ => scalar evs(event => 'worker_start', gen => $_) } 1 .. 4;
    $check->($ws{1} == $WORKERS && $ws{2} == $WORKERS + 1 && $ws{3} == $WORKERS && $ws{4} == $WORKERS,
             "worker starts: $WORKERS in generations 1, 3 and 4, " . ($WORKERS + 1) . ' in generation 2 (the respawn)',
             'got ' . join(', ', map { "gen $_: $ws{$_}" } 1 .. 4));

    my ($respawn) = grep { $_->{n_mine} =~ /^\d+$/ && $_->{n_mine} > $WORKERS } evs(event => 'worker_start', gen => 2);
    $check->($respawn && $respawn->{n_mine} == $WORKERS + 1,
             'the respawned worker\'s start counts the dead one: n_mine=' . ($WORKERS + 1) . " > $WORKERS workers",
             'no worker_start of generation 2 with n_mine > ' . $WORKERS);

    my @crash_cb = evs(event => 'crash');
    my ($dead) = map { $_->{id} } @crash_cb;
    my @crash_log = grep { $_->{kind} eq 'log' && $_->{level} eq 'error' && defined $dead
                           && $_->{msg} =~ /\Q$dead\E\b/ } @ROWS;
    $check->(@crash_cb == 1 && @crash_log == 1 && $dead =~ /^2-\d+$/,
             'the crash: one [worker-manager] ERR line and one on_crash, both naming ' . ($dead // 'the killed worker'),
             sprintf('%d on_crash, %d ERR lines', scalar @crash_cb, scalar @crash_log));

    my %me;
    push @{ $me{ $_->{id} } }, $_ for evs(event => 'master_exit');
    $check->((join(',', sort keys %me) eq '1,2,3,4') && !grep({ @{ $me{$_} } != 1 } keys %me),
             'exactly one master_exit per generation (1, 2, 3, 4)',
             'got ' . join(', ', map { "gen $_: " . scalar @{ $me{$_} } } sort keys %me));
    $check->(!grep({ !$me{$_} || $me{$_}[0]{n_next} !~ /^\d+$/ } 1 .. 3),
             'master_exit 1, 2, 3 have a number in n_next (reloads)',
             'got ' . join(' ', map { $me{$_} ? "($_, $me{$_}[0]{n_next})" : "($_ missing)" } 1 .. 3));
    $check->($me{4} && $me{4}[0]{n_next} eq 'nil',
             'master_exit 4 has n_next nil (the stop)',
             $me{4} ? "got n_next=$me{4}[0]{n_next}" : 'missing');

    my @we = evs(event => 'worker_exit', gen => 4);
    $check->(@we == $WORKERS && !grep({ $_->{n_next} ne 'nil' } @we),
             "the $WORKERS worker exits of generation 4 have n_next nil",
             'got ' . join(' ', map { "($_->{id}, n_next=$_->{n_next})" } @we));

    # the singleton: a start per holding, tokens 1, 2, 3, ... in order; a stop
    # before each move but the kill; "stop" at the end
    my ($victim) = ($dead // '') =~ /-(\d+)$/;
    $victim //= 0;
    my @js = evs(event => 'singleton_start');
    my @jt = map { $_->{token} } @js;
    $check->(@jt >= 4 && join(',', @jt) eq join(',', 1 .. @jt),
             'the singleton starts with tokens 1, 2, 3, ... (one holding at a time)', 'got tokens ' . join(' ', @jt));
    my ($after_kill) = grep { $_->{token} == 3 } @js;
    $check->($after_kill && $after_kill->{pid} != $victim,
             "after the kill of its holder, token 3 starts in another worker",
             $after_kill ? "in $after_kill->{pid}" : 'no token 3');
    my @jstops = evs(event => 'singleton_stop');
    my @reasons = map { $_->{reason} } @jstops;
    $check->(@reasons >= 2 && $reasons[-1] eq 'stop' && !grep({ $_ ne 'reload' } @reasons[0 .. $#reasons - 1])
             && !grep({ $_->{pid} == $victim } @jstops),
             'its stops: "reload" at each move, "stop" at the end, none in the killed holder',
             'got ' . join(' ', map { "$_->{reason}($_->{pid})" } @jstops));

    # the second run: a restart and a fast stop
    my @ms2 = evs(run => 2, event => 'master_start');
    $check->(@ms2 == 1 && $ms2[0]{id} eq '1' && $ms2[0]{n_prev} eq 'nil',
             'after the restart: master_start 1 with n_prev nil, like a first start',
             'got ' . join(' ', map { "($_->{id}, $_->{n_prev})" } @ms2));
    my @we2 = evs(run => 2, event => 'worker_exit');
    $check->(@we2 == $WORKERS && !grep({ $_->{n_next} ne 'nil' || ($_->{phase} // '') ne 'exit_worker'
                                         || ($_->{reason} // '') ne 'stop' } @we2),
             "the fast stop: $WORKERS worker exits in exit_worker, n_next nil, exit_reason() \"stop\"",
             'got ' . join(' ', map { "($_->{id}, n_next=$_->{n_next}, $_->{phase}, " . ($_->{reason} // 'no reason') . ')' } @we2));
    my @js2 = evs(run => 2, event => 'singleton_start');
    my @jstop2 = evs(run => 2, event => 'singleton_stop');
    $check->(@js2 == 1 && $js2[0]{token} == 1 && @jstop2 == 1 && $jstop2[0]{reason} eq 'stop'
             && $jstop2[0]{phase} eq 'exit_worker',
             'after the restart: the singleton starts with token 1, its stop says "stop", in exit_worker',
             'got ' . join(' ', map { "$_->{event}($_->{token}, $_->{reason}, $_->{phase})" } @js2, @jstop2));
    my @me2 = evs(run => 2, event => 'master_exit');
    $check->(@me2 == 1 && $me2[0]{id} eq '1' && $me2[0]{n_next} eq 'nil',
             'the fast stop: one master_exit 1 with n_next nil',
             'got ' . join(' ', map { "($_->{id}, $_->{n_next})" } @me2));

    # the fleet: demo-2's join heard on both nodes, its loss on demo-1, and
    # besides these only demo-1's own join at each of its two starts
    my @fleet = grep { $_->{kind} eq 'fleet' } @EV;
    my $fl = sub {
        my $e = shift;
        return sprintf '%s%s ran %s("%s", %s%s)', $e->{self}, ($e->{run} > 1 ? " (run $e->{run})" : ''),
            ($e->{event} eq 'fleet_join' ? 'on_join' : 'on_leave'), $e->{node}, $e->{n_nodes},
            (defined $e->{reason} ? qq{, "$e->{reason}"} : '');
    };
    my @j2 = grep { $_->{event} eq 'fleet_join' && $_->{node} eq 'demo-2' } @fleet;
    $check->(@j2 == 2 && !grep({ $_->{n_nodes} ne '2' } @j2) && join(',', sort map { $_->{self} } @j2) eq 'demo-1,demo-2',
             'the second node\'s start: on_join("demo-2", 2) once on demo-1 and once on demo-2 itself',
             'got ' . join(', ', map { $fl->($_) } @j2));
    my @l2 = grep { $_->{event} eq 'fleet_leave' && $_->{node} eq 'demo-2' } @fleet;
    my $delay = @l2 && defined $NODE2{killed} ? $l2[0]{t} - $NODE2{killed} : undef;
    # (interval + failed + interval by Redis's clock; some slack for the
    # agent's timer and the callback's own time)
    $check->(@l2 == 1 && $l2[0]{self} eq 'demo-1' && $l2[0]{n_nodes} eq '1' && ($l2[0]{reason} // '') eq 'lost'
             && defined $delay && $delay <= 3 + 0.25,
             'the kill -9 of the second node: on_leave("demo-2", 1, "lost") once, on demo-1, within 3 s'
             . (defined $delay ? sprintf(' (%.1f s)', $delay) : ''),
             'got ' . join(', ', map { $fl->($_) } @l2));
    my @other = grep { $_->{node} ne 'demo-2' } @fleet;
    my @want = map { { self => 'demo-1', run => $_, event => 'fleet_join', node => 'demo-1', n_nodes => 1 } } 1, 2;
    $check->(join(' | ', map { $fl->($_) } @other) eq join(' | ', map { $fl->($_) } @want),
             'no other fleet event: demo-1 ran on_join("demo-1", 1) at each of its starts, nothing else',
             'got ' . join(', ', map { $fl->($_) } @other));

    my $lanes = () = ($SVG_DRAWN ? slurp($SVG_DRAWN) : '') =~ /class="lane-label worker"/g;
    my %wids = map { $_->{id} => 1 } grep { $_->{event} eq 'worker_start' } @EV;
    $check->($SVG_DRAWN && $lanes == keys %wids,
             'the SVG timeline is drawn, one lane per worker the run had (' . keys(%wids) . ')',
             $SVG_DRAWN ? "got $lanes lanes" : 'not drawn');

    my @bad = grep { $_->{kind} eq 'other' || ($_->{level} // '') =~ /^(?:error|crit|alert|emerg)$/
                     && !($_->{kind} eq 'nginx' && $_->{msg} =~ /exited on signal 9/)
                     && !(@crash_log && $_ == $crash_log[0]) } grep { $_->{kind} ne 'cb' } @ROWS;
    $check->(!@bad, 'no other errors in the log', join(' | ', map { $_->{msg} } @bad));
    my @warn = grep { ($_->{level} // '') eq 'warn' } @ROWS;
    $check->(!@warn, 'no warnings in the log of either node', join(' | ', map { "$_->{self}: $_->{msg}" } @warn));

    $_->[2] =~ s/^got \z/got none/ for @checks;
    my @failed = grep { !$_->[0] } @checks;
    print "\n", ($CHECK ? 'check' : 'what the timeline showed'), ":\n";
    for my $c (@checks) {
        printf "  %-4s %s\n", $c->[0] ? 'ok' : 'FAIL', $c->[1];
        printf "       %s\n", wrap($c->[2], 7) if !$c->[0] && length($c->[2] // '');
    }
    printf "\n%s\n", @failed ? scalar(@failed) . " of " . scalar(@checks) . " checks failed"
                              : "all " . scalar(@checks) . " checks passed";
    return scalar @failed;
}

# ------------------------------------------------------------------ serve

sub serve {
    my $redis = start_redis();
    $PORT = start_nginx($PORT);
    my $base = "http://127.0.0.1:$PORT";
    my $ng = "$NGINX -p $PREFIX/ -c $PREFIX/conf/nginx.conf";
    print "resty.worker.manager: a node to play with\n\n";
    printf "  nginx    %s (%s), master pid %d, %d workers\n", $NGINX, nginx_version(), $MASTER, $WORKERS;
    print  "  conf     nginx/demo.conf -> $PREFIX/conf/nginx.conf\n";
    print  "  log      $PREFIX/logs/error.log\n";
    print  "  redis    $redis: the fleet's (node = \"demo-1\")\n\n";
    print  "  $base/timeline  the node's timeline, live: open it in a browser\n";
    print  "  $base/          which worker answers\n";
    print  "  $base/status    status() as JSON\n";
    print  "  $base/nodes     nodes(), the fleet as the node last saw it, as JSON\n\n";
    print  "  try, in another terminal:\n";
    my @try = (["curl $base/status", "the node's view"],
               ["kill -HUP $MASTER", 'reload'],
               ['kill -9 <worker pid>', "a crash (worker pids: ps --ppid $MASTER -o pid,cmd)"],
               ["kill -QUIT $MASTER", 'graceful stop'],
               ["kill -TERM $MASTER", 'fast stop (seen through the exit_worker_by_lua hook)']);
    my ($w) = sort { $b <=> $a } map { length $_->[0] } @try;
    printf "    %-*s  %s\n", $w, @$_ for @try;
    print  "  or through nginx (reload, quit or stop):\n";
    print  "    $ng -s reload\n\n";
    print  "  here: Enter prints status(); Ctrl-C (or end of input) stops nginx gracefully.\n";
    header();

    my $sel = IO::Select->new(\*STDIN);
    my $stdin_open = 1;
    my ($dirty, $quiet) = (0, time);
    my $stopping = 0;
    while (1) {
        if (($interrupted || !$stdin_open) && !$stopping) {
            print "\n  stopping nginx: kill -QUIT $MASTER\n";
            $n->signal('QUIT') if $n->alive($MASTER);
            $stopping = time;
        }
        if (pump()) { $dirty = 1; $quiet = time }
        if (!$n->alive($MASTER)) {
            sleep 0.1;
            pump();
            print "\n  nginx has exited\n";
            return 0;
        }
        if ($stopping && time - $stopping > $TIMEOUT) {
            print "\n  nginx did not stop within ${TIMEOUT}s: killing it\n";
            return 1;
        }
        if ($dirty && !$stopping && time - $quiet > 1) {
            show_status();
            header();
            $dirty = 0;
        }
        if ($stdin_open && !$stopping && $sel->can_read(0.1)) {
            my $line = <STDIN>;
            if (!defined $line) { $stdin_open = 0; next }
            show_status();
            header();
        } elsif (!$stdin_open || $stopping) {
            sleep 0.1;
        }
    }
}

# Nothing is left running, also on failure: the nodes first (a node still
# up would log its lost Redis), then Redis. (The drivers' own END blocks
# would do the same, in the other order.)
END {
    my $rc = $?;
    print "\n(kept $_: WM_KEEP=2)\n" for grep { $_ && ($ENV{WM_KEEP} // '') eq '2' }
        $PREFIX, (map { $_->{n} && $_ != \%NODE1 ? $_->{n}->prefix : () } @NODES), ($REDIS ? $REDIS->dir : ());
    $_->{n}->cleanup for grep { $_->{n} } reverse @NODES;
    $n->cleanup;
    $REDIS->cleanup if $REDIS;
    $? = $rc;
}

exit serve() if $SERVE;
my $failed = eval { tour() };
unless (defined $failed) {
    print "\n", $@ =~ s/^\n+//r;
    verify();
    exit 1;
}
exit($failed ? 1 : 0);
