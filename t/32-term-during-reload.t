# TERM in the middle of a reload (issue 6), with the exit hook: HUP, then TERM
# after 0 to 300 ms, while the new generation's workers start and the old
# ones are told to quit; and once with the old workers busy (so the TERM finds
# two generations running).  Whatever nginx managed to do before the TERM:
# every generation that got workers gets exactly one master exit, nothing is
# counted twice, the last master exit has n_next nil, and the invariant
# checker passes on the node's log.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, on_crash = wm.rec("crash") }';

sub todo_unless_strict { $ENV{WM_STRICT} ? undef : shift }

# Two races of a TERM that catches a reload half-done, where the module does
# not do what the contract says; a TODO when they are all the checker finds:
#  - absent newer generation.  The contract: "A newer generation exists from
#    its master start on, so n_next can be 0 while its workers are still
#    starting".  The README: on a fast shutdown an exiting worker "cannot
#    wait and treats such a generation as absent".  Exits then say n_next
#    nil where the contract says 0.
#  - late starter.  The contract: master exit "never while a worker of that
#    generation still runs".  A new worker that had not reached its start
#    (not counted, not arrived) when its sibling's fast exit ran the
#    generation's master exit starts after it: worker start and exit of a
#    generation whose master exit has run.
sub known_term_races {
    my ($n) = @_;
    my $r = checker_errors($n);
    my @all = map { @{ $r->{$_} } } qw(lifecycle model lock invariants);
    return undef unless @all;
    my ($term) = $n->grep_log(qr/signal 15 \(SIGTERM\) received/);
    return undef unless $term;
    my %first_start;
    $first_start{ $_->{gen} } //= $_->{idx} for $n->callbacks(event => 'worker_start');
    my %ms = map { $_->{gen} => $_->{idx} } $n->callbacks(event => 'master_start');
    my %me = map { $_->{gen} => $_->{idx} } $n->callbacks(event => 'master_exit');
    my %late = map { $_->{id} => 1 } grep { defined $me{ $_->{gen} } && $_->{idx} > $me{ $_->{gen} } && $me{ $_->{gen} } > $term->{idx} }
               $n->callbacks(event => 'worker_start');
    my %seen;
    for my $e (@all) {
        if ($e =~ /^#(\d+) \w+\((\d+)(?:-\d+)?, .*: next=nil, expected 0$/) {
            my ($idx, $g) = ($1, $2);
            my @pending = grep { $_ > $g && $ms{$_} < $idx && ($first_start{$_} // 1e99) > $idx } keys %ms;
            return undef unless @pending && $idx > $term->{idx};
            $seen{'absent newer generation'} = 1;
        } elsif ($e =~ /^(?:\[lifetime \d+\] )?#\d+ worker_(?:start|exit)\((\d+-\d+), .*(?:after its master.exit|worker start of a generation without master start)/ && $late{$1}) {
            $seen{"late starter $1"} = 1;
        } else {
            return undef;
        }
    }
    return todo_unless_strict('TERM during a reload: ' . join(', ', sort keys %seen)
                            . ' (contract violations, see the comment above known_term_races)');
}

sub term_ok {
    my ($n, $label) = @_;
    ok($n->wait_exit(20), "[$label] TERM stops nginx");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    my %ws = map { $_->{gen} => 1 } select_cbs(\@c, event => 'worker_start');
    my %me;
    $me{ $_->{gen} }++ for select_cbs(\@c, event => 'master_exit');
    is(join(',', map { "$_:" . ($me{$_} // 0) } sort keys %ws), join(',', map { "$_:1" } sort keys %ws),
       "[$label] one master exit per generation that got workers (" . join(',', sort keys %ws) . ')');
    my @we = select_cbs(\@c, event => 'worker_exit');
    my %twice;
    $twice{ $_->{id} }++ for @we;
    is(scalar(grep { $twice{$_} > 1 } keys %twice), 0, "[$label] no worker exit reported twice");
    is(scalar @we, scalar(select_cbs(\@c, event => 'worker_start')), "[$label] one worker exit per worker start");
    my $last = (select_cbs(\@c, event => 'master_exit'))[-1];
    is($last && $last->{next}, 'nil', "[$label] the last master exit has n_next nil: a stop");
    is(scalar $n->grep_log(qr/exited on signal 9/), 0, "[$label] no worker needed SIGKILL");
    checker_ok($n, label => $label, todo => known_term_races($n));
    no_errors_ok($n, "[$label] no errors");
}

for my $delay (0, 0.03, 0.08, 0.15, 0.3) {
    my $label = "HUP, TERM after ${delay}s";
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS);
    $n->start;
    $n->signal('HUP');
    sleep $delay if $delay;
    $n->signal('TERM');
    term_ok($n, $label);
}

# the old workers busy for 0.8 s: the new generation is up and the old one
# still runs (told to quit, its exit not run yet) when the TERM comes
{
    my $label = 'old workers busy, HUP, TERM';
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS);
    $n->start;
    my @socks = $n->block_workers(800);
    my $mark = $n->reload;
    $n->signal('TERM');
    $n->finish($_) for @socks;
    term_ok($n, $label);
    my @c = $n->callbacks(since => $mark);
    ok(scalar(select_cbs(\@c, event => 'worker_start', gen => 2)) == 2, "[$label] generation 2 had started");
}

done_testing;
