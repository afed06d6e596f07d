# A callback that raises: the error and a traceback are logged at ERR by the
# process that ran it, the on_* call returns normally (nginx starts, reloads,
# serves), the counts stay right, the lock is released and later callbacks
# still run.
#
# Each case is the callbacks that raise and what must hold after each step
# of the node's life (start, HUP, QUIT): the n_mine of the worker starts
# and exits of that step in order, the master callbacks of that step, and
# how often each raised error has been logged at ERR so far.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my @CASES = (
    {
        label => 'start callbacks raise',
        conf  => {
            master_start => 'wm.rec("master_start", { raise = "wm-test-boom-master-start" })',
            worker_start => 'wm.rec("worker_start", { raise = "wm-test-boom-worker-start", '
                          . 'when = function(id, p, m) return m == 1 end })',
        },
        start  => { worker_start => '1,2',
                    errors => { 'wm-test-boom-master-start' => 1, 'wm-test-boom-worker-start' => 1 } },
        reload => { master_start => [2, 2, 0, 'nil'], worker_start => '1,2', master_exits => 1,
                    errors => { 'wm-test-boom-master-start' => 2, 'wm-test-boom-worker-start' => 2 } },
        quit   => { worker_exit => '2,1', master_exit => [2, 0, 0, 'nil'],
                    errors => { 'wm-test-boom-master-start' => 2, 'wm-test-boom-worker-start' => 2 } },
    },
    {
        label => 'exit callbacks raise',
        conf  => {
            worker_exit => 'wm.rec("worker_exit", { raise = "wm-test-boom-worker-exit" })',
            master_exit => 'wm.rec("master_exit", { raise = "wm-test-boom-master-exit" })',
        },
        start  => { worker_start => '1,2', errors => {} },
        reload => { worker_exit => '2,1', master_exits => 1,
                    errors => { 'wm-test-boom-worker-exit' => 2, 'wm-test-boom-master-exit' => 1 } },
        quit   => { worker_exit => '2,1', master_exit => [2, 0, 0, 'nil'],
                    errors => { 'wm-test-boom-worker-exit' => 4, 'wm-test-boom-master-exit' => 2 } },
    },
);

# the raised errors at ERR so far: each with a traceback, logged by a
# process that ran a callback of that kind
sub errors_ok {
    my ($n, $label, $errors) = @_;
    my %ran_in = map { ("$_->{event}/$_->{logpid}" => 1) } $n->callbacks;
    for my $marker (sort keys %$errors) {
        my ($event) = $marker =~ /^wm-test-boom-(\w+-\w+)$/;
        $event =~ tr/-/_/;
        my @e = grep { $_->{level} eq 'error' && $_->{text} !~ /\bWMCB/ } $n->grep_log(qr/\Q$marker\E/);
        is(scalar @e, $errors->{$marker}, "[$label] $marker logged $errors->{$marker} time(s) at ERR")
            or diag join '', map { "  $_->{line}\n" } $n->grep_log(qr/\Q$marker\E/);
        is(scalar(grep { $_->{text} !~ /traceback/i } @e), 0, "[$label] ... each with a traceback");
        is(scalar(grep { !$ran_in{"$event/$_->{pid}"} } @e), 0, "[$label] ... by the process that ran the $event");
    }
}

# what a step's callbacks must be
sub step_ok {
    my ($n, $label, $mark, $want) = @_;
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks:\n" . cbs_str(@c);
    for my $event (qw(worker_start worker_exit)) {
        next unless defined $want->{$event};
        is(join(',', map { $_->{mine} } select_cbs(\@c, event => $event)), $want->{$event},
           "[$label] $event n_mine in order: $want->{$event}");
    }
    cb_is((select_cbs(\@c, event => 'master_start'))[0], $want->{master_start},
          "[$label] master_start(@{ $want->{master_start} })") if $want->{master_start};
    is(scalar select_cbs(\@c, event => 'master_exit'), $want->{master_exits}, "[$label] $want->{master_exits} master exit")
        if defined $want->{master_exits};
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit"),
          $want->{master_exit}, "[$label] master_exit(@{ $want->{master_exit} })") if $want->{master_exit};
    errors_ok($n, $label, $want->{errors});
}

for my $case (@CASES) {
    my $label = $case->{label};
    my $n = WorkerManager::Nginx->new(workers => 2, init_after => 'ngx.log(ngx.WARN, "WMINIT returned")',
                                      %{ $case->{conf} });
    my $mark = $n->mark;
    $n->start;    # WMREADY is logged after on_init_worker_by_lua returned
    is(scalar $n->grep_log(qr/WMINIT returned/), 1, "[$label start] on_init_by_lua returned normally");
    is(scalar $n->get('/ping'), 200, "[$label start] nginx serves");
    step_ok($n, "$label start", $mark, $case->{start});

    $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of gen 1');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-1 workers gone');
    is(scalar $n->get('/ping'), 200, "[$label reload] generation 2 serves");
    step_ok($n, "$label reload", $mark, $case->{reload});

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label quit] QUIT stops nginx");
    step_ok($n, "$label quit", $mark, $case->{quit});
    checker_ok($n, label => $label);    # counts stay right, the lock is released
    no_errors_ok($n, "[$label] no other errors", qr/wm-test-boom/);
}

done_testing;
