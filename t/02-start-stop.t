# Fresh start, graceful stop (QUIT), and a restart that begins again at 1.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $n = WorkerManager::Nginx->new(workers => 2);

for my $round (1, 2) {
    my $start_mark = $n->mark;
    $n->start;
    my @c = $n->callbacks(since => $start_mark);
    note "round $round callbacks after start:\n" . cbs_str(@c);

    is($c[0]{event}, 'master_start', "[$round] master_start is the first callback");
    my $ms = exactly_one([select_cbs(\@c, event => 'master_start')], "[$round] one master_start");
    cb_is($ms, [1, 'nil', 0, 'nil'], "[$round] master_start(1, nil, 0, nil)");
    ok($ms && !grep({ $_ == $ms->{logpid} } $n->worker_pids),
       "[$round] master_start does not run in a worker (ngx.worker.id() reads $ms->{slot} in init_by_lua)");

    my @ws = select_cbs(\@c, event => 'worker_start');
    is(scalar @ws, 2, "[$round] two worker_start");
    is(join(',', map { $_->{mine} } @ws), '1,2', "[$round] worker_start mine 1 then 2");
    for my $w (@ws) {
        cb_is($w, ["1-$w->{pid}", 'nil', undef, 'nil'], "[$round] worker_start($w->{id}, nil, $w->{mine}, nil)");
        is($w->{logpid}, $w->{pid}, "[$round] $w->{id} runs in its own worker");
        is($w->{count}, 2, "[$round] $w->{id} count=2");
    }
    is(sorted_field('slot', @ws), '0,1', "[$round] one worker_start per slot");
    is_deeply([sort { $a <=> $b } map { $_->{pid} } @ws], [sort { $a <=> $b } $n->worker_pids],
              "[$round] worker_start ran in each running worker");
    is(scalar(select_cbs(\@c, event => 'worker_exit')) + scalar(select_cbs(\@c, event => 'master_exit')), 0,
       "[$round] no exit callbacks while running");
    is(scalar $n->get('/ping'), 200, "[$round] nginx serves");

    my $quit_mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$round] QUIT stops nginx");

    @c = $n->callbacks(since => $quit_mark);
    note "round $round callbacks after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(scalar @we, 2, "[$round] two worker_exit");
    is(join(',', map { $_->{mine} } @we), '2,1', "[$round] worker_exit mine 2 then 1");
    is_deeply([sort map { $_->{id} } @we], [sort map { $_->{id} } @ws], "[$round] every started worker exits");
    cb_is($_, [undef, 'nil', undef, 'nil'], "[$round] worker_exit($_->{id}, nil, $_->{mine}, nil)") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$round] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$round] master_exit(1, nil, 0, nil)");
    my ($last) = grep { $_->{mine} eq '1' } @we;
    is($me->{logpid}, $last->{pid}, "[$round] master_exit runs in the last exiting worker") if $me && $last;
    is($c[-1]{event}, 'master_exit', "[$round] master_exit is the last callback");
    is(scalar(select_cbs(\@c, event => 'master_start')) + scalar(select_cbs(\@c, event => 'worker_start')), 0,
       "[$round] no start callbacks during QUIT");

    checker_ok($n, label => $round, since => $start_mark);
}

no_errors_ok($n);
done_testing;
