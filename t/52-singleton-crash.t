# A singleton whose holder is killed with -9: the job starts again (token +
# 1) at once, right after the respawn's start callback, in the respawn or
# another live worker; also when the holder is killed during a reload (a
# worker of the new generation takes it), while its start runs, and when
# every worker is killed at once. No stop runs for a dead holder; the
# checker's one-holder rule reads every start and stop.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::SingletonCheck qw(freed_notice_re $HOLDERS_LOCATION);

my $OPTS = '{ shm = "wm", interval = 1, failed = 2 }';

sub node {
    my (%o) = @_;
    my $job = $o{job} // 'wm.job()';
    my $n = WorkerManager::Nginx->new(
        workers => 4, opts => $OPTS,
        init_worker_after => qq{require("resty.worker.manager").singleton("job", $job)},
        server_extra => $HOLDERS_LOCATION,
    );
    $n->start;
    return $n;
}

# The holding of job with token $token (its start ENTER line): [pid, entry].
sub started {
    my ($n, $token, $label, %o) = @_;
    my ($e) = $n->wait_log(qr/WMSJ-ENTER start name=job token=$token /, since => $o{since},
                           desc => "[$label] start of token $token");
    my ($pid) = $e->{text} =~ /pid=(\d+)/;
    return ($pid, $e);
}

sub finish_ok {
    my ($n, $label, @allow) = @_;
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    is(scalar $n->grep_log(qr/WMSJ-ENTER start /, since => $mark), 0, "[$label] no start after the stop");
    checker_ok($n, label => $label, complete => 1);
    no_errors_ok($n, "[$label] no errors but the kills and the module's reports of them", @allow);
}

# --- kill -9 of the holder: the respawn's start callback, then the job again
{
    my $label = 'kill -9 of the holder';
    my $n = node();
    my ($holder) = started($n, 1, $label);
    my $mark = $n->mark;
    $n->kill_worker($holder, 'KILL');
    my ($pid, $start) = started($n, 2, $label, since => $mark);
    isnt($pid, $holder, "[$label] another worker holds the job: token 2 in $pid");
    my ($freed) = $n->grep_log(freed_notice_re('job', 1, $holder), since => $mark);
    ok($freed, "[$label] the module says the job is free again");
    my ($respawn) = grep { $_->{wpid} != $holder } $n->callbacks(event => 'worker_start', since => $mark);
    ok($respawn, "[$label] nginx respawned the slot");
    cmp_ok($respawn->{idx}, '<', $start->{idx}, "[$label] the job starts after the respawn's start callback")
        if $respawn;
    is(scalar $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark), 0, "[$label] no stop runs for the dead holder");
    finish_ok($n, $label, killed_allow($holder));
}

# --- kill -9 of the holder during a reload, while its stop("reload") runs
# (it sleeps 5 s, so the kill lands inside it): generation 2 takes the job
# without waiting for a stop that will never return
{
    my $label = 'kill -9 of the holder during a reload';
    my $n = node(job => 'wm.job({ stop = { sleep = 5, when = function(kind, name, token) return token == 1 end } })');
    my ($holder) = started($n, 1, $label);
    my $mark = $n->mark;
    $n->signal('HUP');
    $n->wait_log(qr/WMSJ-ENTER stop name=job token=1 pid=$holder phase=timer reason=reload /, since => $mark,
                 desc => "[$label] the holder's stop for the reload");
    my $kill = $n->mark;
    $n->kill_worker($holder, 'KILL');
    my $h = $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        return $code == 200 && $body =~ /^job 2-(\d+) (\d+) 2$/m ? [$1, $2] : undef;
    }, desc => "[$label] job held in generation 2");
    my %gen2 = map { $_->{wpid} => 1 } $n->callbacks(event => 'worker_start', gen => 2);
    ok($gen2{ $h->[0] }, "[$label] held by worker 2-$h->[0] (token $h->[1])");
    ok(scalar $n->grep_log(qr/WMSJ-ENTER start name=job token=$h->[1] /, since => $kill),
       "[$label] its start began after the kill");
    is(scalar $n->grep_log(qr/WMSJ-LEAVE stop name=job token=1 /), 0, "[$label] the stop never returned");
    finish_ok($n, $label, killed_allow($holder));
}

# --- kill -9 of the holder while its start runs (the first start sleeps 5 s)
{
    my $label = 'kill -9 in the start';
    my $n = node(job => 'wm.job({ start = { sleep = 5, when = function(kind, name, token) return token == 1 end } })');
    my ($holder) = started($n, 1, $label);
    my $mark = $n->mark;
    $n->kill_worker($holder, 'KILL');
    my ($pid) = started($n, 2, $label, since => $mark);
    isnt($pid, $holder, "[$label] token 2 starts in another worker ($pid)");
    is(scalar $n->grep_log(qr/WMSJ-LEAVE start name=job token=1 /), 0, "[$label] the first start never returned");
    $n->wait_log(qr/WMSJ-LEAVE start name=job token=2 /, since => $mark, desc => "[$label] start 2 returns");
    finish_ok($n, $label, killed_allow($holder));
}

# --- every worker killed at once: one new holding
{
    my $label = 'kill -9 of every worker';
    my $n = node();
    started($n, 1, $label);
    my @victims = $n->worker_pids;
    my $mark = $n->mark;
    kill 'KILL', @victims;
    $n->wait_log(qr/WMREADY /, count => 4, since => $mark, desc => "[$label] 4 respawns ready");
    started($n, 2, $label, since => $mark);
    my @more = $n->absent_for(qr/WMSJ-ENTER start name=job token=[^2]/, 1, since => $mark);
    is(scalar @more, 0, "[$label] one new holding, token 2");
    finish_ok($n, $label, killed_allow(@victims));
}

done_testing;
