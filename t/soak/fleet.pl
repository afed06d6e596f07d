#!/usr/bin/env perl
# The fleet soak: for --duration seconds, three nginx node slots (2 workers
# each, opts.cluster on one private redis-server, interval 0.5 s, failed
# 1 s) go through random reloads, kill -9 of a worker, kill -9 of a whole
# node (started again under the same name, as after a reboot), graceful
# stops followed by a fresh start, a whole node frozen past its deadline
# (SIGSTOP, then SIGCONT), Redis restarted empty, and Redis frozen. Every
# node registers a cluster singleton.
#
# Checks, on every node lifetime's log at the end:
#   - the node's own invariants (WorkerManager::Check::checker_errors);
#   - membership, replayed per observer: from its own join on, no member
#     joins twice without leaving in between, none leaves that it had not
#     counted, and n_nodes equals the members it counts after each event
#     (after Redis restarted empty, events written to the forgotten Redis
#     and not yet read are gone: the count is taken up again from the next
#     event, noted, not a violation; a join or leave twice still is);
#   - the cluster singleton fleet-wide (SingletonCheck::fleet_singleton_errors):
#     tokens rising, a start only after the previous holding's stop returned
#     unless that holder's node was killed or frozen.
#
#   perl t/soak/fleet.pl [--duration 600] [--seed N] [--verbose]
#   make soak-fleet DURATION=600      (make soak-quick runs 30 s of it)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time sleep);
use Test::More ();
use WorkerManager::Nginx;
use WorkerManager::Chance;
use WorkerManager::FleetCheck qw(fleet_node);
use WorkerManager::Redis;
use WorkerManager::Check qw(checker_errors);
use WorkerManager::SingletonCheck qw(fleet_singleton_errors);

my %opt = (duration => 600);
GetOptions(\%opt, 'duration=i', 'seed=i', 'verbose!') or die "usage: $0 [--duration S] [--seed N] [--verbose]\n";
my $SEED = $opt{seed} // $ENV{SOAK_SEED} // (time() ^ $$) % 1_000_000;
srand $SEED;
print "fleet soak: $opt{duration} s, seed $SEED (SOAK_SEED=$SEED replays the decisions), 3 node slots\n";

# the driver's own assertions are not this script's: keep Test::More quiet
my $tb = Test::More->builder;
$tb->no_plan;
$tb->no_ending(1);
open my $null, '>', '/dev/null' or die;
$tb->output($null);
$tb->failure_output($null);

my $T0 = time;
my $END = $T0 + $opt{duration};
my (%ev, %viol, @report, %seen);
sub elapsed { sprintf '%6.1f', time - $T0 }
sub say_v { print elapsed(), "  @_\n" if $opt{verbose} }

sub violation {
    my ($kind, $msg) = @_;
    $viol{$kind}++;
    push @report, "[$kind] $msg";
    print elapsed(), "  VIOLATION [$kind] $msg\n";
}

my $redis = WorkerManager::Redis->new;
$redis->start;

my @lives;      # every node lifetime: { name, n, gone }
my %slot;       # name => the live lifetime
my @redis_restarts;    # times Redis came back empty

sub start_node {
    my ($name) = @_;
    my $n = fleet_node(
        $name, redis => $redis->address, interval => 0.5, failed => 1, exit_hook => 1,
        init_worker_after => q{require("resty.worker.manager").singleton("job", { scope = "cluster",
            start = wm.sj("start", { scope = "cluster" }), stop = wm.sj("stop", { scope = "cluster" }) })},
    );
    my $life = { name => $name, n => $n, label => sprintf('%s#%d', $name, scalar @lives + 1), t0 => time };
    push @lives, $life;
    $n->start(timeout => 20);
    $slot{$name} = $life;
    $ev{'node starts'}++;
    return $life;
}

sub running { grep { $_->{n}->master_pid && $_->{n}->alive($_->{n}->master_pid) } values %slot }


my %do = (
    reload => sub {
        my ($l) = @_;
        $l->{n}->signal('HUP');
    },
    kill_worker => sub {
        my ($l) = @_;
        my @w = $l->{n}->worker_pids or return;
        $l->{n}->kill_worker($w[ rand @w ], 'KILL');
    },
    kill_node => sub {
        my ($l) = @_;
        $l->{gone} = 1;
        $l->{n}->signal_node('KILL');
        sleep rand 2;    # started again before or after its loss is noticed
        start_node($l->{name});
    },
    stop_node => sub {
        my ($l) = @_;
        $l->{n}->signal('QUIT');
        $l->{n}->wait_exit or violation('stop', "$l->{label} did not stop");
        start_node($l->{name});
    },
    freeze_node => sub {
        my ($l) = @_;
        $l->{gone} = 1;    # its holding may end without a stop first
        $l->{n}->signal_node('STOP');
        sleep 1.5 + rand 2;    # past its deadline (interval + failed = 1.5 s)
        $l->{n}->signal_node('CONT');
    },
    redis_restart => sub {
        $redis->restart;
        push @redis_restarts, time;
    },
    redis_freeze => sub {
        $redis->pause;
        sleep 0.5 + rand 2;
        $redis->resume;
    },
);

