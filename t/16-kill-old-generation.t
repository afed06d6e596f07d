# Every worker of an old generation killed while it drains (kept busy with
# block_workers, so it has not run its exit when the HUP comes): nginx
# respawns none of them, so the newer generation's heartbeats must find them
# dead (pid gone), drop each once (on_crash once each), and run the old
# generation's master exit exactly once, in a worker of the newer generation,
# with n_next a number (the node is reloading, not stopping).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 10, on_crash = wm.rec("crash") }';

sub end_ok {
    my ($n, $label, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    no_errors_ok($n, "[$label] no errors but the kills and the module's reports of them", qr/exited on signal 9/, @allow);
}

# kill the given workers of generation $g (busy, draining); wait for the
# master exit of $g; check it and the drops; returns the master exit.
sub kill_generation {
    my ($n, $label, $g, $next, @victims) = @_;
    my $prev = $g == 1 ? 'nil' : 0;    # older generations are gone by then
    my $mark = $n->mark;
    my $t0 = time;
    $n->kill_worker($_->{pid}, 'KILL') for @victims;
    my ($me) = $n->wait_log(qr/\bWMCB master_exit id=$g /, since => $mark,
                            desc => "[$label] master_exit of gen $g after all its workers were killed");
    note sprintf "[%s] gen %d: kill -9 of its %d workers -> master exit entered: %.3f s",
        $label, $g, scalar @victims, $me ? ((grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'master_exit' }
                                             $n->enter_leave(since => $mark))[0]{t} - $t0) : -1;
    my @c = $n->callbacks(since => $mark);
    note "[$label] after the kills:\n" . cbs_str(@c);
    my @d = drops($n, since => $mark);
    is(join(' ', sort map { $_->{wid} } @d), join(' ', sort map { $_->{id} } @victims),
       "[$label] each killed gen-$g worker dropped exactly once");
    like($_->{cause}, qr/^its process is gone/, "[$label] $_->{wid}: its process is gone") for @d;
    my @cr = select_cbs(\@c, event => 'crash');
    is(join(' ', sort map { $_->{id} } @cr), join(' ', sort map { $_->{id} } @victims),
       "[$label] on_crash exactly once per killed worker");
    is(join(',', map { $_->{mine} } @cr), join(',', reverse 0 .. $#victims),
       "[$label] on_crash n_mine counts down to 0 (counts after each drop)");
    cb_is($_, [undef, $prev, undef, $next], "[$label] on_crash($_->{id}, $prev, $_->{mine}, $next)") for @cr;
    my @me = select_cbs(\@c, event => 'master_exit', gen => $g);
    my $m = exactly_one(\@me, "[$label] exactly one master_exit for gen $g");
    cb_is($m, [$g, $prev, 0, $next], "[$label] master_exit($g, $prev, 0, $next): n_next a number");
    if ($m) {
        my ($finder) = grep { $_->{pid} eq $m->{logpid} } $n->callbacks(event => 'worker_start');
        ok($finder && $finder->{gen} > $g, "[$label] ... run in a worker of a newer generation ("
           . ($finder ? $finder->{id} : "pid $m->{logpid}") . ")");
        ok($m->{idx} > $d[-1]{idx}, "[$label] ... after the last drop") if @d;
        ok(scalar $n->grep_log(qr/generation $g lost its last worker without an exit/, since => $mark),
           "[$label] ... and the module says it runs it on behalf of the dead generation");
    }
    is(scalar select_cbs(\@c, event => 'worker_exit', gen => $g), 0, "[$label] no worker_exit of gen $g");
    return $m;
}

for my $case ([2, 0], [3, 1]) {
    my ($workers, $hook) = @$case;
    my $label = "$workers workers" . ($hook ? ', hook' : '');
    my $n = WorkerManager::Nginx->new(workers => $workers, opts => $OPTS, exit_hook => $hook);
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my @socks = $n->block_workers(15000);    # gen 1 busy: it cannot run its exit
    my $mark = $n->reload;
    my @gen2 = $n->callbacks(since => $mark, event => 'worker_start', gen => 2);
    is(scalar $n->callbacks(since => $mark, event => 'worker_exit'), 0, "[$label] gen 1 busy: no exit yet");
    kill_generation($n, $label, 1, $workers, @gen1);
    $n->finish($_) for @socks;
    is(scalar $n->get('/ping'), 200, "[$label] gen 2 serves");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), join(',', reverse 1 .. $workers),
       "[$label] gen-2 exits count down from $workers");
    cb_is($_, [undef, 0, undef, 'nil'], "[$label] worker_exit($_->{id}, 0, $_->{mine}, nil)") for select_cbs(\@c, event => 'worker_exit');
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, map { qr/\b\Q$_->{id}\E\b/ } @gen1);
}

# one at a time: no master exit while one of them lives
{
    my $label = 'one at a time';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my @socks = $n->block_workers(15000);
    my $mark = $n->reload;
    $n->kill_worker($gen1[0]{pid}, 'KILL');
    my ($cr) = $n->wait_log(qr/\bWMCB crash id=\Q$gen1[0]{id}\E /, since => $mark, desc => "[$label] first one reported");
    my ($c1) = grep { $_->{id} eq $gen1[0]{id} } $n->callbacks(since => $mark, event => 'crash');
    cb_is($c1, [$gen1[0]{id}, 'nil', 1, 2], "[$label] on_crash($gen1[0]{id}, nil, 1, 2)");
    ok(!$n->absent_for(qr/\bWMCB master_exit id=1 /, 2.5, since => $mark),
       "[$label] no master exit of gen 1 while its other (busy) worker lives (2 heartbeats)");
    kill_generation($n, "$label, second", 1, 2, $gen1[1]);
    $n->finish($_) for @socks;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    end_ok($n, $label, map { qr/\b\Q$_->{id}\E\b/ } @gen1);
}

# two draining generations: gen 1 and gen 2 both busy, gen 3 running
{
    my $label = 'two old generations';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my @gen1 = $n->callbacks(event => 'worker_start', gen => 1);
    my @socks = $n->block_workers(15000);
    my $mark = $n->reload;
    my @gen2 = $n->callbacks(since => $mark, event => 'worker_start', gen => 2);
    push @socks, $n->block_workers(15000);    # only gen 2 can accept now
    my @blocked = map { $_->{pid} } $n->grep_log(qr/WMBLOCK begin/, since => $mark);
    is(join(' ', sort @blocked), join(' ', sort map { $_->{pid} } @gen2), "[$label] gen 2 busy too");
    $mark = $n->reload;
    my ($ms) = $n->callbacks(since => $mark, event => 'master_start');
    cb_is($ms, [3, 4, 0, 'nil'], "[$label] master_start(3, 4, 0, nil)");
    my @ws3 = $n->callbacks(since => $mark, event => 'worker_start', gen => 3);
    cb_is($_, [undef, 4, undef, 'nil'], "[$label] worker_start($_->{id}, 4, $_->{mine}, nil)") for @ws3;
    kill_generation($n, "$label, gen 1", 1, 4, @gen1);
    kill_generation($n, "$label, gen 2", 2, 2, @gen2);
    $n->finish($_) for @socks;
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $mark);
    cb_is($_, [undef, 0, undef, 'nil'], "[$label] worker_exit($_->{id}, 0, $_->{mine}, nil)") for select_cbs(\@c, event => 'worker_exit');
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT"),
          [3, 0, 0, 'nil'], "[$label] master_exit(3, 0, 0, nil)");
    end_ok($n, $label, map { qr/\b\Q$_->{id}\E\b/ } @gen1, @gen2);
}

done_testing;
