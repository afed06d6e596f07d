# A reload that nginx rolls back after init_by_lua ran (a listen port taken):
# master start of the phantom generation runs (it is in init_by_lua), but the
# phantom counts nowhere: a later stop reports n_next == nil; a later good
# reload is generation 3 and generation 2 never gets a master exit.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use WorkerManager::Nginx;
use WorkerManager::Check;

my @allow = (qr/bind\(\) to .* failed|still could not bind/);

sub busy_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                  Listen => 5, ReuseAddr => 0) or die "listen: $!";
    return $s;
}

# HUP with a conf that also listens on a taken port; wait for the rollback.
sub failed_reload {
    my ($n, $label) = @_;
    my $busy = busy_port();
    my $port = $busy->sockport;
    my @before = sort { $a <=> $b } $n->worker_pids;
    my $mark = $n->mark;
    $n->reload_conf(listen_extra => ["127.0.0.1:$port"]);
    $n->wait_log(qr/bind\(\) to 127\.0\.0\.1:$port failed .*Address already in use/, since => $mark,
                 desc => "[$label] bind() failure");
    $n->wait_log(qr/still could not bind/, since => $mark, desc => "[$label] nginx gives up the reload");
    is_deeply([sort { $a <=> $b } $n->worker_pids], \@before, "[$label] the old workers keep running");
    is(scalar $n->get('/ping'), 200, "[$label] nginx still serves");
    $n->write_conf(listen_extra => []);    # the conf on disk is good again
    return ($mark, $busy);
}

# --- failed reload, then QUIT
{
    my $label = 'failed reload, QUIT';
    my $n = WorkerManager::Nginx->new(workers => 2);
    $n->start;
    my @ws = $n->callbacks(event => 'worker_start');
    my ($mark, $busy) = failed_reload($n, $label);
    my @c = $n->callbacks(since => $mark);
    note "[$label] callbacks of the failed reload:\n" . cbs_str(@c);
    my $ms = exactly_one([select_cbs(\@c, event => 'master_start')], "[$label] master_start of the phantom ran");
    cb_is($ms, [2, 2, 0, 'nil'], "[$label] master_start(2, 2, 0, nil)");
    is(scalar(@c), 1, "[$label] no other callback during the failed reload");

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    note "[$label] callbacks after QUIT:\n" . cbs_str(@c);
    my @we = select_cbs(\@c, event => 'worker_exit');
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] gen-1 exits mine 2 then 1");
    is_deeply([sort map { $_->{id} } @we], [sort map { $_->{id} } @ws], "[$label] the gen-1 workers exit");
    cb_is($_, [undef, 'nil', undef, 'nil'], "[$label] worker_exit($_->{id}, nil, ., nil): next nil, not 0") for @we;
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] exactly one master_exit");
    cb_is($me, [1, 'nil', 0, 'nil'], "[$label] master_exit(1, nil, 0, nil)");
    checker_ok($n, label => $label, phantom => [2]);    # gen 2 is a phantom
    no_errors_ok($n, "[$label] no errors but the bind failure", @allow);
}

# --- failed reload, then a good reload (generation 3), then QUIT
# (failed = 2: the phantom's records must be gone from the shm some time after)
{
    my $label = 'failed + good reload';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => '{ shm = "wm", interval = 1, failed = 2 }');
    $n->start;
    my ($mark) = failed_reload($n, $label);
    my $good = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $good, desc => 'master_exit of gen 1');
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'gen-1 workers gone');
    my @c = $n->callbacks(since => $good);
    note "[$label] callbacks of the good reload:\n" . cbs_str(@c);
    my $ms = exactly_one([select_cbs(\@c, event => 'master_start')], "[$label] one master_start");
    cb_is($ms, [3, 2, 0, 'nil'], "[$label] master_start(3, 2, 0, nil): the phantom gen 2 counts nowhere");
    my @ws = select_cbs(\@c, event => 'worker_start');
    is(join(',', map { $_->{mine} } @ws), '1,2', "[$label] gen-3 workers mine 1 then 2");
    cb_is($_, ["3-$_->{pid}", undef, undef, 'nil'], "[$label] worker_start($_->{id}, $_->{prev}, ., nil)") for @ws;
    is(join(',', map { $_->{gen} } @ws), '3,3', "[$label] new workers are generation 3");
    my @we = select_cbs(\@c, event => 'worker_exit', gen => 1);
    is(join(',', map { $_->{mine} } @we), '2,1', "[$label] gen-1 exits mine 2 then 1");
    my $me = exactly_one([select_cbs(\@c, event => 'master_exit', gen => 1)], "[$label] one master_exit for gen 1");
    cb_is($me, [1, 'nil', 0, undef], "[$label] master_exit(1, nil, 0, .)");
    like($me->{next} // '', qr/^[0-2]$/, "[$label] master_exit(1) next is the gen-3 count (" . ($me->{next} // '?') . ")");

    # the rolled-back generation leaves no records behind
    my $g2 = '';
    $n->wait_until(sub { my (undef, $body) = $n->get('/shm'); $g2 = join ' ', $body =~ /^(\S*\bg2\b\S*)$/mg; !length $g2 },
                   timeout => 10, soft => 1, desc => "no shm keys of the phantom generation 2");
    diag "[$label] phantom keys left: $g2" if length $g2;

    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    note "[$label] callbacks after QUIT:\n" . cbs_str(@c);
    @we = select_cbs(\@c, event => 'worker_exit');
    cb_is($_, [undef, 0, undef, 'nil'], "[$label] worker_exit($_->{id}, 0, $_->{mine}, nil)") for @we;
    $me = exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit on QUIT");
    cb_is($me, [3, 0, 0, 'nil'], "[$label] master_exit(3, 0, 0, nil)");

    @c = $n->callbacks;
    is(scalar select_cbs(\@c, event => 'master_exit', gen => 1), 1, "[$label] gen 1: one master_exit");
    is(scalar select_cbs(\@c, event => 'master_exit', gen => 2), 0, "[$label] gen 2 (rolled back): no master_exit");
    is(scalar select_cbs(\@c, event => 'master_exit', gen => 3), 1, "[$label] gen 3: one master_exit");
    checker_ok($n, label => $label, phantom => [2]);    # gen 2 is a phantom
    no_errors_ok($n, "[$label] no errors but the bind failure", @allow);
}

done_testing;
