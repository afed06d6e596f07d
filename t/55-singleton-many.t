# 100 singleton names in one node of 4 workers: each starts once; a reload
# hands every one over to the new generation; kill -9 of the worker that
# holds them hands every one over again; status() lists all 100 with their
# holder. The checker reads every start and stop.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::SingletonCheck qw($HOLDERS_LOCATION);

my $N = 100;
my $n = WorkerManager::Nginx->new(
    workers => 4,
    opts => '{ shm = "wm", interval = 1, failed = 2 }',
    init_worker_after => qq{local m = require("resty.worker.manager")
        for i = 1, $N do m.singleton("job" .. i, wm.job()) end},
    server_extra => $HOLDERS_LOCATION,
);
$n->start;

# name => [holder, token] from status(), once all $N are held with token $token
sub held_all {
    my ($token, $label) = @_;
    return $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        my %h = map { /^(\S+) (\d+)-(\d+) (\d+) \d+$/ ? ($1 => [$2, $3, $4]) : () } split /\n/, $body;
        return (keys(%h) == $N && !grep { $_->[2] != $token } values %h) ? \%h : undef;
    }, desc => "[$label] all $N names held with token $token");
}

# The holder record is written before the start callback runs, so each
# section waits for the callbacks' own lines as well; exact counts are taken
# once nginx has exited and the log is final.
sub starts { my ($token) = @_; return $n->grep_log(qr/WMSJ-ENTER start name=\S+ token=$token /) }

{
    my $label = 'start';
    my $h = held_all(1, $label);
    $n->wait_until(sub { starts(1) >= $N }, desc => "[$label] $N start callbacks");
    is_deeply([sort keys %$h], [sort map { "job$_" } 1 .. $N], "[$label] status() lists the $N names");
}

{
    my $label = 'reload';
    my $mark = $n->mark;
    $n->reload;
    my $h = held_all(2, $label);
    $n->wait_until(sub { starts(2) >= $N }, desc => "[$label] $N start callbacks");
    is(scalar(grep { $_->[0] != 2 } values %$h), 0, "[$label] every name is held in generation 2");
}

my ($victim, %was);
{
    my $label = 'kill -9';
    my ($code, $body) = $n->get('/holders');
    my %count;
    for (split /\n/, $body) {
        my ($name, $pid, $token) = /^(\S+) \d+-(\d+) (\d+) \d+$/ or next;
        $count{$pid}++;
        $was{$name} = [$pid, $token];
    }
    ($victim) = sort { $count{$b} <=> $count{$a} } keys %count;
    note "[$label] worker $victim holds $count{$victim} names";
    $n->kill_worker($victim, 'KILL');
    $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        my %h = map { /^(\S+) (\d+)-(\d+) (\d+) \d+$/ ? ($1 => [$2, $3, $4]) : () } split /\n/, $body;
        return (keys(%h) == $N && !grep { $_->[1] == $victim } values %h) ? \%h : undef;
    }, desc => "[$label] every name held again, none by the dead worker");
    $n->wait_until(sub { starts(3) >= $count{$victim} }, desc => "[$label] $count{$victim} start callbacks");
}

$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');

# the final log: each name started once per holding, moved once per event
{
    my %starts;
    for ($n->grep_log(qr/WMSJ-ENTER start /)) {
        $starts{"$1 $2"}++ if $_->{text} =~ /WMSJ-ENTER start name=(\S+) token=(\d+) /;
    }
    my @names = map { "job$_" } 1 .. $N;
    is(scalar(grep { ($starts{"$_ 1"} // 0) != 1 || ($starts{"$_ 2"} // 0) != 1 } @names), 0,
       "[start, reload] each name started once with token 1, once with token 2");
    my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop name=\S+ token=1 /);
    is(scalar @stops, $N, "[reload] $N stops of token 1");
    is(scalar(grep { !/reason=reload / } @stops), 0, "[reload] each for the reload");
    my @lost = grep { $was{$_}[0] == $victim } @names;
    my @kept = grep { $was{$_}[0] != $victim } @names;
    is(scalar(grep { ($starts{"$_ 3"} // 0) != 1 } @lost), 0,
       "[kill -9] each of the dead worker's " . @lost . " names started once more, with token 3");
    is(scalar(grep { $starts{"$_ 3"} } @kept), 0, "[kill -9] the other names did not move");
    # freed by the sibling that finds the crash, or claimed by a worker that
    # finds the holder's pid gone first: one notice per name either way
    my %freed;
    for ($n->grep_log(qr/singleton '\S+' \(token 2\) (?:of worker \S+ is free again: its holder crashed|was held by worker \S+, which is gone)/)) {
        $freed{$1}++ if $_->{text} =~ /singleton '(\S+)'/;
    }
    is_deeply([sort grep { $freed{$_} } keys %freed], [sort @lost], "[kill -9] a notice for each name freed");
    is(scalar(grep { $freed{$_} != 1 } keys %freed), 0, "[kill -9] one notice per name");
}
checker_ok($n, label => 'many', complete => 1);
no_errors_ok($n, 'no errors but the kill', killed_allow($victim));
done_testing;
