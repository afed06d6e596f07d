# Graceful stops and starts that meet a callback still running:
#  - QUIT while worker_exit callbacks are slow (with and without the exit hook)
#  - QUIT while a slow worker_start still runs (nginx starting up)
#  - HUP, then QUIT while an old worker's slow worker_exit still runs
#  - a new-generation worker that starts while an old-generation worker holds
#    the lock (its slow worker_exit), also a respawned one: it waits, then
#    counts right; and one killed while it waits (never counted)
# Every case: every started worker exits once, exactly one master exit per
# generation, callbacks never overlap, counts as the contract says.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';
my $TESTSHM = 'lua_shared_dict wm_test 64k;';

sub end_ok {
    my ($n, $label, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    no_errors_ok($n, "[$label] no errors", @allow);
}

sub all_exit_once_ok {
    my ($n, $label) = @_;
    my @ws = $n->callbacks(event => 'worker_start');
    my @we = $n->callbacks(event => 'worker_exit');
    is(join(' ', sort map { $_->{id} } @we), join(' ', sort map { $_->{id} } @ws), "[$label] every started worker exits once");
    my %gens = map { $_->{gen} => 1 } $n->callbacks(event => 'master_start');
    for my $g (sort keys %gens) {
        is(scalar $n->callbacks(event => 'master_exit', gen => $g), 1, "[$label] exactly one master_exit for gen $g");
    }
}

for my $hook (0, 1) {
    my $label = 'QUIT, slow exits' . ($hook ? ', hook' : '');
    my $n = WorkerManager::Nginx->new(workers => 3, opts => $OPTS, exit_hook => $hook,
                                      worker_exit => 'wm.rec("worker_exit", { slow = 700 })',
                                      master_exit => 'wm.rec("master_exit", { slow = 300 })');
    $n->start;
    my $mark = $n->mark;
    $n->signal('QUIT');
    $n->wait_log(qr/\bWMCB-ENTER worker_exit /, since => $mark, desc => "[$label] a worker_exit is running");
    ok($n->wait_exit, "[$label] nginx stops after the slow callbacks");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '3,2,1', "[$label] exits mine 3, 2, 1");
    cb_is($_, [undef, 'nil', undef, 'nil'], "[$label] worker_exit($_->{id}, nil, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is(scalar $n->grep_log(qr/WMCB-LEAVE master_exit/, since => $mark), 1, "[$label] ... which ran to its end");
    is(scalar $n->grep_log(qr/exited on signal/, since => $mark), 0, "[$label] no worker killed by the master");
    all_exit_once_ok($n, $label);
    end_ok($n, $label);
}

{
    my $label = 'QUIT during a slow worker_start';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => $TESTSHM,
        worker_start => 'wm.rec("worker_start", { slow = 1500, when = wm.once("start") })');
    $n->start(wait => 0);
    my ($slow) = $n->wait_log(qr/\bWMCB worker_start /, desc => "[$label] the slow worker_start runs");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] nginx stops");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(scalar select_cbs(\@c, event => 'worker_start'), 2, "[$label] both workers started");
    my @we = select_cbs(\@c, event => 'worker_exit');
    # the other worker may start before or after the slow one exits (the lock
    # decides): exits 2,1 or 1,1; the replay checks each against that order
    my ($other_start) = grep { $_->{pid} ne $slow->{pid} } select_cbs(\@c, event => 'worker_start');
    my $other_first = $other_start->{idx} < $we[0]{idx};
    is(join(',', map { $_->{mine} } @we), $other_first ? '2,1' : '1,1',
       "[$label] exits mine " . ($other_first ? '2, 1 (both started before the first exit)'
                                              : '1, 1 (the other started after the first exit)'));
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    my ($slow_exit) = grep { $_->{pid} eq $slow->{pid} } @we;
    ok($slow_exit && $slow_exit->{idx} > $slow->{idx}, "[$label] the slow starter exits after its start");
    all_exit_once_ok($n, $label);
    end_ok($n, $label);
}

