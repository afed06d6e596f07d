# kill -9 of idle workers (nothing running, lock free): nginx respawns the
# slot; the respawned worker's start still counts the dead one, the module
# drops it right after (ERR naming pid and worker id) and calls
# opts.on_crash(dead_id, n_prev, n_mine after the drop, n_next) exactly once,
# in the respawned worker.  The reap latency (kill -> on_crash entered) is
# noted, not asserted.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';

sub end_ok {
    my ($n, $label, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    no_errors_ok($n, "[$label] no errors but the kills and the module's reports of them", qr/exited on signal 9/, @allow);
}

# kill the given start callbacks' workers at once; wait for each respawn's
# crash report; returns { victim wid => { victim, new, drop, crash, latency } }
sub kill_idle {
    my ($n, $label, @victims) = @_;
    my $mark = $n->mark;
    my $t0 = time;
    $n->kill_worker($_->{pid}, 'KILL') for @victims;
    my %r;
    for my $v (@victims) {
        my ($crash) = $n->wait_log(qr/\bWMCB crash id=\Q$v->{id}\E /, since => $mark,
                                   desc => "[$label] on_crash for $v->{id}");
        my ($enter) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'crash' && $_->{id} eq $v->{id} }
                      $n->enter_leave(since => $mark);
        my $lat = $enter ? $enter->{t} - $t0 : undef;
        note sprintf "[%s] reap latency of %s (kill -9 -> on_crash entered): %.3f s",
            $label, $v->{id}, $lat // -1;
        my ($c) = grep { $_->{id} eq $v->{id} } $n->callbacks(since => $mark, event => 'crash');
        my ($d) = drops($n, since => $mark, wid => $v->{id});
        my ($new) = grep { $_->{pid} eq $c->{logpid} } $n->callbacks(since => $mark, event => 'worker_start');
        $r{ $v->{id} } = { victim => $v, crash => $c, drop => $d, new => $new, latency => $lat };
    }
    return \%r;
}

# --- 2 workers: kill the idle worker in slot 0
{
    my $label = '2 workers';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($victim) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my $r = kill_idle($n, $label, $victim)->{ $victim->{id} };
    my ($new, $drop, $crash) = @$r{qw(new drop crash)};
    ok($new, "[$label] the on_crash callback ran in a respawned worker");
    cb_is($new, ["1-$new->{pid}", 'nil', 3, 'nil'], "[$label] respawned worker_start(1-<pid>, nil, 3, nil): counts the dead one");
    is($new->{slot}, '0', "[$label] ... in the dead worker's slot");
    is($new->{count}, 2, "[$label] ... n_mine 3 > ngx.worker.count() 2");
    ok($drop, "[$label] the module reports the drop");
    is($drop->{level}, 'error', "[$label] ... at ERR") if $drop;
    like($drop->{line}, qr/worker 1-$victim->{pid} \(pid $victim->{pid}, slot 0\) crashed: nginx respawned its slot as 1-$new->{pid}; dropped from the counts, 2 left in generation 1\b/,
         "[$label] ... naming worker id, pid, slot and the successor") if $drop;
    is($drop->{left}, 2, "[$label] ... 2 left in generation 1") if $drop;
    is($drop->{logpid}, $new->{pid}, "[$label] ... logged by the respawned worker") if $drop;
    cb_is($crash, ["1-$victim->{pid}", 'nil', 2, 'nil'], "[$label] on_crash(1-<dead pid>, nil, 2, nil): counts after the drop");
    ok($new->{idx} < $drop->{idx} && $drop->{idx} < $crash->{idx},
       "[$label] order: respawned worker_start, drop report, on_crash") if $drop && $crash;
    my @crashes = $n->callbacks(event => 'crash');
    is(scalar @crashes, 1, "[$label] on_crash ran exactly once");
    is(scalar $n->get('/ping'), 200, "[$label] serves");

    # a heartbeat round later nothing more is reported
    ok(!$n->absent_for(qr/\bWMCB crash |crashed: /, 2.5, since => $crash->{idx} + 1),
       "[$label] no further crash report over 2 heartbeats");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(sorted_field('mine', @we), '1,2', "[$label] exits mine 2 and 1: the dead worker no longer counted");
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] ... in that order");
    cb_is($_, [undef, 'nil', undef, 'nil'], "[$label] worker_exit($_->{id}, nil, $_->{mine}, nil)") for @we;
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is(scalar $n->callbacks(event => 'crash'), 1, "[$label] still one on_crash in all");
    end_ok($n, $label, qr/\b1-$victim->{pid}\b/);
}

