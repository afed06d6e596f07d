# status() on a real node: after start, after a reload, after a crash, and from
# inside a callback (this process holds the lock: it must read at once).
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $location = <<'CONF';
location = /st {
    content_by_lua_block {
        local s, err = require("resty.worker.manager").status()
        if not s then ngx.say("error ", err) return end
        ngx.say("generation=", tostring(s.generation), " crashes=", s.crashes,
                " consistent=", tostring(s.consistent), " gens=", #s.generations)
        for _, g in ipairs(s.generations) do
            ngx.say("gen ", g.id, " started=", type(g.started), " starting=", g.starting,
                    " stalled=", #g.stalled, " workers=", #g.workers)
            for _, w in ipairs(g.workers) do
                ngx.say("worker ", w.id, " pid=", w.pid, " slot=", w.slot,
                        " started=", type(w.started), " heartbeat=", type(w.heartbeat))
            end
        end
        local c = s.last_crash
        if c then ngx.say("last_crash ", c.id, " pid=", c.pid, " slot=", c.slot, " cause=", c.cause,
                          " at=", type(c.at)) end
    }
}
CONF

# a worker_start that reads status() while its own process holds the lock
my $start_cb = 'function(id, p, m, n) wm.rec("worker_start")(id, p, m, n) '
             . 'local s = require("resty.worker.manager").status() '
             . 'ngx.log(ngx.WARN, "WMST in ", id, " generation=", s.generation, " consistent=", tostring(s.consistent)) end';

my $n = WorkerManager::Nginx->new(workers => 2, server_extra => $location, worker_start => $start_cb,
                                  opts => '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }');
$n->start;

sub status_of {
    my ($code, $body) = $n->get('/st');
    is($code, 200, 'GET /st');
    return $body;
}
sub workers_in {
    my ($body, $g) = @_;
    return sort map { /^worker (\S+)/ ? $1 : () } grep { /^worker $g-/ } split /\n/, $body;
}

# inside callbacks: no deadlock on the lock the callback's own process holds
my @inside = $n->grep_log(qr/WMST in 1-\d+ generation=1 consistent=true/);
is(scalar @inside, 2, 'status() inside both start callbacks: generation 1, consistent, no wait on its own lock');

# after start
my @ws = $n->callbacks(event => 'worker_start');
my $b = status_of();
like($b, qr/^generation=1 crashes=0 consistent=true gens=1$/m, 'after start: generation 1, no crash, one generation');
like($b, qr/^gen 1 started=number starting=0 stalled=0 workers=2$/m, 'generation 1 has 2 workers');
is_deeply([workers_in($b, 1)], [sort map { $_->{id} } @ws], 'the workers are the ones that started');
for my $w (@ws) {
    like($b, qr/^worker \Q$w->{id}\E pid=$w->{pid} slot=$w->{slot} started=number heartbeat=number$/m,
         "$w->{id}: pid, slot, start and heartbeat times");
}
unlike($b, qr/^last_crash/m, 'no last crash');

# after a reload whose old generation ended
my $mark = $n->reload;
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit 1');
my @ws2 = $n->callbacks(event => 'worker_start', gen => 2);
$b = status_of();
like($b, qr/^generation=2 crashes=0 consistent=true gens=1$/m, 'after the reload: generation 2 only');
is_deeply([workers_in($b, 2)], [sort map { $_->{id} } @ws2], 'its workers');
my @old = workers_in($b, 1);
is(scalar @old, 0, 'generation 1 is gone from the view');

# after a crash
my ($victim) = grep { $_->{slot} eq '0' } @ws2;
$mark = $n->mark;
$n->kill_worker($victim->{pid}, 'KILL');
$n->wait_log(qr/\bWMCB crash id=\Q$victim->{id}\E /, since => $mark, desc => 'crash reported');
my ($respawn) = $n->callbacks(event => 'worker_start', since => $mark);
$b = status_of();
like($b, qr/^generation=2 crashes=1 consistent=true gens=1$/m, 'after the crash: one crash counted');
like($b, qr/^last_crash \Q$victim->{id}\E pid=$victim->{pid} slot=0 cause=respawned at=number$/m,
     'last_crash names the dead worker, its pid and slot, and how it was found');
like($b, qr/^gen 2 started=number starting=0 stalled=0 workers=2$/m, 'still 2 workers counted');
like($b, qr/^worker \Q$respawn->{id}\E pid=$respawn->{pid} slot=0 /m, 'slot 0 now holds the respawned worker');
unlike($b, qr/^worker \Q$victim->{id}\E /m, 'the dead one is not listed');

$mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
checker_ok($n, on_crash => 1, complete => 1);
no_errors_ok($n, 'no errors but the kill and its report', qr/exited on signal 9/, qr/\b\Q$victim->{id}\E\b/);
done_testing;
