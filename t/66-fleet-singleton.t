# A cluster singleton (scope = "cluster") on a real Redis and real nginx
# nodes: one holder in the whole fleet, tokens strictly increasing across
# it, through a reload of the holder's node, its graceful stop, its node
# killed with -9, its node frozen past the lease (a partition: on SIGCONT
# its stop "lost" runs before anything else of it), Redis restarted
# empty, and Redis frozen past the lease (the holder stops, "lost"). Every
# holding's start begins only after the previous holding's stop returned,
# except where the previous holder's node was killed or frozen (then no
# stop can run in it first).
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::FleetCheck;
use WorkerManager::SingletonCheck qw(fleet_singletons_ok);

my $redis = WorkerManager::Redis->new;
$redis->start;

my @all;    # every node, for the fleet-wide checks
my %name_of;

sub node {
    my ($name) = @_;
    my $n = fleet_node(
        $name, redis => $redis->address, interval => 0.5, failed => 1, recorders => 0,
        init_worker_after => q{require("resty.worker.manager").singleton("job", { scope = "cluster",
                                  start = wm.sj("start", { scope = "cluster" }),
                                  stop = wm.sj("stop", { scope = "cluster" }) })},
    );
    push @all, $n;
    $name_of{"$n"} = $name;
    $n->start;
    return $n;
}

