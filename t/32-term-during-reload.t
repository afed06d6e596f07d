# TERM in the middle of a reload (issue 6), with the exit hook: HUP, then TERM
# after 0 to 300 ms, while the new generation's workers start and the old
# ones are told to quit; and once with the old workers busy (so the TERM finds
# two generations running).  Whatever nginx managed to do before the TERM:
# every generation that got workers gets exactly one master exit, nothing is
# counted twice, the last master exit has n_next nil, and the invariant
# checker passes on the node's log; exits that come while the new workers
# start say n_next 0 (a newer generation exists from its master start on).
# Last, the race made certain: a new worker slow to reach its start when the
# stop comes.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';

sub term_ok {
    my ($n, $label) = @_;
    ok($n->wait_exit(20), "[$label] TERM stops nginx");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    my %ws = map { $_->{gen} => 1 } select_cbs(\@c, event => 'worker_start');
    my %me;
    $me{ $_->{gen} }++ for select_cbs(\@c, event => 'master_exit');
    my ($got, $want) = (join(',', map { "$_:" . ($me{$_} // 0) } sort keys %ws), join(',', map { "$_:1" } sort keys %ws));
    is($got, $want, "[$label] one master exit per generation that got workers (" . join(',', sort keys %ws) . ')');
    is(scalar late_starters($n), 0, "[$label] no worker start after its generation's master exit");
    my @we = select_cbs(\@c, event => 'worker_exit');
    my %twice;
    $twice{ $_->{id} }++ for @we;
    is(scalar(grep { $twice{$_} > 1 } keys %twice), 0, "[$label] no worker exit reported twice");
    is(scalar @we, scalar(select_cbs(\@c, event => 'worker_start')), "[$label] one worker exit per worker start");
    my $last = (select_cbs(\@c, event => 'master_exit'))[-1];
    is($last && $last->{next}, 'nil', "[$label] the last master exit has n_next nil: a stop");
    is(scalar $n->grep_log(qr/exited on signal 9/), 0, "[$label] no worker needed SIGKILL");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors");
}

for my $delay (0, 0.03, 0.08, 0.15, 0.3) {
    my $label = "HUP, TERM after ${delay}s";
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS);
    $n->start;
    $n->signal('HUP');
    sleep $delay if $delay;
    $n->signal('TERM');
    term_ok($n, $label);
}

# the old workers busy for 0.8 s: the new generation is up and the old one
# still runs (told to quit, its exit not run yet) when the TERM comes
{
    my $label = 'old workers busy, HUP, TERM';
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS);
    $n->start;
    my @socks = $n->block_workers(800);
    my $mark = $n->reload;
    $n->signal('TERM');
    $n->finish($_) for @socks;
    term_ok($n, $label);
    my @c = $n->callbacks(since => $mark);
    ok(scalar(select_cbs(\@c, event => 'worker_start', gen => 2)) == 2, "[$label] generation 2 had started");
}

# the late starter made certain: in the new configuration, the worker of slot
# 1 is busy 1 s before its start (user code in init_worker_by_lua before the
# module's call); TERM, or QUIT, once slot 0 of generation 2 started.
#  - QUIT: the exiting worker waits (up to `failed` s) for the sibling nginx
#    forked: it starts, counts, and the last of the two runs the master exit.
#  - TERM: nobody may wait that long; the master exit runs in slot 0's exit.
#    A fast exit cannot tell a stop from a worker recycled with TERM, so the
#    late worker, finding its configuration's master exit ran on a fast
#    exit, opens generation 3 for it (master start in that worker, then its
#    worker start), which its own exit ends.
for my $stop ('TERM', 'QUIT') {
    my $label = "a new worker slow to start, $stop";
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS);
    $n->start;
    my $mark = $n->mark;
    $n->reload_conf(init_worker_extra => 'if ngx.worker.id() == 1 then require("wm_test").busy_sleep(1000) end');
    $n->wait_log(qr/\bWMCB worker_start id=2-/, since => $mark, desc => "[$label] the first worker of generation 2 started");
    $n->signal($stop);
    ok($n->wait_exit(20), "[$label] $stop stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(scalar late_starters($n), 0, "[$label] no worker start after its generation's master exit");
    my @me2 = select_cbs(\@c, event => 'master_exit', gen => 2);
    my ($me2_idx) = map { $_->{idx} } @me2;
    my @after = grep { ($_->{gen} // 0) == 2 && $_->{idx} > ($me2_idx // 1e99) } @c;
    is(scalar @me2, 1, "[$label] exactly one master exit of generation 2 (" . scalar(@me2) . ')');
    is(scalar @after, 0, "[$label] ... after every other callback of generation 2 (" . scalar(@after) . ' after it)');
    my @ws2 = select_cbs(\@c, event => 'worker_start', gen => 2);
    my @untracked = $n->grep_log(qr/\[worker-manager\] worker 2-\d+ reached init_worker after generation 2 ended/, since => $mark);
    if ($stop eq 'QUIT') {
        is(join(',', map { $_->{mine} } @ws2), '1,2', "[$label] the slow worker starts too, counted: starts 1, 2");
        is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit', gen => 2)), '2,1', "[$label] ... and exits 2, 1");
    } else {
        my @c3 = select_cbs(\@c, gen => 3);
        is(scalar(@untracked), 0, "[$label] no worker goes untracked");
        if (@ws2 == 2) {
            is(scalar @c3, 0, "[$label] the slow worker started before the master exit: no generation 3");
        } else {
            is(scalar @ws2, 1, "[$label] one worker start in generation 2 before its master exit");
            is(join(' ', map { "$_->{event}:$_->{mine}" } @c3), 'master_start:0 worker_start:1 worker_exit:1 master_exit:0',
               "[$label] the slow worker opened generation 3 and ended it with its exit");
            is(scalar(grep { $_->{logpid} eq $c3[0]{logpid} } @c3), 4, "[$label] ... all four in its own process");
        }
    }
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors");
}

# a worker whose own code fails before the module's hook never arrives: the
# others' graceful exits wait for it only while the generation is young
# (`failed`, 2 s here), then the last of them runs the master exit
{
    my $label = 'a worker that never reaches the hook, QUIT';
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => '{ shm = "wm", interval = 1, failed = 2 }',
                                      init_worker_extra => 'if ngx.worker.id() == 1 then error("user code fails here") end');
    $n->start(wait => 0);
    $n->wait_log(qr/user code fails here/, desc => "[$label] slot 1's init_worker code fails");
    $n->wait_log(qr/WMREADY /, desc => "[$label] slot 0 started");
    $n->signal('QUIT');
    ok($n->wait_exit(20), "[$label] QUIT stops nginx");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_start')), '1', "[$label] one worker start, n_mine 1");
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '1', "[$label] its exit, n_mine 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] master_exit(1, nil, 0, nil)");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no warn or error lines but the user code's failure", qr/init_worker_by_lua error: .*user code fails here/);
}

done_testing;
