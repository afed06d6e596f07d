# A callback that raises: the error and a traceback are logged at ERR, the
# on_* call returns normally (nginx starts, reloads, serves), the counts stay
# right, the lock is released and later callbacks still run.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

sub err_logged {
    my ($n, $label, $marker, $count) = @_;
    my @e = grep { $_->{level} eq 'error' } $n->grep_log(qr/\Q$marker\E/);
    @e = grep { $_->{text} !~ /\bWMCB/ } @e;
    is(scalar @e, $count, "[$label] $marker logged $count time(s) at ERR")
        or diag join '', map { "  $_->{line}\n" } $n->grep_log(qr/\Q$marker\E/);
    for my $e (@e) {
        like($e->{text}, qr/traceback/i, "[$label] ... with a traceback");
        last;
    }
    return @e;
}

# --- raising master_start and first worker_start
{
    my $label = 'start callbacks raise';
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        master_start => 'wm.rec("master_start", { raise = "wm-test-boom-master-start" })',
        worker_start => 'wm.rec("worker_start", { raise = "wm-test-boom-worker-start", when = function(id, p, m) return m == 1 end })',
        init_after   => 'ngx.log(ngx.WARN, "WMINIT returned")',
    );
    $n->start;    # WMREADY is logged after on_init_worker_by_lua returned
    is(scalar $n->grep_log(qr/WMINIT returned/), 1, "[$label] on_init_by_lua returned normally");
    my @e = err_logged($n, $label, 'wm-test-boom-master-start', 1);
    @e = err_logged($n, $label, 'wm-test-boom-worker-start', 1);
    my ($code) = $n->get('/ping');
    is($code, 200, "[$label] nginx serves");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    my @ws = select_cbs(\@c, event => 'worker_start');
    is(join(',', map { $_->{mine} } @ws), '1,2', "[$label] the next worker still sees mine=2");
    is($e[0]{pid}, $ws[0]{pid}, "[$label] the error was logged by the raising worker") if @e && @ws;

    # a reload still works (master_start raises again)
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    @c = $n->callbacks(since => $mark);
    cb_is((select_cbs(\@c, event => 'master_start'))[0], [2, 2, 0, 'nil'], "[$label] reload: master_start(2, 2, 0, nil)");
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_start')), '1,2', "[$label] reload: gen-2 mine 1, 2");
    err_logged($n, $label, 'wm-test-boom-master-start', 2);

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] exits mine 2 then 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    checker_ok($n, label => $label);    # counts stay right, the lock is released
    no_errors_ok($n, "[$label] no other errors", qr/wm-test-boom/);
}

# --- raising exit callbacks (HUP, then QUIT)
{
    my $label = 'exit callbacks raise';
    my $n = WorkerManager::Nginx->new(
        workers     => 2,
        worker_exit => 'wm.rec("worker_exit", { raise = "wm-test-boom-worker-exit" })',
        master_exit => 'wm.rec("master_exit", { raise = "wm-test-boom-master-exit" })',
    );
    $n->start;
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-1 workers gone');
    my @c = $n->callbacks(since => $mark);
    note "[$label] HUP callbacks:\n" . cbs_str(@c);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit', gen => 1)), '2,1',
       "[$label] HUP: both old exits run although the first raised");
    exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] HUP: one master_exit for gen 1");
    is(scalar $n->get('/ping'), 200, "[$label] gen 2 serves");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx although exit callbacks raise");
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', "[$label] QUIT: exits mine 2 then 1");
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] QUIT: exactly one master_exit"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    err_logged($n, $label, 'wm-test-boom-worker-exit', 4);
    err_logged($n, $label, 'wm-test-boom-master-exit', 2);
    checker_ok($n, label => $label);    # counts stay right, the lock is released
    no_errors_ok($n, "[$label] no other errors", qr/wm-test-boom/);
}

done_testing;
