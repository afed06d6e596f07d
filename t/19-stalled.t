# Workers that stop beating but live (SIGSTOP, a long busy request), with
# interval = 1, failed = 1: the module drops them as "no heartbeat for Xs"
# (ERR + on_crash) after about interval + failed, but remembers them as
# stalled: their generation gets no master exit while one of them still runs.
# When one runs again it is counted again (WARN), or, if it is exiting, exits
# as the last of its generation; either way exactly one master exit per
# generation.  Also: a stalled worker that is then killed lets a worker of a
# newer generation close its generation.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 1, on_crash = wm.rec("crash") }';
# the module's note that a dropped worker is back: counted again (older
# wording "was dropped as crashed but is alive", newer "is alive but was not
# counted ...: restored slot S"), or exiting after the drop
my $AGAIN = '(?:was dropped as crashed but is alive|is alive but was not counted)';
my $BACK = qr/\[worker-manager\] worker (\S+) (?:$AGAIN|exits after it was dropped for a late heartbeat)/;

sub end_ok {
    my ($n, $label, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    # (a stopped worker's missed heartbeats, and its recount when it beats again)
    no_errors_ok($n, "[$label] no errors but the module's reports", $MISSED_RE, $RECOUNT_RE, @allow);
}

# SIGSTOP $v; wait for its "no heartbeat" drop; check it; returns the drop.
sub stop_and_drop {
    my ($n, $label, $v, $finder, $prev, $mine, $next) = @_;
    my $mark = $n->mark;
    my $t0 = time;
    $n->kill_worker($v->{pid}, 'STOP');
    my ($cr) = $n->wait_log(qr/\bWMCB crash id=\Q$v->{id}\E /, since => $mark, desc => "[$label] on_crash for the stopped $v->{id}");
    my ($enter) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'crash' } $n->enter_leave(since => $mark);
    note sprintf "[%s] SIGSTOP -> reported (on_crash entered): %.3f s (interval 1 + failed 1 = 2 s, plus up to a beat)",
        $label, $enter->{t} - $t0;
    my ($d) = drops($n, since => $mark, wid => $v->{id});
    ok($d, "[$label] the module drops the stopped $v->{id}");
    if ($d) {
        like($d->{cause}, qr/^no heartbeat for \d+(?:\.\d+)?s$/, "[$label] ... cause: $d->{cause}");
        is($d->{level}, 'error', "[$label] ... at ERR");
        like($d->{line}, qr/\(pid $v->{pid}, slot $v->{slot}\)/, "[$label] ... naming pid and slot");
        is($d->{logpid}, $finder->{pid}, "[$label] ... found by $finder->{id}") if $finder;
    }
    my ($c) = grep { $_->{id} eq $v->{id} } $n->callbacks(since => $mark, event => 'crash');
    cb_is($c, [$v->{id}, $prev, $mine, $next], "[$label] on_crash($v->{id}, $prev, $mine, $next)");
    return $d;
}

# --- STOP, (no master exit), CONT -> counted again, then QUIT
{
    my $label = 'STOP, CONT, QUIT';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($b, $a) = sort { $a->{slot} <=> $b->{slot} } $n->callbacks(event => 'worker_start');
    stop_and_drop($n, $label, $a, $b, 'nil', 1, 'nil');
    my $smark = $n->mark;    # after its on_crash
    ok(!$n->absent_for(qr/\bWMCB (?:master_exit|crash) /, 2.5, since => $smark),
       "[$label] while it is stopped: no master exit, no second report (2 heartbeats)");
    my $mark = $n->mark;
    $n->kill_worker($a->{pid}, 'CONT');
    my ($w) = $n->wait_log(qr/\[worker-manager\] worker \Q$a->{id}\E $AGAIN/,
                           since => $mark, desc => "[$label] $a->{id} counted again after SIGCONT");
    is($w->{level}, 'warn', "[$label] ... at WARN");
    is($w->{pid}, $a->{pid}, "[$label] ... by itself");
    is(scalar $n->callbacks(event => 'crash'), 1, "[$label] on_crash ran once in all");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] exits 2, 1: it is counted again");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, qr/\b\Q$a->{id}\E\b.*no heartbeat/);
}

