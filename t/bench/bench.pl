#!/usr/bin/env perl
# Benchmark of resty.worker.manager on real nginx nodes (`make bench`, issue #5).
#
#   perl t/bench/bench.pl            full run (about 5-10 minutes)
#   perl t/bench/bench.pl --smoke    every row once, few trials (about a minute,
#                                    40 s of it row 8, whose default interval is 2 s):
#                                    exits 0 when the machinery works, whether
#                                    or not the targets are met
#   options: --out FILE (JSON; default t/bench/out/bench[-smoke].json),
#            --rows 1,3 (only these rows)
#
# Prints a markdown table (also written next to the JSON as .md). Every timing
# is given as median / min / max over repeated trials; every comparison is a
# ratio of runs made side by side in this run, interleaved (A, B, A, B ...), as
# the machine is noisy. Time stamps come from the Lua side (CLOCK_REALTIME, µs,
# logged by t/bench/wm_bench.lua; row 8: t/lib/wm_test.lua's recorders, by
# gettimeofday) and from Time::HiRes here: the same clock.
#
# Uses the test driver t/lib/WorkerManager/Nginx.pm (WM_NGINX, WM_LOAD_MODULES
# as for the tests), wrk for row 1, and for row 8 (the fleet) a private
# redis-server run by t/lib/WorkerManager/Redis.pm (WM_REDIS_SERVER) and
# lua-resty-redis in the nodes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More ();
use WorkerManager::Nginx;
use WorkerManager::Redis;
use Time::HiRes qw(time sleep);
use JSON::PP ();
use POSIX qw(strftime);
use Getopt::Long qw(GetOptions);
use File::Path qw(make_path);
use File::Basename qw(dirname);
use File::Find ();
use Digest::MD5 ();

# The driver reports through Test::More; no TAP plan here.
Test::More->builder->no_ending(1);
$| = 1;

my $REPO  = $WorkerManager::Nginx::REPO;
my $BENCH = "$REPO/t/bench";
my ($SMOKE, $OUT, $ROWS) = (0, undef, '');
GetOptions('smoke' => \$SMOKE, 'out=s' => \$OUT, 'rows=s' => \$ROWS)
    or die "usage: $0 [--smoke] [--out FILE] [--rows 1,2,...]\n";
$OUT //= "$BENCH/out/bench" . ($SMOKE ? '-smoke' : '') . '.json';
my %ONLY = map { $_ => 1 } grep { length } split /,/, $ROWS;

# Trial counts and sizes: full run, smoke run.
my %P = $SMOKE
    ? (wrk_rounds => 1, wrk_secs => 1, wrk_warm => 0, crash_trials => 3, reload_trials => 2,
       start_trials => 1, start_workers => [1, 4, 16, 32], mem_reloads => 4, mem_reloads32 => 2,
       beat_windows => 2, beat_window => 0.5,
       fleet_kills => 2, fleet_quits => 2, fleet_windows => 1, fleet_window => 4, fleet_reloads => 3,
       fleet_restarts => 2, fleet_cpu_nodes => 10)
    : (wrk_rounds => 20, wrk_secs => 2, wrk_warm => 2, crash_trials => 25, reload_trials => 15,
       start_trials => 15, start_workers => [1, 4, 16, 32], mem_reloads => 100, mem_reloads32 => 20,
       beat_windows => 15, beat_window => 1,
       fleet_kills => 10, fleet_quits => 10, fleet_windows => 3, fleet_window => 10, fleet_reloads => 20,
       fleet_restarts => 5, fleet_cpu_nodes => 50);

my $WRK_CONN    = 64;
my $WRK_THREADS = 1;
# Heartbeat interval of the row 5/6 nodes: short, so that row 6 gets many
# real beats to time (what one beat does does not depend on the interval).
my $BEAT_INTERVAL = 0.02;

my @RESULTS;    # { row, name, unit, median, min, max, n, samples, target, met, note }
my %ROWINFO;    # row => { title, notes => [...] }
my @ERRORS;

# ---------------------------------------------------------------- helpers

sub median {
    my @s = sort { $a <=> $b } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}
sub min_of { my @s = sort { $a <=> $b } @_; $s[0] }
sub max_of { my @s = sort { $a <=> $b } @_; $s[-1] }

# Records one measurement; returns the entry. %o: target => text,
# met => bool (undef: no target), note => text, fmt => sprintf format.
sub result {
    my ($row, $name, $unit, $samples, %o) = @_;
    my @s = grep { defined } @$samples;
    my $r = {
        row => $row, name => $name, unit => $unit, n => scalar @s,
        median => median(@s), min => min_of(@s), max => max_of(@s),
        samples => [ map { 0 + sprintf('%.6g', $_) } @s ],
        fmt => $o{fmt} // '%.4g',
    };
    $r->{target} = $o{target} if defined $o{target};
    $r->{met} = $o{met} ? JSON::PP::true : JSON::PP::false if exists $o{met};
    $r->{note} = $o{note} if defined $o{note};
    push @RESULTS, $r;
    printf "  %-62s median %s %s (min %s, max %s, n=%d)%s\n", $name, fmtv($r, 'median'), $unit,
        fmtv($r, 'min'), fmtv($r, 'max'), $r->{n},
        defined $o{target} ? "  target $o{target}: " . ($o{met} ? 'met' : 'NOT met') : '';
    return $r;
}

sub fmtv {
    my ($r, $k) = @_;
    return '-' unless defined $r->{$k};
    return sprintf $r->{fmt}, $r->{$k};
}

sub note_row { my ($row, $text) = @_; push @{ $ROWINFO{$row}{notes} }, $text; print "  note: $text\n" }

sub ms { $_[0] * 1000 }

# Parses "k=v k=v" (values without spaces).
sub kv {
    my $s = shift;
    my %h;
    $h{$1} = $2 while $s =~ /(\w+)=(\S+)/g;
    return \%h;
}

# WMB lines logged since $mark: list of { event, pid, t, id, logpid }.
sub wmb {
    my ($n, %o) = @_;
    my @out;
    for my $e ($n->grep_log(qr/\bWMB \w+ /, since => $o{since})) {
        next unless $e->{text} =~ /\bWMB (\w+) (.*?)(?:, (?:context|client|server|request|host): .*)?\z/s;
        my $h = kv($2);
        $h->{event} = $1;
        $h->{logpid} = $e->{pid};
        push @out, $h;
    }
    @out = grep { $_->{event} eq $o{event} } @out if defined $o{event};
    return @out;
}

