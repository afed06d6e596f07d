# A singleton through reloads: the job moves to the new generation, the old
# holder's stop(name, token, "reload") returning before the new holder's
# start(name, token + 1) begins (both take a while here, so that an
# overlap would show); then two reloads in a row, and a storm of ten. The
# checker reads every worker's enter/leave marks of start and stop: never
# two holders, tokens strictly increasing.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::SingletonCheck qw($HOLDERS_LOCATION);

my $n = WorkerManager::Nginx->new(
    workers => 4,
    opts => '{ shm = "wm", interval = 1, failed = 2 }',
    # start and stop yield for 0.2 s: a start that did not wait for the
    # stop would begin while the stop sleeps
    init_worker_after => 'require("resty.worker.manager").singleton("job", wm.job({ start = { sleep = 0.2 }, '
                       . 'stop = { sleep = 0.2 } }))',
    server_extra => $HOLDERS_LOCATION,
);
$n->start;
$n->wait_log(qr/WMSJ-LEAVE start name=job token=1 /, desc => 'job started');

# the generation whose workers run now
sub workers_of {
    my ($g) = @_;
    return map { $_->{wpid} } $n->callbacks(event => 'worker_start', gen => $g);
}

# Waits until the job is held, its start returned, by a worker of generation $g.
sub held_by_generation {
    my ($g, $label) = @_;
    return $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        return $code == 200 && $body =~ /^job $g-(\d+) (\d+) $g$/m ? [$1, $2] : undef;
    }, desc => "[$label] job held by a worker of generation $g");
}

# --- one reload
{
    my $label = 'reload';
    my $mark = $n->mark;
    $n->reload;
    my $h = held_by_generation(2, $label);
    my ($pid, $token) = @$h;
    is($token, 2, "[$label] the new holding has token 2");
    ok((grep { $_ == $pid } workers_of(2)), "[$label] its holder is a worker of generation 2");
    my ($stop_leave) = $n->wait_log(qr/WMSJ-LEAVE stop name=job token=1 /, since => $mark, desc => "[$label] stop 1 returns");
    my ($stop) = $n->grep_log(qr/WMSJ-ENTER stop name=job token=1 /, since => $mark);
    like($stop->{text}, qr/reason=reload held=true:1 /, "[$label] stop(job, 1, \"reload\"), holding it until it returns");
    my ($start) = $n->wait_log(qr/WMSJ-ENTER start name=job token=2 pid=$pid /, since => $mark, desc => "[$label] start 2");
    cmp_ok($stop_leave->{idx}, '<', $start->{idx}, "[$label] the stop returned before the start began");
    $n->wait_log(qr/WMSJ-LEAVE start name=job token=2 /, since => $mark, desc => "[$label] start 2 returns");
}

# --- two reloads in a row: generation 3 may never hold the job, generation 4 does
{
    my $label = 'double reload';
    my $mark = $n->mark;
    $n->signal('HUP');
    $n->wait_log(qr/WMCB master_start id=3 /, since => $mark, desc => "[$label] master start 3");
    $n->signal('HUP');
    my $h = held_by_generation(4, $label);
    my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
    ok(@stops >= 1, "[$label] the job stopped at least once (" . scalar(@stops) . ')');
    is(scalar(grep { !/reason=reload / } @stops), 0, "[$label] every stop says reload") or diag join "\n", @stops;
    cmp_ok($h->[1], '>', 2, "[$label] a later token ($h->[1])");
}

# --- a storm: ten reloads, 50 ms apart
{
    my $label = 'storm';
    my $mark = $n->mark;
    # nginx coalesces HUPs that come faster than it reloads: the newest
    # generation is known once the storm is over
    for my $i (1 .. 10) {
        $n->signal('HUP');
        select undef, undef, undef, 0.05;
    }
    my $newest = $n->wait_until(sub {
        my @ms = $n->callbacks(event => 'master_start', since => $mark);
        return undef unless @ms;
        my @later = $n->absent_for(qr/WMCB master_start /, 0.5, since => $ms[-1]{idx} + 1);
        return @later ? undef : $ms[-1]{gen};
    }, desc => "[$label] the last reload");
    note "[$label] 10 HUPs gave generations 5 to $newest";
    my $h = held_by_generation($newest, $label);
    my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
    is(scalar(grep { !/reason=reload / } @stops), 0, "[$label] every stop says reload (" . scalar(@stops) . ')')
        or diag join "\n", @stops;
    my @tokens = map { /token=(\d+)/ ? $1 : () } map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER start /);
    is_deeply(\@tokens, [sort { $a <=> $b } @tokens], "[$label] tokens only grow: @tokens");
}

my $mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
is(scalar @stops, 1, 'one stop at the end');
like($stops[0] // '', qr/reason=stop /, '... for the stop');
is(scalar $n->grep_log(qr/WMSJ-ENTER start /, since => $mark), 0, 'nobody starts the job after it');

checker_ok($n, label => 'reloads', complete => 1);
no_errors_ok($n, 'no errors');
done_testing;