{
    my $label = 'HUP, then QUIT during an old slow exit';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => $TESTSHM,
        worker_exit => 'wm.rec("worker_exit", { slow = 2000, when = function(id) return id:match("^1%-") and wm.once("exit")() end })');
    $n->start;
    # no waiting for the new workers: one of them may queue behind the slow exit
    my $mark = $n->reload(wait => 0);
    my ($slow) = $n->wait_log(qr/\bWMCB worker_exit id=1-/, since => $mark, desc => "[$label] an old worker's slow exit runs");
    my $qmark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] nginx stops");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP + QUIT:\n" . cbs_str(@c);
    ok(scalar($n->grep_log(qr/WMCB-LEAVE worker_exit id=1-/, since => $qmark)) >= 1,
       "[$label] the QUIT came while the old worker's exit ran");
    cb_is((select_cbs(\@c, event => 'master_exit', gen => 2))[0], [2, undef, 0, 'nil'], "[$label] master_exit(2, ., 0, nil)");
    cb_is((select_cbs(\@c, event => 'master_exit', gen => 1))[0], [1, 'nil', 0, undef], "[$label] master_exit(1, nil, 0, .)");
    all_exit_once_ok($n, $label);
    end_ok($n, $label);
}

# gen-1's first worker_exit holds the lock until the gen-2 worker in slot 1
# has arrived (flags in the wm_test shm), then 500 ms more
{
    my $label = 'new worker starts while an old one holds the lock';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => $TESTSHM,
        worker_exit => 'wm.rec("worker_exit", { set = "g1_holding", wait_for = "g2_arrived", slow = 500, '
                     . 'when = function(id) return id:match("^1%-") and wm.once("exit")() end })');
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my $mark = $n->mark;
    $n->reload_conf(init_worker_extra => 'if ngx.worker.id() == 1 then '
        . 'local ok = wm.wait_flag("g1_holding", 15000); '
        . 'ngx.log(ngx.WARN, "WMARRIVE pid=", ngx.worker.pid(), " held=", tostring(ok)); '
        . 'wm.flag("g2_arrived") end');
    my ($arrive) = $n->wait_log(qr/WMARRIVE /, since => $mark, desc => "[$label] gen-2 slot 1 arrives");
    like($arrive->{text}, qr/held=true/, "[$label] ... while a gen-1 worker_exit holds the lock");
    my ($apid) = $arrive->{text} =~ /pid=(\d+)/;
    $n->wait_log(qr/WMREADY .*confv=1/, since => $mark, count => 2, desc => "[$label] both gen-2 workers ready");
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my @el = $n->enter_leave(since => $mark);
    my ($hold) = grep { $_->{event} eq 'worker_exit' && $_->{id} =~ /^1-/ } @el;    # its ENTER
    my ($leave) = grep { $_->{kind} eq 'LEAVE' && $_->{id} eq $hold->{id} } @el;
    my ($start) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'worker_start' && $_->{pid} eq $apid } @el;
    ok($hold->{idx} < $arrive->{idx} && $arrive->{idx} < $leave->{idx},
       "[$label] the gen-2 worker arrived while $hold->{id}'s exit ran");
    ok($start && $start->{idx} > $leave->{idx}, "[$label] its worker_start ran only after that exit left the lock");
    my ($ws) = grep { $_->{pid} eq $apid } select_cbs(\@c, event => 'worker_start');
    cb_is($ws, ["2-$apid", undef, 2, 'nil'], "[$label] worker_start(2-$apid, ., 2, nil)");
    my $g1_left = grep { $_->{event} eq 'worker_exit' && $_->{gen} == 1 && $_->{idx} < $ws->{idx} } @c;
    is($ws->{prev}, 2 - $g1_left, "[$label] ... n_prev = gen-1 workers not yet exited ($g1_left exited before)") if $ws;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    all_exit_once_ok($n, $label);
    end_ok($n, $label);
}

