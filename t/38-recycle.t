# A worker recycled by a signal sent to it (kill -QUIT / -TERM <worker pid>):
# nginx respawns its slot from the same configuration.  The generation goes
# on: the worker's exit callback runs, the respawn's start callback runs, no
# master exit, no on_crash; exit_reason() tells the exit from a stop
# ("replace").  Also with one worker, or every worker recycled at once,
# where the exiting worker is the last of its generation: the module sees
# that nginx's master keeps its listening sockets (a master told to QUIT
# closes them at once).  TERM gives no such sign: the last worker's fast
# exit runs the master exit, and its respawn opens a new generation.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

# failed = 1: a recycled worker waits that long for the sockets to close
my $OPTS = '{ shm = "wm", interval = 1, failed = 1, on_crash = wm.rec("crash") }';
my $IDLE_RE = qr/\[worker-manager\] generation (\d+) has no worker now, but its master keeps its listening sockets/;

# Send $sig to the given start callbacks' workers at once; wait for as many
# respawned workers' starts; returns the new start callbacks.
sub recycle {
    my ($n, $label, $sig, @victims) = @_;
    my $mark = $n->mark;
    $n->kill_worker($_->{pid}, $sig) for @victims;
    $n->wait_log(qr/worker process $_->{pid} exited with code 0/, since => $mark,
                 desc => "[$label] $_->{id} exits (code 0)") for @victims;
    $n->wait_log(qr/WMREADY /, count => scalar @victims, since => $mark,
                 desc => "[$label] " . scalar(@victims) . " respawned workers ready");
    my %old = map { $_->{pid} => 1 } @victims;
    return grep { !$old{ $_->{pid} } } $n->callbacks(since => $mark, event => 'worker_start');
}

sub stop_ok {
    my ($n, $label, $since) = @_;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks(since => $since);
    return @c;
}

sub end_ok {
    my ($n, $label, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    no_errors_ok($n, "[$label] no errors", @allow);
}

# --- one worker, QUIT to it: the respawn goes on in generation 1
{
    my $label = '1 worker, QUIT to the worker';
    my $n = WorkerManager::Nginx->new(workers => 1, opts => $OPTS);
    $n->start;
    my ($w1) = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my ($w2) = recycle($n, $label, 'QUIT', $w1);
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    my $we = exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker exit");
    cb_is($we, ["1-$w1->{pid}", 'nil', 1, 'nil'], "[$label] worker_exit(1-<pid>, nil, 1, nil)");
    is($we->{reason}, 'replace', "[$label] ... exit_reason() says replace");
    cb_is($w2, ["1-$w2->{pid}", 'nil', 1, 'nil'], "[$label] the respawn: worker_start(1-<new pid>, nil, 1, nil)");
    is($w2->{slot}, $w1->{slot}, "[$label] ... in the same slot");
    is(scalar(select_cbs(\@c, event => 'master_exit')), 0, "[$label] no master exit");
    is(scalar(select_cbs(\@c, event => 'crash')), 0, "[$label] no on_crash");
    is(scalar(select_cbs(\@c, event => 'master_start')), 0, "[$label] no master start");
    is(scalar(() = $n->grep_log($IDLE_RE, since => $mark)), 1, "[$label] the module notes the idle generation once");

    # the respawn is tracked: its death is reported, with exact counts
    $mark = $n->mark;
    $n->kill_worker($w2->{pid}, 'KILL');
    my ($crash) = $n->wait_log(qr/\bWMCB crash id=1-$w2->{pid} /, since => $mark, desc => "[$label] on_crash for the respawn");
    my ($w3) = $n->callbacks(since => $mark, event => 'worker_start');
    cb_is($w3, ["1-$w3->{pid}", 'nil', 2, 'nil'], "[$label] its own respawn counts it: worker_start(1-<pid>, nil, 2, nil)");
    my ($cr) = $n->callbacks(since => $mark, event => 'crash');
    cb_is($cr, ["1-$w2->{pid}", 'nil', 1, 'nil'], "[$label] crash(1-<respawn>, nil, 1, nil)");

    $mark = $n->mark;
    @c = stop_ok($n, $label, $mark);
    ($we) = select_cbs(\@c, event => 'worker_exit');
    cb_is($we, ["1-$w3->{pid}", 'nil', 1, 'nil'], "[$label] QUIT: worker_exit(1-<pid>, nil, 1, nil)");
    is($we->{reason}, 'stop', "[$label] ... exit_reason() says stop");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] QUIT: one master exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    is(scalar(select_cbs([$n->callbacks], event => 'master_exit')), 1, "[$label] one master exit over the whole run");
    end_ok($n, $label, qr/exited on signal 9/, qr/\b1-$w2->{pid}\b/);
}

