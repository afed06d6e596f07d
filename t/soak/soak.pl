#!/usr/bin/env perl
# The soak: for --duration seconds, real nginx nodes (2 to 4 workers, the
# exit hook, on_crash, interval 1 s; some with lua_code_cache off) go through
# random reloads, reload bursts, kill -9 of random workers (any generation,
# starting ones too), kills during reloads and during stops, failed reloads
# (a listen port taken), workers recycled by a signal sent to them (QUIT or
# TERM, one or all at once), binary upgrades rolled back (USR2, WINCH, then
# HUP to the old master or QUIT to the new one), WINCH followed by a HUP,
# workers stalled past interval + failed (SIGSTOP, then SIGCONT), idle spells, and stops (QUIT or TERM) followed by a restart or a fresh
# node.  Every node runs singletons (a job whose start and stop take a
# while, a periodic one, and a few plain ones), so every event moves them
# too.  After each event nginx must answer GET /ping (and /status on a node
# with the code cache off).  When a node lifetime ends, the invariant
# checker (WorkerManager::Check::checker_errors: lifecycle, exact model,
# lock, run invariants, and the singletons' one-holder rule) runs on that
# lifetime's log, and on the log of every new binary that came and went in it.
#
#   perl t/soak/soak.pl [--duration 600] [--seed N] [--min-workers 2] [--max-workers 4]
#                       [--shm-size 1m] [--verbose]
#   make soak DURATION=600        make soak-quick   (30 s, part of make test)
#
# SOAK_SEED=<n> (or --seed) fixes the random decisions (the timing of a real
# nginx still varies); the seed is printed first.  One summary table at the
# end; exit 1 when anything was violated, with each violating lifetime's
# findings printed and its error.log kept (the path is printed).
# (--shm-size 12k --min-workers 8 --max-workers 8 shows it failing: the dict
# is far too small for the module, see t/34-shm-full.t.)
#
# Model option: complete => 0.  A generation whose last worker was killed
# just before a stop may end with nobody left to notice (README,
# Limitations); the run invariants still demand exactly one master exit for
# every generation whose last worker left through its exit, or that a worker
# of another generation outlived by long enough to find it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Getopt::Long qw(GetOptions);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Test::More ();
use WorkerManager::Nginx;
use WorkerManager::Chance;
use WorkerManager::Check;

my %opt = (duration => $ENV{DURATION} // 600, seed => $ENV{SOAK_SEED}, 'min-workers' => 2, 'max-workers' => 4,
           'shm-size' => '1m', verbose => 0);
