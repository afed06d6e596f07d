# manager.every(): fn runs in the holder at once, then every interval (3 s
# here; each run takes 0.3 s); two runs never overlap anywhere in the node,
# also when the job moves; after a move the next run comes within the
# interval of the last one's beginning. Moves are made right after a run
# began, so that the old holder is busy in it: a reload, the holder recycled
# by QUIT sent to it, and the holder killed with -9 in its run (the one
# overlap the contract allows: a run cut off by its holder's death).
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $INTERVAL = 3;
my $n = WorkerManager::Nginx->new(
    workers => 3,
    opts => '{ shm = "wm", interval = 1, failed = 1 }',
    init_worker_after => qq{require("resty.worker.manager").every("tick", $INTERVAL, wm.sj("fn", { sleep = 0.3 }))},
);
$n->start;

sub runs {
    my (%o) = @_;
    return map { my ($token, $pid, $t) = $_->{text} =~ /token=(\d+) pid=(\d+) .* t=([\d.]+)/;
                 { token => $token, pid => $pid, t => $t, idx => $_->{idx} } }
           $n->grep_log(qr/WMSJ-ENTER fn name=tick /, since => $o{since});
}

# Waits for the next run to begin, then makes the move; returns the run
# that was going on and the first run of the next holding.
sub move {
    my ($label, $do) = @_;
    my $mark = $n->mark;
    my ($e) = $n->wait_log(qr/WMSJ-ENTER fn name=tick /, since => $mark, desc => "[$label] a run begins",
                           timeout => $INTERVAL * 3);
    my ($busy) = runs(since => $e->{idx});
    $do->($busy);
    my ($next) = $n->wait_log(qr/WMSJ-ENTER fn name=tick token=(?!$busy->{token} )\d+ /, since => $mark,
                              desc => "[$label] the first run of the next holding");
    my ($first) = runs(since => $next->{idx});
    return ($busy, $first);
}

sub moved_ok {
    my ($label, $busy, $first, %o) = @_;
    cmp_ok($first->{token}, '>', $busy->{token}, "[$label] a new holding: token $busy->{token} -> $first->{token}");
    isnt($first->{pid}, $busy->{pid}, "[$label] in another worker ($busy->{pid} -> $first->{pid})") unless $o{same_ok};
    my $gap = $first->{t} - $busy->{t};
    cmp_ok($gap, '<', $INTERVAL, sprintf "[$label] the next run began %.2f s after the last one began, within the "
                                         . "interval", $gap);
    unless ($o{killed}) {
        my ($leave) = $n->grep_log(qr/WMSJ-LEAVE fn name=tick token=$busy->{token} pid=$busy->{pid} /,
                                   since => $busy->{idx});
        ok($leave && $leave->{idx} < $first->{idx}, "[$label] the busy run returned before the next began");
    }
}

# steady state first: runs every interval in one holder
{
    my $label = 'steady';
    $n->wait_until(sub { runs() >= 3 }, desc => "[$label] three runs", timeout => $INTERVAL * 4);
    my @r = runs();
    is(scalar(grep { $_->{token} != 1 } @r[0 .. 2]), 0, "[$label] the first three runs are of token 1");
    is($r[0]{pid}, $r[$_]{pid}, "[$label] run $_ in the same holder") for 1, 2;
    for my $i (1, 2) {
        my $gap = $r[$i]{t} - $r[ $i - 1 ]{t};
        cmp_ok($gap, '>=', $INTERVAL * 0.99, sprintf "[$label] run %d began %.2f s after run %d: not before the interval",
               $i + 1, $gap, $i);
    }
}

{
    my $label = 'reload';
    my ($busy, $first) = move($label, sub { $n->signal('HUP') });
    moved_ok($label, $busy, $first);
    my %gen2 = map { $_->{wpid} => 1 } $n->callbacks(event => 'worker_start', gen => 2);
    ok($gen2{ $first->{pid} }, "[$label] the new holder is a worker of generation 2");
}

{
    my $label = 'holder recycled';
    my ($busy, $first) = move($label, sub { $n->kill_worker($_[0]{pid}, 'QUIT') });
    moved_ok($label, $busy, $first);
}

my $killed;
{
    my $label = 'holder killed in its run';
    my ($busy, $first) = move($label, sub { $killed = $_[0]{pid}; $n->kill_worker($killed, 'KILL') });
    moved_ok($label, $busy, $first, killed => 1);
}

$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
checker_ok($n, label => 'every', complete => 1);
no_errors_ok($n, 'no errors but the kill', killed_allow($killed));
done_testing;