eval {
    start_node($_) for qw(a b c);
    while (time < $END) {
        sleep 0.3 + rand 1.5;
        my $what = pick(reload => 4, kill_worker => 2, kill_node => 1, stop_node => 1, freeze_node => 1,
                        redis_restart => 0.5, redis_freeze => 0.5);
        my @r = running() or next;
        my $l = $r[ rand @r ];
        say_v("$what" . ($what =~ /^redis/ ? '' : " $l->{label}"));
        $ev{$what}++;
        $do{$what}->($l);
    }
    1;
} or violation('harness', "driver error: $@");

# the end: every node stops; the survivors hear each other leave first
for my $l (sort { $a->{name} cmp $b->{name} } running()) {
    $l->{n}->signal('QUIT');
    $l->{n}->wait_exit or violation('stop', "$l->{label} did not stop at the end");
}
$redis->stop;

# ------------------------------------------------------------------ checks
for my $l (@lives) {
    my $r = checker_errors($l->{n}, complete => 0);
    for my $part (qw(lifecycle model lock invariants singletons)) {
        my @e = @{ $r->{$part} } or next;
        violation($part, "$l->{label}: " . join("\n      ", scalar(@e) . ' finding(s)', @e[0 .. ($#e < 5 ? $#e : 5)]));
    }
}

# membership, replayed per observer
for my $l (@lives) {
    my (%known, $unknown, $anchored);
    my $restart_i = 0;
    for my $e ($l->{n}->grep_log(qr/WMFLEET /)) {
        my ($kind, $node, $n_nodes, $t) = $e->{text} =~ /WMFLEET (\w+) node=(\S+) n=(\d+) .* t=([\d.]+)/ or next;
        $seen{"events run ($kind)"}++;
        my $reanchor = 0;
        while ($restart_i < @redis_restarts && $redis_restarts[$restart_i] < $t) {
            $restart_i++;
            $reanchor = 1;
        }
        if (!defined $unknown && !($kind eq 'join' && $node eq $l->{name})
            && grep { $_ > $l->{t0} && $_ < $t } @redis_restarts) {
            # its own join went with the Redis that forgot it
            $seen{'counts taken up again after Redis came back empty'}++;
            %known = ();
            $unknown = $n_nodes;    # the members after this event, names unknown
            next;
        }
        if (!defined $unknown) {    # its own join comes first
            if ($kind ne 'join' || $node ne $l->{name}) {
                violation('membership', "$l->{label}: first event is $kind $node, not its own join");
                last;
            }
            %known = ($node => 1);
            $unknown = $n_nodes - 1;
            next;
        }
        if ($kind eq 'join') {
            violation('membership', "$l->{label}: $node joined twice (n=$n_nodes)") if $known{$node}++;
        } elsif ($known{$node}) {
            delete $known{$node};
        } elsif ($unknown > 0) {
            $unknown--;
        } elsif (!$reanchor) {
            violation('membership', "$l->{label}: $node left (n=$n_nodes) but was not a member");
        }
        my $count = keys(%known) + $unknown;
        if ($count != $n_nodes) {
            if ($reanchor) {
                $seen{'counts taken up again after Redis came back empty'}++;
                $unknown = $n_nodes - keys %known;
                $unknown = 0 if $unknown < 0;
            } else {
                violation('membership', "$l->{label}: after $kind $node, n_nodes=$n_nodes but it counts $count");
            }
        }
    }
}

# the cluster singleton, fleet-wide
{
    my @err = fleet_singleton_errors(nodes => [ map { [ $_->{label}, $_->{n} ] } @lives ],
                                     gone => { map { $_->{gone} ? ($_->{label} => 1) : () } @lives });
    violation('fleet singleton', join "\n      ", scalar(@err) . ' finding(s)', @err[0 .. ($#err < 7 ? $#err : 7)]) if @err;
    $seen{'cluster singleton holdings'} += () = map { $_->{n}->grep_log(qr/WMSJ-ENTER start name=job /) } @lives;
}

my $kept = '';
if (%viol) {
    $ENV{WM_KEEP} = 2;    # keep every node's prefix for the reader
    $kept = "\nlogs kept: " . join(' ', map { $_->{n}->prefix } @lives) . "\n";
}
$_->{n}->cleanup for @lives;

my $total = 0;
$total += $_ for values %viol;
print "\n";
printf "  %-52s %6d\n", "event: $_", $ev{$_} for sort keys %ev;
printf "  %-52s %6d\n", "seen: $_", $seen{$_} for sort keys %seen;
printf "  %-52s %6d\n", "node lifetimes checked", scalar @lives;
printf "  %-52s %6d\n", "violations: $_", $viol{$_} for sort keys %viol;
printf "fleet soak %s: %.0f s, seed %d, %d node lifetimes, %d violation(s)\n",
    $total ? 'FAILED' : 'passed', time - $T0, $SEED, scalar @lives, $total;
print "\nviolations:\n", map { "  $_\n" } @report if @report;
print $kept;
exit($total ? 1 : 0);