# --- two workers, QUIT to one: its exit counts both, the respawn too
{
    my $label = '2 workers, QUIT to one';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($victim) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my ($new) = recycle($n, $label, 'QUIT', $victim);
    my @c = $n->callbacks(since => $mark);
    my $we = exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker exit");
    cb_is($we, ["1-$victim->{pid}", 'nil', 2, 'nil'], "[$label] worker_exit(1-<pid>, nil, 2, nil)");
    is($we->{reason}, 'replace', "[$label] ... exit_reason() says replace");
    cb_is($new, ["1-$new->{pid}", 'nil', 2, 'nil'], "[$label] worker_start(1-<new pid>, nil, 2, nil)");
    is(scalar(select_cbs(\@c, event => 'master_exit')) + scalar(select_cbs(\@c, event => 'crash')), 0,
       "[$label] no master exit, no on_crash");
    is(scalar(() = $n->grep_log($IDLE_RE, since => $mark)), 0, "[$label] the generation never went idle");

    $mark = $n->mark;
    @c = stop_ok($n, $label, $mark);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] QUIT: exits 2, 1");
    is(join(',', map { $_->{reason} } @we), 'stop,stop', "[$label] ... both say stop");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label);
}

# --- two workers, both recycled at once: the last one's exit leaves the
# generation idle, the respawns go on in it
{
    my $label = '2 workers, QUIT to both';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my @old = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my @new = recycle($n, $label, 'QUIT', @old);
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    # the first one to exit may be respawned before the second exits: each
    # counts the workers counted then (itself included)
    is(join(',', map { $_->{mine} } @we), join(',', map { counted_at($n, 1, $_->{idx}) } @we),
       "[$label] each exit counts the workers counted then (" . join(',', map { $_->{mine} } @we) . ')');
    is(join(',', map { $_->{reason} } @we), 'replace,replace', "[$label] ... both say replace");
    is(join(',', map { $_->{next} } @we), 'nil,nil', "[$label] ... n_next nil (no reload)");
    is(scalar(select_cbs(\@c, event => 'master_exit')), 0, "[$label] no master exit");
    # each respawn counts the workers counted when it starts: the second
    # slot's worker may still be exiting then
    for my $w (@new) {
        my $k = counted_at($n, 1, $w->{idx});
        cb_is($w, ["1-$w->{pid}", 'nil', $k + 1, 'nil'], "[$label] respawn worker_start(1-<pid>, nil, " . ($k + 1) . ", nil)");
    }
    is(scalar(select_cbs(\@c, event => 'crash')), 0, "[$label] no on_crash");

    $mark = $n->mark;
    @c = stop_ok($n, $label, $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] QUIT: exits 2, 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] master_exit(1, nil, 0, nil)");
    end_ok($n, $label);
}

# --- TERM to one of two workers (exit hook): its fast exit runs, not last
{
    my $label = '2 workers, TERM to one, exit hook';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, exit_hook => 1);
    $n->start;
    my ($victim) = grep { $_->{slot} eq '1' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my ($new) = recycle($n, $label, 'TERM', $victim);
    my @c = $n->callbacks(since => $mark);
    my $we = exactly_one([select_cbs(\@c, event => 'worker_exit')], "[$label] one worker exit");
    cb_is($we, ["1-$victim->{pid}", 'nil', 2, 'nil'], "[$label] worker_exit(1-<pid>, nil, 2, nil)");
    is($we->{reason}, 'stop', "[$label] ... exit_reason() says stop: a fast exit cannot tell");
    cb_is($new, ["1-$new->{pid}", 'nil', 2, 'nil'], "[$label] worker_start(1-<new pid>, nil, 2, nil)");
    is(scalar(select_cbs(\@c, event => 'master_exit')) + scalar(select_cbs(\@c, event => 'crash')), 0,
       "[$label] no master exit, no on_crash");
    @c = stop_ok($n, $label, $n->mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] QUIT: master_exit(1, nil, 0, nil)");
    end_ok($n, $label);
}