# Waits for `count` WMB <event> lines since $mark; returns them.
sub wait_wmb {
    my ($n, $event, %o) = @_;
    my $count = $o{count} // 1;
    my $filter = $o{filter} // sub { 1 };
    $n->wait_until(sub {
        my @m = grep { $filter->($_) } wmb($n, since => $o{since}, event => $event);
        @m >= $count ? 1 : 0;
    }, timeout => $o{timeout} // 30, desc => $o{desc} // "$count x WMB $event");
    return grep { $filter->($_) } wmb($n, since => $o{since}, event => $event);
}

# A node of the bench: module => 1 uses resty.worker.manager (opts as given),
# module => 0 is the same configuration without it. Every hook logs time stamps.
sub node {
    my (%o) = @_;
    my $module = $o{module} // 1;
    my $B = 'require("wm_bench")';
    my $pp = qq{package.path = "$BENCH/?.lua;" .. package.path};
    my $locations = <<"NGX";
        location = /r { return 200; }
        location = /wminfo { content_by_lua_block { $B.info() } }
        location = /wmshm { content_by_lua_block { $B.shm_report("wm") } }
        location = /wmbeats { content_by_lua_block { $B.beats() } }
NGX
    return WorkerManager::Nginx->new(
        workers           => $o{workers} // 2,
        module            => $module,
        opts              => $o{opts} // '{ shm = "wm" }',
        shm_size          => $o{shm_size} // '1m',
        init_extra        => "$pp\n        $B.mark('init')" . ($o{lockwrap} ? "\n        $B.wrap_lock()" : '')
                             . ($o{nolock} ? "\n        $B.no_lock()" : '')
                             . ($o{instrument} ? "\n        $B.instrument('wm', $BEAT_INTERVAL)" : ''),
        master_start      => "$B.rec('master_start')",
        master_exit       => "$B.rec('master_exit')",
        worker_start      => "$B.rec('worker_start')",
        worker_exit       => "$B.rec('worker_exit')",
        init_worker_extra => "$B.mark('iw_enter')",
        init_worker_after => ($o{names} ? "local m = require('resty.worker.manager')\n        for i = 1, $o{names} do "
                                 . "m.singleton('job' .. i, { start = $B.job_start }) end\n        " : '')
                             . "$B.mark('iw_done')" . ($o{instrument} ? "\n        $B.control('wm', $BEAT_INTERVAL)" : ''),
        exit_worker       => ($module ? 'require("resty.worker.manager").on_exit_worker_by_lua() ' : '')
                             . "$B.mark('exit_worker')",
        server_extra      => $locations,
    );
}

sub stop {
    my $n = shift;
    return unless $n->master_pid && $n->alive($n->master_pid);
    $n->signal('QUIT');
    $n->wait_exit(30) or die "nginx did not stop\n";
}

sub get_ok {
    my ($n, $path) = @_;
    my ($code, $body) = $n->get($path, timeout => 60);
    die "GET $path: $code $body\n" unless $code == 200;
    return $body;
}

# -------------------------------------------------------------- machine

sub machine {
    my %m;
    chomp(my $nproc = `nproc 2>/dev/null` // '');
    $m{nproc} = $nproc || undef;
    if (open my $fh, '<', '/proc/cpuinfo') {
        while (<$fh>) { if (/^model name\s*:\s*(.*)/) { $m{cpu} = $1; last } }
        close $fh;
    }
    my $ng = $WorkerManager::Nginx::NGINX;
    chomp(my $v = `'$ng' -v 2>&1` // '');
    $m{nginx_binary} = $ng;
    $m{nginx} = $v;
    if ($ng eq '/usr/sbin/nginx') {
        chomp(my $deb = `dpkg-query -W -f='\${Version}' libnginx-mod-http-lua 2>/dev/null` // '');
        $m{lua_module_package} = $deb if $deb;
    }
    $m{date} = strftime('%Y-%m-%d %H:%M:%S %z', localtime);
    chomp(my $commit = `git -C '$REPO' rev-parse --short HEAD 2>/dev/null` // '');
    chomp(my $dirty = `git -C '$REPO' status --porcelain -- src lib 2>/dev/null` // '');
    $m{commit} = $commit . ($dirty ? ' (src/lib modified)' : '') if $commit;
    $m{load} = do { open my $fh, '<', '/proc/loadavg'; my $l = <$fh> // ''; chomp $l; $l };
    # versions as the running module sees them
    my $n = node(workers => 1);
    $n->start;
    my $body = get_ok($n, '/wminfo');
    $m{$1} = $2 while $body =~ /^(\w+)=(.*)$/mg;
    stop($n);
    return \%m;
}

# ------------------------------------------------------ 1. request overhead

sub wrk_run {
    my ($n, $secs) = @_;
    my $url = "http://127.0.0.1:" . $n->port . "/r";
    my $cmd = "wrk -t$WRK_THREADS -c$WRK_CONN -d${secs}s $url 2>&1";
    my $out = `$cmd`;
    die "wrk failed ($cmd): $out\n" unless $? == 0 && $out =~ /Requests\/sec:\s*([\d.]+)/;
    my $rps = $1;
    my ($errs) = $out =~ /Non-2xx or 3xx responses:\s*(\d+)/;
    die "wrk saw $errs non-2xx responses\n" if $errs;
    return $rps;
}

sub row1 {
    my $row = 1;
    $ROWINFO{$row}{title} = 'Request overhead';
    system('command -v wrk >/dev/null 2>&1') == 0 or die "wrk is not installed (make bench installs it)\n";
    my %cfg = (
        without => { module => 0 },
        i10     => { module => 1, opts => '{ shm = "wm" }' },
        i01     => { module => 1, opts => '{ shm = "wm", interval = 0.1 }' },
    );
    my %nodes = map { $_ => node(workers => 2, %{ $cfg{$_} }) } keys %cfg;
    my @order = qw(without i10 i01);
    # The three nodes run side by side for the whole row (an idle node costs
    # only its timers: row 6 puts a beat at a few µs), so that the runs of one
    # round are seconds apart; the order alternates so drift favours no one.
    $nodes{$_}->start for @order;
    if ($P{wrk_warm}) { wrk_run($nodes{$_}, $P{wrk_warm}) for @order }
    my (%rps, @ratio10, @ratio01);
    for my $round (1 .. $P{wrk_rounds}) {
        my @o = $round % 2 ? @order : reverse @order;
        my %r;
        for my $k (@o) {
            $r{$k} = wrk_run($nodes{$k}, $P{wrk_secs});
            push @{ $rps{$k} }, $r{$k};
        }
        push @ratio10, $r{i10} / $r{without};
        push @ratio01, $r{i01} / $r{without};
        printf "  round %d: without %.0f, interval 10 %.0f, interval 0.1 %.0f req/s\n", $round, @r{qw(without i10 i01)}
            if $round <= 3 || $round % 5 == 0;
    }
    stop($nodes{$_}) for @order;
    result($row, 'req/s without the module', 'req/s', $rps{without}, fmt => '%.0f');
    result($row, 'req/s with the module, interval 10 (default)', 'req/s', $rps{i10}, fmt => '%.0f');
    result($row, 'req/s with the module, interval 0.1', 'req/s', $rps{i01}, fmt => '%.0f');
    result($row, 'ratio with/without, interval 10', '', \@ratio10, fmt => '%.3f',
           target => '>= 0.99', met => median(@ratio10) >= 0.99);
    result($row, 'ratio with/without, interval 0.1', '', \@ratio01, fmt => '%.3f',
           target => '>= 0.99', met => median(@ratio01) >= 0.99);
    # Interference from the rest of the machine only ever lowers a run's
    # req/s, so the best run of each node is the least disturbed estimate.
    for my $c (['i10', 'interval 10'], ['i01', 'interval 0.1']) {
        my $best = max_of(@{ $rps{ $c->[0] } }) / max_of(@{ $rps{without} });
        result($row, "ratio of the best runs with/without, $c->[1]", '', [$best], fmt => '%.3f',
               target => '>= 0.99', met => $best >= 0.99);
    }
    note_row($row, "wrk -t$WRK_THREADS -c$WRK_CONN -d$P{wrk_secs}s on `location = /r { return 200; }`, "
        . "2 workers, $P{wrk_rounds} rounds after a $P{wrk_warm} s warm-up of each node; the three nodes (without the module, "
        . "interval 10, interval 0.1) run side by side and are measured one after the other, in alternating order; "
        . "a ratio is taken within a round");
}

# ------------------------------------------------------ 2. crash notice

sub row2 {
    my $row = 2;
    $ROWINFO{$row}{title} = 'Crash notice';
    my $n = node(workers => 2, opts => '{ shm = "wm", on_crash = require("wm_bench").rec("on_crash") }');
    $n->start;
    my (@notice, @ready, @errline);
    for my $i (1 .. $P{crash_trials}) {
        my @w = $n->worker_pids;
        die "expected 2 workers, found @w\n" unless @w == 2;
        my $victim = $w[$i % 2];
        my $mark = $n->mark;
        my $t0 = time;
        kill 'KILL', $victim or die "kill $victim: $!\n";
        my ($cb) = wait_wmb($n, 'on_crash', since => $mark, filter => sub { $_[0]{id} =~ /-\Q$victim\E$/ },
                            desc => "on_crash for killed worker $victim");
        my ($err) = $n->wait_log(qr/\[worker-manager\] worker \d+-\Q$victim\E .*crashed/, since => $mark);
        my ($rd) = wait_wmb($n, 'iw_done', since => $mark, desc => 'respawned worker ready');
        push @notice, $cb->{t} - $t0;
        push @ready, $rd->{t} - $t0;
        push @errline, $err->{level} eq 'error' ? 1 : 0;
        $n->wait_until(sub { $n->worker_pids == 2 }, desc => '2 workers again');
        sleep 0.15;
    }
    stop($n);
    result($row, 'kill -9 → "[worker-manager] worker … crashed" (on_crash)', 'ms', [ map { ms($_) } @notice ],
           fmt => '%.2f', target => 'median <= 500 ms', met => median(@notice) <= 0.5);
    result($row, 'kill -9 → respawned worker\'s init_worker done', 'ms', [ map { ms($_) } @ready ], fmt => '%.2f');
    note_row($row, "interval 10, failed 5 (defaults), 2 workers, $P{crash_trials} kills; "
        . (grep({ !$_ } @errline) ? 'some crash lines were NOT at ERR level' : 'every crash line at ERR level')
        . "; the notice comes from the respawned worker's start, not from a heartbeat");
}

# ------------------------------------------------------ 3. reload

sub reload_trial {
    my ($n, $module) = @_;
    my $w = $n->workers;
    my @old = $n->worker_pids;
    my $mark = $n->mark;
    my $t0 = time;
    $n->signal('HUP');
    my @new = wait_wmb($n, 'iw_done', count => $w, since => $mark, desc => "$w new workers ready");
    my @ex = wait_wmb($n, 'exit_worker', count => scalar @old, since => $mark, desc => 'old workers exited');
    my %r = (
        new_ready => max_of(map { $_->{t} } @new) - $t0,
        old_exit  => max_of(map { $_->{t} } @ex) - $t0,
    );
    if ($module) {
        my @st = wait_wmb($n, 'worker_start', count => $w, since => $mark);
        my ($me) = wait_wmb($n, 'master_exit', since => $mark);
        $r{start_cb} = max_of(map { $_->{t} } @st) - $t0;
        $r{master_exit} = $me->{t} - $t0;
    }
    $n->wait_until(sub { !grep { $n->alive($_) } @old }, desc => 'old workers gone');
    $r{old_gone} = time - $t0;
    return \%r;
}

sub row3 {
    my $row = 3;
    $ROWINFO{$row}{title} = 'Reload (HUP)';
    my $a = node(workers => 2, module => 1);
    my $b = node(workers => 2, module => 0);
    $a->start;
    $b->start;
    my (%with, %without, @r_new, @r_old, @share_new, @share_old);
    for my $i (1 .. $P{reload_trials}) {
        my ($ra, $rb);
        # interleaved, alternating which one goes first
        if ($i % 2) { $ra = reload_trial($a, 1); sleep 0.2; $rb = reload_trial($b, 0) }
        else        { $rb = reload_trial($b, 0); sleep 0.2; $ra = reload_trial($a, 1) }
        sleep 0.2;
        push @{ $with{$_} }, $ra->{$_} for keys %$ra;
        push @{ $without{$_} }, $rb->{$_} for keys %$rb;
        push @r_new, $ra->{new_ready} / $rb->{new_ready};
        push @r_old, $ra->{old_exit} / $rb->{old_exit};
        push @share_new, ($ra->{new_ready} - $rb->{new_ready}) / $ra->{new_ready};
        push @share_old, ($ra->{old_exit} - $rb->{old_exit}) / $ra->{old_exit};
    }
    stop($a);
    stop($b);
    my @m = (fmt => '%.2f');
    result($row, 'with: HUP → last new worker start callback', 'ms', [ map { ms($_) } @{ $with{start_cb} } ], @m);
    result($row, 'with: HUP → last new worker init_worker done', 'ms', [ map { ms($_) } @{ $with{new_ready} } ], @m);
    result($row, 'without: HUP → last new worker init_worker done', 'ms', [ map { ms($_) } @{ $without{new_ready} } ], @m);
    result($row, 'with: HUP → old generation master exit callback', 'ms', [ map { ms($_) } @{ $with{master_exit} } ], @m);
    result($row, 'with: HUP → last old worker exit_worker', 'ms', [ map { ms($_) } @{ $with{old_exit} } ], @m);
    result($row, 'without: HUP → last old worker exit_worker', 'ms', [ map { ms($_) } @{ $without{old_exit} } ], @m);
    result($row, 'with: HUP → old workers gone (polled, ~30 ms steps)', 'ms', [ map { ms($_) } @{ $with{old_gone} } ], fmt => '%.0f');
    result($row, 'without: HUP → old workers gone (polled, ~30 ms steps)', 'ms', [ map { ms($_) } @{ $without{old_gone} } ], fmt => '%.0f');
    result($row, 'ratio with/without, new workers ready', '', \@r_new, fmt => '%.3f');
    result($row, 'ratio with/without, old workers exited', '', \@r_old, fmt => '%.3f');
    result($row, "module's share of HUP → new workers ready", '%', [ map { 100 * $_ } @share_new ], fmt => '%.1f');
    result($row, "module's share of HUP → old workers exited", '%', [ map { 100 * $_ } @share_old ], fmt => '%.1f');
    note_row($row, "2 workers, interval 10; $P{reload_trials} reloads of each node, interleaved; "
        . "share = (with - without) / with per pair; nginx itself waits ~100 ms before it tells the old workers to quit");
}

# ------------------------------------------------------ 4. start-up

sub start_trial {
    my ($n, $module) = @_;
    my $w = $n->workers;
    my $mark = $n->mark;
    my $t0 = time;
    $n->start(timeout => 60);
    my @iw = wait_wmb($n, 'iw_done', count => $w, since => $mark);
    my ($init) = wmb($n, since => $mark, event => 'init');
    my %r = (
        exec_to_last => max_of(map { $_->{t} } @iw) - $t0,
        init_to_last => max_of(map { $_->{t} } @iw) - $init->{t},
    );
    my @usage = grep { defined $_->{faults} } @iw;
    if (@usage == $w) {
        $r{faults} = 0;
        $r{cpu} = 0;
        for (@usage) { $r{faults} += $_->{faults} / $w; $r{cpu} += $_->{cpu} / $w }
    }
    if ($module) {
        my ($ms) = wmb($n, since => $mark, event => 'master_start');
        my @st = wmb($n, since => $mark, event => 'worker_start');
        my %enter = map { $_->{pid} => $_->{t} } wmb($n, since => $mark, event => 'iw_enter');
        die "expected $w worker start callbacks, got " . scalar(@st) . "\n" unless @st == $w;
        $r{ms_to_last_cb} = max_of(map { $_->{t} } @st) - $ms->{t};
        my @waits = map { $_->{t} - $enter{ $_->{pid} } } @st;
        $r{max_wait} = max_of(@waits);
        $r{mean_wait} = 0;
        $r{mean_wait} += $_ / @waits for @waits;
        my @lw = map { $_->{lockwait} } grep { defined $_->{lockwait} } @iw;
        if (@lw == $w) {
            $r{max_lock} = max_of(@lw);
            $r{mean_lock} = 0;
            $r{mean_lock} += $_ / @lw for @lw;
        }
    }
    stop($n);
    return \%r;
}

sub row4 {
    my $row = 4;
    $ROWINFO{$row}{title} = 'Start-up under contention';
    for my $w (@{ $P{start_workers} }) {
        my %node = (
            with    => node(workers => $w, module => 1, lockwrap => 1),
            without => node(workers => $w, module => 0),
            nolock  => node(workers => $w, module => 1, nolock => 1),
        );
        my @order = qw(with without nolock);
        my (%r, @added, @lock_added);
        for my $i (1 .. $P{start_trials}) {
            # a different order each trial: each node goes first, second and third as often
            my @turn = @order[ map { ($_ + $i) % 3 } 0 .. 2 ];
            my %t = map { $_ => start_trial($node{$_}, $_ ne 'without') } @turn;
            for my $k (@order) { push @{ $r{$k}{$_} }, $t{$k}{$_} for keys %{ $t{$k} } }
            push @added, ($t{with}{init_to_last} - $t{without}{init_to_last}) / $w;
            push @lock_added, ($t{with}{init_to_last} - $t{nolock}{init_to_last}) / $w;
        }
        my %with = %{ $r{with} };
        my %without = %{ $r{without} };
        my @m = (fmt => '%.2f');
        result($row, "$w w: master start → last worker start callback", 'ms', [ map { ms($_) } @{ $with{ms_to_last_cb} } ], @m);
        result($row, "$w w: with: init_by_lua → last init_worker done", 'ms', [ map { ms($_) } @{ $with{init_to_last} } ], @m);
        result($row, "$w w: without: init_by_lua → last init_worker done", 'ms', [ map { ms($_) } @{ $without{init_to_last} } ], @m);
        result($row, "$w w: longest single wait (init_worker entry → start callback)", 'ms', [ map { ms($_) } @{ $with{max_wait} } ], @m);
        result($row, "$w w: mean of that per worker", 'ms', [ map { ms($_) } @{ $with{mean_wait} } ], fmt => '%.3f');
        result($row, "$w w: longest single wait inside lock.acquire", 'ms', [ map { ms($_) } @{ $with{max_lock} // [] } ], @m);
        my @ml = @{ $with{mean_lock} // [] };
        result($row, "$w w: mean wait inside lock.acquire per worker", 'ms', [ map { ms($_) } @ml ], fmt => '%.3f');
        result($row, "$w w: lock taken out: init_by_lua → last init_worker done", 'ms',
               [ map { ms($_) } @{ $r{nolock}{init_to_last} } ], @m);
        result($row, "$w w: the lock adds per worker ((with - lock taken out) / workers)", 'ms',
               [ map { ms($_) } @lock_added ], fmt => '%.3f', target => '< 1 ms', met => median(@lock_added) < 0.001);
        result($row, "$w w: the module adds per worker ((with - without) / workers)", 'ms', [ map { ms($_) } @added ],
               fmt => '%.3f');
        for my $k (@order) {
            next unless $r{$k}{faults};
            result($row, "$w w, $k: minor page faults in init_worker, mean per worker", 'faults',
                   $r{$k}{faults}, fmt => '%.1f');
            result($row, "$w w, $k: CPU in init_worker, mean per worker", 'ms',
                   [ map { ms($_) } @{ $r{$k}{cpu} } ], fmt => '%.3f');
        }
    }
    note_row($row, "$P{start_trials} starts per worker count and per node, interleaved with/without the module; "
        . "\"wait\" is from a time stamp at the entry of init_worker_by_lua to the one in the start callback "
        . "(lock wait plus the module's bookkeeping before the callback, plus any time the worker is not scheduled); "
        . "\"inside lock.acquire\" times the module's lock.acquire itself (wrapped in init_by_lua, logged after the release); "
        . "\"lock taken out\" is the module with acquire and renew made no-ops, so the workers' bookkeeping and "
        . "callbacks run at once instead of one at a time: the target (the lock adds under 1 ms per worker) is "
        . "judged on the start-up difference with/without the lock divided by the number of workers; "
        . "the module's whole difference is shown beside it, with what a worker spends in init_worker "
        . "(page faults and CPU: getrusage at the entry and the end of init_worker)");
}

# ------------------------------------------------ 5. memory, 6. heartbeat

sub shm_state {
    my $n = shift;
    my $body = get_ok($n, '/wmshm');
    my %h = %{ kv($body) };
    return \%h;
}

# resident memory of a process, kB (nil when it is gone)
sub rss_kb {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/status" or return undef;
    while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return undef;
}

sub reload_many {
    my ($n, $count, $each) = @_;
    my $t0 = time;
    for my $i (1 .. $count) {
        my @old = $n->worker_pids;
        my $mark = $n->mark;
        $n->signal('HUP');
        wait_wmb($n, 'iw_done', count => $n->workers, since => $mark, timeout => 60);
        wait_wmb($n, 'master_exit', since => $mark, timeout => 60) if $n->{module};
        $n->wait_until(sub { !grep { $n->alive($_) } @old }, timeout => 60, desc => 'old workers gone');
        $each->($i) if $each;
    }
    return time - $t0;
}

# The heartbeats one worker of $n ran since $since (wall clock).
sub beats_since {
    my ($n, $since) = @_;
    my $h = kv(get_ok($n, sprintf '/wmbeats?since=%.6f', $since));
    die "no heartbeat of worker $h->{pid} in the window\n" unless $h->{n};
    return $h;
}

sub row56 {
    my %beating = (opts => qq{{ shm = "wm", interval = $BEAT_INTERVAL }}, instrument => 1);
    my $f2  = node(workers => 2, %beating);
    my $m2  = node(workers => 2, %beating);
    my $f32 = node(workers => 32, %beating);
    my $m32 = node(workers => 32, %beating);
    my $z   = node(workers => 2, module => 0);
    $_->start(timeout => 60) for $z, $f2, $m2, $f32, $m32;
    sleep 0.5;
    my %start = map { $_->[0] => shm_state($_->[1]) } ([z => $z], [f2 => $f2], [m2 => $m2], [f32 => $f32], [m32 => $m32]);
    # the masters' memory: nginx's own grows over its first reloads, with or without the module
    my %rss0 = (m2 => rss_kb($m2->master_pid), z => rss_kb($z->master_pid));
    my %during;    # shm state after each reload
    my $t2 = reload_many($m2, $P{mem_reloads}, sub { push @{ $during{m2} }, shm_state($m2) });
    reload_many($z, $P{mem_reloads}) if want(5);
    my %rss1 = (m2 => rss_kb($m2->master_pid), z => rss_kb($z->master_pid));
    my $t32 = reload_many($m32, $P{mem_reloads32}, sub { push @{ $during{m32} }, shm_state($m32) });
    sleep 0.5;
    my %after = (m2 => shm_state($m2), m32 => shm_state($m32));

    if (want(5)) {
        my $row = 5;
        $ROWINFO{$row}{title} = 'Memory (shm)';
        my $one = sub { my ($name, $unit, $v, %o) = @_; result($row, $name, $unit, [$v], fmt => '%.0f', %o) };
        $one->('without the module: shm bytes in use (capacity - free_space)', 'B', $start{z}{used});
        $one->('2 workers after start: bytes in use', 'B', $start{f2}{used});
        $one->('2 workers after start: module keys / slab bytes (estimate)', 'keys', $start{f2}{module_keys},
               note => "$start{f2}{slab_bytes} B in slab allocations, $start{f2}{payload_bytes} B of keys and values");
        $one->('32 workers after start: bytes in use', 'B', $start{f32}{used});
        $one->('32 workers after start: module keys', 'keys', $start{f32}{module_keys},
               note => "$start{f32}{slab_bytes} B in slab allocations");
        $one->('per worker: slab bytes (32 w - 2 w) / 30', 'B', ($start{f32}{slab_bytes} - $start{f2}{slab_bytes}) / 30);
        $one->('per worker: bytes in use (32 w - 2 w) / 30', 'B', ($start{f32}{used} - $start{f2}{used}) / 30);
        if (defined $rss0{z} && defined $rss1{z}) {
            $one->("2 w: master RSS after start, with / without the module", 'kB', $rss0{m2}, note => "without: $rss0{z} kB");
            $one->("2 w: master RSS after $P{mem_reloads} reloads, with / without the module", 'kB', $rss1{m2},
                   note => "without: $rss1{z} kB", target => 'growth within 512 kB of nginx\'s own',
                   met => ($rss1{m2} - $rss0{m2}) - ($rss1{z} - $rss0{z}) <= 512);
        }
        for my $c ([m2 => 2, $P{mem_reloads}], [m32 => 32, $P{mem_reloads32}]) {
            my ($k, $w, $r) = @$c;
            my ($s, $e) = ($start{$k}, $after{$k});
            # keys: compared with the state after the first reload, which adds
            # the one key of constant bookkeeping (the list of ended generations)
            my $b = $during{$k}[0];
            my $same = $e->{module_keys} == $b->{module_keys} && $e->{shapes} eq $b->{shapes};
            my @used = map { $_->{used} } @{ $during{$k} };
            my @first = @used[0 .. int($#used / 2)];
            result($row, "$w w: bytes in use after each of $r reloads", 'B', \@used, fmt => '%.0f',
                   note => "after start $s->{used} B");
            $one->("$w w: bytes in use after the last reload", 'B', $e->{used},
                   target => '<= max of the first half (no growth)', met => $e->{used} <= max_of(@first));
            $one->("$w w: module keys after $r reloads", 'keys', $e->{module_keys},
                   note => "after start $s->{module_keys}, after the first reload $b->{module_keys}",
                   target => 'same keys as after the first reload', met => $same);
            $one->("$w w: slab bytes (estimate) after $r reloads", 'B', $e->{slab_bytes},
                   note => "after start $s->{slab_bytes} B", target => 'after start + constant',
                   met => abs($e->{slab_bytes} - $s->{slab_bytes}) <= 1024);
            print "    key shapes after the first reload: $b->{shapes}\n    after reloads:          $e->{shapes}\n" unless $same;
        }
        note_row($row, "capacity - free_space() counts whole 4 KiB pages, and a page stays taken while any "
            . "slot of it is (during a reload two generations' keys coexist, so it can rise to that peak and stay there); "
            . "the slab estimate adds up, per key, 68 B of node header + key + value rounded up to a power of two; "
            . "the keys are the module's own (prefix lua-resty-worker-manager:) but the transient lock key and takeover markers; "
            . sprintf("%d reloads of 2 workers took %.1f s, %d reloads of 32 workers %.1f s",
                      $P{mem_reloads}, $t2, $P{mem_reloads32}, $t32));
    }

    if (want(6)) {
        my $row = 6;
        $ROWINFO{$row}{title} = 'Heartbeat cost';
        for my $pair ([2, $f2, $m2, $P{mem_reloads}], [32, $f32, $m32, $P{mem_reloads32}]) {
            my ($w, $fresh, $old, $r) = @$pair;
            my $gen_o = $r + 1;
            my (%med, %max, %ops, %rearm, @ratio, %n, %ctl, @ctl_ratio, @relative);
            # windows of real beats, both nodes beating side by side; each
            # window reads one worker of each node, in alternating order
            for my $i (1 .. $P{beat_windows}) {
                my $since = time;
                sleep $P{beat_window};
                my %h;
                for my $k ($i % 2 ? qw(fresh old) : qw(old fresh)) {
                    $h{$k} = beats_since($k eq 'fresh' ? $fresh : $old, $since);
                }
                for my $k (qw(fresh old)) {
                    push @{ $med{$k} }, $h{$k}{us_median};
                    push @{ $max{$k} }, $h{$k}{us_max};
                    push @{ $rearm{$k} }, $h{$k}{rearm_median};
                    push @{ $ops{$k} }, $h{$k}{ops_median}, $h{$k}{ops_min}, $h{$k}{ops_max};
                    $n{$k} += $h{$k}{n};
                    push @{ $ctl{$k} }, $h{$k}{ctl_median};
                }
                push @ratio, $h{old}{us_median} / $h{fresh}{us_median};
                if ($h{old}{ctl_median} > 0 && $h{fresh}{ctl_median} > 0) {
                    push @ctl_ratio, $h{old}{ctl_median} / $h{fresh}{ctl_median};
                    push @relative, $ratio[-1] / $ctl_ratio[-1];
                }
            }
            my %same_ops = map { my $k = $_; $k => (min_of(@{ $ops{$k} }) == max_of(@{ $ops{$k} })) } qw(fresh old);
            result($row, "$w w, generation 1: shm calls per beat", 'calls', [ @{ $ops{fresh} } ], fmt => '%g',
                   note => $same_ops{fresh} ? 'every beat the same' : 'varies between beats');
            result($row, "$w w, generation $gen_o (after $r reloads): shm calls per beat", 'calls', [ @{ $ops{old} } ],
                   fmt => '%g', target => '= generation 1',
                   met => $same_ops{fresh} && $same_ops{old} && $ops{old}[0] == $ops{fresh}[0]);
            result($row, "$w w, generation 1: µs per beat (median of each window)", 'µs', $med{fresh}, fmt => '%.2f',
                   note => "$n{fresh} beats");
            result($row, "$w w, generation 1: longest beat of each window", 'µs', $max{fresh}, fmt => '%.1f');
            result($row, "$w w, generation $gen_o: µs per beat (median of each window)", 'µs', $med{old}, fmt => '%.2f',
                   note => "$n{old} beats");
            result($row, "$w w, generation $gen_o: longest beat of each window", 'µs', $max{old}, fmt => '%.1f');
            result($row, "$w w: ratio generation $gen_o / generation 1, µs per beat", '', \@ratio, fmt => '%.3f');
            result($row, "$w w, generation 1: control (beat-like work, no module state), µs", 'µs', $ctl{fresh}, fmt => '%.2f');
            result($row, "$w w, generation $gen_o: control, µs", 'µs', $ctl{old}, fmt => '%.2f');
            result($row, "$w w: ratio of the nodes ($gen_o / 1) for the control", '', \@ctl_ratio, fmt => '%.3f');
            result($row, "$w w: ratio generation $gen_o / generation 1, µs per beat over the control's ratio", '',
                   \@relative, fmt => '%.3f', target => '<= 1.10 (no growth)', met => @relative && median(@relative) <= 1.10);
            if ($w == 2) {
                # what the heartbeat costs a worker: one beat per interval
                for my $iv (10, 0.1) {
                    result($row, "CPU of one worker's heartbeat at interval $iv (µs per beat / interval)", '% of a core',
                           [ map { 100 * $_ * 1e-6 / $iv } @{ $med{fresh} } ], fmt => '%.5f');
                }
            }
        }
        note_row($row, "the real heartbeats, timed in nginx: init_by_lua wraps ngx.timer.every (so each heartbeat "
            . "callback is timed with CLOCK_MONOTONIC; nginx re-arms the timer outside it) and puts a call-counting proxy in front "
            . "of the shm dict before the module loads (the proxy's own indirection is inside the µs); "
            . "interval $BEAT_INTERVAL s to get many beats (a beat does the same work at any interval), failed 5; "
            . "$P{beat_windows} windows of $P{beat_window} s, each reading one worker of the fresh and of the reloaded node, "
            . "which beat side by side; one generation alive in each node (the work grows with the generations "
            . "that still have records, i.e. those still draining, not with the number of reloads so far); "
            . "the control is a timer in the same workers at the same interval doing 14 shm calls (10 get, 3 set, "
            . "1 incr) on four keys of its own, the same in every worker: what the worker process and the shm cost "
            . "apart from the module's state, which moves with the load of the moment; the target is judged on the "
            . "beat's ratio over the control's, window by window");
    }
    stop($_) for $z, $f2, $m2, $f32, $m32;
}

# ------------------------------------------------------ 7. singletons

# CPU seconds the processes @pids spent so far (/proc/<pid>/schedstat: ns on a CPU)
sub cpu_of {
    my $sum = 0;
    for my $pid (@_) {
        open my $f, '<', "/proc/$pid/schedstat" or next;
        my ($ns) = split ' ', scalar <$f> // '';
        $sum += ($ns // 0) / 1e9;
    }
    return $sum;
}

sub row7 {
    my $row = 7;
    $ROWINFO{$row}{title} = 'Singletons';
    # kill -9 of the holder, then HUP, on one node of 4 workers (defaults: interval 10, failed 5)
    my $n = node(workers => 4, names => 1);
    $n->start;
    my ($s) = wait_wmb($n, 'singleton_start', desc => 'the job started');
    my ($holder, $token) = ($s->{pid}, $s->{token});
    my (@kill, @hup, @hup_ready);
    for my $i (1 .. $P{crash_trials}) {
        my $mark = $n->mark;
        my $t0 = time;
        kill 'KILL', $holder or die "kill $holder: $!\n";
        my $last = $token;
        ($s) = wait_wmb($n, 'singleton_start', since => $mark, filter => sub { $_[0]{token} > $last },
                        desc => "the job after the kill of its holder $holder");
        push @kill, $s->{t} - $t0;
        ($holder, $token) = ($s->{pid}, $s->{token});
        $n->wait_until(sub { $n->worker_pids == 4 }, desc => '4 workers again');
        sleep 0.15;
    }
    for my $i (1 .. $P{reload_trials}) {
        my @old = $n->worker_pids;
        my $mark = $n->mark;
        my $t0 = time;
        $n->signal('HUP');
        my @new = wait_wmb($n, 'iw_done', count => 4, since => $mark, desc => '4 new workers ready');
        my %new = map { $_->{pid} => 1 } @new;
        my $last = $token;
        ($s) = wait_wmb($n, 'singleton_start', since => $mark, filter => sub { $_[0]{token} > $last && $new{ $_[0]{pid} } },
                        desc => 'the job in the new generation');
        push @hup, $s->{t} - $t0;
        push @hup_ready, min_of(map { $_->{t} } @new) - $t0;
        ($holder, $token) = ($s->{pid}, $s->{token});
        $n->wait_until(sub { !grep { $n->alive($_) } @old }, desc => 'old workers gone');
        sleep 0.15;
    }
    stop($n);
    result($row, 'kill -9 of the holder → the next start begins', 'ms', [ map { ms($_) } @kill ], fmt => '%.2f',
           target => 'median < 50 ms', met => median(@kill) < 0.05);
    result($row, 'HUP → the first new worker\'s init_worker done', 'ms', [ map { ms($_) } @hup_ready ], fmt => '%.2f');
    result($row, 'HUP → the new generation\'s start begins', 'ms', [ map { ms($_) } @hup ], fmt => '%.2f',
           target => 'median <= 120 ms (nginx\'s ~100 ms + 20)', met => median(@hup) <= 0.12);

    # the heartbeat with 0, 10 and 100 names; the watch between beats
    my %beating = (opts => qq{{ shm = "wm", interval = $BEAT_INTERVAL }}, instrument => 1);
    my %node = map { $_ => node(workers => 2, names => $_, %beating) } 0, 10, 100;
    $_->start(timeout => 60) for values %node;
    sleep 0.5;
    my (%ops, %us, %tick_ops, %ticks);
    for my $i (1 .. $P{beat_windows}) {
        my $since = time;
        sleep $P{beat_window};
        for my $k ($i % 2 ? (0, 10, 100) : (100, 10, 0)) {
            my $h = beats_since($node{$k}, $since);
            push @{ $ops{$k} }, $h->{ops_median};
            push @{ $us{$k} }, $h->{us_median};
            my $t = kv(get_ok($node{$k}, sprintf '/wmbeats?kind=every&since=%.6f', $since));
            if ($t->{n}) {
                push @{ $tick_ops{$k} }, $t->{ops_median}, $t->{ops_max};
                $ticks{$k} += $t->{n};
            }
        }
    }
    stop($_) for values %node;
    for my $k (0, 10, 100) {
        result($row, "heartbeat with $k names: shm calls per beat", 'calls', $ops{$k}, fmt => '%g');
        result($row, "heartbeat with $k names: µs per beat (median of each window)", 'µs', $us{$k}, fmt => '%.2f');
    }
    my @per10 = map { ($ops{10}[$_] - $ops{0}[$_]) / 10 } 0 .. $#{ $ops{0} };
    my @per100 = map { ($ops{100}[$_] - $ops{10}[$_]) / 90 } 0 .. $#{ $ops{0} };
    result($row, 'shm calls per name per beat, from 0 to 10 names', 'calls', \@per10, fmt => '%.2f');
    result($row, 'shm calls per name per beat, from 10 to 100 names', 'calls', \@per100, fmt => '%.2f',
           target => 'no more per name than from 0 to 10 (a constant per name)',
           met => @per10 && median(@per100) <= median(@per10));
    for my $k (10, 100) {
        result($row, "watch between beats with $k names: shm calls per look", 'calls', $tick_ops{$k} // [], fmt => '%g',
               note => ($ticks{$k} // 0) . ' looks', target => '1 (the epoch)',
               met => $tick_ops{$k} && max_of(@{ $tick_ops{$k} }) == 1);
    }

    # CPU of a node of 4 workers with 100 idle names, beside one without names
    my $a = node(workers => 4, names => 100);
    my $b = node(workers => 4, names => 0);
    $_->start(timeout => 60) for $a, $b;
    sleep 1;
    my (@cpu_a, @cpu_b, @diff);
    my $window = $SMOKE ? 0.5 : 2;
    for my $i (1 .. ($SMOKE ? 2 : 10)) {
        my @pa = $a->worker_pids;
        my @pb = $b->worker_pids;
        my ($ca, $cb, $t0) = (cpu_of(@pa), cpu_of(@pb), time);
        sleep $window;
        my $dt = time - $t0;
        push @cpu_a, (cpu_of(@pa) - $ca) / $dt * 1000;
        push @cpu_b, (cpu_of(@pb) - $cb) / $dt * 1000;
        push @diff, $cpu_a[-1] - $cpu_b[-1];
    }
    stop($_) for $a, $b;
    result($row, '4 workers, 100 idle names: CPU per second', 'ms', \@cpu_a, fmt => '%.2f');
    result($row, '4 workers, no names: CPU per second', 'ms', \@cpu_b, fmt => '%.2f');
    result($row, 'what 100 idle names cost a node of 4 workers (difference per window)', 'ms/s', \@diff, fmt => '%.2f');
    note_row($row, "one job on 4 workers (interval 10, failed 5), $P{crash_trials} kills of its holder and "
        . "$P{reload_trials} reloads; the start is timed in nginx (CLOCK_REALTIME); the heartbeat rows use the "
        . "row 6 instrumentation at interval $BEAT_INTERVAL s, the per-name calls depend on how many of the names the measured workers hold (a holder also checks it still "
        . "holds), so the target is that they do not grow; the watch is the singletons' 10 ms timer; CPU from "
        . "/proc/<pid>/schedstat of the workers, the two nodes side by side, windows of $window s");
}

# ------------------------------------------------------------ 8. fleet

# Lines "<tag> <kind> k=v ..." a node logged since $o{since}, as hashes
# { kind, k => v, ..., logpid } (nginx's ", context: ..." tail left out).
sub tagged {
    my ($n, $tag, %o) = @_;
    my @out;
    for my $e ($n->grep_log(qr/\b\Q$tag\E \w+ /, since => $o{since})) {
        next unless $e->{text} =~ /\b\Q$tag\E (\w+) (.*?)(?:, (?:context|client|server|request|host): .*)?\z/s;
        my $h = kv($2);
        $h->{kind} = $1;
        $h->{logpid} = $e->{pid};
        push @out, $h;
    }
    return @out;
}

# A node of the fleet on $redis: wm_test's recorders log the fleet events
# ("WMFLEET join|leave node=.. n=.. reason=.. t=<µs>") and, by the driver's
# default, the lifecycle callbacks ("WMCB-ENTER master_exit ... t=<µs>");
# job => 1 registers the cluster singleton "job" (WMSJ-ENTER start ... t=).
# Without interval, the cluster's defaults (interval 2, failed 3).
sub fleet_node {
    my ($redis, $name, %o) = @_;
    my $timing = defined $o{interval} ? ", interval = $o{interval}, failed = $o{failed}" : '';
    my $cluster = sprintf '{ redis = %s, node = "%s"%s, on_join = wm.fleet("join"), on_leave = wm.fleet("leave") }',
        $redis->address, $name, $timing;
    return WorkerManager::Nginx->new(
        workers           => $o{workers} // 1,
        opts              => qq{{ shm = "wm", cluster = $cluster }},
        http_extra        => 'lua_socket_log_errors off;',
        init_worker_after => $o{job}
            ? 'require("resty.worker.manager").singleton("job", { scope = "cluster", '
              . 'start = wm.sj("start", { scope = "cluster" }), stop = wm.sj("stop", { scope = "cluster" }) })'
            : '',
    );
}

# Waits until every node of @$nodes ran the fleet event $kind ("join",
# "leave") of node $who (logged since $o{since}{"$node"}); returns the first
# such event of each, in the order of @$nodes.
sub fleet_wait {
    my ($nodes, $kind, $who, %o) = @_;
    my %got;
    $nodes->[0]->wait_until(sub {
        for my $n (@$nodes) {
            next if $got{"$n"};
            my ($e) = grep { $_->{kind} eq $kind && ($_->{node} // '') eq $who }
                      tagged($n, 'WMFLEET', since => $o{since} ? $o{since}{"$n"} : 0);
            $got{"$n"} = $e if $e;
        }
        return scalar(keys %got) == @$nodes;
    }, timeout => $o{timeout} // 30, desc => $o{desc} // "every node ran $kind of $who");
    return map { $got{"$_"} } @$nodes;
}

# The cluster singleton's newest holding among @$nodes with a token above
# $above (logged since $o{since}{"$node"}): { n => node, token, pid, t, ... }.
sub fleet_holding {
    my ($nodes, $above, %o) = @_;
    my $h;
    $nodes->[0]->wait_until(sub {
        for my $n (@$nodes) {
            for my $s (tagged($n, 'WMSJ-ENTER', since => $o{since} ? $o{since}{"$n"} : 0)) {
                next unless $s->{kind} eq 'start' && ($s->{name} // '') eq 'job' && $s->{token} > $above;
                $h = { %$s, n => $n } if !$h || $s->{token} > $h->{token};
            }
        }
        return $h;
    }, timeout => $o{timeout} // 30, desc => $o{desc} // "a start of the job with a token above $above");
    return $h;
}

# Starts a node again after a kill -9 (whose master left its pid file
# behind, which start() would read) or a stop.
sub restart_node {
    my ($n) = @_;
    die "restart_node: the node is still running\n" if $n->master_pid && $n->alive($n->master_pid);
    unlink $n->prefix . '/logs/nginx.pid';
    $n->start(timeout => 60);
}

# Stops every node still running: QUIT to all at once, then KILL for those
# still there after 30 s. Returns how many needed the KILL.
sub stop_nodes {
    my @live = grep { $_->master_pid && $_->alive($_->master_pid) } @_;
    eval { $_->signal('QUIT') } for @live;
    my @left = grep { !$_->wait_exit(30) } @live;
    eval { $_->signal_node('KILL') } for @left;
    return scalar @left;
}

# Runs $code->($redis, \@nodes) on a private redis-server; whatever happens,
# every node put in @nodes is stopped, and then Redis.
sub with_fleet {
    my ($code) = @_;
    my $redis = WorkerManager::Redis->new;
    my @nodes;
    my $ok = eval { $redis->start; $code->($redis, \@nodes); 1 };
    my $err = $@;
    my $left = eval { stop_nodes(@nodes) } // 'some';
    eval { $redis->stop };
    die $err unless $ok;
    die "$left fleet node(s) did not stop on QUIT (killed)\n" if $left;
}

# CPU seconds redis-server spent so far (/proc/<pid>/stat: utime + stime).
my $CLK_TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub proc_cpu {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/stat" or die "cannot read /proc/$pid/stat: $!\n";
    my $s = <$f> // '';
    close $f;
    $s =~ s/^\d+ \(.*\) //s or die "cannot parse /proc/$pid/stat\n";
    my @f = split ' ', $s;
    return ($f[11] + $f[12]) / $CLK_TCK;
}

# The same in ns of run time: /proc/<pid>/task/*/schedstat, all threads.
sub proc_run_time {
    my ($pid) = @_;
    my $sum = 0;
    opendir my $d, "/proc/$pid/task" or die "cannot read /proc/$pid/task: $!\n";
    for my $tid (grep { /^\d+$/ } readdir $d) {
        open my $f, '<', "/proc/$pid/task/$tid/schedstat" or next;
        my ($ns) = split ' ', scalar <$f> // '';
        $sum += ($ns // 0) / 1e9;
    }
    closedir $d;
    return $sum;
}

# One window of $secs s on Redis: the commands it processed (INFO stats's
# total_commands_processed, less the bench's own two INFO inside the
# window), each command's calls (INFO commandstats) and its CPU seconds.
sub redis_window {
    my ($redis, $secs) = @_;
    my $read = sub {
        my ($t, $cpu, $run) = (time, proc_cpu($redis->pid), proc_run_time($redis->pid));
        my $total = $redis->info('stats')->{total_commands_processed};
        my $cs = $redis->info('commandstats');
        my %calls;
        for my $k (keys %$cs) {
            next unless $k =~ /^cmdstat_(.+)$/;
            my $name = $1;
            $calls{$name} = $cs->{$k} =~ /\bcalls=(\d+)/ ? $1 : 0;
        }
        die "no total_commands_processed in INFO stats\n" unless defined $total;
        return { t => $t, cpu => $cpu, run => $run, total => $total, calls => \%calls };
    };
    my $a = $read->();
    sleep $secs;
    my $b = $read->();
    my %calls;
    for my $c (keys %{ $b->{calls} }) {
        next if $c eq 'info';
        my $d = $b->{calls}{$c} - ($a->{calls}{$c} // 0);
        $calls{$c} = $d if $d;
    }
    return { dt => $b->{t} - $a->{t}, cpu => $b->{cpu} - $a->{cpu}, run => $b->{run} - $a->{run},
             cmds => $b->{total} - $a->{total} - 2,
             calls => \%calls };
}

# What of the fleet Redis keeps: keys, events, members, member records.
sub fleet_state {
    my ($redis) = @_;
    my @r = $redis->pipeline(['DBSIZE'], ['XLEN', '{wm}:events'], ['ZCARD', '{wm}:members'], ['HLEN', '{wm}:info']);
    my ($bad) = grep { defined $_->[1] } @r;
    die "Redis: $bad->[1]\n" if $bad;
    my %s;
    @s{qw(dbsize xlen members info)} = map { $_->[0] } @r;
    return \%s;
}

sub state_text { my $s = shift; "DBSIZE $s->{dbsize}, XLEN $s->{xlen}, members $s->{members}, info $s->{info}" }

# Membership and the cluster singleton, on 3 nodes at interval 1, failed 1:
# kill -9 of the holder's whole node, and QUIT of it.
sub fleet_failover {
    my ($row, $redis, $nodes) = @_;
    my ($iv, $fl) = (1, 1);
    my $bound = $iv + $fl + $iv;
    my %name;
    for my $i (1 .. 3) {
        my $n = fleet_node($redis, "f$i", interval => $iv, failed => $fl, workers => 2, job => 1);
        push @$nodes, $n;
        $name{"$n"} = "f$i";
        $n->start(timeout => 60);
    }
    fleet_wait($nodes, 'join', 'f3', desc => 'every node ran the join of f3');
    my $h = fleet_holding($nodes, 0, desc => 'the job started in the fleet');
    my $back = sub {    # the node started again, and every node ran its join
        my ($n) = @_;
        my %mark = map { ("$_" => $_->mark) } @$nodes;
        restart_node($n);
        fleet_wait($nodes, 'join', $name{"$n"}, since => \%mark, desc => "every node ran the join of $name{$n} again");
    };

    my (@lost_all, @lost_first, @failover);
    for my $i (1 .. $P{fleet_kills}) {
        my $victim = $h->{n};
        my $vname = $name{"$victim"};
        my @others = grep { $_ != $victim } @$nodes;
        sleep rand $iv;    # a trial begins right after a round: any phase of the agents' rounds instead
        my %mark = map { ("$_" => $_->mark) } @others;
        my $t0 = time;
        $victim->signal_node('KILL');
        my @told = fleet_wait(\@others, 'leave', $vname, since => \%mark,
                              desc => "the other nodes ran the leave of $vname after its kill -9");
        my ($bad) = grep { $_->{reason} ne 'lost' } @told;
        die "kill -9 of $vname: on_leave said \"$bad->{reason}\", not \"lost\"\n" if $bad;
        my $next = fleet_holding(\@others, $h->{token}, since => \%mark,
                                 desc => "the job in another node after the kill -9 of $vname (token $h->{token})");
        push @lost_all, max_of(map { $_->{t} } @told) - $t0;
        push @lost_first, min_of(map { $_->{t} } @told) - $t0;
        push @failover, $next->{t} - $t0;
        printf "  kill %d of %s: lost on every other node after %.3f s (first %.3f s), the job in %s after %.3f s\n",
            $i, $vname, $lost_all[-1], $lost_first[-1], $name{ $next->{n} }, $failover[-1];
        $back->($victim);
        $h = $next;
    }

    my (@stop_all, @stop_first, @stop_redis, @handover);
    for my $i (1 .. $P{fleet_quits}) {
        my $victim = $h->{n};
        my $vname = $name{"$victim"};
        my @others = grep { $_ != $victim } @$nodes;
        sleep rand $iv;
        my %mark = map { ("$_" => $_->mark) } @$nodes;
        my $t0 = time;
        $victim->signal('QUIT');
        $victim->wait_exit(30) or die "$vname did not stop on QUIT\n";
        my ($me) = reverse grep { $_->{kind} eq 'master_exit' } tagged($victim, 'WMCB-ENTER', since => $mark{"$victim"});
        die "$vname logged no master exit callback on QUIT\n" unless $me;
        my @told = fleet_wait(\@others, 'leave', $vname, since => \%mark,
                              desc => "the other nodes ran the leave of $vname after its QUIT");
        my ($bad) = grep { $_->{reason} ne 'stopped' } @told;
        die "QUIT of $vname: on_leave said \"$bad->{reason}\", not \"stopped\"\n" if $bad;
        my $next = fleet_holding(\@others, $h->{token}, since => \%mark,
                                 desc => "the job in another node after the QUIT of $vname (token $h->{token})");
        push @stop_all, max_of(map { $_->{t} } @told) - $me->{t};
        push @stop_first, min_of(map { $_->{t} } @told) - $me->{t};
        push @handover, $next->{t} - $t0;
        # the leave in Redis: its stream id is Redis's time (ms) of the LEAVE script
        my $ev = $redis->cmd('XREVRANGE', '{wm}:events', '+', '-', 'COUNT', 20);
        my ($id) = map { $_->[0] } grep { my %f = @{ $_->[1] }; ($f{kind} // '') eq 'leave' && ($f{node} // '') eq $vname } @$ev;
        push @stop_redis, $1 / 1000 - $me->{t} if defined $id && $id =~ /^(\d+)-/ && $1 / 1000 > $t0 - 1;
        printf "  QUIT %d of %s: master exit %.1f ms after the QUIT, stopped on every other node %.1f ms after it "
            . "(first %.1f ms), the job in %s %.0f ms after the QUIT\n", $i, $vname, ms($me->{t} - $t0),
            ms($stop_all[-1]), ms($stop_first[-1]), $name{ $next->{n} }, ms($handover[-1]);
        $back->($victim);
        $h = $next;
    }

    my $t = "max <= interval + failed + interval = $bound s";
    result($row, 'kill -9 of a whole node → on_leave(node, n, "lost") has run on every other node', 's', \@lost_all,
           fmt => '%.3f', target => $t, met => @lost_all && max_of(@lost_all) <= $bound);
    result($row, 'kill -9 of a whole node → on_leave "lost" on the first other node', 's', \@lost_first, fmt => '%.3f');
    result($row, 'kill -9 of the cluster singleton\'s node → its start in another node', 's', \@failover,
           fmt => '%.3f', target => $t, met => @failover && max_of(@failover) <= $bound);
    result($row, 'QUIT: master exit callback → on_leave(node, n, "stopped") has run on every other node', 'ms',
           [ map { ms($_) } @stop_all ], fmt => '%.1f', target => 'max < 50 ms', met => @stop_all && max_of(@stop_all) < 0.05);
    result($row, 'QUIT: master exit callback → on_leave "stopped" on the first other node', 'ms',
           [ map { ms($_) } @stop_first ], fmt => '%.1f');
    result($row, 'QUIT: master exit callback → the leave in Redis (its stream id: Redis\'s clock, whole ms)', 'ms',
           [ map { ms($_) } @stop_redis ], fmt => '%.1f');
    result($row, 'QUIT of the singleton\'s node → its start in another node', 'ms', [ map { ms($_) } @handover ],
           fmt => '%.0f');
    return "3 nodes of 2 workers with a cluster singleton \"job\", cluster interval $iv, failed $fl (not the defaults "
        . "2 and 3: shorter trials; the bound interval + failed + interval is then $bound s); $P{fleet_kills} kills -9 "
        . "of the job's holder's whole node (master and workers), the loss and the job's next start timed from the kill in "
        . "the same trials; $P{fleet_quits} graceful stops (QUIT) of the holder's node, the leave timed from its master exit "
        . "callback; after each, the node is started again and every node runs its join, then a random wait of up to "
        . "one interval puts the next trial at any phase of the agents' rounds; "
        . "a member's agent waits in Redis for new events between its rounds (XREAD BLOCK), "
        . "so it runs an event as soon as it is in Redis, unless the agent is in its presence round";
}

# Redis's side at the default interval 2: commands and CPU per node with 3,
# 10 and 50 idle nodes of 1 worker; what stays in Redis across reloads and
# restarts of a node.
sub fleet_cost {
    my ($row, $redis, $nodes) = @_;
    my $iv = 2;
    my $win = $P{fleet_window};
    my $add = sub {
        my ($upto) = @_;
        for my $i (@$nodes + 1 .. $upto) {
            my $n = fleet_node($redis, "c$i", workers => 1);
            push @$nodes, $n;
            $n->start(timeout => 60);
        }
        fleet_wait($nodes, 'join', "c$upto", timeout => 60, desc => "every node ran the join of c$upto");
    };
    my %w;    # nodes => [ windows ]
    my $measure = sub {
        my ($count) = @_;
        $w{$count} = [ map { redis_window($redis, $win) } 1 .. $P{fleet_windows} ];
        for my $x (@{ $w{$count} }) {
            printf "  %d nodes, %.1f s: %d commands (%.3f per node per s), Redis CPU %.1f ms/s (schedstat %.2f)\n",
                $count, $x->{dt}, $x->{cmds}, $count ? $x->{cmds} / $count / $x->{dt} : 0, 1000 * $x->{cpu} / $x->{dt},
                1000 * $x->{run} / $x->{dt};
        }
    };
    my $version = $redis->info('server')->{redis_version} // '?';
    $measure->(0);
    $add->(3);
    $measure->(3);

    # reloads of c1: nothing more in Redis once its agent ran in the last generation
    my $c1 = $nodes->[0];
    my $gen = sub {
        my $v = $redis->cmd('HGET', '{wm}:info', 'c1') // '';
        return (split ' ', $v)[2];
    };
    my $g0 = $gen->() // die "c1 has no record in {wm}:info\n";
    my $before = fleet_state($redis);
    for my $i (1 .. $P{fleet_reloads}) {
        my @old = $c1->worker_pids;
        my $mark = $c1->mark;
        $c1->signal('HUP');
        $c1->wait_log(qr/WMREADY /, since => $mark, count => $c1->workers, timeout => 60, desc => "reload $i: new worker ready");
        $c1->wait_log(qr/WMCB master_exit /, since => $mark, timeout => 60, desc => "reload $i: the old generation's master exit");
        $c1->wait_until(sub { !grep { $c1->alive($_) } @old }, timeout => 60, desc => "reload $i: old worker gone");
    }
    my $g1 = $g0 + $P{fleet_reloads};
    $c1->wait_until(sub { ($gen->() // 0) >= $g1 }, timeout => 30,
                    desc => "c1's record in Redis at generation $g1 (its agent ran in the last generation)");
    my $reloaded = fleet_state($redis);
    printf "  before %d reloads of c1: %s; after: %s\n", $P{fleet_reloads}, state_text($before), state_text($reloaded);

    # restarts of c1 (QUIT, start): each adds a leave and a join to the stream
    for my $i (1 .. $P{fleet_restarts}) {
        my %mark = map { ("$_" => $_->mark) } @$nodes;
        $c1->signal('QUIT');
        $c1->wait_exit(30) or die "c1 did not stop on QUIT\n";
        restart_node($c1);
        fleet_wait($nodes, 'join', 'c1', since => \%mark, desc => "restart $i: every node ran the join of c1");
    }
    my $restarted = fleet_state($redis);
    printf "  after %d restarts of c1: %s\n", $P{fleet_restarts}, state_text($restarted);

    $add->(10);
    $measure->(10);
    my $big = $P{fleet_cpu_nodes};
    if ($big != 10) {
        my $t = time;
        $add->($big);
        printf "  %d nodes started in %.1f s\n", $big - 10, time - $t;
        $measure->($big);
    }

    my @counts = grep { $_ } sort { $a <=> $b } keys %w;
    my %per = map { my $c = $_; $c => [ map { $_->{cmds} / $c / $_->{dt} } @{ $w{$c} } ] } @counts;
    my (@calls, $sent);    # the commands of one node's round, from the largest fleet's windows
    {
        my %sum;
        my $rounds = 0;
        for my $x (@{ $w{$big} }) {
            $sum{$_} += $x->{calls}{$_} for keys %{ $x->{calls} };
            $rounds += $big * $x->{dt} / $iv;
        }
        @calls = map { sprintf '%s %.2f', $_, $sum{$_} / $rounds } sort keys %sum;
        $sent = 0;
        $sent += ($sum{$_} // 0) / $rounds for qw(evalsha eval xrange);
    }
    for my $c (@counts) {
        result($row, "$c idle nodes: Redis commands per node per second", 'cmds/s', $per{$c}, fmt => '%.3f',
               note => sprintf('%.2f per round', median(@{ $per{$c} }) * $iv));
    }
    my @ratio = map { $per{10}[$_] / $per{3}[$_] } 0 .. $#{ $per{3} };
    result($row, 'ratio 10 nodes / 3 nodes, commands per node per second', '', \@ratio, fmt => '%.3f',
           target => 'within 1.2 (flat per node)', met => @ratio && median(@ratio) <= 1.2 && median(@ratio) >= 1 / 1.2);
    for my $c (0, @counts) {
        my $idle = 0;
        $idle += $_->{cmds} for @{ $w{0} };
        result($row, ($c ? "$c idle nodes" : 'no node') . ': redis-server CPU per second', 'ms/s',
               [ map { 1000 * $_->{cpu} / $_->{dt} } @{ $w{$c} } ], fmt => '%.2f',
               $c ? () : (note => "$idle commands in its windows"));
    }
    result($row, "$big idle nodes: redis-server CPU per node per second", 'µs/s',
           [ map { 1e6 * $_->{cpu} / $_->{dt} / $big } @{ $w{$big} } ], fmt => '%.1f');
    result($row, "$big idle nodes: the same from the threads' run time (schedstat, ns)", 'µs/s',
           [ map { 1e6 * $_->{run} / $_->{dt} / $big } @{ $w{$big} } ], fmt => '%.1f',
           note => sprintf('Redis alone: %.0f µs/s', median(map { 1e6 * $_->{run} / $_->{dt} } @{ $w{0} })));
    my $same = !grep { $reloaded->{$_} != $before->{$_} } qw(dbsize xlen members info);
    result($row, "DBSIZE after $P{fleet_reloads} reloads of a node", 'keys', [ $reloaded->{dbsize} ], fmt => '%.0f',
           note => "before: $before->{dbsize}", target => '= before (no growth)', met => $reloaded->{dbsize} == $before->{dbsize});
    result($row, "XLEN {wm}:events after $P{fleet_reloads} reloads of a node", 'events', [ $reloaded->{xlen} ], fmt => '%.0f',
           note => "before: $before->{xlen}", target => '= before (no growth)', met => $reloaded->{xlen} == $before->{xlen});
    result($row, "XLEN {wm}:events after $P{fleet_restarts} restarts (QUIT, start) of a node", 'events',
           [ $restarted->{xlen} ], fmt => '%.0f', note => "before: $reloaded->{xlen}; a restart adds a leave and a join");
    result($row, "DBSIZE after $P{fleet_restarts} restarts of a node", 'keys', [ $restarted->{dbsize} ], fmt => '%.0f',
           note => "before: $reloaded->{dbsize}", target => '= before (no growth)',
           met => $restarted->{dbsize} == $reloaded->{dbsize});
    return "Redis $version; cost: nodes of 1 worker at the cluster's defaults (interval 2, failed 3), no singletons, "
        . "$P{fleet_windows} windows of $win s (a whole number of intervals) for each fleet size once every node ran "
        . "the last join, and one without any node; commands are INFO stats's total_commands_processed, less the bench's "
        . "own INFO, and count the calls inside the scripts; per node per round with $big nodes (INFO commandstats): "
        . join(', ', @calls) . sprintf('; of these the node sends %.2f (EVALSHA, EVAL, XRANGE), the rest run inside '
        . 'the presence script', $sent) . "; redis-server's CPU from /proc/<pid>/stat utime + stime (ticks of "
        . sprintf('%.0f', 1000 / $CLK_TCK) . " ms: coarse over a window), checked against the run time its threads "
        . "had in the same windows (/proc/<pid>/task/*/schedstat, ns); $P{fleet_reloads} reloads of one node (then its record in Redis "
        . "shows the last generation) and $P{fleet_restarts} restarts (QUIT, start; each waited for every node to run "
        . "its join), with 3 nodes; before the reloads: " . state_text($before) . ", after them: " . state_text($reloaded)
        . ", after the restarts: " . state_text($restarted)
        . "; the stream is trimmed by age (it keeps an hour), so the events of restarts go after an hour";
}

sub row8 {
    my $row = 8;
    $ROWINFO{$row}{title} = 'Fleet';
    -x $WorkerManager::Redis::REDIS or die "$WorkerManager::Redis::REDIS is not installed (apt install redis-server)\n";
    my (@err, @notes);
    for my $part (\&fleet_failover, \&fleet_cost) {
        eval { with_fleet(sub { push @notes, $part->($row, @_) }); 1 } or push @err, $@;
    }
    note_row($row, $_) for @notes;
    die join '', @err if @err;
}

# ------------------------------------------------------------ main

sub want { !%ONLY || $ONLY{ $_[0] } }

# A digest of the compiled module (lib/**/*.lua): the nodes load it at each
# start and reload, so a rebuild during the run mixes two versions.
sub lib_digest {
    my @f;
    File::Find::find({ no_chdir => 1, wanted => sub { push @f, $File::Find::name if /\.lua\z/ } }, "$REPO/lib");
    my $md5 = Digest::MD5->new;
    for my $f (sort @f) {
        open my $fh, '<', $f or next;
        binmode $fh;
        $md5->add("$f\0");
        $md5->addfile($fh);
    }
    return $md5->hexdigest;
}

my $T0 = time;
my $LIB = lib_digest();
print "# lua-resty-worker-manager benchmark", ($SMOKE ? ' (smoke: few trials, numbers not meaningful)' : ''), "\n\n";
my $M = eval { machine() } or die "cannot start nginx for the machine info: $@";
my @head = (
    "date: $M->{date}",
    "machine: nproc $M->{nproc}, $M->{cpu}, load average at start $M->{load}",
    "nginx: $M->{nginx} ($M->{nginx_binary}), ngx_lua $M->{ngx_lua}"
        . ($M->{lua_module_package} ? " (Debian libnginx-mod-http-lua $M->{lua_module_package})" : '')
        . ", $M->{luajit}, resty.core $M->{resty_core}",
    "module: resty.worker.manager $M->{module}" . ($M->{commit} ? ", commit $M->{commit}" : ''),
);
print "$_\n" for @head;
print "\n";

for my $r ([1, \&row1], [2, \&row2], [3, \&row3], [4, \&row4]) {
    my ($num, $code) = @$r;
    next unless want($num);
    print "## row $num\n";
    my $t = time;
    eval { $code->(); 1 } or do { push @ERRORS, "row $num: $@"; print "  ERROR: $@" };
    printf "  (%.1f s)\n", time - $t;
}
if (want(5) || want(6)) {
    print "## rows 5 and 6\n";
    my $t = time;
    eval { row56(); 1 } or do { push @ERRORS, "rows 5/6: $@"; print "  ERROR: $@" };
    printf "  (%.1f s)\n", time - $t;
}
if (want(7)) {
    print "## row 7\n";
    my $t = time;
    eval { row7(); 1 } or do { push @ERRORS, "row 7: $@"; print "  ERROR: $@" };
    printf "  (%.1f s)\n", time - $t;
}
if (want(8)) {
    print "## row 8\n";
    my $t = time;
    eval { row8(); 1 } or do { push @ERRORS, "row 8: $@"; print "  ERROR: $@" };
    printf "  (%.1f s)\n", time - $t;
}
my $elapsed = time - $T0;
if (lib_digest() ne $LIB) {
    push @head, "**lib/ changed during the run** (rebuilt meanwhile): nodes started after the change ran the new "
        . "code, so the numbers may mix two versions";
    print "\nWARNING: $head[-1]\n";
}

# ------------------------------------------------------------ report

my @md;
push @md, "Benchmark" . ($SMOKE ? ' (smoke run: few trials, numbers not meaningful)' : ''), '';
push @md, map { "- $_" } @head, sprintf('run time: %.0f s', $elapsed);
push @md, '';
push @md, '| # | measurement | median | min | max | n | target | met |';
push @md, '|---|---|---:|---:|---:|---:|---|---|';
my $prev_row = 0;
for my $r (@RESULTS) {
    my $u = $r->{unit} ? " $r->{unit}" : '';
    my $title = $r->{row} != $prev_row ? ' ' . ($ROWINFO{ $r->{row} }{title} // '') : '';
    $prev_row = $r->{row};
    my $met = !exists $r->{met} ? '' : $r->{met} ? 'yes' : '**no**';
    my $name = $r->{name};
    $name .= " ($r->{note})" if defined $r->{note} && length $r->{note} < 90;
    $name =~ s/\|/\\|/g;
    push @md, sprintf '| %d%s | %s | %s%s | %s | %s | %d | %s | %s |', $r->{row}, $title,
        $name, fmtv($r, 'median'), $u, fmtv($r, 'min'), fmtv($r, 'max'), $r->{n}, $r->{target} // '', $met;
}
push @md, '';
for my $row (sort keys %ROWINFO) {
    push @md, "Row $row ($ROWINFO{$row}{title}): " . join('; ', @{ $ROWINFO{$row}{notes} // [] }) . '.'
        if $ROWINFO{$row}{notes};
}
push @md, '', 'Errors:', map { "- $_" } @ERRORS if @ERRORS;
my $md = join("\n", @md) . "\n";

print "\n$md";

make_path(dirname($OUT));
my $json = JSON::PP->new->pretty->canonical->encode({
    smoke => $SMOKE ? JSON::PP::true : JSON::PP::false,
    machine => $M,
    parameters => \%P,
    elapsed_s => 0 + sprintf('%.1f', $elapsed),
    rows => { map { $_ => $ROWINFO{$_}{title} } keys %ROWINFO },
    notes => { map { $_ => $ROWINFO{$_}{notes} } keys %ROWINFO },
    results => [ map { my %r = %$_; delete $r{fmt}; \%r } @RESULTS ],
    errors => \@ERRORS,
});
open my $fh, '>', $OUT or die "write $OUT: $!";
print {$fh} $json;
close $fh;
(my $mdfile = $OUT) =~ s/\.json$/.md/;
open $fh, '>', $mdfile or die "write $mdfile: $!";
print {$fh} $md;
close $fh;
print "written: $OUT, $mdfile\n";
exit(@ERRORS ? 1 : 0);
