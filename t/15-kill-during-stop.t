# kill -9 of a worker during a graceful stop (QUIT): nginx respawns nothing
# any more, so only the module can notice the dead worker; the stop must
# still end with exactly one master exit, with the exit hook
# (exit_worker_by_lua -> on_exit_worker_by_lua) and without it.
#
#  - busy: both workers busy (block_workers) when QUIT comes, one is killed;
#    the survivor, once free, drops the dead one and is the last.
#  - waiter: the first worker_exit is slow (it holds the lock), the other
#    worker is killed while it waits for the lock to run its own exit.
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
    no_errors_ok($n, "[$label] no errors but the kill and the module's report of it", qr/exited on signal 9/, @allow);
}

for my $hook (0, 1) {
    my $label = 'busy, ' . ($hook ? 'hook' : 'no hook');
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, exit_hook => $hook);
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start');
    my @socks = $n->block_workers(3000);
    my $mark = $n->mark;
    $n->signal('QUIT');
    my ($victim, $survivor) = @ws;
    my $t0 = time;
    $n->kill_worker($victim->{pid}, 'KILL');
    $n->wait_log(qr/worker process $victim->{pid} exited on signal 9/, since => $mark, desc => "[$label] master reaps the victim");
    $n->finish($_) for @socks;
    ok($n->wait_exit, "[$label] nginx stops");
    my ($cr) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'crash' } $n->enter_leave(since => $mark);
    note sprintf "[%s] reap latency (kill -9 -> on_crash entered, survivor busy 3 s): %s",
        $label, $cr ? sprintf('%.3f s', $cr->{t} - $t0) : 'never';
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my ($d) = drops($n, since => $mark, wid => $victim->{id});
    ok($d, "[$label] the module reports $victim->{id} dead");
    like($d->{cause}, qr/^its process is gone/, "[$label] ... because its process is gone") if $d;
    is($d->{logpid}, $survivor->{pid}, "[$label] ... found by the survivor") if $d;
    cb_is(exactly_one([select_cbs(\@c, event => 'crash')], "[$label] exactly one on_crash"),
          [$victim->{id}, 'nil', 1, 'nil'], "[$label] on_crash($victim->{id}, nil, 1, nil): the survivor still counted");
    cb_is(exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker_exit (the survivor's)"),
          [$survivor->{id}, 'nil', 1, 'nil'], "[$label] worker_exit($survivor->{id}, nil, 1, nil)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is($me->{logpid}, $survivor->{pid}, "[$label] ... in the survivor") if $me;
    end_ok($n, $label, qr/\b\Q$victim->{id}\E\b/, $MISSED_RE);    # (a busy worker misses beats)
}

for my $hook (0, 1) {
    my $label = 'waiter, ' . ($hook ? 'hook' : 'no hook');
    my $n = WorkerManager::Nginx->new(
        workers     => 2, opts => $OPTS, exit_hook => $hook,
        http_extra  => 'lua_shared_dict wm_test 64k;',
        worker_exit => 'wm.rec("worker_exit", { slow = 3000, when = wm.once("exit") })',
    );
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->signal('QUIT');
    my ($enter) = $n->wait_log(qr/\bWMCB-ENTER worker_exit /, since => $mark, desc => "[$label] first (slow) worker_exit entered");
    my ($holder_pid) = $enter->{text} =~ /pid=(\d+)/;
    my ($holder) = grep { $_->{pid} eq $holder_pid } @ws;
    my ($victim) = grep { $_->{pid} ne $holder_pid } @ws;
    $n->kill_worker($victim->{pid}, 'KILL');
    ok($n->wait_exit, "[$label] nginx stops");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    note "[$label] module lines:\n" . join '', map { "  #$_->{idx} $_->{line}\n" }
        $n->grep_log(qr/\[worker-manager\]/, since => $mark);
    my $we = exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker_exit (the holder's)");
    cb_is($we, [$holder->{id}, 'nil', 2, 'nil'], "[$label] worker_exit($holder->{id}, nil, 2, nil): the waiter was alive then");
    my ($d) = drops($n, since => $mark, wid => $victim->{id});
    ok($d, "[$label] the module reports the killed waiter $victim->{id} dead");
    cb_is(exactly_one([select_cbs(\@c, event => 'crash')], "[$label] exactly one on_crash"),
          [$victim->{id}, 'nil', 0, 'nil'], "[$label] on_crash($victim->{id}, nil, 0, nil)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is($me->{logpid}, $holder->{pid}, "[$label] ... in the holder, the last worker alive") if $me;
    end_ok($n, $label, qr/\b\Q$victim->{id}\E\b/);
}

# the reverse: the slow holder itself is killed inside its worker_exit (it
# had left the counts when its exit began); the waiter takes the lock over
# and is the last
for my $hook (0, 1) {
    my $label = 'holder, ' . ($hook ? 'hook' : 'no hook');
    my $n = WorkerManager::Nginx->new(
        workers     => 2, opts => $OPTS, exit_hook => $hook,
        http_extra  => 'lua_shared_dict wm_test 64k;',
        worker_exit => 'wm.rec("worker_exit", { slow = 15000, when = wm.once("exit") })',
    );
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->signal('QUIT');
    my ($enter) = $n->wait_log(qr/\bWMCB worker_exit /, since => $mark, desc => "[$label] first (slow) worker_exit runs");
    my ($holder) = grep { $_->{pid} eq $enter->{pid} } @ws;
    my ($other) = grep { $_->{pid} ne $enter->{pid} } @ws;
    $n->kill_worker($holder->{pid}, 'KILL');
    ok($n->wait_exit, "[$label] nginx stops");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    ok(scalar $n->grep_log(qr/took over the node lock from dead process $holder->{pid}\b/, since => $mark),
       "[$label] the waiter takes over the dead holder's lock");
    my @we = select_cbs(\@c, event => 'worker_exit');
    cb_is($we[0], [$holder->{id}, 'nil', 2, 'nil'], "[$label] the killed holder's worker_exit($holder->{id}, nil, 2, nil) had begun");
    cb_is($we[1], [$other->{id}, 'nil', 1, 'nil'], "[$label] worker_exit($other->{id}, nil, 1, nil)");
    is(scalar select_cbs(\@c, event => 'crash'), 0, "[$label] no on_crash: the holder's exit was delivered");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is($me->{logpid}, $other->{pid}, "[$label] ... in the other worker") if $me;
    checker_ok($n, label => $label, on_crash => 1, complete => 1, killed => 1);
    no_errors_ok($n, "[$label] no errors but the kill and the takeover of its lock", qr/exited on signal 9/, $TAKEOVER_RE);
}

# contrast to 'waiter': the same kill during a reload (HUP) instead of a stop;
# the new generation lives on, and its heartbeats close the old one
{
    my $label = 'waiter, HUP';
    my $n = WorkerManager::Nginx->new(
        workers     => 2, opts => $OPTS,
        http_extra  => 'lua_shared_dict wm_test 64k;',
        worker_exit => 'wm.rec("worker_exit", { slow = 3000, when = wm.once("exit") })',
    );
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start', gen => 1);
    # no waiting for the new workers: one of them may queue behind the slow exit
    my $mark = $n->reload(wait => 0);
    my ($enter) = $n->wait_log(qr/\bWMCB worker_exit id=1-/, since => $mark, desc => "[$label] first (slow) gen-1 worker_exit runs");
    my ($holder) = grep { $_->{pid} eq $enter->{pid} } @ws;
    my ($victim) = grep { $_->{pid} ne $enter->{pid} } @ws;
    $n->kill_worker($victim->{pid}, 'KILL');
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    # n_next: gen-2 workers counted by then (one may queue behind the slow exit)
    my $hx = exactly_one([select_cbs(\@c, event => 'worker_exit', gen => 1)], "[$label] one gen-1 worker_exit");
    cb_is($hx, [$holder->{id}, 'nil', 2, $hx ? counted_at($n, 2, $hx->{idx}) : undef],
          "[$label] worker_exit($holder->{id}, nil, 2, n_next)");
    my $cr = exactly_one([select_cbs(\@c, event => 'crash')], "[$label] exactly one on_crash");
    cb_is($cr, [$victim->{id}, 'nil', 0, $cr ? counted_at($n, 2, $cr->{idx}) : undef],
          "[$label] on_crash($victim->{id}, nil, 0, n_next)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, $me ? counted_at($n, 2, $me->{idx}) : undef], "[$label] master_exit(1, nil, 0, n_next)");
    like($me->{next}, qr/^[12]$/, "[$label] ... n_next a number: the node is reloading") if $me;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/\b\Q$victim->{id}\E\b/);
}

done_testing;
