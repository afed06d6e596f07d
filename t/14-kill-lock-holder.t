# kill -9 of a worker inside a slow callback, i.e. while it holds the
# node-wide lock.  The lock's owner is dead, so the next waiter takes it over
# at once (WARN "took over the node lock from dead process P") instead of
# waiting for its 30 s expiry, and everything queued behind it proceeds.
# Only the order is asserted (kill -> take-over -> the others' callbacks);
# latencies are noted.  Timeouts are generous (20 s, below the lock expiry).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = %s }';
my $CRASH = 'wm.rec("crash")';

sub end_ok {
    my ($n, $label, %o) = @_;
    # (lock: the killed holder's hold ends with its death)
    checker_ok($n, label => $label, on_crash => 1, complete => 1, killed => $o{killed} // 1);
    no_errors_ok($n, "[$label] no errors but the kill, the takeover of its lock and the module's report of it",
                 qr/exited on signal 9/, $TAKEOVER_RE, @{ $o{allow} // [] });
}

# Kill the process in the slow callback whose WMCB line matches $re (logged
# before the slow part, so the callback has surely begun); wait for the
# take-over and for a callback of another process to be entered.
# Returns (holder pid, take-over entry, next ENTER).
sub kill_holder {
    my ($n, $label, $re, $mark) = @_;
    my ($enter) = $n->wait_log($re, since => $mark, desc => "[$label] the slow callback entered");
    my ($pid) = $enter->{text} =~ /\bpid=(\d+)/;
    my $kmark = $n->mark;
    my $t0 = time;
    $n->kill_worker($pid, 'KILL');
    my ($take) = $n->wait_log(qr/took over the node lock from dead process $pid\b/, since => $kmark,
                              desc => "[$label] a waiter takes over the dead holder's lock");
    my ($next) = $n->wait_until(sub {
        (grep { $_->{kind} eq 'ENTER' && $_->{pid} ne $pid } $n->enter_leave(since => $kmark))[0] },
        desc => "[$label] another callback runs after the kill");
    note sprintf "[%s] kill -9 of the holder (pid %d) -> next callback entered (%s in pid %s): %.3f s",
        $label, $pid, $next->{event}, $next->{pid}, $next->{t} - $t0;
    is($take->{level}, 'warn', "[$label] the take-over is logged at WARN");
    ok($take->{idx} < $next->{idx}, "[$label] order: kill, take-over, next callback");
    return ($pid, $take, $next);
}

# --- a new generation's worker_start is slow and killed; gen 1 exits,
# the other new worker and the respawned one queue behind it
{
    my $label = 'reload, slow worker_start';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => sprintf($OPTS, $CRASH),
                                      http_extra => 'lua_shared_dict wm_test 64k;');
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    # (marked before the HUP: under load the new workers may log their
    # starts before this process gets to run again)
    my $mark = $n->mark;
    $n->reload_conf(worker_start => 'wm.rec("worker_start", { slow = 15000, when = function(id) '
                                   . 'return id:match("^2%-") and wm.once("start")() end })');
    my ($pid) = kill_holder($n, $label, qr/\bWMCB worker_start id=2-/, 0);
    my $dead = "2-$pid";
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    my ($cr) = $n->wait_log(qr/\bWMCB crash id=\Q$dead\E /, since => $mark, desc => "[$label] on_crash for $dead");
    $n->wait_log(qr/WMREADY .*confv=1/, since => $mark, count => 2, desc => "[$label] two gen-2 workers ready");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my ($killed) = grep { $_->{wpid} eq $pid } select_cbs(\@c, event => 'worker_start');
    my ($crash) = select_cbs(\@c, event => 'crash');
    my ($resp) = grep { $_->{pid} eq $crash->{logpid} } select_cbs(\@c, event => 'worker_start', gen => 2);
    ok($resp && $resp->{slot} eq $killed->{slot}, "[$label] nginx respawned the killed worker's slot $killed->{slot}");
    # every gen-2 worker counted before it (the dead one among them) + itself
    my $before = $resp ? grep({ $_->{idx} < $resp->{idx} } select_cbs(\@c, event => 'worker_start', gen => 2)) : 0;
    is($resp && $resp->{mine}, $before + 1, "[$label] the respawned worker's start still counts the dead one "
       . "(n_mine = $before started before it, the dead one included, + itself)");
    cb_is($crash, [$dead, $resp ? $resp->{prev} : undef, $resp ? $resp->{mine} - 1 : undef, 'nil'],
          "[$label] on_crash($dead, n_prev as in the respawned start, its n_mine - 1, nil) in the respawned worker");
    is(scalar select_cbs(\@c, event => 'crash'), 1, "[$label] on_crash exactly once");
    is(scalar select_cbs(\@c, event => 'worker_exit', gen => 1), 2, "[$label] both gen-1 workers exit");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] one master_exit for gen 1"),
          [1, 'nil', 0, undef], "[$label] master_exit(1, nil, 0, .)");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] gen-1 workers gone");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] gen-2 exits 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, allow => [qr/\b\Q$dead\E\b/]);
}

