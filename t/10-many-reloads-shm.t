# Many HUP reloads leave the shm clean: the number of keys after N reloads
# equals the number after start.  N = $ENV{WM_RELOADS} (default 20; the issue
# asks for 100: WM_RELOADS=100 prove -I t/lib t/10-many-reloads-shm.t).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $reloads = $ENV{WM_RELOADS} || 20;
my $n = WorkerManager::Nginx->new(workers => 2, opts => '{ shm = "wm", interval = 1 }');
$n->start;

sub shm_state {
    my ($code, $body) = $n->get('/shm');
    return unless $code == 200 && $body =~ /^keys=(\d+) used=(\d+) capacity=(\d+)\n(.*)\z/s;
    return { keys => $1, used => $2, capacity => $3, list => [ grep { length } split /\n/, $4 ] };
}

# the shm once it is quiet: two samples 1.2 s apart (more than a heartbeat
# interval) with the same key list
sub settled {
    my $label = shift;
    my $prev = shm_state();
    my $t0 = time;
    while (time - $t0 < 20) {
        sleep 1.2;
        my $cur = shm_state();
        return $cur if $prev && $cur && join("\n", @{ $prev->{list} }) eq join("\n", @{ $cur->{list} });
        $prev = $cur;
    }
    fail("$label: shm never settled");
    return $prev;
}

sub shape { my @k = map { (my $x = $_) =~ s/\d+/N/g; $x } @{ $_[0]{list} }; my %c; $c{$_}++ for @k; join ', ', map { "$_ x$c{$_}" } sort keys %c }

# (the baseline is taken after the first reload: the first master exit adds
# the one key of constant bookkeeping, the list of ended generations)
{
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "master_exit of gen 1 (the first reload)");
    $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'generation 1 gone');
}
my $before = settled('after the first reload');
note "after the first reload: keys=$before->{keys} used=$before->{used}/$before->{capacity}\n  " . join("\n  ", @{ $before->{list} });

my $t0 = time;
for my $i (2 .. $reloads + 1) {
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=$i /, since => $mark, desc => "master_exit of gen $i (reload $i)");
}
note sprintf "%d reloads in %.1f s", $reloads, time - $t0;
$n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => 'old workers gone');

my $after = settled("after $reloads reloads");
note "after $reloads reloads: keys=$after->{keys} used=$after->{used}/$after->{capacity}\n  " . join("\n  ", @{ $after->{list} });
is($after->{keys}, $before->{keys}, "$reloads reloads leave as many keys in the shm as after start ($before->{keys})")
    or diag "key shapes before: " . shape($before) . "\nkey shapes after:  " . shape($after);
is(shape($after), shape($before), 'the same kinds of keys');
cmp_ok($after->{used}, '<=', $before->{used} + 8 * 4096, "shm bytes used did not grow (before $before->{used}, after $after->{used})");

my $g = $reloads + 2;
my @c = $n->callbacks;
is(join(',', map { $_->{id} } select_cbs(\@c, event => 'master_start')), join(',', 1 .. $g), "generations 1..$g");
is(join(',', map { $_->{id} } select_cbs(\@c, event => 'master_exit')), join(',', 1 .. $g - 1),
   "one master_exit for each of generations 1.." . ($g - 1) . ", in order");
my ($last_ms) = select_cbs(\@c, event => 'master_start', gen => $g);
cb_is($last_ms, [$g, 2, 0, 'nil'], "master_start($g, 2, 0, nil)");

my $mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
cb_is(exactly_one([ $n->callbacks(since => $mark, event => 'master_exit') ], 'one master_exit on QUIT'),
      [$g, 0, 0, 'nil'], "master_exit($g, 0, 0, nil)");
checker_ok($n);
no_errors_ok($n);
done_testing;