GetOptions(\%opt, 'duration=i', 'seed=i', 'min-workers=i', 'max-workers=i', 'shm-size=s', 'verbose!', 'help|h' => sub {
    open my $fh, '<', __FILE__ or exit 0;
    while (<$fh>) { last unless /^#/; next if /^#!/; s/^# ?//; print }
    exit 0;
}) or exit 2;
my $SEED = $opt{seed} // (time() ^ $$) % 1_000_000;
srand $SEED;
$| = 1;

# the driver and the checker report through Test::More: no TAP here
my $tb = Test::More->builder;
$tb->no_ending(1);
$tb->output(\my $tap_out);
$tb->failure_output(\my $tap_err);
$tb->todo_output(\my $tap_todo);

die "lib/ is not built: run make build\n" unless -f "$WorkerManager::Nginx::REPO/lib/resty/worker/manager.lua";

my $OPTS = '{ shm = "wm", interval = 1, failed = 2, on_crash = wm.rec("crash") }';
# the singletons of every node: a job whose start and stop yield a moment
# (a handover that did not wait for the stop would show), a periodic one
# whose runs take a moment, and a few plain ones
my $SINGLETONS = 'local m = require("resty.worker.manager")
        m.singleton("job", wm.job({ start = { sleep = 0.05 }, stop = { sleep = 0.05 } }))
        m.every("tick", 0.3, wm.sj("fn", { sleep = 0.05 }))
        for i = 1, 5 do m.singleton("plain" .. i, wm.job()) end';
# a request whose init_by_lua re-run (lua_code_cache off) must not count
my $STATUS = <<'NGX';
        location = /status {
            content_by_lua_block {
                local st, err = require("resty.worker.manager").status()
                if not st then
                    ngx.status = 500
                    return ngx.say(err)
                end
                ngx.say("generation ", st.generation)
            }
        }
NGX
my $T0 = time;
my $END = $T0 + $opt{duration};
my (%ev, %fault, %viol, %nfind, %seen);
my @report;          # violation details, printed at the end
my $outdir;          # where violating lifetimes' logs are kept
my $lifetimes = 0;

printf "soak: %d s, seed %d (SOAK_SEED=%d replays the decisions), %d-%d workers, shm %s, nginx %s\n",
    $opt{duration}, $SEED, $SEED, $opt{'min-workers'}, $opt{'max-workers'}, $opt{'shm-size'}, $WorkerManager::Nginx::NGINX;

sub say_v { print @_, "\n" if $opt{verbose} }
sub elapsed { sprintf '%6.1f', time - $T0 }


sub violation {
    my ($kind, $msg, $findings) = @_;
    $viol{$kind}++;
    $nfind{$kind} += $findings // 1;
    push @report, "[$kind] $msg";
    print elapsed(), "  VIOLATION [$kind] $msg\n";
}

# GET /ping answers 200 (one retry a second later); so does /status on a
# node with lua_code_cache off
sub serves {
    my ($n, $what) = @_;
    my @paths = ('/ping', $n->{soak_no_cache} ? '/status' : ());
    for my $path (@paths) {
        $ev{"health probes (GET $path)"}++;
        next if $n->get($path, timeout => 3) == 200;
        sleep 1;
        next if $n->get($path, timeout => 3) == 200;
        violation('serve', "GET $path failed twice after $what");
        return 0;
    }
    return 1;
}

# QUIT or TERM to one worker of the newest generation, or to all of them
sub recycle {
    my ($n) = @_;
    my @p = $n->worker_pids;
    return unless @p;
    my $sig = rand() < 0.6 ? 'QUIT' : 'TERM';
    my @victims = rand() < 0.25 ? @p : ($p[ int rand @p ]);
    my $mark = $n->mark;
    kill $sig, @victims;
    $ev{ @victims > 1 ? "all workers recycled at once ($sig to each)" : "a worker recycled ($sig to it)" }++;
    say_v(elapsed(), "  $sig to @victims");
    # each respawn is ready (a QUIT-recycled worker waits `failed` s to see
    # that the master keeps its sockets)
    $n->wait_log(qr/WMREADY /, count => scalar @victims, since => $mark, timeout => 15, soft => 1);
}

sub read_pid {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    my $p = <$fh> // '';
    return $p =~ /(\d+)/ ? $1 : undef;
}

sub gone {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (<$fh> // '') =~ /^\d+ \(.*\) [ZX] /s ? 1 : 0;
}

# USR2, WINCH, then a rollback: HUP to the old master or QUIT to the new one.
# Returns the new master's pid (its node is checked with the lifetime).
sub rollback {
    my ($n) = @_;
    my $mark = $n->mark;
    my $pidfile = $n->prefix . '/logs/nginx.pid';
    $n->signal('USR2');
    my $new = $n->wait_until(sub { my $p = read_pid($pidfile); -f "$pidfile.oldbin" && $p && $p != $n->master_pid ? $p : 0 },
                             timeout => 15, soft => 1) or return;
    $n->foreign($new);
    my $ready = sub { scalar(grep { $_->{foreign} } $n->grep_log(qr/WMREADY /, since => $mark, foreign => 1)) >= $n->workers };
    $n->wait_until($ready, timeout => 15, soft => 1) or return $new;
    $mark = $n->mark;
    my @old = $n->worker_pids;
    $n->signal('WINCH');
    $n->wait_until(sub { !grep { !gone($_) } @old }, timeout => 15, soft => 1);
    $mark = $n->mark;
    my $how = rand() < 0.5 ? 'HUP' : 'QUIT new';
    if ($how eq 'HUP') {
        $n->signal('HUP');
        $n->wait_log(qr/WMREADY /, count => $n->workers, since => $mark, timeout => 15, soft => 1);
        kill 'QUIT', $new;
    } else {
        kill 'QUIT', $new;
        $n->wait_log(qr/WMREADY /, count => $n->workers, since => $mark, timeout => 15, soft => 1);
    }
    # (nginx forgets the HUP's restarted workers until a child exits: the
    # old master is sent nothing before the new one is gone)
    $n->wait_until(sub { gone($new) }, timeout => 30, soft => 1);
    $ev{"binary upgrades rolled back (USR2, WINCH, " . ($how eq 'HUP' ? 'HUP to the old master)' : 'QUIT to the new one)')}++;
    return $new;
}

# WINCH (no upgrade): the workers exit, the master keeps the configuration;
# the HUP loads it anew
sub winch_then_hup {
    my ($n) = @_;
    my @old = $n->worker_pids;
    $n->signal('WINCH');
    $n->wait_until(sub { !grep { !gone($_) } @old }, timeout => 15, soft => 1);
    my $mark = $n->mark;
    $n->signal('HUP');
    $ev{'WINCH, then HUP'}++;
    $n->wait_log(qr/WMREADY /, count => $n->workers, since => $mark, timeout => 15, soft => 1);
}

sub kill_random {
    my ($n, $why) = @_;
    my @p = sort { $a <=> $b } $n->worker_pids(all => 1);
    return 0 unless @p;
    my $victim = $p[ int rand @p ];
    return 0 unless kill 'KILL', $victim;
    $fault{"kill -9 of a worker ($why)"}++;
    say_v(elapsed(), "  kill -9 $victim ($why)");
    return 1;
}

sub failed_reload {
    my ($n) = @_;
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 5)
        or return;
    my $port = $busy->sockport;
    my $mark = $n->mark;
    $n->reload_conf(listen_extra => ["127.0.0.1:$port"]);
    $fault{'failed reloads (listen port taken)'}++;
    $n->wait_log(qr/still could not bind|bind\(\) to 127\.0\.0\.1:$port failed/, since => $mark, timeout => 10, soft => 1);
    $n->wait_log(qr/still could not bind/, since => $mark, timeout => 10, soft => 1);
    $n->write_conf(listen_extra => []);
}

# one event on a running node
sub event {
    my ($n) = @_;
    my $e = pick(reload => 30, burst => 8, crash => 20, 'crash in reload' => 8, failed => 5, idle => 10,
                 recycle => 12, rollback => 3, winch => 2, stall => 4);
    if ($e eq 'reload') {
        $n->signal('HUP');
        $ev{'reloads (HUP)'}++;
        sleep 0.1 + rand 1.4;
    } elsif ($e eq 'burst') {
        my $k = 3 + int rand 4;
        for (1 .. $k) { $n->signal('HUP'); $ev{'reloads (HUP)'}++; sleep 0.05 + rand 0.1 }
        $ev{'reload bursts (3-6 HUPs, 50-150 ms apart)'}++;
        sleep 0.5 + rand 1;
    } elsif ($e eq 'crash') {
        kill_random($n, 'idle node');
        sleep 0.2 + rand 1.3;
    } elsif ($e eq 'crash in reload') {
        $n->signal('HUP');
        $ev{'reloads (HUP)'}++;
        sleep rand 0.2;
        kill_random($n, 'during a reload');
        sleep 0.3 + rand 1.2;
    } elsif ($e eq 'failed') {
        failed_reload($n);
    } elsif ($e eq 'recycle') {
        recycle($n);
    } elsif ($e eq 'rollback') {
        my $new = rollback($n);
        push @{ $n->{soak_new_binaries} }, $new if $new;
    } elsif ($e eq 'winch') {
        winch_then_hup($n);
    } elsif ($e eq 'stall') {
        stall($n);
    } else {
        $ev{'idle spells (heartbeats only)'}++;
        sleep 0.5 + rand 1.5;
    }
    serves($n, $e);
}

# SIGSTOP of a worker for longer than interval + failed (it is dropped, and
# loses its singletons), then SIGCONT (it is counted again, its lost
# singletons stop first)
sub stall {
    my ($n) = @_;
    my @w = $n->worker_pids;
    return unless @w;
    my $victim = $w[ int rand @w ];
    kill 'STOP', $victim or return;
    $fault{'stalls (SIGSTOP 3.5 s, then SIGCONT)'}++;
    sleep 3.5;
    kill 'CONT', $victim;
    sleep 0.5 + rand 1;
}

# stop the node: QUIT, TERM, or QUIT with a kill -9 during the stop
sub stop {
    my ($n) = @_;
    my $how = pick(QUIT => 45, TERM => 35, 'QUIT + kill' => 20);
    if ($how eq 'TERM') {
        $n->signal('TERM');
        $ev{'stops: TERM (exit hook)'}++;
    } else {
        $n->signal('QUIT');
        $ev{'stops: QUIT'}++;
        if ($how eq 'QUIT + kill') {
            sleep rand 0.1;
            kill_random($n, 'during a stop');
        }
    }
    # (45 s: a master stalled for the lock's 30 s expiry, see below, takes
    # the signal late)
    return $n->wait_exit(45);
}

# reloads the master took >= 20 s to start (HUP received -> master start):
# the master waited for the lock's 30 s expiry (t/37-kill-windows.t)
sub stalls {
    my ($n, $since) = @_;
    my @s;
    my $hup;
    for my $e ($n->grep_log(qr/signal 1 \(SIGHUP\) received|\bWMCB master_start id=/, since => $since)) {
        if ($e->{text} =~ /SIGHUP/) { $hup //= $e; next }
        next unless $hup;
        my ($a, $b) = map { WorkerManager::Check::_epoch($_->{time}) } $hup, $e;
        push @s, sprintf('reload at #%d: master start %d s after the HUP', $hup->{idx}, $b - $a) if $b - $a >= 20;
        undef $hup;
    }
    return @s;
}

# the checker on one lifetime
sub check_lifetime {
    my ($n, $since, $label) = @_;
    my $r = checker_errors($n, since => $since, complete => 0);
    my @c = $n->callbacks(since => $since);
    $seen{callbacks} += @c;
    $seen{generations} += grep { $_->{event} eq 'master_start' } @c;
    $seen{'master exits'} += grep { $_->{event} eq 'master_exit' } @c;
    $seen{'crash callbacks (on_crash)'} += grep { $_->{event} eq 'crash' } @c;
    $seen{'drops reported by the module'} += drops($n, since => $since);
    $seen{"'crashed while starting' reports"} += $n->grep_log(qr/crashed while starting/, since => $since);
    $seen{'lock takeovers from a dead holder'} += $n->grep_log(qr/took over the node lock/, since => $since);
    $seen{'lock intervals checked'} += $r->{intervals};
    $seen{"notes: generation ended, nobody left to notice"} += @{ $r->{notes} };
    my $bad = 0;
    $seen{'singleton starts'} += $n->grep_log(qr/WMSJ-ENTER start /, since => $since);
    $seen{'singleton stops'} += $n->grep_log(qr/WMSJ-ENTER stop /, since => $since);
    $seen{"singleton stops for \"$_\""} += $n->grep_log(qr/WMSJ-ENTER stop .* reason=$_ /, since => $since)
        for qw(reload stop exit lost);
    $seen{'singleton runs (every)'} += $n->grep_log(qr/WMSJ-ENTER fn /, since => $since);
    for my $part (qw(lifecycle model lock invariants singletons)) {
        my @e = @{ $r->{$part} };
        next unless @e;
        $bad++;
        my $more = @e > 8 ? sprintf("\n      ... %d more", @e - 8) : '';
        violation($part, "$label: " . scalar(@e) . " finding(s)\n" . join("\n", map { "      $_" } @e[0 .. ($#e < 7 ? $#e : 7)]) . $more,
                  scalar @e);
    }
    for my $new (@{ $n->{soak_new_binaries} // [] }) {
        my $w = $n->foreign_node($new, opts => $OPTS);
        my $rn = checker_errors($w, complete => 1);
        $seen{callbacks} += () = $w->callbacks;
        $seen{'new binaries checked, each as a node of its own'}++;
        for my $part (qw(lifecycle model lock invariants singletons)) {
            my @e = @{ $rn->{$part} };
            next unless @e;
            $bad++;
            violation($part, "$label, the new binary $new: " . scalar(@e) . " finding(s)\n" . join("\n", map { "      $_" } @e[0 .. ($#e < 7 ? $#e : 7)]),
                      scalar @e);
        }
    }
    $n->{soak_new_binaries} = [];
    if ($bad) {
        $outdir //= tempdir("wm-soak-$SEED-XXXXXX", DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp', CLEANUP => 0);
        my $f = "$outdir/lifetime-$lifetimes.error.log";
        copy($n->errlog, $f);
        push @report, "      log: $f (lifetime from entry #$since)";
        print "      log kept: $f\n";
    }
    return !$bad;
}

# ------------------------------------------------------------------ main
my $n;
while (time < $END) {
    if (!$n) {
        my $w = $opt{'min-workers'} + int rand($opt{'max-workers'} - $opt{'min-workers'} + 1);
        my $no_cache = rand() < 0.2;
        $n = WorkerManager::Nginx->new(workers => $w, exit_hook => 1, opts => $OPTS, shm_size => $opt{'shm-size'},
                                       init_worker_after => $SINGLETONS,
                                       $no_cache ? (http_extra => 'lua_code_cache off;', server_extra => $STATUS) : ());
        $n->{soak_no_cache} = $no_cache;
        $ev{'nodes (fresh shm)'}++;
        $ev{'nodes with lua_code_cache off'}++ if $no_cache;
    }
    my $since = $n->mark;
    my $ok = eval { $n->start(timeout => 20); 1 };
    if (!$ok) {
        violation('harness', "node did not start: $@");
        $n->cleanup;
        undef $n;
        next;
    }
    $lifetimes++;
    my $label = sprintf 'lifetime %d (%d workers, %s)', $lifetimes, $n->workers, $n->prefix;
    say_v(elapsed(), "  start $label");
    my $life_end = time + 6 + rand 14;
    $life_end = $END if $life_end > $END;
    eval {
        event($n) while time < $life_end;
        1;
    } or violation('harness', "$label: $@");
    my $stopped = stop($n);
    if (!$stopped) {
        if (my $frozen = $n->frozen) {
            # t/37-kill-windows.t: a worker killed holding the dict's mutex
            # while the master, in on_init_by_lua of a reload, waits for it
            violation('frozen', "$label: the node is frozen: $frozen");
        } else {
            violation('stop', "$label: nginx did not stop within 45 s");
        }
    }
    if (my @st = stalls($n, $since)) {
        violation('stall', "$label: the master was blocked >= 20 s in a reload (the lock's expiry)\n"
                  . join("\n", map { "      $_" } @st), scalar @st);
    }
    check_lifetime($n, $since, $label);
    say_v(elapsed(), "  checked $label");
    if (time < $END && rand() < 0.5 && $stopped) {
        $ev{'restarts (same prefix, new shm)'}++;    # the next lifetime on the same node
    } else {
        $n->cleanup;
        undef $n;
    }
}
$n->cleanup if $n;

# ------------------------------------------------------------------ summary
my $total_viol = 0;
$total_viol += $_ for values %viol;
my @rows;
push @rows, ['events', 'node lifetimes', $lifetimes];
push @rows, ['events', $_, $ev{$_}] for sort keys %ev;
push @rows, ['faults', $_, $fault{$_}] for sort keys %fault;
push @rows, ['seen', $_, $seen{$_} // 0] for sort keys %seen;
push @rows, ['checks', 'lifetimes checked (lifecycle, exact model, lock, run invariants, singletons)', $lifetimes];
my %what = (lifecycle => 'lifecycle (lifetimes with findings)', model => 'exact model (lifetimes with findings)',
            lock => 'lock (lifetimes with findings)', invariants => 'run invariants (lifetimes with findings)',
            singletons => 'singletons: one holder (lifetimes with findings)',
            serve => 'GET /ping failed twice', stop => 'node did not stop in 45 s',
            stall => 'master blocked >= 20 s in a reload', frozen => 'node frozen (master on a dead holder\'s shm mutex)',
            harness => 'start failed / driver error');
push @rows, ['violations', $what{$_} . ($nfind{$_} && $nfind{$_} != $viol{$_} ? ", $nfind{$_} findings" : ''), $viol{$_} // 0]
    for qw(lifecycle model lock invariants singletons serve stall frozen stop harness);
push @rows, ['violations', 'total', $total_viol];
my $w1 = 10;
my $w2 = 0;
$w2 < length $_->[1] and $w2 = length $_->[1] for @rows;
my $line = sprintf "+-%s-+-%s-+-%s-+\n", '-' x $w1, '-' x $w2, '-' x 7;
print "\n", $line;
printf "| %-*s | %-*s | %7s |\n", $w1, 'kind', $w2, 'what', 'count';
print $line;
my $last = '';
for my $r (@rows) {
    print $line if $last && $r->[0] ne $last;
    printf "| %-*s | %-*s | %7d |\n", $w1, ($r->[0] eq $last ? '' : $r->[0]), $w2, $r->[1], $r->[2];
    $last = $r->[0];
}
print $line;
printf "soak %s: %.0f s, seed %d, %d lifetimes, %d violation(s)\n",
    $total_viol ? 'FAILED' : 'passed', time - $T0, $SEED, $lifetimes, $total_viol;
if (@report) {
    print "\nviolations:\n", map { "  $_\n" } @report;
    print "logs kept in $outdir\n" if $outdir;
}
exit($total_viol ? 1 : 0);