# --- STOP, then HUP (gen 1 must stay open), then CONT: the stopped worker
# exits last and runs gen 1's master exit, once
{
    my $label = 'STOP, HUP, CONT';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($b, $a) = sort { $a->{slot} <=> $b->{slot} } $n->callbacks(event => 'worker_start');
    stop_and_drop($n, $label, $a, $b, 'nil', 1, 'nil');
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB worker_exit id=\Q$b->{id}\E /, since => $mark, desc => "[$label] the running gen-1 worker exits");
    my ($bx) = grep { $_->{id} eq $b->{id} } $n->callbacks(since => $mark, event => 'worker_exit');
    cb_is($bx, [$b->{id}, 'nil', 1, $bx ? counted_at($n, 2, $bx->{idx}) : undef],
          "[$label] worker_exit($b->{id}, nil, 1, n_next): the stopped one is not counted");
    ok(!$n->absent_for(qr/\bWMCB master_exit id=1 /, 3, since => $mark),
       "[$label] no master exit of gen 1 while $a->{id} is stopped (3 heartbeats of gen 2)");
    my $cmark = $n->mark;
    $n->kill_worker($a->{pid}, 'CONT');
    my ($me) = $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $cmark, desc => "[$label] master_exit of gen 1 after SIGCONT");
    my ($back) = $n->grep_log($BACK, since => $cmark);
    ok($back, "[$label] the module notes it is back: " . ($back ? $back->{text} =~ s/.*\[worker-manager\] //r : 'nothing'));
    my @c = $n->callbacks(since => $cmark);
    note "[$label] after SIGCONT:\n" . cbs_str(@c);
    my $ax = exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker_exit after SIGCONT");
    cb_is($ax, [$a->{id}, 'nil', 1, 2], "[$label] worker_exit($a->{id}, nil, 1, 2)");
    my $m = exactly_one([$n->callbacks(event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($m, [1, 'nil', 0, 2], "[$label] master_exit(1, nil, 0, 2)");
    ok($m && $ax && $m->{idx} > $ax->{idx} && $m->{logpid} eq $a->{pid},
       "[$label] ... after $a->{id}'s own worker_exit, in its process") if $m;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/\b\Q$a->{id}\E\b.*no heartbeat/);
}

# --- STOP, then QUIT: nginx waits for the stopped worker; after CONT it exits
# last and runs the master exit, once
{
    my $label = 'STOP, QUIT, CONT';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($b, $a) = sort { $a->{slot} <=> $b->{slot} } $n->callbacks(event => 'worker_start');
    stop_and_drop($n, $label, $a, $b, 'nil', 1, 'nil');
    my $mark = $n->mark;
    $n->signal('QUIT');
    $n->wait_log(qr/\bWMCB worker_exit id=\Q$b->{id}\E /, since => $mark, desc => "[$label] the running worker exits");
    $n->wait_until(sub { !$n->alive($b->{pid}) }, desc => "[$label] $b->{id} gone");
    is(scalar $n->callbacks(since => $mark, event => 'master_exit'), 0, "[$label] no master exit while $a->{id} is stopped");
    my $cmark = $n->mark;
    $n->kill_worker($a->{pid}, 'CONT');
    ok($n->wait_exit, "[$label] nginx stops after SIGCONT");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    cb_is($we[0], [$b->{id}, 'nil', 1, 'nil'], "[$label] worker_exit($b->{id}, nil, 1, nil)");
    cb_is($we[1], [$a->{id}, 'nil', 1, 'nil'], "[$label] worker_exit($a->{id}, nil, 1, nil)");
    my $m = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($m, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is($m->{logpid}, $a->{pid}, "[$label] ... in the worker that was stopped") if $m;
    ok(scalar $n->grep_log($BACK, since => $cmark), "[$label] the module notes it is back");
    end_ok($n, $label, qr/\b\Q$a->{id}\E\b.*no heartbeat/);
}

# --- STOP, HUP, then kill -9 of the stopped worker: gen 1's last worker died
# after it was dropped; a gen-2 worker closes gen 1, once; no second on_crash
{
    my $label = 'STOP, HUP, KILL';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($b, $a) = sort { $a->{slot} <=> $b->{slot} } $n->callbacks(event => 'worker_start');
    stop_and_drop($n, $label, $a, $b, 'nil', 1, 'nil');
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB worker_exit id=\Q$b->{id}\E /, since => $mark, desc => "[$label] the running gen-1 worker exits");
    my $kmark = $n->mark;
    $n->kill_worker($a->{pid}, 'KILL');
    my ($me) = $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $kmark, desc => "[$label] master_exit of gen 1 after the kill");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my $m = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($m, [1, 'nil', 0, 2], "[$label] master_exit(1, nil, 0, 2)");
    my ($finder) = grep { $_->{pid} eq $m->{logpid} } $n->callbacks(event => 'worker_start', gen => 2);
    ok($finder, "[$label] ... run in a gen-2 worker");
    ok(scalar $n->grep_log(qr/generation 1 lost its last worker without an exit/, since => $kmark),
       "[$label] ... on behalf of gen 1 (the module says so)");
    is(scalar $n->callbacks(event => 'crash'), 1, "[$label] on_crash once in all for $a->{id}");
    is(scalar drops($n, wid => $a->{id}), 1, "[$label] dropped once in all");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/\b\Q$a->{id}\E\b.*no heartbeat/, qr/exited on signal 9/);
}

# --- the scenario of issue #3: failed = 1; both gen-1 workers busy for 4 s
# when the HUP arrives; one of them killed -9.  The survivor overruns its
# heartbeat and is dropped as stalled, but gen 1's master exit must come only
# after the survivor's own worker_exit, exactly once.
{
    my $label = 'busy old generation, one killed';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my @socks = $n->block_workers(4000);
    my $mark = $n->reload;
    my ($victim, $survivor) = @gen1;
    $n->kill_worker($victim->{pid}, 'KILL');
    $n->wait_log(qr/\bWMCB crash id=\Q$victim->{id}\E /, since => $mark, desc => "[$label] the killed one is reported");
    my ($sd) = $n->wait_log(qr/\Q$survivor->{id}\E \(pid \d+, slot \d+\) crashed: no heartbeat/, since => $mark,
                            desc => "[$label] the busy survivor is dropped for its late heartbeat");
    $n->finish($_) for @socks;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] gen-1 workers gone");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    note "[$label] module lines:\n" . join '', map { "  #$_->{idx} $_->{line}\n" } $n->grep_log(qr/\[worker-manager\]/, since => $mark);
    my ($vd) = drops($n, since => $mark, wid => $victim->{id});
    like($vd->{cause}, qr/^its process is gone/, "[$label] the killed one: its process is gone") if $vd;
    my @cr = select_cbs(\@c, event => 'crash');
    is(scalar(grep { $_->{id} eq $victim->{id} } @cr), 1, "[$label] on_crash once for the killed one");
    is(scalar(grep { $_->{id} eq $survivor->{id} } @cr), 1, "[$label] on_crash once for the stalled survivor");
    cb_is($_, [undef, 'nil', undef, 2], "[$label] on_crash($_->{id}, nil, $_->{mine}, 2)") for @cr;
    is(sorted_field('mine', @cr), '0,1', "[$label] on_crash counts after each drop: 1 then 0");
    my ($sx) = grep { $_->{id} eq $survivor->{id} } select_cbs(\@c, event => 'worker_exit');
    cb_is($sx, [$survivor->{id}, 'nil', 1, 2], "[$label] the survivor's worker_exit($survivor->{id}, nil, 1, 2)");
    my $m = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($m, [1, 'nil', 0, 2], "[$label] master_exit(1, nil, 0, 2)");
    ok($m && $sx && $m->{idx} > $sx->{idx}, "[$label] ... only after the survivor's own worker_exit") if $m;
    is($m->{logpid}, $survivor->{pid}, "[$label] ... in the survivor") if $m;
    ok(!grep({ $_->{id} eq $victim->{id} } select_cbs(\@c, event => 'worker_exit')), "[$label] nothing exits for the killed one");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/exited on signal 9/, qr/\b\Q$victim->{id}\E\b/, qr/\b\Q$survivor->{id}\E\b.*no heartbeat/);
}

done_testing;
