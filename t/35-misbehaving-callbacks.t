# Callbacks that misbehave (issue 6), each node ending with the invariant
# checker:
#   - every callback raises (master start/exit, worker start/exit, on_crash)
#     through a start, a kill -9, a reload and a stop: each error is logged at
#     ERR with its traceback, the counts stay right, nginx serves
#   - a callback that blocks ~2 s (the lock's expiry is 30 s: not waited for
#     here): the others wait for it, one at a time
#   - callbacks that call APIs their phase does not allow: ngx.sleep in
#     worker start (init_worker), ngx.timer.at with a delay in the exit
#     callbacks during a stop ("process exiting" in the timer of a graceful
#     stop, "API disabled" in exit_worker_by_lua on TERM): logged, nothing
#     counted twice, one master exit per generation
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS_RAISE = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash", { raise = "wm-test-boom crash" }) }';
my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';
my $FAILED_RE = qr/\[worker-manager\] (master start|worker start|worker exit|master exit|crash) callback for (\S+) failed: /;

sub failures {
    my ($n, %o) = @_;
    my @f;
    for my $e ($n->grep_log($FAILED_RE, since => $o{since})) {
        next unless $e->{text} =~ $FAILED_RE;
        push @f, { kind => $1, id => $2, e => $e };
    }
    return @f;
}

# every callback raises
{
    my $label = 'every callback raises';
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        opts         => $OPTS_RAISE,
        master_start => 'wm.rec("master_start", { raise = "wm-test-boom master_start" })',
        master_exit  => 'wm.rec("master_exit", { raise = "wm-test-boom master_exit" })',
        worker_start => 'wm.rec("worker_start", { raise = "wm-test-boom worker_start" })',
        worker_exit  => 'wm.rec("worker_exit", { raise = "wm-test-boom worker_exit" })',
    );
    $n->start;
    is(scalar $n->get('/ping'), 200, "[$label] nginx started and serves");
    my ($victim) = $n->worker_pids;
    my $mark = $n->mark;
    $n->kill_worker($victim, 'KILL');
    $n->wait_log(qr/\bWMCB crash id=1-$victim /, since => $mark, desc => "[$label] on_crash for the killed worker");
    $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master exit of generation 1");
    is(scalar $n->get('/ping'), 200, "[$label] nginx reloaded and serves");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] generation 1 gone");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @f = failures($n);
    my %kinds;
    $kinds{ $_->{kind} }++ for @f;
    my @c = $n->callbacks;
    my %cbs;
    $cbs{ $_->{event} }++ for @c;
    is_deeply(\%kinds, { map { (my $k = $_) =~ s/_/ /; ($k => $cbs{$_}) } keys %cbs },
              "[$label] every callback's error is logged once (" . join(', ', map { "$_ $kinds{$_}" } sort keys %kinds) . ')');
    is(scalar(grep { $_->{e}{level} ne 'error' } @f), 0, "[$label] ... at ERR");
    is(scalar(grep { $_->{e}{text} !~ /wm-test-boom .*stack traceback/s } @f), 0, "[$label] ... with the message and a traceback");
    is(scalar(select_cbs(\@c, event => 'master_exit')), 2, "[$label] two master exits (generations 1 and 2)");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors but the raised ones and the kill", qr/wm-test-boom/, qr/exited on signal 9/,
                 qr/\[worker-manager\] worker 1-$victim \(pid $victim, slot \d+\) crashed/);
}