# every WMSJ line of the job in the fleet, in time order, with its node
sub fleet_sj {
    my @e;
    for my $n (@all) {
        for ($n->grep_log(qr/WMSJ-(?:ENTER|LEAVE) \w+ name=job /)) {
            my ($edge, $kind, $token, $pid, $t) = $_->{text} =~ /WMSJ-(ENTER|LEAVE) (\w+) name=job token=(\d+) pid=(\d+) .*?t=([\d.]+)/
                or next;
            my ($reason) = $_->{text} =~ / reason=(\S+)/;
            push @e, { node => $name_of{"$n"}, n => $n, edge => $edge, kind => $kind, token => $token, pid => $pid,
                       t => $t, reason => $reason // '' };
        }
    }
    return sort { $a->{t} <=> $b->{t} } @e;
}

# the current holding: the last start in the fleet (once `$after` is passed)
sub holding_after {
    my ($after, $label) = @_;
    my $h;
    $all[0]->wait_until(sub {
        ($h) = grep { $_->{edge} eq 'ENTER' && $_->{kind} eq 'start' && $_->{token} > $after } reverse fleet_sj();
        return $h;
    }, desc => "[$label] a start with a token above $after somewhere in the fleet", timeout => 30);
    note "[$label] token $h->{token} held in node $h->{node}, worker $h->{pid}";
    return $h;
}

sub stop_of {
    my ($h, %o) = @_;
    return grep { $_->{kind} eq 'stop' && $_->{token} == $h->{token} && $_->{edge} eq ($o{edge} // 'LEAVE') } fleet_sj();
}

my %n = map { $_ => node($_) } qw(n1 n2 n3);
my %gone;    # nodes killed or frozen: their holding may end without a stop first

# --- one holder
my $h = holding_after(0, 'start');

# --- reload of the holder's node: stop "reload", then a new holding
{
    my $label = 'reload';
    $h->{n}->signal('HUP');
    my $next = holding_after($h->{token}, $label);
    my ($stop) = stop_of($h);
    ok($stop && $stop->{t} < $next->{t}, "[$label] the old holder's stop returned before the next start");
    my ($enter) = stop_of($h, edge => 'ENTER');
    is($enter && $enter->{reason}, 'reload', "[$label] its reason: reload");
    $h = $next;
}

# --- graceful stop of the holder's node: stop "stop", then another node
{
    my $label = 'stop';
    my $was = $h->{n};
    $was->signal('QUIT');
    ok($was->wait_exit, "[$label] QUIT stops node $h->{node}");
    my $next = holding_after($h->{token}, $label);
    isnt($next->{node}, $h->{node}, "[$label] another node holds it: $next->{node}");
    my ($enter) = stop_of($h, edge => 'ENTER');
    is($enter && $enter->{reason}, 'stop', "[$label] the old holder's stop said stop");
    $h = $next;
    $n{n4} = node('n4');
}

# --- the holder's node killed with -9
{
    my $label = 'kill -9';
    $gone{ $h->{node} } = 1;
    $h->{n}->signal_node('KILL');
    my $next = holding_after($h->{token}, $label);
    isnt($next->{node}, $h->{node}, "[$label] another node holds it: $next->{node}");
    $h = $next;
    $n{n5} = node('n5');
}

# --- the holder's node frozen past its lease, then thawed: "lost" first
{
    my $label = 'partition';
    my $frozen = $h;
    $gone{ $h->{node} } = 1;
    my $mark = $h->{n}->mark;
    $h->{n}->signal_node('STOP');
    my $next = holding_after($h->{token}, $label);
    isnt($next->{node}, $frozen->{node}, "[$label] another node holds it: $next->{node}");
    $frozen->{n}->signal_node('CONT');
    my ($lost) = $frozen->{n}->wait_log(qr/WMSJ-ENTER stop name=job token=$frozen->{token} .* reason=lost /,
                                       since => $mark, desc => "[$label] the thawed holder's stop, lost");
    ok($lost, "[$label] the thawed holder ran stop(\"lost\") for token $frozen->{token}");
    my @after = grep { $_->{idx} < $lost->{idx} } $frozen->{n}->grep_log(qr/WMSJ-ENTER (?:start|fn) name=job /, since => $mark);
    is(scalar @after, 0, "[$label] nothing of the job ran in it before that stop");
    $h = $next;
}

# --- Redis restarted empty: the holder finds its lease gone and stops; the
# next holding waits a lease, and its token is still higher
{
    my $label = 'redis restart';
    $redis->restart;
    my $next = holding_after($h->{token}, $label);
    my ($stop) = stop_of($h);
    ok($stop && $stop->{t} < $next->{t}, "[$label] the old holder's stop returned before the next start");
    $h = $next;
}

# --- Redis frozen past the lease: the holder cannot renew and stops
# ("lost") on its own, before Redis's clock lets anyone else take it; the
# next holding begins after that stop
{
    my $label = 'redis frozen';
    $redis->pause;
    my ($lost) = $h->{n}->wait_log(qr/WMSJ-ENTER stop name=job token=$h->{token} .* reason=lost /,
                                   desc => "[$label] the holder's stop, lost", timeout => 30);
    ok($lost, "[$label] the holder ran stop(\"lost\") while Redis was frozen");
    $redis->resume;
    my $next = holding_after($h->{token}, $label);
    my ($stop) = stop_of($h);
    ok($stop && $stop->{t} < $next->{t}, "[$label] that stop returned before the next start (token $next->{token})");
    $h = $next;
}

# --- the end: QUIT every node still running
for my $n (@all) {
    next unless $n->master_pid && $n->alive($n->master_pid);
    $n->signal('QUIT');
    ok($n->wait_exit, "QUIT stops $name_of{$n}");
}

# fleet-wide: tokens rise with the starts; each start after the previous
# holding's stop returned (unless its node was killed or frozen)
fleet_singletons_ok(nodes => [ map { [ $name_of{"$_"}, $_ ] } @all ], gone => \%gone);
my @tokens = map { /token=(\d+)/ } map { $_->{text} } map { $_->grep_log(qr/WMSJ-ENTER start name=job /) } @all;
# (six moves above, and one more for each node that took the job while the
# others stopped one by one at the end)
cmp_ok(scalar(@tokens), '>=', 7, 'a holding for each move: ' . join(' ', sort { $a <=> $b } @tokens));

for my $n (@all) {
    my $name = $name_of{"$n"};
    checker_ok($n, label => $name) unless $gone{$name};
    # (Redis restarted: an outage, one error in each node that met it)
    no_errors_ok($n, "$name: no errors but its stalls and the outage", $MISSED_RE,
                 qr/stopped beating|is alive but was not counted|exits after it was dropped/,
                 qr/\[worker-manager\] fleet: Redis at \S+ failed: /);
}
$redis->stop;
done_testing;