# the same with a respawn: a gen-2 worker killed while a gen-1 worker_exit
# holds the lock; its successor arrives during that hold and waits.  The
# holder is the first gen-1 exit that sees a gen-2 worker counted (n_next >= 1)
{
    my $label = 'respawn while an old worker holds the lock';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => $TESTSHM,
        worker_exit => 'wm.rec("worker_exit", { set = "g1_holding", wait_for = "respawned", slow = 500, '
                     . 'when = function(id, p, m, nx) return id:match("^1%-") and (nx or 0) >= 1 and wm.once("exit")() end })');
    $n->start;
    my $mark = $n->mark;
    # gen 2 counts its starts per slot: the second one in a slot is a respawn
    $n->reload_conf(init_worker_extra => 'if ngx.shared.wm_test:incr("g2_slot" .. ngx.worker.id(), 1, 0) > 1 then '
        . 'ngx.log(ngx.WARN, "WMARRIVE pid=", ngx.worker.pid()); wm.flag("respawned") end');
    my ($hold) = $n->wait_log(qr/\bWMCB worker_exit id=1-\S+ prev=\S+ mine=\d+ next=[1-9]/, since => $mark,
                              desc => "[$label] a gen-1 slow exit runs while a gen-2 worker is counted");
    my ($victim) = grep { $_->{idx} < $hold->{idx} } $n->callbacks(since => $mark, event => 'worker_start', gen => 2);
    $n->kill_worker($victim->{pid}, 'KILL');
    my ($arrive) = $n->wait_log(qr/WMARRIVE /, since => $mark, desc => "[$label] the respawned worker arrives");
    my ($apid) = $arrive->{text} =~ /pid=(\d+)/;
    $n->wait_log(qr/\bWMCB crash id=\Q$victim->{id}\E /, since => $mark, desc => "[$label] on_crash for $victim->{id}");
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    my @el = $n->enter_leave(since => $mark);
    my ($leave) = grep { $_->{kind} eq 'LEAVE' && $_->{event} eq 'worker_exit' && $_->{pid} eq $hold->{pid} } @el;
    ok($arrive->{idx} < $leave->{idx}, "[$label] the respawned worker arrived while the gen-1 exit held the lock");
    my ($ws) = grep { $_->{pid} eq $apid } select_cbs(\@c, event => 'worker_start');
    ok($ws && $ws->{idx} > $leave->{idx}, "[$label] its worker_start ran after that exit");
    cb_is($ws, ["2-$apid", undef, undef, 'nil'], "[$label] respawned worker_start(2-$apid, ., ., nil)");
    my $before = $ws ? grep({ $_->{idx} < $ws->{idx} } select_cbs(\@c, event => 'worker_start', gen => 2)) : 0;
    is($ws && $ws->{mine}, $before + 1, "[$label] ... counts the dead one (n_mine = $before gen-2 workers "
       . "started before it, the dead one included, + itself)");
    is($ws->{slot}, $victim->{slot}, "[$label] ... in the dead worker's slot $victim->{slot}") if $ws;
    cb_is(exactly_one([select_cbs(\@c, event => 'crash')], "[$label] exactly one on_crash"),
          [$victim->{id}, $ws ? $ws->{prev} : undef, $ws ? $ws->{mine} - 1 : undef, 'nil'],
          "[$label] on_crash($victim->{id}, n_prev and n_mine - 1 of the respawned start, nil)");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/exited on signal 9/, qr/\b\Q$victim->{id}\E\b/);
}

