# One HUP reload, then QUIT.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $n = WorkerManager::Nginx->new(workers => 2);
$n->start;
my @gen1 = $n->worker_pids;
my $master = $n->master_pid;

my $mark = $n->reload;    # HUP, waits for 2 new ready workers
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of generation 1');
$n->wait_until(sub { my @p = $n->worker_pids(all => 1); @p == 2 }, desc => 'old workers gone');
is($n->master_pid, $master, 'same master');

my @c = $n->callbacks(since => $mark);
note "callbacks after HUP:\n" . cbs_str(@c);

my $ms = exactly_one([select_cbs(\@c, event => 'master_start')], 'one master_start on HUP');
cb_is($ms, [2, 2, 0, 'nil'], 'master_start(2, 2, 0, nil): both old workers alive');
is($ms->{logpid}, $master, 'master_start runs in the master');
is($c[0]{event}, 'master_start', 'master_start comes before any other callback of the reload');

my @ws = select_cbs(\@c, event => 'worker_start', gen => 2);
is(scalar @ws, 2, 'two gen-2 worker_start');
is(join(',', map { $_->{mine} } @ws), '1,2', 'gen-2 worker_start mine 1 then 2');
for my $w (@ws) {
    cb_is($w, ["2-$w->{pid}", undef, undef, 'nil'], "worker_start($w->{id}, ., $w->{mine}, nil)");
    like($w->{prev}, qr/^[0-2]$/, "$w->{id}: prev counts the live old workers (got $w->{prev}, normally 2)");
    is($w->{logpid}, $w->{pid}, "$w->{id} runs in its worker");
}
is(scalar select_cbs(\@c, event => 'worker_start', gen => 1), 0, 'no gen-1 start on HUP');

my @we = select_cbs(\@c, event => 'worker_exit', gen => 1);
is(scalar @we, 2, 'two gen-1 worker_exit');
is(join(',', map { $_->{mine} } @we), '2,1', 'gen-1 worker_exit mine 2 then 1');
is_deeply([sort { $a <=> $b } map { $_->{wpid} } @we], [sort { $a <=> $b } @gen1], 'the old workers exit');
for my $w (@we) {
    cb_is($w, [undef, 'nil', undef, undef], "worker_exit($w->{id}, nil, $w->{mine}, .)");
    like($w->{next}, qr/^[0-2]$/, "$w->{id}: next is the number of gen-2 workers (got $w->{next}, normally 2)");
}
my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], 'exactly one master_exit for gen 1');
cb_is($me, [1, 'nil', 0, undef], 'master_exit(1, nil, 0, .)');
like($me->{next} // '', qr/^[0-2]$/, "master_exit(1) next is a number (got " . ($me->{next} // '?') . ", normally 2)");
my ($last) = grep { $_->{mine} eq '1' } @we;
if ($me && $last) {
    is($me->{logpid}, $last->{pid}, 'master_exit(1) runs in the last old worker');
    my @after = grep { $_->{idx} > $last->{idx} } @c;
    is($after[0]{idx}, $me->{idx}, 'master_exit(1) is the very next callback after that worker_exit');
}
is(scalar select_cbs(\@c, event => 'master_exit', gen => 2), 0, 'no master_exit for gen 2 yet');
is(scalar $n->get('/ping'), 200, 'gen 2 serves');

# QUIT
my $qmark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
@c = $n->callbacks(since => $qmark);
note "callbacks after QUIT:\n" . cbs_str(@c);
@we = select_cbs(\@c, event => 'worker_exit');
is(scalar @we, 2, 'two worker_exit on QUIT');
is(join(',', map { $_->{mine} } @we), '2,1', 'mine 2 then 1');
is_deeply([sort map { $_->{id} } @we], [sort map { $_->{id} } @ws], 'the gen-2 workers exit');
cb_is($_, [undef, 0, undef, 'nil'], "worker_exit($_->{id}, 0, $_->{mine}, nil): prev 0, not nil") for @we;
$me = exactly_one([select_cbs(\@c, event => 'master_exit')], 'exactly one master_exit on QUIT');
cb_is($me, [2, 0, 0, 'nil'], 'master_exit(2, 0, 0, nil)');
is($c[-1]{event}, 'master_exit', 'master_exit is the last callback');

my @all = $n->callbacks;
is(scalar select_cbs(\@all, event => 'master_start'), 2, 'two master_start in all');
is(scalar select_cbs(\@all, event => 'master_exit'), 2, 'two master_exit in all (one per generation)');
checker_ok($n);
no_errors_ok($n);
done_testing;