# a callback that blocks ~2 s: the others wait
{
    my $label = 'a callback blocks 2 s';
    my $n = WorkerManager::Nginx->new(
        workers      => 3,
        opts         => $OPTS,
        http_extra   => 'lua_shared_dict wm_test 64k;',
        worker_start => 'wm.rec("worker_start", { slow = 2000, when = wm.once("start") })',
        worker_exit  => 'wm.rec("worker_exit", { slow = 2000, when = wm.once("exit") })',
    );
    my $t0 = time;
    $n->start;
    my @el = $n->enter_leave;
    my ($slow_leave) = grep { $_->{kind} eq 'LEAVE' && $_->{event} eq 'worker_start' } @el;
    my ($slow_enter) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'worker_start' } @el;
    my @later = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'worker_start' && $_->{pid} ne $slow_enter->{pid} } @el;
    cmp_ok($slow_leave->{t} - $slow_enter->{t}, '>=', 1.9, sprintf "[%s] the first worker start ran %.2f s", $label, $slow_leave->{t} - $slow_enter->{t});
    is(scalar(grep { $_->{t} < $slow_leave->{t} } @later), 0, "[$label] the other two starts entered after it left (they waited)");
    cmp_ok(time - $t0, '>=', 2, "[$label] the node took >= 2 s to start");
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @el = $n->enter_leave(since => $mark);
    my ($x_enter) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'worker_exit' } @el;
    my ($x_leave) = grep { $_->{kind} eq 'LEAVE' && $_->{event} eq 'worker_exit' && $_->{pid} eq $x_enter->{pid} } @el;
    cmp_ok($x_leave->{t} - $x_enter->{t}, '>=', 1.9, "[$label] the first worker exit ran ~2 s");
    is(scalar(grep { $_->{kind} eq 'ENTER' && $_->{pid} ne $x_enter->{pid} && $_->{t} < $x_leave->{t} } @el), 0,
       "[$label] no other exit entered while it ran");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors");
}

# APIs the phase does not allow
for my $stop ('QUIT', 'TERM') {
    my $label = "APIs not allowed in the phase, $stop";
    my $ws = 'function(id, p, m, n) wm.rec("worker_start")(id, p, m, n) ngx.sleep(0.1) end';
    my $timer = 'local ok, err = ngx.timer.at(1, function() end) ngx.log(ngx.WARN, "WMT timer.at in ", ngx.get_phase(), ": ", tostring(ok), " ", tostring(err)) assert(ok, err)';
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        opts         => $OPTS,
        exit_hook    => $stop eq 'TERM' ? 1 : 0,
        worker_start => $ws,
        worker_exit  => "function(id, p, m, n) wm.rec(\"worker_exit\")(id, p, m, n) $timer end",
        master_exit  => "function(id, p, m, n) wm.rec(\"master_exit\")(id, p, m, n) $timer end",
    );
    $n->start;
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master exit of generation 1");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] generation 1 gone");
    is(scalar $n->get('/ping'), 200, "[$label] nginx serves");
    my $stopmark = $n->mark;
    $n->signal($stop);
    ok($n->wait_exit, "[$label] $stop stops nginx");
    my @f = failures($n);
    my @sleep = grep { $_->{kind} eq 'worker start' && $_->{e}{text} =~ /API disabled in the context of init_worker_by_lua/ } @f;
    is(scalar @sleep, 4, "[$label] ngx.sleep in each of the 4 worker starts: logged at ERR (API disabled in init_worker)");
    my @ex = grep { $_->{kind} =~ /exit/ } @f;
    is(scalar @ex, 6, "[$label] ngx.timer.at in each of the 4 worker exits and 2 master exits: logged at ERR");
    my @t_graceful = grep { $_->{e}{text} =~ /: process exiting/ } @ex;
    is(scalar @t_graceful, $stop eq 'QUIT' ? 6 : 3, "[$label] ... 'process exiting' in the timer of a graceful exit (" . scalar(@t_graceful) . ')');
    if ($stop eq 'TERM') {
        is(scalar(grep { $_->{e}{text} =~ /API disabled in the context of exit_worker_by_lua/ } @ex), 3,
           "[$label] ... 'API disabled' in exit_worker_by_lua on TERM (3)");
    }
    my @c = $n->callbacks(since => $stopmark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] $stop: exits 2, 1 (nothing counted twice)");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] $stop: one master exit"), [2, 0, 0, 'nil'],
          "[$label] master_exit(2, 0, 0, nil)");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors but the callbacks' own", $FAILED_RE, qr/^\s+\S+:\d+: in |stack traceback/);
}

done_testing;