# a new worker killed while it waits for the lock an old worker holds: it
# reached init_worker (its arrival is recorded) but was never counted.  The
# holder keeps the lock until it sees that arrival (the module's internal
# key "<prefix>g2:arrival1", read only by this test) and then until the
# process is gone.  The respawned worker reports it: ERR "crashed while
# starting, before it was counted" and on_crash once; it has no
# worker_start and no worker_exit, and gen 2 still ends with one master exit.
{
    my $label = 'new worker killed while it waits for the lock';
    my $hold = 'function() '
        . 'local t, d = ngx.shared.wm_test, ngx.shared.wm; '
        . 'local ok = wm.wait_until(function() local p = t:get("g2_waiter"); '
        . 'return p ~= nil and d:get("lua-resty-worker-manager:g2:arrival1") == p end); '
        . 'ngx.log(ngx.WARN, "WMSEEN arrival ok=", tostring(ok)); '
        . 'ok = wm.wait_until(function() return wm.pid_gone(t:get("g2_waiter")) end); '
        . 'ngx.log(ngx.WARN, "WMSEEN gone ok=", tostring(ok)) end';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => $TESTSHM,
        worker_exit => 'wm.rec("worker_exit", { set = "g1_holding", before = ' . $hold . ', '
                     . 'when = function(id) return id:match("^1%-") and wm.once("exit")() end })');
    $n->start;
    my $mark = $n->mark;
    $n->reload_conf(init_worker_extra => 'if ngx.worker.id() == 1 and not ngx.shared.wm_test:get("g2_waiter") then '
        . 'wm.wait_flag("g1_holding", 15000); ngx.log(ngx.WARN, "WMARRIVE pid=", ngx.worker.pid()); '
        . 'wm.flag("g2_waiter") end');
    my ($seen) = $n->wait_log(qr/WMSEEN arrival/, since => $mark, desc => "[$label] the holder sees gen-2 slot 1 arrive");
    like($seen->{text}, qr/ok=true/, "[$label] ... it arrived while the holder held the lock");
    my ($arrive) = $n->grep_log(qr/WMARRIVE /, since => $mark);
    my ($victim) = $arrive->{text} =~ /pid=(\d+)/;
    my $vid = "2-$victim";
    $n->kill_worker($victim, 'KILL');
    my ($rep) = $n->wait_log(qr/\Q$vid\E \(pid $victim, slot 1\) crashed while starting, before it was counted/,
                             since => $mark, desc => "[$label] the respawned worker reports $vid");
    is($rep->{level}, 'error', "[$label] ... at ERR");
    my ($resp) = $rep->{text} =~ /respawned its slot as (2-\d+)/;
    ok($resp, "[$label] ... naming its successor " . ($resp // '?'));
    $n->wait_log(qr/\bWMCB crash id=\Q$vid\E /, since => $mark, desc => "[$label] on_crash for $vid");
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
    $n->wait_log(qr/WMREADY .*confv=1/, since => $mark, count => 2, desc => "[$label] two gen-2 workers ready");
    my @c = $n->callbacks(since => $mark);
    note "[$label] after HUP:\n" . cbs_str(@c);
    ok(!grep({ $_->{id} eq $vid } select_cbs(\@c, event => 'worker_start')), "[$label] no worker_start for $vid");
    my ($rs) = grep { $_->{id} eq ($resp // '') } select_cbs(\@c, event => 'worker_start');
    ok($rs, "[$label] the successor started in slot 1") && is($rs->{slot}, '1', "[$label] ... slot 1");
    my $cr = exactly_one([select_cbs(\@c, event => 'crash')], "[$label] exactly one on_crash");
    my $g2 = grep { $_->{event} eq 'worker_start' && $_->{gen} == 2 && $_->{idx} < ($cr ? $cr->{idx} : 0) } @c;
    cb_is($cr, [$vid, $rs ? $rs->{prev} : undef, $g2, 'nil'],
          "[$label] on_crash($vid, n_prev, $g2 counted in gen 2, nil): it was never counted");
    is($cr->{logpid}, $rs->{pid}, "[$label] ... in the successor") if $cr && $rs;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] gen-2 exits 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, qr/exited on signal 9/, qr/\b\Q$vid\E\b/);
}

done_testing;