# --- 1 worker: kill the only worker
{
    my $label = '1 worker';
    my $n = WorkerManager::Nginx->new(workers => 1, opts => $OPTS);
    $n->start;
    my ($victim) = $n->callbacks(event => 'worker_start');
    my $r = kill_idle($n, $label, $victim)->{ $victim->{id} };
    my ($new, $drop, $crash) = @$r{qw(new drop crash)};
    cb_is($new, ["1-$new->{pid}", 'nil', 2, 'nil'], "[$label] respawned worker_start(1-<pid>, nil, 2, nil)");
    is($new->{count}, 1, "[$label] ... ngx.worker.count() 1");
    is($drop->{left}, 1, "[$label] drop report: 1 left") if $drop;
    cb_is($crash, ["1-$victim->{pid}", 'nil', 1, 'nil'], "[$label] on_crash(1-<dead pid>, nil, 1, nil)");
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker_exit"),
          ["1-$new->{pid}", 'nil', 1, 'nil'], "[$label] worker_exit(1-<new pid>, nil, 1, nil)");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, qr/\b1-$victim->{pid}\b/);
}

# --- generation 2 (after a reload): n_prev is 0, not nil; a further reload counts right
{
    my $label = 'after a reload';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] gen-1 workers gone");
    my ($victim) = grep { $_->{slot} eq '1' } $n->callbacks(since => $mark, event => 'worker_start', gen => 2);
    my $r = kill_idle($n, $label, $victim)->{ $victim->{id} };
    my ($new, $drop, $crash) = @$r{qw(new drop crash)};
    cb_is($new, ["2-$new->{pid}", 0, 3, 'nil'], "[$label] respawned worker_start(2-<pid>, 0, 3, nil)");
    is($new->{slot}, '1', "[$label] ... slot 1");
    cb_is($crash, ["2-$victim->{pid}", 0, 2, 'nil'], "[$label] on_crash(2-<dead pid>, 0, 2, nil)");

    $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=2 /, since => $mark, desc => "[$label] master_exit of gen 2");
    my @c = $n->callbacks(since => $mark);
    note "[$label] second HUP:\n" . cbs_str(@c);
    cb_is((select_cbs(\@c, event => 'master_start'))[0], [3, 2, 0, 'nil'], "[$label] master_start(3, 2, 0, nil)");
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit', gen => 2)), '2,1',
       "[$label] gen-2 exits mine 2 then 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit', gen => 2)], "[$label] one master_exit for gen 2"),
          [2, 0, 0, undef], "[$label] master_exit(2, 0, 0, .)");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] gen-2 workers gone");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [3, 0, 0, 'nil'], "[$label] master_exit(3, 0, 0, nil)");
    end_ok($n, $label, qr/\b2-$victim->{pid}\b/);
}

# --- 3 workers, all killed at once: three respawns, three reports
{
    my $label = 'all 3 at once';
    my $n = WorkerManager::Nginx->new(workers => 3, opts => $OPTS);
    $n->start;
    my @victims = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my $r = kill_idle($n, $label, @victims);
    $n->wait_log(qr/WMREADY /, since => $mark, count => 3, desc => "[$label] 3 respawned workers ready");
    my @ws = $n->callbacks(since => $mark, event => 'worker_start');
    is(scalar @ws, 3, "[$label] three respawned worker starts");
    # each respawn counts its own dead predecessor and the not yet replaced ones
    cb_is($_, [undef, 'nil', 4, 'nil'], "[$label] respawned worker_start($_->{id}, nil, 4, nil)") for @ws;
    for my $v (@victims) {
        my $x = $r->{ $v->{id} };
        cb_is($x->{crash}, [$v->{id}, 'nil', 3, 'nil'], "[$label] on_crash($v->{id}, nil, 3, nil)");
        is($x->{new} && $x->{new}{slot}, $v->{slot}, "[$label] ... reported by the worker respawned in its slot $v->{slot}");
    }
    is(scalar $n->callbacks(event => 'crash'), 3, "[$label] on_crash ran 3 times in all");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '3,2,1', "[$label] exits mine 3, 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, map { qr/\b\Q$_->{id}\E\b/ } @victims);
}

done_testing;
