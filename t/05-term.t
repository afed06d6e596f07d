# Fast shutdown (TERM).
#  - with the third hook (exit_worker_by_lua -> on_exit_worker_by_lua): every
#    worker exit and exactly one master exit run, with n_next nil; also after
#    a reload (generation 2: n_prev 0).
#  - without it: nginx fires no timers on TERM, so the seed's two hooks cannot
#    see the exit; what the module does is reported (note), and we assert that
#    nginx stops cleanly with no Lua error and never two master exits.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my @allowed;    # no error-level entries are expected at all

# --- with the exit hook, straight after start
{
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1);
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->signal('TERM');
    ok($n->wait_exit, '[hook] TERM stops nginx');
    my @c = $n->callbacks(since => $mark);
    note "[hook] callbacks after TERM:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(scalar @we, 2, '[hook] two worker_exit on TERM');
    is(join(',', map { $_->{mine} } @we), '2,1', '[hook] mine 2 then 1');
    is_deeply([sort map { $_->{id} } @we], [sort map { $_->{id} } @ws], '[hook] each started worker exits');
    cb_is($_, [undef, 'nil', undef, 'nil'], "[hook] worker_exit($_->{id}, nil, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], '[hook] exactly one master_exit');
    cb_is($me, [1, 'nil', 0, 'nil'], '[hook] master_exit(1, nil, 0, nil)');
    my ($last) = grep { $_->{mine} eq '1' } @we;
    is($me->{logpid}, $last->{pid}, '[hook] master_exit in the last exiting worker') if $me && $last;
    is(scalar $n->grep_log(qr/exited on signal 9/), 0, '[hook] no worker needed SIGKILL from the master');
    checker_ok($n, label => 'hook');
    no_errors_ok($n, '[hook] no errors', @allowed);
}

# --- with the exit hook, after a reload
{
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1);
    $n->start;
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    my @hup = $n->callbacks(since => $mark);
    is(scalar select_cbs(\@hup, event => 'worker_exit', gen => 1), 2, '[hook+HUP] gen-1 workers exit once each on HUP');
    my $me1 = exactly_one([select_cbs(\@hup, event => 'master_exit', gen => 1)], '[hook+HUP] one master_exit for gen 1');
    cb_is($me1, [1, 'nil', 0, undef], '[hook+HUP] master_exit(1, nil, 0, .)');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'old workers gone');

    $mark = $n->mark;
    $n->signal('TERM');
    ok($n->wait_exit, '[hook+HUP] TERM stops nginx');
    my @c = $n->callbacks(since => $mark);
    note "[hook+HUP] callbacks after TERM:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', '[hook+HUP] gen-2 exits mine 2 then 1');
    cb_is($_, [undef, 0, undef, 'nil'], "[hook+HUP] worker_exit($_->{id}, 0, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], '[hook+HUP] exactly one master_exit on TERM');
    cb_is($me, [2, 0, 0, 'nil'], '[hook+HUP] master_exit(2, 0, 0, nil)');
    checker_ok($n, label => 'hook+HUP');
    no_errors_ok($n, '[hook+HUP] no errors', @allowed);
}

# --- without the exit hook
{
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 0);
    $n->start;
    my $mark = $n->mark;
    $n->signal('TERM');
    ok($n->wait_exit, '[no hook] TERM stops nginx');
    my @c = $n->callbacks(since => $mark);
    note "[no hook] callbacks on TERM without on_exit_worker_by_lua: "
        . (@c ? "\n" . cbs_str(@c) : "none (expected: nginx runs no timers on TERM)");
    ok(scalar(select_cbs(\@c, event => 'master_exit')) <= 1, '[no hook] never two master_exit');
    is(scalar $n->grep_log(qr/exited on signal 9/), 0, '[no hook] no worker needed SIGKILL from the master');
    is(scalar(grep { $_->{text} =~ /lua|worker\.manager/i } $n->errors(since => $mark)), 0,
       '[no hook] no Lua error logged on TERM');
    # no exit is tracked on this TERM: not complete (gen 1 gets no master exit)
    checker_ok($n, label => 'no hook', complete => 0);
    no_errors_ok($n, '[no hook] no errors', @allowed);

    # a restart after a TERM without the hook begins again at generation 1
    $mark = $n->mark;
    my $restart = $mark;
    $n->start;
    my ($ms) = $n->callbacks(since => $mark, event => 'master_start');
    cb_is($ms, [1, 'nil', 0, 'nil'], '[no hook] restart: master_start(1, nil, 0, nil)');
    my @ws = $n->callbacks(since => $mark, event => 'worker_start');
    is(join(',', map { $_->{mine} } @ws), '1,2', '[no hook] restart: workers mine 1 then 2');
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, '[no hook] restart: QUIT stops nginx');
    my @me = $n->callbacks(since => $mark, event => 'master_exit');
    cb_is(exactly_one(\@me, '[no hook] restart: one master_exit'), [1, 'nil', 0, 'nil'],
          '[no hook] restart: master_exit(1, nil, 0, nil)');
    checker_ok($n, label => 'no hook, restart', since => $restart);
}

done_testing;
