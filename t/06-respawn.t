# kill -9 of a worker: nginx respawns it in the same slot.  The respawned
# worker's start still counts the dead one (n_mine > ngx.worker.count());
# the module drops the dead one right after and says so in the log (pid and
# worker id).  Later stops and reloads see the real numbers.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my @allow = (qr/exited on signal 9/);

# the rest of the invariant checker (lifecycle_ok and the model run in each
# block): the final replay with every generation ended, the lock and the run
# invariants
sub more_checks {
    my ($n, $label, %o) = @_;
    model_ok($n, "[$label] counts match the contract (exact replay)", complete => 1);
    lock_ok($n, name => "[$label] callbacks never overlap") unless $o{no_lock};
    invariants_ok($n, name => "[$label] run invariants hold");
}

# Kill the worker in slot $slot; return (dead callback, respawned callback).
sub kill_and_respawn {
    my ($n, $label, $slot, $gen) = @_;
    my ($victim) = grep { $_->{slot} eq $slot && $n->alive($_->{pid}) }
                   $n->callbacks(event => 'worker_start', gen => $gen);
    my $mark = $n->mark;
    $n->kill_worker($victim->{pid}, 'KILL');
    my ($line) = $n->wait_log(qr/\bWMCB worker_start id=\Q$gen\E-/, since => $mark,
                              desc => "[$label] respawned worker's start");
    my ($new) = $n->callbacks(since => $mark, event => 'worker_start');
    my $dead = $victim->{pid};
    my $wid = "$gen-$dead";
    my ($drop) = $n->wait_log(qr/\b\Q$wid\E\b/, since => $mark,
                              desc => "[$label] the module logs that $wid (pid $dead) is gone");
    like($drop->{text}, qr/\b$dead\b/, "[$label] crash log line names the pid $dead: $drop->{text}");
    unlike($drop->{text}, qr/\bWMCB/, "[$label] ... and is the module's, not a callback line");
    return ($victim, $new, $drop);
}

# --- 2 workers: kill one, respawn, then QUIT
{
    my $label = '2 workers, QUIT';
    my $n = WorkerManager::Nginx->new(workers => 2);
    $n->start;
    my ($victim, $new, $drop) = kill_and_respawn($n, $label, 0, 1);
    note "[$label] dropped: $drop->{line}";
    cb_is($new, ["1-$new->{pid}", 'nil', 3, 'nil'], "[$label] respawned worker_start(1-<pid>, nil, 3, nil)");
    is($new->{slot}, $victim->{slot}, "[$label] same slot $victim->{slot}");
    is($new->{count}, 2, "[$label] ngx.worker.count() = 2 < n_mine = 3");
    ok($drop->{idx} > $new->{idx}, "[$label] the dead worker is dropped after the respawned start callback");
    is(scalar $n->get('/ping'), 200, "[$label] serves");

    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] exits mine 2 then 1 (the dead worker no longer counted)");
    ok(!grep({ $_->{wpid} == $victim->{pid} } @we), "[$label] no exit callback for the killed worker");
    cb_is($_, [undef, 'nil', undef, 'nil'], "[$label] worker_exit($_->{id}, nil, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    checker_ok($n, label => $label);
    more_checks($n, $label, no_lock => 1);
    no_errors_ok($n, "[$label] no errors but the crash and the module's report of it",
                 @allow, qr/\b1-$victim->{pid}\b/);
}

