# Failed reloads (a listen port taken: nginx rolls the reload back after
# init_by_lua ran) between good ones (issue 6): good, failed, good, then
# QUIT on an idle node; good, failed, failed, good, then QUIT under HTTP load.  The
# rolled-back generations count nowhere (no worker, no master exit, in no
# n_prev/n_next), each good one ends with exactly one master exit, nginx
# serves throughout, and the invariant checker passes (the rolled-back
# generations are found by it: a master start and never a worker).
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Load;

my @ALLOW = (qr/bind\(\) to .* failed|still could not bind/);
my $OPTS  = '{ shm = "wm", interval = 1, failed = 2, on_crash = wm.rec("crash") }';

sub good {
    my ($n, $label) = @_;
    my $mark = $n->reload;
    my ($ms) = $n->callbacks(since => $mark, event => 'master_start');
    my $g = $ms->{gen};
    $n->wait_until(sub { $n->worker_pids(all => 1) == $n->workers }, desc => "[$label] old workers gone after good reload to $g");
    $n->wait_log(qr/\bWMCB master_exit id=\d+ /, since => $mark, desc => "[$label] the previous generation's master exit");
    return $g;
}

sub failed {
    my ($n, $label) = @_;
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 5)
        or die "listen: $!";
    my $port = $busy->sockport;
    my @before = sort { $a <=> $b } $n->worker_pids;
    my $mark = $n->mark;
    $n->reload_conf(listen_extra => ["127.0.0.1:$port"]);
    $n->wait_log(qr/still could not bind/, since => $mark, desc => "[$label] nginx gives the reload up");
    $n->write_conf(listen_extra => []);
    is_deeply([sort { $a <=> $b } $n->worker_pids], \@before, "[$label] the workers are the same after the failed reload");
    is(scalar $n->get('/ping'), 200, "[$label] nginx serves after the failed reload");
    my ($ms) = $n->callbacks(since => $mark, event => 'master_start');
    return $ms ? $ms->{gen} : undef;
}

for my $with_load (0, 1) {
    my $label = $with_load ? 'with load' : 'idle';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS);
    $n->start;
    my $load = $with_load ? WorkerManager::Load->start(port => $n->port, seconds => 3, connections => 2) : undef;
    my (@good, @bad);
    # (each failed reload costs nginx's 2.5 s of bind retries)
    push @good, 1;
    push @good, good($n, $label);
    if ($with_load) {
        push @bad, failed($n, $label), failed($n, $label);
    } else {
        push @bad, failed($n, $label);
    }
    push @good, good($n, $label);
    note "[$label] good generations: @good; rolled back: " . join(' ', map { $_ // '?' } @bad);
    is(scalar(grep { defined } @bad), $with_load ? 2 : 1, "[$label] each failed reload ran a master start (generations @bad)");
    if ($load) {
        my $r = $load->finish;
        note "[$label] load " . WorkerManager::Load::summary($r);
        cmp_ok($r->{ok}, '>', 0, "[$label] the load was answered ($r->{ok} 2xx)");
        is($r->{non2xx}, 0, "[$label] no non-2xx answer");
    }
    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    my @c = $n->callbacks;
    my %me;
    $me{ $_->{gen} }++ for select_cbs(\@c, event => 'master_exit');
    is(join(',', map { $me{$_} // 0 } @good), join(',', map { 1 } @good), "[$label] one master exit for each good generation (@good)");
    is(join(',', map { $me{$_} // 0 } grep { defined } @bad), join(',', map { 0 } grep { defined } @bad),
       "[$label] none for the rolled-back ones");
    is(scalar(grep { my $g = $_->{gen}; grep { defined $_ && $_ == $g } @bad } select_cbs(\@c, event => 'worker_start')), 0,
       "[$label] no worker of a rolled-back generation");
    # the old generation's exits and master exit never see a rolled-back one as newer
    my $last = $good[-1];
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit', gen => $last)], "[$label] one master exit of generation $last"),
          [$last, 0, 0, 'nil'], "[$label] master_exit($last, 0, 0, nil): the rolled-back ones count nowhere");
    my $ms_last = exactly_one([select_cbs(\@c, event => 'master_start', gen => $last)], "[$label] master start of $last");
    is($ms_last->{prev}, 2, "[$label] master_start($last) n_prev 2: only the live workers") if $ms_last;
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors but the bind failures", @ALLOW);
}

done_testing;
