# lua_code_cache off (a developer's usual setting): lua-nginx-module then runs
# init_by_lua again, in a fresh Lua VM, for every request, inside the worker.
# A request is no configuration load: no callback, no generation, no wait;
# the node behaves as with the cache on, and status() works in such a request.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 2, on_crash = wm.rec("crash") }';
my $STATUS = <<'NGX';
        location = /status {
            content_by_lua_block {
                local st, err = require("resty.worker.manager").status()
                if not st then
                    return ngx.say("ERR ", err)
                end
                local gens = {}
                for _, g in ipairs(st.generations) do
                    gens[#gens + 1] = g.id .. ":" .. #g.workers
                end
                ngx.say("generation=", st.generation, " generations=", table.concat(gens, ","),
                        " consistent=", tostring(st.consistent))
            }
        }
NGX
my @ALLOW = (qr/lua_code_cache is off; this will hurt performance/);

my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => 'lua_code_cache off;',
                                  server_extra => $STATUS);
$n->start;
ok(scalar $n->grep_log(qr/lua_code_cache is off/), 'nginx runs with lua_code_cache off');

sub requests {
    my ($label, $want) = @_;
    for my $i (1 .. 6) {
        my ($code, $body) = $n->get($i % 2 ? '/status' : '/ping');
        is($code, 200, "[$label] request $i answered");
        like($body, $want, "[$label] /status: $body") if $i % 2;
    }
}

requests('after start', qr/^generation=1 generations=1:2 consistent=true$/);
my @c = $n->callbacks;
is(join(' ', map { $_->{event} } @c), 'master_start worker_start worker_start',
   '[after start] the requests ran no callback: one master start, two worker starts');

my $mark = $n->reload;
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'generation 1 ends');
@c = $n->callbacks(since => $mark);
note "after HUP:\n" . cbs_str(@c);
cb_is((select_cbs(\@c, event => 'master_start'))[0], [2, 2, 0, 'nil'], '[reload] master_start(2, 2, 0, nil): generation 2, not one per request');
is(join(',', map { $_->{reason} } select_cbs(\@c, event => 'worker_exit', gen => 1)), 'reload,reload', '[reload] old exits say reload');
requests('after reload', qr/^generation=2 generations=2:2 consistent=true$/);

# a crash gets the right counts (no phantom generation for n_next)
my ($victim) = grep { $n->alive($_->{pid}) } $n->callbacks(event => 'worker_start', gen => 2);
$mark = $n->mark;
$n->kill_worker($victim->{pid}, 'KILL');
$n->wait_log(qr/\bWMCB crash id=2-$victim->{pid} /, since => $mark, desc => 'on_crash for the killed worker');
my ($crash) = $n->callbacks(since => $mark, event => 'crash');
cb_is($crash, ["2-$victim->{pid}", 0, 2, 'nil'], '[crash] crash(2-<pid>, 0, 2, nil): n_next nil');
requests('after the crash', qr/^generation=2 generations=2:2 consistent=true$/);

$mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
@c = $n->callbacks(since => $mark);
is(join(',', map { "$_->{mine}:$_->{next}:$_->{reason}" } select_cbs(\@c, event => 'worker_exit')), '2:nil:stop,1:nil:stop',
   '[stop] exits 2, 1 with n_next nil, reason stop');
cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], '[stop] one master exit'), [2, 0, 0, 'nil'],
      '[stop] master_exit(2, 0, 0, nil)');
is(scalar(() = $n->grep_log(qr/got no worker within|rolled back/)), 0, 'no generation was ever taken for a rolled-back reload');
is(scalar(grep { $_->{event} eq 'master_start' } $n->callbacks), 2, 'two master starts over the run: the start and the reload');
checker_ok($n, label => 'lua_code_cache off', on_crash => 1, complete => 1);
no_errors_ok($n, 'no errors but the kill and its report', @ALLOW, qr/exited on signal 9/, qr/\b2-$victim->{pid}\b/);

done_testing;
