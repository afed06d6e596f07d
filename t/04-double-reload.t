# Two HUPs 50 ms apart: generations 1, 2, 3 overlap; then QUIT.
# Three variants: the seed's two hooks only; with the exit hook; and with
# both gen-1 workers blocked (busy loop in a request) for 1.5 s around the two
# HUPs, so that they are still counted while generations 2 and 3 start.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;

for my $variant ([ 'two hooks', {} ], [ 'exit hook', { exit_hook => 1 } ], [ 'old workers busy', {}, 1500 ]) {
    my ($label, $opts, $block) = @$variant;
    my $n = WorkerManager::Nginx->new(workers => 2, %$opts);
    $n->start;
    my @socks = $block ? $n->block_workers($block) : ();

    my $mark = $n->mark;
    $n->signal('HUP');
    sleep 0.05;    # the spacing under test, not a wait for an event
    $n->signal('HUP');
    $n->wait_log(qr/\bWMCB master_start id=3 /, since => $mark, desc => 'master_start of gen 3');
    $n->wait_log(qr/\bWMCB worker_start id=3-/, since => $mark, count => 2, desc => 'gen-3 workers started');
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    $n->wait_log(qr/\bWMCB master_exit id=2 /, since => $mark, desc => 'master_exit of gen 2');
    $n->wait_until(sub { my @p = $n->worker_pids(all => 1); @p == 2 }, desc => 'only gen-3 workers left');
    is($n->finish($_), 200, "[$label] blocking request completed") for @socks;

    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(join(',', map { $_->{id} } select_cbs(\@c, event => 'master_start')), '1,2,3',
       "[$label] master_start for generations 1, 2, 3 in order");
    my ($ms3) = select_cbs(\@c, event => 'master_start', gen => 3);
    cb_is($ms3, [3, undef, 0, 'nil'], "[$label] master_start(3, ., 0, nil)");
    for my $g (1, 2) {
        exactly_one([select_cbs(\@c, event => 'master_exit', gen => $g)], "[$label] exactly one master_exit for gen $g");
    }
    is(scalar select_cbs(\@c, event => 'master_exit', gen => 3), 0, "[$label] gen 3 still running");
    my @ws3 = select_cbs(\@c, event => 'worker_start', gen => 3);
    is(join(',', map { $_->{mine} } @ws3), '1,2', "[$label] gen-3 worker_start mine 1 then 2");
    cb_is($_, [undef, undef, undef, 'nil'], "[$label] worker_start($_->{id}, $_->{prev}, $_->{mine}, nil)") for @ws3;
    my @ws2 = select_cbs(\@c, event => 'worker_start', gen => 2);
    my @we2 = select_cbs(\@c, event => 'worker_exit', gen => 2);
    is(scalar @we2, scalar @ws2, "[$label] every gen-2 worker that started also exited (" . scalar(@ws2) . ")");
    is(scalar select_cbs(\@c, event => 'worker_exit', gen => 1), 2, "[$label] both gen-1 workers exited");
    # n_prev of gen-3 callbacks counts all older generations: checked exactly by the model;
    # report what the run exercised
    note "[$label] gen-3 worker_start prev values: " . join(',', map { $_->{prev} } @ws3)
       . "; master_start(3) prev=$ms3->{prev}";
    if ($block) {
        # gen-1 workers were blocked, hence alive, when gen 3 started; gen-2
        # workers had at least the master's 100 ms to register
        my ($max) = sort { $b <=> $a } map { $_->{prev} =~ /^\d+$/ ? $_->{prev} : -1 } ($ms3, @ws3);
        ok($max >= 3, "[$label] gen-3 callbacks count workers of gen 1 AND gen 2 in n_prev (max prev $max)");
    }
    is(scalar $n->get('/ping'), 200, "[$label] serves");

    my $qmark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $qmark);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] QUIT: gen-3 exits mine 2 then 1");
    cb_is($_, [undef, 0, undef, 'nil'], "[$label] worker_exit($_->{id}, 0, ., nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT");
    cb_is($me, [3, 0, 0, 'nil'], "[$label] master_exit(3, 0, 0, nil)");

    @c = $n->callbacks;
    for my $g (1, 2, 3) {
        is(scalar select_cbs(\@c, event => 'master_exit', gen => $g), 1, "[$label] gen $g: one master_exit in all");
    }
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors");
}
done_testing;
