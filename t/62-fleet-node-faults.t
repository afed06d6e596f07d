# Nodes that fail in the ways machines do, on a real Redis: a whole node
# killed and started again before the fleet noticed (it leaves as "lost",
# then joins again), a whole node stopped with SIGSTOP past its deadline (a
# partition: lost, then on SIGCONT it joins again as a new event), the
# fleet agent's worker killed (the events still run, once), a fast stop
# (TERM: lost), and a reload while an event comes (it runs once). Every member
# runs every event once, in order.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::FleetCheck;

my $redis = WorkerManager::Redis->new;
$redis->start;

sub node {
    my ($name, %o) = @_;
    return fleet_node($name, redis => $redis->address, interval => $o{interval} // 0.5, failed => $o{failed} // 1);
}

# nodes a and b (%b: b's node options) started in turn, each join seen on a
sub a_then_b {
    my ($label, %b) = @_;
    my $a = node('a');
    my $b = node('b', %b);
    $a->start;
    saw_event($a, 'join a 1', $label);
    $b->start;
    saw_event($a, 'join b 2', $label);
    return ($a, $b);
}

# --- restarted before its loss was noticed: leave "lost", then join (the
# new start runs as another nginx prefix with the same node name: a new
# shm, as after a machine's reboot)
{
    my $label = 'restart';
    my ($a, $b) = a_then_b($label, failed => 30);    # b's loss would take 30 s to notice
    $b->signal_node('KILL');
    my $b2 = node('b', failed => 30);
    $b2->start;
    saw_event($a, 'join b 2', "$label: b joins again on a", count => 2);
    saw_event($b2, 'join b 2', $label);
    is_deeply([fleet_events($a)], ['join a 1', 'join b 2', 'leave b 1 lost', 'join b 2'],
              "[$label] a: b joined, left as lost, joined again, in that order");
    is_deeply([fleet_events($b2)], ['join b 2'], "[$label] b's new start: its own join (its predecessor's leave came before)");
    $_->signal('QUIT') for $b2, $a;
    ok($_->wait_exit, "[$label] QUIT stops the node") for $a, $b2;
    checker_ok($_, label => $label) for $a, $b, $b2;
    no_errors_ok($_, "[$label] no errors") for $a, $b, $b2;
    $redis->restart;
}

# --- a partition: SIGSTOP of a whole node past its deadline, then SIGCONT
{
    my $label = 'partition';
    my ($a, $b) = a_then_b($label);
    my $mark = $a->mark;
    $b->signal_node('STOP');
    saw_event($a, 'leave b 1 lost', $label, since => $mark);
    $b->signal_node('CONT');
    saw_event($a, 'join b 2', "$label: b joins again on a", count => 2);
    saw_event($b, 'join b 2', "$label: b runs its rejoin", count => 2);
    is_deeply([fleet_events($a)], ['join a 1', 'join b 2', 'leave b 1 lost', 'join b 2'],
              "[$label] a: b lost, then back as a new join");
    is_deeply([fleet_events($b)], ['join b 2', 'leave b 1 lost', 'join b 2'],
              "[$label] b: its own loss and rejoin, each once");
    $_->signal('QUIT') for $a, $b;
    ok($_->wait_exit, "[$label] QUIT stops the node") for $a, $b;
    checker_ok($_, label => $label) for $a, $b;
    # b's workers missed their heartbeats while stopped: the module says so
    no_errors_ok($a, "[$label] a: no errors");
    no_errors_ok($b, "[$label] b: no errors but its stalled heartbeats", $MISSED_RE,
                 qr/stopped beating|is alive but was not counted|exits after it was dropped/);
    $redis->restart;
}

# --- the agent's worker killed: the events after it still run, once
{
    my $label = 'agent killed';
    my $a = node('a');
    my $b = node('b');
    $a->start;
    saw_event($a, 'join a 1', $label);
    my ($agent) = map { /pid=(\d+)/ } map { $_->{text} } $a->grep_log(qr/WMFLEET join node=a /);
    $a->kill_worker($agent, 'KILL');
    $b->start;
    saw_event($a, 'join b 2', $label);
    $b->signal('QUIT');
    ok($b->wait_exit, "[$label] QUIT stops b");
    saw_event($a, 'leave b 1 stopped', $label);
    $a->signal('QUIT');
    ok($a->wait_exit, "[$label] QUIT stops a");
    is_deeply([fleet_events($a)], ['join a 1', 'join b 2', 'leave b 1 stopped'], "[$label] a ran each event once");
    checker_ok($_, label => $label) for $a, $b;
    no_errors_ok($a, "[$label] a: no errors but the kill", killed_allow($agent));
    no_errors_ok($b, "[$label] b: no errors");
}

# --- a fast stop (TERM) cannot reach Redis from exit_worker (no cosockets
# there): the node is lost, once its presence runs out
{
    my $label = 'TERM';
    my ($a, $b) = a_then_b($label);
    $b->signal('TERM');
    ok($b->wait_exit, "[$label] TERM stops b");
    saw_event($a, 'leave b 1 lost', $label);
    # --- a reload while an event comes: the event runs once, late or not
    my $c = node('c');
    $c->start;
    saw_event($a, 'join c 2', $label);
    $a->signal('HUP');
    $c->signal('QUIT');
    ok($c->wait_exit, "[reload] QUIT stops c while a reloads");
    saw_event($a, 'leave c 1 stopped', 'reload');
    $a->signal('QUIT');
    ok($a->wait_exit, "[$label] QUIT stops a");
    is_deeply([fleet_events($a)], ['join a 1', 'join b 2', 'leave b 1 lost', 'join c 2', 'leave c 1 stopped'],
              "[$label] a: b lost after its fast stop; c's stop during a's reload ran once");
    checker_ok($_, label => $label) for $a, $b, $c;
    no_errors_ok($_, "[$label] no errors") for $a, $b, $c;
}

$redis->stop;
done_testing;
