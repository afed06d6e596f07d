# Self-test of the test driver (t/lib/WorkerManager/Nginx.pm) on real nginx,
# without resty.worker.manager: start, log polling, HTTP, HUP, worker kill,
# QUIT, nginx -t, cleanup.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $n = WorkerManager::Nginx->new(
    module            => 0,
    workers           => 2,
    init_worker_extra => 'ngx.log(ngx.WARN, "WMDRV worker pid=", ngx.worker.pid(), " slot=", ngx.worker.id())',
);
$n->start;
my $master = $n->master_pid;
ok($master && $n->alive($master), "master $master running");
like(join("\n", map { $_->{text} } $n->grep_log(qr/WMNOMOD init/)), qr/WMNOMOD init pid=\d+/,
     'init_by_lua logs reach the error log');

my @w = $n->worker_pids;
is(scalar @w, 2, 'two workers') or diag explain [$n->children];
my @ready = $n->grep_log(qr/WMDRV worker/);
is_deeply([sort map { $_->{pid} } @ready], [sort @w], 'worker log lines come from the worker pids');

my ($code, $body) = $n->get('/ping');
is($code, 200, 'GET /ping');
like($body, qr/^pong \d+ [01]$/, 'ping body');
($code, $body) = $n->get('/shm');
like($body, qr/^keys=0 used=\d+ capacity=\d+/, '/shm on an empty dict');

# HUP: two new workers, the old ones gone
my $mark = $n->reload;
$n->wait_until(sub { my @p = $n->worker_pids(all => 1); @p == 2 && !grep { my $o = $_; grep { $_ == $o } @w } @p },
               desc => 'old workers gone after HUP');
my @w2 = $n->worker_pids;
is(scalar @w2, 2, 'two new workers');
is($n->master_pid, $master, 'same master after HUP');

# kill -9 a worker: the master respawns it
$mark = $n->mark;
$n->kill_worker($w2[0]);
$n->wait_log(qr/exited on signal 9/, since => $mark);
$n->wait_log(qr/WMREADY /, since => $mark);
my @w3 = $n->worker_pids;
is(scalar @w3, 2, 'respawned to two workers');
ok(!grep({ $_ == $w2[0] } @w3), 'killed worker is gone');

# nginx -t beside the running node
my $r = $n->run_cmd('-t');
is($r->{rc}, 0, 'nginx -t succeeds') or diag $r->{out};
like($r->{out}, qr/test is successful/, 'nginx -t output');

# a linger worker stays around after QUIT
my $n2 = WorkerManager::Nginx->new(module => 0, workers => 1, linger => 0.5);
$n2->start;
$mark = $n2->mark;
$n2->signal('QUIT');
$n2->wait_log(qr/WMLINGER begin/, since => $mark);
my @l = $n2->wait_log(qr/WMLINGER end/, since => $mark);
ok($n2->wait_exit, 'linger node stopped');
no_errors_ok($n2, 'linger node: no warn or error lines but its markers');

$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
ok($n->wait_until(sub { !$n->alive($master) }, desc => 'master gone', soft => 1), 'master gone');
is_deeply([$n->errors(allow => [qr/exited on signal 9/])], [], 'no errors logged')
    or diag $n->dump_log;
no_errors_ok($n, 'no warn or error lines but the markers and the kill', qr/exited on signal 9/);
# the invariant checker on a log without the module: no callbacks, and the
# reload, the kill and the stop alone fault nothing
is(scalar $n->callbacks, 0, 'no callbacks without the module');
checker_ok($n, label => 'no module', min => 0);

# cleanup kills a node that is left running
my $n3 = WorkerManager::Nginx->new(module => 0, workers => 1);
$n3->start;
my $m3 = $n3->master_pid;
my ($w3) = $n3->worker_pids;
my $prefix = $n3->prefix;
no_errors_ok($n3, 'the node left running: no warn or error lines but its markers');
undef $n3;
ok(!WorkerManager::Nginx::alive($m3), 'cleanup killed the master');
ok(!WorkerManager::Nginx::alive($w3), 'cleanup killed the worker');
ok(!-d $prefix, 'prefix removed');

done_testing;
