#!/usr/bin/env perl
# Benchmark of resty.worker.manager on real nginx nodes (`make bench`, issue #5).
#
#   perl t/bench/bench.pl            full run (about 5-10 minutes)
#   perl t/bench/bench.pl --smoke    every row once, few trials (under 30 s):
#                                    exits 0 when the machinery works, whether
#                                    or not the targets are met
#   options: --out FILE (JSON; default t/bench/out/bench[-smoke].json),
#            --rows 1,3 (only these rows)
#
# Prints a markdown table (also written next to the JSON as .md). Every timing
# is given as median / min / max over repeated trials; every comparison is a
# ratio of runs made side by side in this run, interleaved (A, B, A, B ...), as
# the machine is noisy. Time stamps come from the Lua side (CLOCK_REALTIME, µs,
# logged by t/bench/wm_bench.lua) and from Time::HiRes here: the same clock.
#
# Uses the test driver t/lib/WorkerManager/Nginx.pm (WM_NGINX, WM_LOAD_MODULES
# as for the tests) and wrk for row 1.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More ();
use WorkerManager::Nginx;
use Time::HiRes qw(time sleep);
use JSON::PP ();
use POSIX qw(strftime);
use Getopt::Long qw(GetOptions);
use File::Path qw(make_path);
use File::Basename qw(dirname);

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
       beat_windows => 2, beat_window => 0.5)
    : (wrk_rounds => 20, wrk_secs => 2, wrk_warm => 2, crash_trials => 25, reload_trials => 15,
       start_trials => 15, start_workers => [1, 4, 16, 32], mem_reloads => 100, mem_reloads32 => 20,
       beat_windows => 15, beat_window => 1);

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

# ------------------------------------------------------------ main

sub want { !%ONLY || $ONLY{ $_[0] } }

my $T0 = time;
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
my $elapsed = time - $T0;

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