# --- 2 workers: kill one, respawn, then HUP: counts are real again; then QUIT
{
    my $label = '2 workers, HUP';
    my $n = WorkerManager::Nginx->new(workers => 2);
    $n->start;
    my ($victim, $new, $drop) = kill_and_respawn($n, $label, 1, 1);
    cb_is($new, [undef, 'nil', 3, 'nil'], "[$label] respawned worker_start(., nil, 3, nil)");
    is($new->{slot}, 1, "[$label] same slot 1");

    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my ($ms) = select_cbs(\@c, event => 'master_start');
    cb_is($ms, [2, 2, 0, 'nil'], "[$label] master_start(2, 2, 0, nil): 2 live old workers, not 3");
    my @we = select_cbs(\@c, event => 'worker_exit', gen => 1);
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] gen-1 exits mine 2 then 1");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, undef], "[$label] master_exit(1, nil, 0, .)");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT");
    cb_is($me, [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    lifecycle_ok($n, name => "[$label] lifecycle invariants");
    model_ok($n, "[$label] counts match the contract");
    more_checks($n, $label);
    no_errors_ok($n, "[$label] no errors but the crash report", @allow, qr/\b1-$victim->{pid}\b/);
}

# --- 1 worker: kill the only (last) worker
{
    my $label = '1 worker';
    my $n = WorkerManager::Nginx->new(workers => 1);
    $n->start;
    my ($victim, $new, $drop) = kill_and_respawn($n, $label, 0, 1);
    cb_is($new, ["1-$new->{pid}", 'nil', 2, 'nil'], "[$label] respawned worker_start(1-<pid>, nil, 2, nil)");
    is($new->{count}, 1, "[$label] count 1 < n_mine 2");
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    my ($we) = select_cbs(\@c, event => 'worker_exit');
    cb_is($we, ["1-$new->{pid}", 'nil', 1, 'nil'], "[$label] worker_exit(1-<pid>, nil, 1, nil)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    lifecycle_ok($n, name => "[$label] lifecycle invariants");
    model_ok($n, "[$label] counts match the contract");
    more_checks($n, $label);
    no_errors_ok($n, "[$label] no errors but the crash report", @allow, qr/\b1-$victim->{pid}\b/);
}

# --- crashes that nginx does not respawn (old generation draining): only the
# module's liveness checks (dead pid, missing heartbeats) can notice them.

# D: both gen-1 workers busy when the HUP comes; one is killed; the survivor's
# exit must be the last of gen 1 (mine=1) and run master exit exactly once.
# failed = 10 so that the busy survivor's late heartbeat is not a "crash".
{
    my $label = 'old worker crash, survivor exits last';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => '{ shm = "wm", interval = 1, failed = 10 }');
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my @socks = $n->block_workers(3000);    # both gen-1 workers busy for 3 s
    my $mark = $n->reload;                  # gen 2 up; gen 1 told to quit but busy
    my ($victim, $survivor) = @gen1;
    $n->kill_worker($victim->{pid}, 'KILL');
    my $wid = $victim->{id};
    my ($drop) = $n->wait_log(qr/\b\Q$wid\E\b/, since => $mark, timeout => 15, soft => 1,
                              desc => "[$label] the module notices $wid (pid $victim->{pid}) died");
    note "[$label] noticed: $drop->{line}" if $drop;
    $n->finish($_) for @socks;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, timeout => 15, soft => 1,
                 desc => "[$label] master_exit of gen 1");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-1 workers gone');
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my ($we) = grep { $_->{id} eq $survivor->{id} } select_cbs(\@c, event => 'worker_exit');
    cb_is($we, [$survivor->{id}, 'nil', 1, 2], "[$label] the survivor's exit is the last of gen 1: (id, nil, 1, 2)");
    ok(!grep({ $_->{id} eq $wid } @c), "[$label] nothing runs for the killed worker");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, 2], "[$label] master_exit(1, nil, 0, 2)");
    is($me->{logpid}, $survivor->{pid}, "[$label] ... in the survivor, after its exit") if $me;

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil): the dead gen-1 worker no longer counted");
    lifecycle_ok($n, name => "[$label] lifecycle invariants");
    model_ok($n, "[$label] counts match the contract");
    more_checks($n, $label);
    no_errors_ok($n, "[$label] no errors but the crash report", @allow, qr/\b\Q$wid\E\b/, $MISSED_RE);
}

# E: the LAST gen-1 worker is the one that crashes (the other already exited):
# gen 1 then ends by a crash; its master exit runs exactly once, on its behalf,
# in whichever process notices.
{
    my $label = 'last old worker crashes';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => '{ shm = "wm", interval = 1, failed = 10 }');
    $n->start;
    my @socks = $n->block_workers(3000, count => 1);
    my ($blocked) = map { $_->{pid} } $n->grep_log(qr/WMBLOCK begin/);
    my ($victim) = $n->callbacks(event => 'worker_start', gen => 1);
    ($victim) = grep { $_->{pid} eq $blocked } $n->callbacks(event => 'worker_start', gen => 1);
    my ($other) = grep { $_->{pid} ne $blocked } $n->callbacks(event => 'worker_start', gen => 1);
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB worker_exit id=\Q$other->{id}\E /, since => $mark, desc => "[$label] the idle gen-1 worker exits");
    $n->kill_worker($victim->{pid}, 'KILL');
    my $wid = $victim->{id};
    $n->wait_log(qr/\b\Q$wid\E\b(?!.*WMCB)/, since => $mark, timeout => 15, soft => 1,
                 desc => "[$label] the module notices $wid (pid $victim->{pid}) died");
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, timeout => 15, soft => 1,
                 desc => "[$label] master_exit of gen 1 on behalf of the crashed last worker");
    $n->finish($_) for @socks;
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my ($we) = select_cbs(\@c, event => 'worker_exit', gen => 1);
    cb_is($we, [$other->{id}, 'nil', 2, undef], "[$label] the idle worker's exit still counted the busy one (mine=2)");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] exactly one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, 2], "[$label] master_exit(1, nil, 0, 2)");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    lifecycle_ok($n, name => "[$label] lifecycle invariants", allow_crash_exit => 1);
    model_ok($n, "[$label] counts match the contract");
    more_checks($n, $label);
    no_errors_ok($n, "[$label] no errors but the crash report", @allow, qr/\b\Q$wid\E\b/);
}

# F: a worker that is merely busy for longer than `failed` is alive: whatever
# the module concludes from its missing heartbeats, the lifecycle must stay
# consistent (no exit of a generation after its master exit, one master exit).
{
    my $label = 'busy worker, late heartbeats';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => '{ shm = "wm", interval = 1, failed = 1 }');
    $n->start;
    my @socks = $n->block_workers(3500, count => 1);
    $n->finish($_) for @socks;          # returns after the 3.5 s
    is(scalar $n->get('/ping'), 200, "[$label] serves");
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] exits mine 2 then 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    lifecycle_ok($n, name => "[$label] lifecycle invariants");
    more_checks($n, $label);
    # with failed = 1 the module may report the busy worker as crashed (that is what
    # `failed` means); note it, but nothing else may be logged
    note "[$label] module's view of the busy worker: $_->{text}" for $n->grep_log(qr/no heartbeat/);
    no_errors_ok($n, "[$label] no errors but a possible missed-heartbeat report and a recount", qr/no heartbeat/,
                 $MISSED_RE, $RECOUNT_RE);
}

done_testing;