# --- TERM to the only worker (exit hook): nginx tells this from a fast stop
# to nobody; the master exit runs, and the respawn opens generation 2
{
    my $label = '1 worker, TERM to it, exit hook';
    my $n = WorkerManager::Nginx->new(workers => 1, opts => $OPTS, exit_hook => 1);
    $n->start;
    my ($w1) = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my ($w2) = recycle($n, $label, 'TERM', $w1);
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(join(' ', map { "$_->{event}:$_->{id}" } @c),
       "worker_exit:1-$w1->{pid} master_exit:1 master_start:2 worker_start:2-$w2->{pid}",
       "[$label] worker exit, master exit of 1, then master start and worker start of 2");
    cb_is($c[1], [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    cb_is($c[2], [2, 0, 0, 'nil'], "[$label] master_start(2, 0, 0, nil), run in the respawn");
    is($c[2]{logpid}, $w2->{pid}, "[$label] ... whose pid it logs");
    cb_is($w2, ["2-$w2->{pid}", 0, 1, 'nil'], "[$label] worker_start(2-<pid>, 0, 1, nil)");
    ok(scalar $n->grep_log(qr/\[worker-manager\] worker $w2->{pid} starts from the configuration of generation 1 .* it opens generation 2/,
                           since => $mark), "[$label] the module says why generation 2 opens");
    @c = stop_ok($n, $label, $n->mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit"), [2, 0, 0, 'nil'],
          "[$label] QUIT: master_exit(2, 0, 0, nil)");
    end_ok($n, $label);
}

# --- TERM to a worker without the exit hook: nginx runs no Lua on its way
# out, so its respawn finds it counted and gone: reported as a crash
{
    my $label = '2 workers, TERM to one, no exit hook';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my ($victim) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    my ($new) = recycle($n, $label, 'TERM', $victim);
    my ($crash) = $n->wait_log(qr/\bWMCB crash id=1-$victim->{pid} /, since => $mark, desc => "[$label] on_crash");
    my @c = $n->callbacks(since => $mark);
    is(scalar(select_cbs(\@c, event => 'worker_exit')), 0, "[$label] no worker exit (no hook)");
    cb_is($new, ["1-$new->{pid}", 'nil', 3, 'nil'], "[$label] the respawn counts it: worker_start(1-<pid>, nil, 3, nil)");
    cb_is(exactly_one([select_cbs(\@c, event => 'crash')], "[$label] one on_crash"), ["1-$victim->{pid}", 'nil', 2, 'nil'],
          "[$label] crash(1-<pid>, nil, 2, nil)");
    @c = stop_ok($n, $label, $n->mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] QUIT: master_exit(1, nil, 0, nil)");
    end_ok($n, $label, qr/\b1-$victim->{pid}\b/);
}

# --- the only worker recycled, and the node stopped while it still drains:
# the exit hook sees the master close its sockets (QUIT), or its own
# process told to terminate (TERM), and runs the master exit
for my $case ([1, 'QUIT'], [1, 'TERM'], [0, 'QUIT']) {
    my ($hook, $stop) = @$case;
    my $label = "1 worker recycled, then $stop while it drains, exit hook " . ($hook ? 'on' : 'off');
    my $n = WorkerManager::Nginx->new(workers => 1, opts => $OPTS, exit_hook => $hook, linger => 3);
    $n->start;
    my ($w1) = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->kill_worker($w1->{pid}, 'QUIT');
    $n->wait_log($IDLE_RE, since => $mark, desc => "[$label] generation 1 goes idle");
    $n->signal($stop);
    ok($n->wait_exit, "[$label] $stop stops nginx");
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    my @me = select_cbs(\@c, event => 'master_exit');
    if ($hook) {
        cb_is(exactly_one(\@me, "[$label] one master exit"), [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
        ok(scalar $n->grep_log(qr/\[worker-manager\] generation 1 went idle and the node stops; running its master exit here/),
           "[$label] ... run by the exit hook of the worker that left it idle");
        end_ok($n, $label);
    } else {
        is(scalar @me, 0, "[$label] no master exit: nothing ran after the worker's exit callback");
        my $r = checker_errors($n, on_crash => 1, complete => 0);
        is_deeply([ @{ $r->{lifecycle} }, @{ $r->{model} }, @{ $r->{lock} } ], [], "[$label] lifecycle, counts and lock hold");
        like(join("\n", @{ $r->{invariants} }), qr/^generation 1 ended \(its last worker 1-$w1->{pid} left through its worker exit .*\) but got no master exit$/,
             "[$label] the run invariants find only the missing master exit (README: Limitations)");
        no_errors_ok($n, "[$label] no errors");
    }
}

done_testing;
