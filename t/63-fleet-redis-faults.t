# Redis trouble never touches the node: Redis stopped for 10 s, then
# started again empty (no persistence), and Redis frozen with SIGSTOP. The
# nodes' reloads and requests go on meanwhile; each node logs one error per
# outage and one notice when Redis is back; no member that stayed up leaves
# or joins again; a node that died during the outage is reported lost once,
# after it.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::FleetCheck;

my $redis = WorkerManager::Redis->new;
$redis->start;

sub node {
    my ($name) = @_;
    return fleet_node($name, redis => $redis->address, interval => 0.5, failed => 1,
                      server_extra => 'location = /hello { return 200 "hello\n"; }');
}

my $OUTAGE = qr/\[worker-manager\] fleet: Redis at \S+ failed: /;
my $BACK = qr/\[worker-manager\] fleet: Redis at \S+ is back after [\d.]+ s/;

my %n = map { $_ => node($_) } qw(a b c);
$n{a}->start;
saw_event($n{a}, 'join a 1', 'start');
$n{b}->start;
saw_event($n{a}, 'join b 2', 'start');
$n{c}->start;
saw_event($_, 'join c 3', 'start') for values %n;

# --- Redis stopped for 10 s; c dies meanwhile; Redis comes back empty
{
    my $label = 'redis down';
    my %mark = map { $_ => $n{$_}->mark } keys %n;
    $redis->stop;
    $n{$_}->wait_log($OUTAGE, since => $mark{$_}, desc => "[$label] $_ logs the outage") for qw(a b c);
    my $t0 = time;
    $n{a}->reload;
    is(($n{a}->get('/hello'))[0], 200, "[$label] a serves requests after a reload during the outage");
    $n{c}->signal_node('KILL');
    sleep 0.05 while time - $t0 < 10;    # the outage lasts 10 s (nothing to poll: Redis is down)
    $redis->start;
    saw_event($_, 'leave c 2 lost', $label) for $n{a}, $n{b};
    $n{$_}->wait_log($BACK, since => $mark{$_}, desc => "[$label] $_ says Redis is back") for qw(a b);
    for my $k (qw(a b)) {
        is(scalar $n{$k}->grep_log($OUTAGE, since => $mark{$k}), 1, "[$label] $k: one error for the outage");
        is(scalar $n{$k}->grep_log($BACK, since => $mark{$k}), 1, "[$label] $k: one notice when it is back");
    }
}

# --- Redis frozen (SIGSTOP) past the nodes' timeouts, then thawed
{
    my $label = 'redis frozen';
    my %mark = map { $_ => $n{$_}->mark } qw(a b);
    $redis->pause;
    $n{$_}->wait_log($OUTAGE, since => $mark{$_}, desc => "[$label] $_ logs the outage") for qw(a b);
    is(($n{b}->get('/hello'))[0], 200, "[$label] b serves requests meanwhile");
    $redis->resume;
    $n{$_}->wait_log($BACK, since => $mark{$_}, desc => "[$label] $_ says Redis is back") for qw(a b);
    for my $k (qw(a b)) {
        is(scalar $n{$k}->grep_log($OUTAGE, since => $mark{$k}), 1, "[$label] $k: one error for the outage");
    }
}

$n{b}->signal('QUIT');
ok($n{b}->wait_exit, 'QUIT stops b');
saw_event($n{a}, 'leave b 1 stopped', 'stop');
$n{a}->signal('QUIT');
ok($n{a}->wait_exit, 'QUIT stops a');
is_deeply([fleet_events($n{a})], ['join a 1', 'join b 2', 'join c 3', 'leave c 2 lost', 'leave b 1 stopped'],
          'a: the joins, c lost once after the outage, b stopped; no join or leave of a or b for the outages');
is_deeply([fleet_events($n{b})], ['join b 2', 'join c 3', 'leave c 2 lost'], 'b: the same from its join on');
checker_ok($n{$_}, label => $_) for qw(a b c);
no_errors_ok($n{$_}, "$_: no errors but one per outage", $OUTAGE) for qw(a b);
no_errors_ok($n{c}, 'c: no errors but the outage (killed by the test)', $OUTAGE);
$redis->stop;
done_testing;
