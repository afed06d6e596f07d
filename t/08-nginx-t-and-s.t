# `nginx -t` / `nginx -T` and `nginx -s <signal>` beside a running node:
# the test and signaller processes log no callback and change nothing;
# `-s reload` acts exactly like HUP; `-s quit` like QUIT.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $n = WorkerManager::Nginx->new(workers => 2);
$n->start;
my $master = $n->master_pid;
my (%helper_pids, @hup_marks);

sub no_cb_from {
    my ($label, $pid, $since) = @_;
    my @c = grep { $_->{logpid} == $pid || $_->{pid} eq $pid } $n->callbacks(since => $since);
    is(scalar @c, 0, "$label (pid $pid) logged no callback") or diag cbs_str(@c);
}

# -t and -T change nothing
for my $flag ('-t', '-T') {
    my $mark = $n->mark;
    my $r = $n->run_cmd($flag);
    $helper_pids{ $r->{pid} } = $flag;
    is($r->{rc}, 0, "nginx $flag succeeds") or diag $r->{out};
    like($r->{out}, qr/test is successful/, "nginx $flag: test is successful");
    no_cb_from("nginx $flag", $r->{pid}, $mark);
    is(scalar $n->callbacks(since => $mark), 0, "no callback at all after nginx $flag");
}

# -s reload == HUP: generation 2
{
    my $mark = $n->mark;
    my $r = $n->run_cmd('-s', 'reload');
    $helper_pids{ $r->{pid} } = '-s reload';
    is($r->{rc}, 0, 'nginx -s reload succeeds') or diag $r->{out};
    $n->wait_log(qr/WMREADY /, since => $mark, count => 2, desc => 'gen-2 workers ready');
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    no_cb_from('nginx -s reload', $r->{pid}, $mark);
    my @c = $n->callbacks(since => $mark);
    note "after -s reload:\n" . cbs_str(@c);
    my $ms = exactly_one([select_cbs(\@c, event => 'master_start')], '-s reload: one master_start');
    cb_is($ms, [2, 2, 0, 'nil'], '-s reload: master_start(2, 2, 0, nil) (nginx -t/-T made no generation)');
    is($ms->{logpid}, $master, '-s reload: master_start runs in the master');
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_start', gen => 2)), '1,2', '-s reload: gen-2 workers 1, 2');
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit', gen => 1)), '2,1', '-s reload: gen-1 exits 2, 1');
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], '-s reload: one master_exit'),
          [1, 'nil', 0, undef], '-s reload: master_exit(1, nil, 0, .)');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-1 workers gone');
}

# -t again, then a plain HUP: generation 3
{
    my $mark = $n->mark;
    my $r = $n->run_cmd('-t');
    $helper_pids{ $r->{pid} } = '-t';
    is($r->{rc}, 0, 'nginx -t (2nd) succeeds');
    no_cb_from('nginx -t (2nd)', $r->{pid}, $mark);
    $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=2 /, since => $mark, desc => 'master_exit of gen 2');
    my @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_start')], 'HUP: one master_start'),
          [3, 2, 0, 'nil'], 'HUP: master_start(3, 2, 0, nil)');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-2 workers gone');
}

# -s quit == QUIT
{
    my $mark = $n->mark;
    my $r = $n->run_cmd('-s', 'quit');
    $helper_pids{ $r->{pid} } = '-s quit';
    is($r->{rc}, 0, 'nginx -s quit succeeds') or diag $r->{out};
    ok($n->wait_exit, '-s quit stops nginx');
    no_cb_from('nginx -s quit', $r->{pid}, $mark);
    my @c = $n->callbacks(since => $mark);
    note "after -s quit:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', '-s quit: exits 2, 1');
    cb_is($_, [undef, 0, undef, 'nil'], "-s quit: worker_exit($_->{id}, 0, ., nil)") for @we;
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], '-s quit: one master_exit'),
          [3, 0, 0, 'nil'], '-s quit: master_exit(3, 0, 0, nil)');
}

my @all = $n->callbacks;
my %known = map { $_ => 1 } ($master, map { $_->{pid} } grep { $_->{event} =~ /^worker/ } @all);
my ($first) = @all;
$known{ $first->{logpid} } = 1 if $first && $first->{event} eq 'master_start' && $first->{id} eq '1';  # pre-daemon pid
my @stray = grep { !$known{ $_->{logpid} } } @all;
is(scalar @stray, 0, 'every callback came from the master (or nginx before daemonizing) or a worker')
    or diag cbs_str(@stray);
is(join(',', map { $_->{id} } select_cbs(\@all, event => 'master_start')), '1,2,3', 'generations 1, 2, 3');
checker_ok($n);
no_errors_ok($n);
done_testing;
