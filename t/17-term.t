# Fast shutdown (TERM).
#  - with the exit hook (exit_worker_by_lua -> on_exit_worker_by_lua): every
#    worker exit runs, then exactly one master exit, all with n_next nil
#    (the node is stopping), also after a crash and after a reload;
#  - without it: nginx runs no Lua timer on TERM, so nothing runs at all, and
#    nginx still stops cleanly (no SIGKILL, no error), and a restart begins
#    again at generation 1.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';

sub end_ok {
    my ($n, $label, $complete, @allow) = @_;
    checker_ok($n, label => $label, on_crash => 1, complete => $complete);
    no_errors_ok($n, "[$label] no errors" . (@allow ? ' but the kill and its report' : ''), @allow);
}

sub term {
    my ($n, $label) = @_;
    my $mark = $n->mark;
    $n->signal('TERM');
    ok($n->wait_exit, "[$label] TERM stops nginx");
    is(scalar $n->grep_log(qr/exited on signal 9/, since => $mark), 0, "[$label] no worker needed SIGKILL from the master");
    is(scalar $n->grep_log(qr/\[worker-manager\].*crashed: /, since => $mark), 0,
       "[$label] no stopping worker is reported crashed");
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks after TERM:\n" . (@c ? cbs_str(@c) : "  none\n");
    return @c;
}

# with the hook; $pre: what happens before the TERM
for my $pre ('none', 'crash', 'reload') {
    my $label = "hook, $pre";
    my $n = WorkerManager::Nginx->new(workers => 3, opts => $OPTS, exit_hook => 1);
    $n->start;
    my $gen = 1;
    my @allow;
    if ($pre eq 'crash') {
        my ($v) = grep { $_->{slot} eq '1' } $n->callbacks(event => 'worker_start');
        my $mark = $n->mark;
        $n->kill_worker($v->{pid}, 'KILL');
        $n->wait_log(qr/\bWMCB crash id=\Q$v->{id}\E /, since => $mark, desc => "[$label] on_crash for $v->{id}");
        @allow = (qr/exited on signal 9/, qr/\b\Q$v->{id}\E\b/);
    } elsif ($pre eq 'reload') {
        my $mark = $n->reload;
        $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
        $n->wait_until(sub { $n->worker_pids(all => 1) == 3 }, desc => "[$label] gen-1 workers gone");
        $gen = 2;
    }
    my @live = grep { $n->alive($_->{pid}) } $n->callbacks(event => 'worker_start', gen => $gen);
    my @c = term($n, $label);
    my $prev = $gen == 1 ? 'nil' : 0;
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(' ', sort map { $_->{id} } @we), join(' ', sort map { $_->{id} } @live), "[$label] every live worker exits once");
    is(join(',', map { $_->{mine} } @we), '3,2,1', "[$label] mine 3, 2, 1");
    cb_is($_, [undef, $prev, undef, 'nil'], "[$label] worker_exit($_->{id}, $prev, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [$gen, $prev, 0, 'nil'], "[$label] master_exit($gen, $prev, 0, nil)");
    is($me->{logpid}, $we[-1]{pid}, "[$label] ... in the last exiting worker") if $me && @we;
    is(scalar select_cbs(\@c, event => 'crash'), 0, "[$label] no on_crash on TERM");
    end_ok($n, $label, 1, @allow);
}

# without the hook: nothing runs
for my $pre ('none', 'crash', 'reload') {
    my $label = "no hook, $pre";
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, exit_hook => 0);
    $n->start;
    my @allow;
    if ($pre eq 'crash') {
        my ($v) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
        my $mark = $n->mark;
        $n->kill_worker($v->{pid}, 'KILL');
        $n->wait_log(qr/\bWMCB crash id=\Q$v->{id}\E /, since => $mark, desc => "[$label] on_crash for $v->{id}");
        @allow = (qr/exited on signal 9/, qr/\b\Q$v->{id}\E\b/);
    } elsif ($pre eq 'reload') {
        my $mark = $n->reload;
        $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of gen 1");
        $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] gen-1 workers gone");
    }
    my $mark = $n->mark;
    my @c = term($n, $label);
    is(scalar @c, 0, "[$label] no callback runs on TERM without the hook");
    is(scalar $n->grep_log(qr/\[worker-manager\]/, since => $mark), 0, "[$label] the module logs nothing on TERM");
    end_ok($n, $label, 0, @allow);

    # the shm is gone with the node: a restart begins again at generation 1
    $mark = $n->mark;
    $n->start;
    my @r = $n->callbacks(since => $mark);
    cb_is((select_cbs(\@r, event => 'master_start'))[0], [1, 'nil', 0, 'nil'], "[$label] restart: master_start(1, nil, 0, nil)");
    is(join(',', map { $_->{mine} } select_cbs(\@r, event => 'worker_start')), '1,2', "[$label] restart: workers 1, 2");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] restart: QUIT stops nginx");
    cb_is(exactly_one([$n->callbacks(since => $mark, event => 'master_exit')], "[$label] restart: one master_exit"),
          [1, 'nil', 0, 'nil'], "[$label] restart: master_exit(1, nil, 0, nil)");
}

done_testing;
