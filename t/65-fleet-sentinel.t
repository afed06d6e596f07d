# The fleet on a Redis behind Sentinel: one primary, one replica and three
# sentinels on loopback, three nginx nodes that find the primary through the
# sentinels. The primary is killed; once the sentinels promoted the replica
# the fleet goes on on it: no member that stayed up leaves or joins again,
# each node logs at most one error for the failover and one notice when
# Redis is back, a node stopped afterwards leaves ("stopped") once on the
# others, a node started afterwards joins once on every member, and
# nodes() shows the members as the new primary has them.
#
# Replication is asynchronous: a write the old primary acknowledged just
# before its death may be missing on the new one. The test waits until the
# replica processed everything the primary had (its offset) before the kill,
# with the joins all read by every node: what the primary may still take
# meanwhile is presence refreshes only, which the scripts' catch-up covers.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::FleetCheck;

my $MASTER = 'wm-fleet';
my $s = WorkerManager::Redis->sentinel_setup(master_name => $MASTER);
my $old = $s->primary;

my ($INTERVAL, $FAILED) = (0.5, 2);

sub node {
    my ($name) = @_;
    return fleet_node($name, redis => sprintf('{ sentinels = %s, master_name = "%s" }', $s->sentinels_lua, $MASTER),
                      interval => $INTERVAL, failed => $FAILED);
}

# nodes() on $n: { name => seen } (generation 1, 2 workers each)
sub view {
    my ($n) = @_;
    my ($code, $body) = $n->get('/nodes');
    return undef unless $code == 200;
    my %v;
    for (split /\n/, $body) {
        return undef unless /^(\S+) 1 2 [\d.]+ ([\d.]+)$/;
        $v{$1} = $2;
    }
    return \%v;
}

# The label names the sentinels' master (it has spaces): match it loosely.
my $OUTAGE = qr/\[worker-manager\] fleet: Redis at .+? failed: /;
my $BACK = qr/\[worker-manager\] fleet: Redis at .+? is back after [\d.]+ s/;

my %n = map { $_ => node($_) } qw(a b c d);

# --- three nodes join, one by one, through the sentinels
$n{a}->start;
saw_event($n{a}, 'join a 1', 'start');
$n{b}->start;
saw_event($_, 'join b 2', 'start') for @n{qw(a b)};
$n{c}->start;
saw_event($_, 'join c 3', 'start') for @n{qw(a b c)};
is_deeply([fleet_events($n{a})], ['join a 1', 'join b 2', 'join c 3'], 'a saw each join once, in order');
is_deeply([fleet_events($n{b})], ['join b 2', 'join c 3'], 'b saw its join, then c\'s');
is_deeply([fleet_events($n{c})], ['join c 3'], 'c saw its join');
is($old->cmd('ZCARD', '{wm}:members'), 3, 'the primary has the three members');

