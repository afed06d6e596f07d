# manager.singleton(): in a node of 4 workers, exactly one start(name, 1)
# runs, in a timer; holds(name) is true, with token 1, in that worker only
# (asked from each worker through a request); status() names the holder,
# its token and since when; a graceful stop runs its stop(name, 1, "stop")
# and nobody starts the job again.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $n = WorkerManager::Nginx->new(
    workers => 4,
    opts => '{ shm = "wm", interval = 1, failed = 2 }',
    init_worker_after => 'require("resty.worker.manager").singleton("job", wm.job())',
    http_extra => 'lua_shared_dict wm_test 1m;',
    server_extra => <<'CONF',
        location = /holds {
            content_by_lua_block {
                local held, token = require("resty.worker.manager").holds("job")
                ngx.say(ngx.worker.pid(), " ", tostring(held), " ", tostring(token))
            }
        }
        location = /singletons {
            content_by_lua_block {
                local st = require("resty.worker.manager").status()
                for _, s in ipairs(st.singletons) do
                    ngx.say(s.name, " ", tostring(s.holder), " ", s.token, " ", tostring(s.since), " ",
                            tostring(s.stopped))
                end
            }
        }
CONF
);
my $spread = WorkerManager::Nginx::free_port();
$n->{listen_extra} = ["127.0.0.1:$spread reuseport"];
$n->write_conf;
$n->start;

my ($start) = $n->wait_log(qr/WMSJ-ENTER start name=job /, desc => 'the start of job');
like($start->{text}, qr/WMSJ-ENTER start name=job token=1 pid=\d+ phase=timer reason=nil held=true:1 /,
     'start("job", 1) runs in a timer, where holds("job") is already true with token 1');
my ($holder) = $start->{text} =~ /pid=(\d+)/;
ok((grep { $_ == $holder } $n->worker_pids), "it runs in a worker of the node ($holder)");
$n->wait_log(qr/WMSJ-LEAVE start name=job token=1 pid=$holder /, desc => 'the start returns');
my @more = $n->absent_for(qr/WMSJ-ENTER start /, 1.5, since => $start->{idx} + 1);
is(scalar @more, 0, 'no other start in the next 1.5 s (several heartbeats of every worker)');

my $answers = $n->get_each_worker('/holds', port => $spread);
is(scalar keys %$answers, 4, 'each of the 4 workers answered');
for my $pid (sort keys %$answers) {
    my $want = $pid == $holder ? "$pid true 1" : "$pid false nil";
    is($answers->{$pid}, "$want\n", $pid == $holder ? "holds() in the holder: true, 1"
                                                     : "holds() in worker $pid: false, nil");
}

my ($code, $body) = $n->get('/singletons');
like($body, qr/\Ajob 1-$holder 1 (\d+\.?\d*) false\n\z/, 'status(): job held by 1-<holder pid>, token 1, since, not stopped')
    or diag $body;
my ($since) = $body =~ /^job \S+ 1 (\S+)/;
my ($t_start) = $start->{text} =~ / t=([\d.]+)/;
cmp_ok(abs(($since // 0) - ($t_start // 0)), '<', 1, 'since: when the holding began');

my $mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
my @stops = $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
is(scalar @stops, 1, 'one stop');
like($stops[0]{text} // '', qr/WMSJ-ENTER stop name=job token=1 pid=$holder phase=timer reason=stop held=true:1 /,
     'stop("job", 1, "stop") in the holder, in a timer');
is(scalar $n->grep_log(qr/WMSJ-ENTER start /, since => $mark), 0, 'nobody starts the job again');

checker_ok($n, label => 'start', complete => 1);
no_errors_ok($n, 'no errors');
done_testing;