# --- an old worker's worker_exit is slow and killed: it had left the counts
# when its exit began, so the other old worker is the last: its exit sees
# mine=1 and runs the master exit; nothing reports the killed one as crashed
# (its exit was delivered; it is not counted twice)
{
    my $label = 'reload, slow worker_exit';
    my $n = WorkerManager::Nginx->new(
        workers     => 2, opts => sprintf($OPTS, $CRASH),
        http_extra  => 'lua_shared_dict wm_test 64k;',
        worker_exit => 'wm.rec("worker_exit", { slow = 15000, when = wm.once("exit") })',
    );
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    # no waiting for the new workers: one of them may queue behind the slow exit
    my $mark = $n->reload(wait => 0);
    my ($pid) = kill_holder($n, $label, qr/\bWMCB worker_exit id=1-/, $mark);
    my ($other) = grep { $_->{pid} ne $pid } @gen1;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    # n_next: the gen-2 workers counted by then (a gen-2 worker may still
    # queue behind the slow exit)
    my $g2 = sub { my $c = shift; $c ? counted_at($n, 2, $c->{idx}) : undef };
    my ($hx) = grep { $_->{wpid} eq $pid } select_cbs(\@c, event => 'worker_exit');
    my ($ox) = grep { $_->{id} eq $other->{id} } select_cbs(\@c, event => 'worker_exit');
    cb_is($hx, ["1-$pid", 'nil', 2, $g2->($hx)], "[$label] the killed holder's worker_exit(1-$pid, nil, 2, n_next) had begun");
    cb_is($ox, [$other->{id}, 'nil', 1, $g2->($ox)], "[$label] the other's worker_exit($other->{id}, nil, 1, n_next)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, $g2->($me)], "[$label] master_exit(1, nil, 0, n_next), n_next a number");
    is($me->{logpid}, $other->{pid}, "[$label] ... in the other gen-1 worker") if $me;
    # a few heartbeats later still nobody reports the killed holder
    ok(!$n->absent_for(qr/\bWMCB crash |crashed: /, 2.5, since => $mark),
       "[$label] no crash report for a worker whose exit had begun (2 heartbeats)");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label);
}

# --- the on_crash callback itself is slow and killed: the worker respawned
# after that reports its predecessor (the one killed inside on_crash), once
{
    my $label = 'slow on_crash';
    my $n = WorkerManager::Nginx->new(workers => 2,
        opts => sprintf($OPTS, 'wm.rec("crash", { slow = 15000, when = wm.once("crash") })'),
        http_extra => 'lua_shared_dict wm_test 64k;');
    $n->start;
    my ($first) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->kill_worker($first->{pid}, 'KILL');
    my ($pid) = kill_holder($n, $label, qr/\bWMCB crash id=\Q$first->{id}\E /, $mark);
    my $second = "1-$pid";
    $n->wait_log(qr/\bWMCB-LEAVE crash id=\Q$second\E /, since => $mark, desc => "[$label] on_crash for $second done");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after the kills:\n" . cbs_str(@c);
    my @ws = select_cbs(\@c, event => 'worker_start');
    is(scalar @ws, 2, "[$label] two respawns in slot 0");
    cb_is($ws[0], ["1-$pid", 'nil', 3, 'nil'], "[$label] first respawn worker_start(1-$pid, nil, 3, nil)");
    cb_is($ws[1], [undef, 'nil', 3, 'nil'], "[$label] second respawn worker_start(., nil, 3, nil): counts the one killed in on_crash");
    my @cr = select_cbs(\@c, event => 'crash');
    cb_is($cr[0], [$first->{id}, 'nil', 2, 'nil'], "[$label] on_crash($first->{id}, nil, 2, nil) (killed inside)");
    cb_is($cr[1], [$second, 'nil', 2, 'nil'], "[$label] on_crash($second, nil, 2, nil) in the second respawn");
    is(scalar @cr, 2, "[$label] on_crash once per dead worker");
    is($cr[1]{logpid}, $ws[1]{pid}, "[$label] ... the second in the second respawn") if $cr[1] && $ws[1];
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] exits 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, allow => [qr/\b\Q$first->{id}\E\b/, qr/\b\Q$second\E\b/]);
}