# --- the primary killed, the replica promoted
my %mark = map { $_ => $n{$_}->mark } qw(a b c);
my $t_kill;
{
    my $label = 'failover';
    # everything the primary has, the replica has (see the top)
    my $want;
    $s->replica->wait_until(sub {
        $want = $old->info('replication')->{master_repl_offset};
        my $r = $s->replica->info('replication');
        return ($r->{master_link_status} // '') eq 'up' && ($r->{slave_repl_offset} // -1) >= $want;
    }, timeout => 30, desc => "the replica at the primary's replication offset");
    note("the replica has the primary's writes up to offset $want: killing the primary");
    $t_kill = time;
    $old->kill;
    my $new = $s->wait_failover(30);
    is($new->port, $s->replica->port, "[$label] the sentinels name the old replica the master");
    is($s->current_primary_port, $new->port, "[$label] current_primary_port agrees");

    # each node refreshed its presence on the new primary, and so its view:
    # every member seen after the kill (Redis's clock, the same machine's)
    for my $k (qw(a b c)) {
        my $v = $n{$k}->wait_until(sub {
            my $v = view($n{$k});
            return undef unless $v && join(' ', sort keys %$v) eq 'a b c';
            return (grep { $_ <= $t_kill } values %$v) ? undef : $v;
        }, timeout => 30, desc => "[$label] nodes() on $k: a, b, c, each seen on the new primary");
        ok($v, "[$label] nodes() on $k lists a, b, c as refreshed on the new primary");
    }
    for my $k (qw(a b c)) {
        my @out = $n{$k}->grep_log($OUTAGE, since => $mark{$k});
        # (a node that logged an outage says it is back once it refreshed)
        $n{$k}->wait_log($BACK, since => $mark{$k}, desc => "[$label] $k says Redis is back") if @out;
        my @back = $n{$k}->grep_log($BACK, since => $mark{$k});
        note("$k: " . scalar(@out) . " outage error(s), " . scalar(@back) . " notice(s)" .
             join('', map { "\n  $_->{line}" } @out, @back));
        cmp_ok(scalar @out, '<=', 1, "[$label] $k: at most one error for the failover");
        is(scalar @back, scalar @out, "[$label] $k: " . (@out ? 'one notice that Redis is back' : 'no notice (no error)'));
    }
    my $ev = $new->cmd('XRANGE', '{wm}:events', '-', '+');
    my @kinds = map { my %f = @{ $_->[1] }; "$f{kind} $f{node} $f{n}" } @$ev;
    is_deeply(\@kinds, ['join a 1', 'join b 2', 'join c 3'], "[$label] the new primary has the three joins, no more");
    is($new->cmd('ZCARD', '{wm}:members'), 3, "[$label] the new primary has the three members");
}

# --- after the failover: c stops, d starts
{
    my $label = 'after';
    $n{c}->signal('QUIT');
    ok($n{c}->wait_exit, "[$label] QUIT stops c");
    saw_event($_, 'leave c 2 stopped', $label) for @n{qw(a b)};
    $n{d}->start;
    saw_event($_, 'join d 3', $label) for @n{qw(a b d)};
    for my $k (qw(a b d)) {
        ok($n{$k}->wait_until(sub { my $v = view($n{$k}); $v && join(' ', sort keys %$v) eq 'a b d' },
                              desc => "[$label] nodes() on $k: a, b, d"),
           "[$label] nodes() on $k lists a, b, d");
    }
}

# --- the end: d, b, a stop in turn
$n{d}->signal('QUIT');
ok($n{d}->wait_exit, 'QUIT stops d');
saw_event($_, 'leave d 2 stopped', 'stop d') for @n{qw(a b)};
$n{b}->signal('QUIT');
ok($n{b}->wait_exit, 'QUIT stops b');
saw_event($n{a}, 'leave b 1 stopped', 'stop b');
$n{a}->signal('QUIT');
ok($n{a}->wait_exit, 'QUIT stops a');

is_deeply([fleet_events($n{a})], ['join a 1', 'join b 2', 'join c 3', 'leave c 2 stopped', 'join d 3',
                            'leave d 2 stopped', 'leave b 1 stopped'],
          'a: each event once, in order; nothing for the failover');
is_deeply([fleet_events($n{b})], ['join b 2', 'join c 3', 'leave c 2 stopped', 'join d 3', 'leave d 2 stopped'],
          'b: the same from its join on');
is_deeply([fleet_events($n{c})], ['join c 3'], 'c: its join only (nothing for the failover)');
is_deeply([fleet_events($n{d})], ['join d 3'], 'd: its join (it started after the failover)');
is($s->current_primary->cmd('ZCARD', '{wm}:members'), 0, 'no member left on the new primary');

checker_ok($n{$_}, label => $_) for qw(a b c d);
# (and none later: over the whole run, one outage at most, the failover's)
cmp_ok(scalar $n{$_}->grep_log($OUTAGE), '<=', 1, "$_: at most one fleet error in the whole run") for qw(a b c);
no_errors_ok($n{$_}, "$_: no errors but one for the failover", $OUTAGE) for qw(a b c);
no_errors_ok($n{d}, 'd: no errors');
$s->stop_all;
done_testing;
