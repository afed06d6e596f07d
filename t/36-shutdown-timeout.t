# worker_shutdown_timeout 1s with a slow exit callback (issue 6): QUIT while
# a request is in flight; worker_exit sleeps 3 s (ngx.sleep, in the timer of
# the graceful exit).  nginx cuts the request after 1 s; the callback's sleep
# is a timer, not a connection, so it runs on.  Nothing is counted twice (with
# the exit hook, exit_worker_by_lua must not run the exit again), the master
# exit runs exactly once, and the invariant checker passes.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $EXIT = 'function(id, p, m, n) wm.rec("worker_exit")(id, p, m, n) '
         . 'if ngx.get_phase() == "timer" and WHEN then ngx.log(ngx.WARN, "WMT sleeping in worker_exit of ", id) ngx.sleep(3) '
         . 'ngx.log(ngx.WARN, "WMT woke in worker_exit of ", id) end end';
my $SLOWREQ = <<'NGX';
        location = /slowreq {
            content_by_lua_block { ngx.sleep(10) ngx.say("late") }
        }
NGX

for my $case ([0, 'wm.once("slow")()'], [1, 'true']) {
    my ($hook, $when) = @$case;
    my $label = ($hook ? 'exit hook' : 'no exit hook') . ($when eq 'true' ? ', every exit sleeps' : ', the first exit sleeps');
    (my $cb = $EXIT) =~ s/WHEN/$when/;
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        exit_hook    => $hook,
        main_extra   => 'worker_shutdown_timeout 1s;',
        http_extra   => 'lua_shared_dict wm_test 64k;',
        server_extra => $SLOWREQ,
        worker_exit  => $cb,
        opts         => '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }',
    );
    $n->start;
    my $sock = $n->get_async('/slowreq');
    my $t0 = time;
    my $mark = $n->mark;
    $n->signal('QUIT');
    $n->wait_log(qr/WMT sleeping in worker_exit/, since => $mark, desc => "[$label] a worker exit sleeps");
    my $code = $n->finish($sock);
    my $cut = time - $t0;
    isnt($code, 200, sprintf "[%s] the request in flight was cut (%s after %.1f s)", $label, $code || 'closed', $cut);
    cmp_ok($cut, '<', 2.5, "[$label] ... by worker_shutdown_timeout, not by its own end");
    ok($n->wait_exit(20), sprintf "[%s] nginx stops (%.1f s)", $label, time - $t0);
    my @woke = $n->grep_log(qr/WMT woke in worker_exit/, since => $mark);
    my @slept = $n->grep_log(qr/WMT sleeping in worker_exit/, since => $mark);
    is(scalar @woke, scalar @slept, "[$label] each sleeping exit callback woke up and finished (" . scalar(@woke) . ')');
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] worker exits 2, 1: none twice");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master exit"), [1, 'nil', 0, 'nil'],
          "[$label] master_exit(1, nil, 0, nil)");
    is(scalar $n->grep_log(qr/exited on signal/, since => $mark), 0, "[$label] no worker was killed");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors");
}

done_testing;