# --- a respawned worker killed inside its own (slow) start callback, i.e.
# before it dropped its dead predecessor: the next respawn in that slot must
# leave both dead workers out of the counts (the contract: from its start on,
# n_mine matches reality), report each once, and a QUIT must still end with
# exactly one master exit
{
    my $label = 'respawn killed in its start';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => sprintf($OPTS, $CRASH),
        http_extra   => 'lua_shared_dict wm_test 64k;',
        worker_start => 'wm.rec("worker_start", { slow = 15000, '
                      . 'when = function(id, p, mine) return mine > ngx.worker.count() and wm.once("respawn")() end })');
    $n->start;
    my ($first) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->kill_worker($first->{pid}, 'KILL');
    my ($pid) = kill_holder($n, $label, qr/\bWMCB worker_start id=1-/, $mark);
    my $second = "1-$pid";
    $n->wait_log(qr/WMREADY /, since => $mark, desc => "[$label] the second respawn is ready");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after the kills:\n" . cbs_str(@c);
    note "[$label] module lines:\n" . join '', map { "  #$_->{idx} $_->{line}\n" } $n->grep_log(qr/\[worker-manager\]/, since => $mark);
    my @ws = select_cbs(\@c, event => 'worker_start');
    cb_is($ws[0], [$second, 'nil', 3, 'nil'], "[$label] first respawn worker_start($second, nil, 3, nil) (killed inside)");
    my $third = $ws[1];
    ok($third && $third->{mine} > $third->{count}, "[$label] the second respawn's start counts dead predecessors ("
       . ($third ? "n_mine $third->{mine}" : 'none') . ")");
    my @d = drops($n, since => $mark);
    is(join(' ', sort map { $_->{wid} } @d), join(' ', sort $first->{id}, $second),
       "[$label] both dead workers of slot 0 are dropped, once each");
    my @cr = select_cbs(\@c, event => 'crash');
    is(join(' ', sort map { $_->{id} } @cr), join(' ', sort $first->{id}, $second), "[$label] on_crash once for each");
    ok(!grep({ $_->{mine} > 2 } @cr), "[$label] no on_crash counts more than the 2 real workers");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] exits 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, allow => [qr/\b\Q$first->{id}\E\b/, qr/\b\Q$second\E\b/]);
}

# --- at start-up: the first worker_start of 3 is slow and killed
{
    my $label = 'start-up, slow worker_start';
    my $n = WorkerManager::Nginx->new(workers => 3, opts => sprintf($OPTS, $CRASH),
        http_extra   => 'lua_shared_dict wm_test 64k;',
        worker_start => 'wm.rec("worker_start", { slow = 15000, when = wm.once("start") })');
    $n->start(wait => 0);
    my ($pid) = kill_holder($n, $label, qr/\bWMCB worker_start /, 0);
    my ($cr) = $n->wait_log(qr/\bWMCB crash id=1-$pid /, desc => "[$label] on_crash for 1-$pid");
    $n->wait_log(qr/WMREADY /, count => 3, desc => "[$label] 3 workers ready");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    my ($crash) = select_cbs(\@c, event => 'crash');
    my ($resp) = grep { $_->{pid} eq $crash->{logpid} } select_cbs(\@c, event => 'worker_start');
    my $before = $resp ? grep({ $_->{idx} < $resp->{idx} } select_cbs(\@c, event => 'worker_start')) : 0;
    is($resp && $resp->{mine}, $before + 1, "[$label] the respawned worker's start counts the dead one "
       . "(n_mine = $before started before it, the dead one included, + itself)");
    cb_is($crash, ["1-$pid", 'nil', $resp ? $resp->{mine} - 1 : undef, 'nil'], "[$label] on_crash(1-$pid, nil, ., nil)");
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '3,2,1', "[$label] exits 3, 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label, allow => [qr/\b1-$pid\b/]);
}

done_testing;
