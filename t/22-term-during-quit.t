# A fast stop (TERM) that interrupts a graceful exit (QUIT) still in progress:
# the first worker's worker_exit callback yields (ngx.sleep in its timer) while
# it holds the node lock; the second worker waits for that lock. TERM makes
# nginx abandon both timers; the exit hook (exit_worker_by_lua) finishes what
# they left: the first worker's exit is not reported twice, the second one's
# is reported once, and the generation gets exactly one master exit, n_next nil.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $exit_cb = <<'LUA';
function(id, p, m, n)
    wm.rec("worker_exit")(id, p, m, n)
    if ngx.get_phase() == "timer" then
        ngx.log(ngx.WARN, "WMT sleeping in worker_exit of ", id)
        ngx.sleep(30)
    end
end
LUA
$exit_cb =~ s/\n/ /g;

my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, worker_exit => $exit_cb,
                                  opts => '{ shm = "wm", interval = 1 }');
$n->start;
my @ws = $n->callbacks(event => 'worker_start');

my $mark = $n->mark;
$n->signal('QUIT');
my ($sleeping) = $n->wait_log(qr/WMT sleeping in worker_exit of (\S+)/, since => $mark,
                              desc => 'a worker_exit callback is sleeping under the lock');
my ($first) = $sleeping->{text} =~ /worker_exit of (\d+-\d+)/;
my @c = $n->callbacks(since => $mark);
is(scalar select_cbs(\@c, event => 'worker_exit'), 1, 'one worker_exit so far: the other worker waits for the lock');

$n->signal('TERM');
ok($n->wait_exit, 'TERM stops nginx');
is(scalar $n->grep_log(qr/exited on signal 9/, since => $mark), 0, 'no worker needed SIGKILL');

@c = $n->callbacks(since => $mark);
note "callbacks after QUIT + TERM:\n" . cbs_str(@c);
my @we = select_cbs(\@c, event => 'worker_exit');
is(scalar @we, 2, 'two worker_exit in all: none repeated');
is_deeply([sort map { $_->{id} } @we], [sort map { $_->{id} } @ws], 'one for each worker');
is($we[0]{id}, $first, 'the sleeping worker reported first');
cb_is($we[0], [$first, 'nil', 2, 'nil'], "worker_exit($first, nil, 2, nil)");
cb_is($we[1], [undef, 'nil', 1, 'nil'], 'the other worker_exit(., nil, 1, nil), from the exit hook');
my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], 'exactly one master_exit');
cb_is($me, [1, 'nil', 0, 'nil'], 'master_exit(1, nil, 0, nil)');
is($c[-1]{event}, 'master_exit', 'master_exit comes last');
checker_ok($n, complete => 1);
no_errors_ok($n, 'no errors but the sleep the exit hook cannot do',
             qr/API disabled in the context of exit_worker_by_lua/, qr/worker exit callback for .* failed/,
             qr/stack traceback|^\s+\S+:\d+: in /);
done_testing;
