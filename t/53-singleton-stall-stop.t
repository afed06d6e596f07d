# A singleton's holder that stalls (SIGSTOP past interval + failed) loses the
# job: another worker starts it (token + 1) once the holder is dropped;
# when the stalled worker runs again (SIGCONT), its stop(name, token,
# "lost") runs before any other callback in it, holds() false there, and
# its every() job runs no more. A stop of the node, graceful (QUIT) or fast
# (TERM, through the exit hook: phase exit_worker), runs stop(..., "stop")
# and nobody starts the job after it; a worker recycled by a signal sent
# to it runs stop(..., "exit") and another worker takes the job.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 1 }';
my $JOBS = 'local m = require("resty.worker.manager"); m.singleton("job", wm.job()); '
         . 'm.every("tick", 0.3, wm.sj("fn"))';

sub node {
    my (%o) = @_;
    my $n = WorkerManager::Nginx->new(workers => 3, opts => $OPTS, init_worker_after => $JOBS, %o);
    $n->start;
    return $n;
}

sub holder_of {
    my ($n, $name, $token, $label, %o) = @_;
    my ($e) = $n->wait_log(qr/WMSJ-ENTER (?:start|fn) name=$name token=$token /, since => $o{since},
                           desc => "[$label] $name, token $token");
    return ($e->{text} =~ /pid=(\d+)/)[0];
}

# --- SIGSTOP of the holder, then SIGCONT
{
    my $label = 'stall';
    my $n = node();
    my $holder = holder_of($n, 'job', 1, $label);
    is(holder_of($n, 'tick', 1, $label), $holder, "[$label] one worker holds both jobs (the first to look)")
        or diag 'the test needs both jobs in one worker';
    my $mark = $n->mark;
    kill 'STOP', $holder;
    $n->wait_log(qr/singleton 'job' \(token 1\) of worker 1-$holder is free again: its holder stopped beating/,
                 since => $mark, desc => "[$label] the stalled holder is dropped, its job freed");
    my $job2 = holder_of($n, 'job', 2, $label, since => $mark);
    my $tick2 = holder_of($n, 'tick', 2, $label, since => $mark);
    isnt($job2, $holder, "[$label] another worker starts job (token 2): $job2");
    isnt($tick2, $holder, "[$label] ... and runs tick (token 2): $tick2");
    my $cont = $n->mark;
    kill 'CONT', $holder;
    my ($lost) = $n->wait_log(qr/WMSJ-ENTER stop name=job token=1 pid=$holder /, since => $cont,
                              desc => "[$label] the stop of the stalled holder");
    like($lost->{text}, qr/phase=timer reason=lost held=false:nil /,
         "[$label] stop(job, 1, \"lost\") in a timer, holds() false there");
    my ($first) = $n->grep_log(qr/\b(?:WMSJ-ENTER|WMCB-ENTER) .*pid=$holder /, since => $cont);
    is($first->{idx}, $lost->{idx}, "[$label] it is the first callback in that worker after it runs again")
        or diag $first->{line};
    $n->wait_log(qr/worker 1-$holder is alive but was not counted/, since => $cont, desc => "[$label] counted again");
    my @ticks = $n->absent_for(qr/WMSJ-ENTER fn name=tick token=\d+ pid=$holder /, 1, since => $cont);
    is(scalar @ticks, 0, "[$label] its every() job runs no more there");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    checker_ok($n, label => $label, complete => 1);
    no_errors_ok($n, "[$label] no errors but the stall's reports", qr/\b1-$holder\b/, $MISSED_RE);
}

# --- stops of the node: QUIT, then TERM through the exit hook
for my $sig (qw(QUIT TERM)) {
    my $label = "$sig to the node";
    my $n = node(exit_hook => 1);
    my $holder = holder_of($n, 'job', 1, $label);
    holder_of($n, 'tick', 1, $label);
    my $mark = $n->mark;
    my ($tick_before) = reverse map { /token=(\d+)/ } map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER fn name=tick /);
    $n->signal($sig);
    ok($n->wait_exit, "[$label] nginx stops");
    my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
    is(scalar @stops, 1, "[$label] one stop");
    my $phase = $sig eq 'TERM' ? 'exit_worker' : 'timer';
    like($stops[0] // '', qr/name=job token=1 pid=$holder phase=$phase reason=stop held=true:1 /,
         "[$label] stop(job, 1, \"stop\") in the holder, phase $phase");
    my @after = grep { /WMSJ-ENTER start / || (/WMSJ-ENTER fn name=tick token=(\d+)/ && $1 > $tick_before) }
                map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER (?:start|fn) /, since => $mark);
    is(scalar @after, 0, "[$label] nobody starts either job again") or diag join "\n", @after;
    checker_ok($n, label => $label, complete => 1);
    no_errors_ok($n, "[$label] no errors");
}

# --- a worker recycled by QUIT sent to it: stop("exit"), then another holds it
{
    my $label = 'holder recycled';
    my $n = node();
    my $holder = holder_of($n, 'job', 1, $label);
    my $mark = $n->mark;
    $n->kill_worker($holder, 'QUIT');
    my ($stop) = $n->wait_log(qr/WMSJ-ENTER stop name=job token=1 pid=$holder /, since => $mark,
                              desc => "[$label] its stop");
    like($stop->{text}, qr/reason=exit held=true:1 /, "[$label] stop(job, 1, \"exit\")");
    my $next = holder_of($n, 'job', 2, $label, since => $mark);
    isnt($next, $holder, "[$label] token 2 in worker $next");
    my ($leave) = $n->grep_log(qr/WMSJ-LEAVE stop name=job token=1 /, since => $mark);
    my ($start) = $n->grep_log(qr/WMSJ-ENTER start name=job token=2 /, since => $mark);
    cmp_ok($leave->{idx}, '<', $start->{idx}, "[$label] the stop returned before the start began");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    checker_ok($n, label => $label, complete => 1);
    no_errors_ok($n, "[$label] no errors");
}

done_testing;
