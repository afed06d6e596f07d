# The fleet's membership on a real Redis with three real nginx nodes:
# nodes start one by one and every member's on_join sees every later join
# once, in order, with the member count after it; a reload and a worker
# crash cause no event; QUIT of a node: on_leave(node, n, "stopped") once
# on each other member; kill -9 of a whole node: on_leave(node, n, "lost")
# once on the one left; nodes() lists the members.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::FleetCheck;

my $redis = WorkerManager::Redis->new;
$redis->start;

my ($INTERVAL, $FAILED) = (0.5, 1);

sub node { fleet_node($_[0], redis => $redis->address, interval => $INTERVAL, failed => $FAILED) }

my %n = map { $_ => node($_) } qw(n1 n2 n3);

# --- one by one
$n{n1}->start;
saw_event($n{n1}, 'join n1 1', 'start n1');
$n{n2}->start;
saw_event($_, 'join n2 2', 'start n2') for $n{n1}, $n{n2};
$n{n3}->start;
saw_event($_, 'join n3 3', 'start n3') for @n{qw(n1 n2 n3)};
is_deeply([fleet_events($n{n1})], ['join n1 1', 'join n2 2', 'join n3 3'], 'n1 saw each join once, in order');
is_deeply([fleet_events($n{n2})], ['join n2 2', 'join n3 3'], 'n2 saw its own join, then n3\'s');
is_deeply([fleet_events($n{n3})], ['join n3 3'], 'n3 saw its own join');

# nodes(): every member, with its generation and workers
{
    my $list = $n{n3}->wait_until(sub {
        my ($code, $body) = $n{n3}->get('/nodes');
        my @m = $body =~ /^(n\d) 1 2 [\d.]+ [\d.]+$/mg;
        return "@m" eq 'n1 n2 n3' ? $body : undef;
    }, desc => 'nodes() lists n1, n2, n3 in generation 1 with 2 workers');
    ok($list, 'nodes() on n3 lists the three members');
}

# --- a reload of n2 and a crashed worker of n3: no event; the agent moves
my $victim;
{
    $n{n2}->reload;
    ($victim) = $n{n3}->worker_pids;
    $n{n3}->kill_worker($victim, 'KILL');
    $n{n3}->wait_log(qr/crashed/, desc => 'n3 reports its crash');
    $n{n2}->wait_until(sub {
        my ($code, $body) = $n{n2}->get('/nodes');
        return $body =~ /^n2 2 2 /m;
    }, desc => 'the fleet sees n2 in generation 2');
}

# --- QUIT of n1: "stopped" on n2 and n3
$n{n1}->signal('QUIT');
ok($n{n1}->wait_exit, 'QUIT stops n1');
saw_event($_, 'leave n1 2 stopped', 'QUIT n1') for $n{n2}, $n{n3};

# --- kill -9 of the whole n2: "lost" on n3
$n{n2}->signal_node('KILL');
saw_event($n{n3}, 'leave n2 1 lost', 'kill -9 n2');
$n{n3}->wait_until(sub { my ($c, $b) = $n{n3}->get('/nodes'); $b =~ /\An3 / && $b !~ /^n[12] /m },
                   desc => 'nodes() on n3: only n3');

$n{n3}->signal('QUIT');
ok($n{n3}->wait_exit, 'QUIT stops n3');

is_deeply([fleet_events($n{n1})], ['join n1 1', 'join n2 2', 'join n3 3'], 'n1: nothing more');
is_deeply([fleet_events($n{n2})], ['join n2 2', 'join n3 3', 'leave n1 2 stopped'],
          'n2: the joins, then n1 stopped, each once (no event for its reload)');
is_deeply([fleet_events($n{n3})], ['join n3 3', 'leave n1 2 stopped', 'leave n2 1 lost'],
          'n3: its join, n1 stopped, n2 lost, each once (no event for its crash)');

# every callback ran in a timer of one worker (cosockets work there)
is(scalar(grep { $_->{text} !~ / phase=timer / } map { $_->grep_log(qr/WMFLEET /) } values %n), 0,
   'every on_join and on_leave ran in a timer');

# only n3's own leave is left in Redis: it stopped last, and nobody was left to hear it
is($redis->cmd('ZCARD', '{wm}:members'), 0, 'no member left in Redis');

checker_ok($n{$_}, label => $_) for qw(n1 n2 n3);
no_errors_ok($n{n1}, 'n1: no errors');
no_errors_ok($n{n2}, 'n2: no errors (killed by the test)');
no_errors_ok($n{n3}, 'n3: no errors but its killed worker', killed_allow($victim));
$redis->stop;
done_testing;
