# 100 singleton names in one node of 4 workers: each starts once; a reload
# hands every one over to the new generation; kill -9 of the worker that
# holds them hands every one over again; status() lists all 100 with their
# holder. The checker reads every start and stop.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $N = 100;
my $n = WorkerManager::Nginx->new(
    workers => 4,
    opts => '{ shm = "wm", interval = 1, failed = 2 }',
    init_worker_after => qq{local m = require("resty.worker.manager")
        for i = 1, $N do m.singleton("job" .. i, wm.job()) end},
    server_extra => <<'CONF',
        location = /holders {
            content_by_lua_block {
                local st = require("resty.worker.manager").status()
                for _, s in ipairs(st.singletons) do
                    ngx.say(s.name, " ", tostring(s.holder), " ", s.token)
                end
            }
        }
CONF
);
$n->start;

# name => [holder, token] from status(), once all $N are held with token $token
sub held_all {
    my ($token, $label) = @_;
    return $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        my %h = map { /^(\S+) (\d+)-(\d+) (\d+)$/ ? ($1 => [$2, $3, $4]) : () } split /\n/, $body;
        return (keys(%h) == $N && !grep { $_->[2] != $token } values %h) ? \%h : undef;
    }, desc => "[$label] all $N names held with token $token");
}

{
    my $label = 'start';
    my $h = held_all(1, $label);
    is(scalar $n->grep_log(qr/WMSJ-ENTER start /), $N, "[$label] $N starts");
    is_deeply([sort keys %$h], [sort map { "job$_" } 1 .. $N], "[$label] status() lists the $N names");
}

{
    my $label = 'reload';
    my $mark = $n->mark;
    $n->reload;
    my $h = held_all(2, $label);
    is(scalar(grep { $_->[0] != 2 } values %$h), 0, "[$label] every name is held in generation 2");
    my @stops = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER stop /, since => $mark);
    is(scalar @stops, $N, "[$label] $N stops");
    is(scalar(grep { !/reason=reload / } @stops), 0, "[$label] each for the reload");
}

my $victim;
{
    my $label = 'kill -9';
    my ($code, $body) = $n->get('/holders');
    my %count;
    $count{$1}++ while $body =~ /^\S+ \d+-(\d+) /mg;
    ($victim) = sort { $count{$b} <=> $count{$a} } keys %count;
    note "[$label] worker $victim holds $count{$victim} names";
    my $mark = $n->mark;
    $n->kill_worker($victim, 'KILL');
    my $h = $n->wait_until(sub {
        my ($code, $body) = $n->get('/holders');
        my %h = map { /^(\S+) (\d+)-(\d+) (\d+)$/ ? ($1 => [$2, $3, $4]) : () } split /\n/, $body;
        return (keys(%h) == $N && !grep { $_->[1] == $victim } values %h) ? \%h : undef;
    }, desc => "[$label] every name held again, none by the dead worker");
    is(scalar $n->grep_log(qr/WMSJ-ENTER start /, since => $mark), $count{$victim},
       "[$label] each of its $count{$victim} names started again");
    is(scalar $n->grep_log(qr/is free again: its holder crashed/, since => $mark), $count{$victim},
       "[$label] the module freed each");
}

$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
checker_ok($n, label => 'many', complete => 1);
no_errors_ok($n, 'no errors but the kill', qr/exited on signal 9/, qr/\b2-$victim\b/);
done_testing;
