# A heartbeat that nginx drops: when every lua_max_running_timers slot is
# busy at the moment a timer is due, nginx skips that run ("N
# lua_max_running_timers are not enough", ALERT).  The heartbeat is an
# ngx.timer.every timer, which lua-nginx-module arms again before that check
# (ngx_http_lua_timer.c), so a dropped run never ends it: the worker that
# missed beats is counted again as soon as it beats, the module says once why
# its beats were missed, and a later QUIT (no exit hook) still ends with the
# master exit.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 1, on_crash = wm.rec("crash") }';
# two timers that sleep `s` seconds fill both running-timer slots of the
# worker that serves the request
my $HOLD = <<'NGX';
        location = /hold {
            content_by_lua_block {
                local s = tonumber(ngx.var.arg_s) or 6
                for _ = 1, 2 do
                    assert(ngx.timer.at(0, function() ngx.sleep(s) end))
                end
                ngx.log(ngx.WARN, "WMHOLD pid=", ngx.worker.pid(), " s=", s)
                ngx.say(ngx.worker.pid())
            }
        }
NGX
my $DROP_ALERT = qr/2 lua_max_running_timers are not enough/;

my $label = 'running timers full for 6 s';
my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, server_extra => $HOLD,
                                  http_extra => 'lua_max_running_timers 2;');
$n->start;
my $mark = $n->mark;
my ($code, $body) = $n->get('/hold?s=6');
is($code, 200, "[$label] /hold answered");
my ($held) = $body =~ /(\d+)/;
my ($ws) = grep { $_->{pid} eq $held } $n->callbacks(event => 'worker_start');
my $wid = $ws->{id};
ok($wid, "[$label] the held worker is $wid");

# its beats are dropped; its sibling counts it as crashed (its process runs);
# once the timers end, it beats and is counted again
my ($alert) = $n->wait_log($DROP_ALERT, since => $mark, desc => "[$label] nginx drops a timer run in $wid");
is($alert->{pid}, $held, "[$label] ... in the held worker");
$n->wait_log(qr/\bWMCB crash id=\Q$wid\E /, since => $mark, desc => "[$label] its sibling reports $wid");
my ($back) = $n->wait_log(qr/\[worker-manager\] worker \Q$wid\E is alive but was not counted/, since => $mark,
                          timeout => 30, desc => "[$label] $wid beats again and is counted again");
my @said = $n->grep_log(qr/\[worker-manager\] the heartbeat of worker \Q$wid\E did not run for /, since => $mark);
is(scalar @said, 1, "[$label] the module says once why $wid missed beats");
like($said[0]{text} // '', qr/lua_max_running_timers are not enough/, "[$label] ... naming nginx's running-timer limit");
my ($d) = drops($n, since => $mark, wid => $wid);
like($d->{cause} // '', qr/^no heartbeat for /, "[$label] it was dropped for its late heartbeat, not as gone");

# the heartbeat goes on: it beats again after being counted (no second drop)
ok(!$n->absent_for(qr/\bWMCB crash id=\Q$wid\E /, 3, since => $back->{idx} + 1),
   "[$label] no second report of $wid over 3 s: its heartbeat runs on");

$mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, "[$label] QUIT stops nginx");
my @c = $n->callbacks(since => $mark);
note "[$label] after QUIT:\n" . cbs_str(@c);
is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] both workers exit: 2, 1");
cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master exit without the exit hook"),
      [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
checker_ok($n, label => $label, on_crash => 1, complete => 1);
no_errors_ok($n, "[$label] no errors but nginx's drops and the module's report of the late heartbeat",
             $DROP_ALERT, qr/\b\Q$wid\E\b.*crashed: no heartbeat/, $MISSED_RE, $RECOUNT_RE);

done_testing;
