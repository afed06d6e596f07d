# Self-test of the redis test driver (t/lib/WorkerManager/Redis.pm): TCP and
# unix-socket servers, RESP replies and errors, restart (empty), pause and
# resume, kill, password, cleanup at exit, and a Sentinel setup with a
# failover after the primary is killed.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use WorkerManager::Redis;

# (make test installs redis-server: its absence is a failure, not a skip)
BAIL_OUT("no redis-server at $WorkerManager::Redis::REDIS (apt install redis-server, or set WM_REDIS_SERVER)")
    unless -x $WorkerManager::Redis::REDIS;

sub gone { my $pid = shift; return !kill(0, $pid) }

# ---------------------------------------------------------------- TCP
{
    my $r = WorkerManager::Redis->new;
    is($r->start, $r, 'start returns the object');
    my $port = $r->port;
    my $pid  = $r->pid;
    like($port, qr/^[1-9]\d*$/, "TCP port $port");
    ok($pid && kill(0, $pid), "redis-server running as pid $pid");
    ok($r->running, 'running');
    is($r->socket_path, undef, 'no socket path');
    is($r->address, qq{{ host = "127.0.0.1", port = $port }}, 'address');
    ok(-f $r->log_path && -s _, 'log file written: ' . $r->log_path);

    is($r->cmd('PING'), 'PONG', 'PING');
    is($r->cmd('SET', 'k', 'v'), 'OK', 'SET');
    is($r->cmd('GET', 'k'), 'v', 'GET');
    is($r->cmd('GET', 'missing'), undef, 'GET of a missing key: undef');
    is($r->cmd('INCR', 'n'), 1, 'INCR: integer reply');
    my $bin = "a\r\nb\0c\r\n";
    $r->cmd('SET', 'bin', $bin);
    is($r->cmd('GET', 'bin'), $bin, 'binary-safe bulk strings');
    is_deeply($r->cmd('MGET', 'k', 'missing', 'n'), ['v', undef, '1'], 'array reply with a nil');
    is_deeply($r->cmd('LRANGE', 'nolist', 0, -1), [], 'empty array');
    is_deeply($r->cmd('CONFIG', 'GET', 'save'), ['save', ''], 'no RDB snapshots');
    is_deeply($r->cmd('CONFIG', 'GET', 'appendonly'), ['appendonly', 'no'], 'no AOF');
    is($r->cmd('DEBUG', 'SLEEP', 0), 'OK', 'DEBUG allowed from loopback');
    my ($v, $err) = $r->cmd_err('INCR', 'k');
    ok(!defined $v, 'cmd_err: no value on an error reply');
    like($err, qr/^ERR value is not an integer/, 'cmd_err: the error text');
    ($v, $err) = $r->cmd_err('GET', 'k');
    is_deeply([$v, $err], ['v', undef], 'cmd_err: (value, undef) on success');
    ok(!eval { $r->cmd('NOSUCHCOMMAND', 'x'); 1 }, 'cmd dies on an error reply');
    like($@, qr/ERR unknown command/, '... with the error text');
    my @p = $r->pipeline(['MULTI'], ['SET', 'k', 'w'], ['INCR', 'k'], ['EXEC']);
    is($p[3][0][0], 'OK', 'pipeline: EXEC results');
    isa_ok($p[3][0][1], 'WorkerManager::Redis::Error', 'error inside an array');
    like("$p[3][0][1]", qr/^ERR value is not an integer/, '... its text');
    is($r->info('server')->{tcp_port}, $port, 'info');

    # restart: same port, new process, empty
    $r->restart;
    isnt($r->pid, $pid, 'restart: a new process');
    ok(gone($pid), 'restart: the old one is gone');
    is($r->port, $port, 'restart: same port');
    is($r->cmd('GET', 'k'), undef, 'restart: the key is gone');
    is($r->cmd('DBSIZE'), 0, 'restart: empty');

    # pause / resume
    $r->cmd('SET', 'p', 1);
    $r->pause;
    ok(!eval { $r->cmd({ timeout => 0.3 }, 'PING'); 1 }, 'paused: no PONG');
    like($@, qr/timed out after 0\.3s .* PING/, '... the command timed out');
    ok(!$r->ping(0.2), 'paused: ping() false');
    $r->resume;
    is($r->cmd('PING'), 'PONG', 'resumed: PONG');
    is($r->cmd('GET', 'p'), '1', 'resumed: data still there');

    # kill, start again on the same port
    $pid = $r->pid;
    $r->kill;
    ok(gone($pid), 'kill: the process is gone (and reaped)');
    is($r->pid, undef, 'kill: no pid');
    ok(!$r->running, 'kill: not running');
    ok(!eval { $r->cmd({ timeout => 1 }, 'PING'); 1 }, 'killed: nothing answers');
    $r->start;
    is($r->port, $port, 'start after kill: same port');
    is($r->cmd('GET', 'p'), undef, 'start after kill: empty');

    # stop (even while paused)
    $pid = $r->pid;
    $r->pause;
    $r->stop;
    ok(gone($pid), 'stop of a paused server: gone');
    is($r->pid, undef, 'stop: no pid');
    $r->stop;
    pass('stop twice is fine');
}

# --------------------------------------------------------- unix socket
{
    my $u = WorkerManager::Redis->new(unix => 1)->start;
    my $path = $u->socket_path;
    is($u->port, 0, 'unix: port 0');
    like($path, qr{/redis\.sock$}, "unix: socket $path");
    ok(-S $path, 'unix: the socket exists');
    is($u->address, qq{{ path = "unix:$path" }}, 'unix: address');
    is_deeply($u->cmd('CONFIG', 'GET', 'port'), ['port', '0'], 'unix: no TCP port');
    is($u->cmd('SET', 'k', 'v'), 'OK', 'unix: SET');
    is($u->cmd('GET', 'k'), 'v', 'unix: GET');
    $u->restart;
    ok(-S $path, 'unix: the socket is back after restart');
    is($u->cmd('GET', 'k'), undef, 'unix: empty after restart');
    $u->pause;
    ok(!eval { $u->cmd({ timeout => 0.3 }, 'PING'); 1 }, 'unix: paused: no PONG');
    $u->resume;
    ok($u->ping, 'unix: resumed');
    my $pid = $u->pid;
    undef $u;
    ok(gone($pid), 'unix: destroying the object kills the server');
}

# ------------------------------------------------------------ password
{
    my $pw = 'se"cr\\et';
    my $p = WorkerManager::Redis->new(password => $pw)->start;
    my ($v, $err) = $p->cmd_err({ auth => 0 }, 'GET', 'k');
    ok(!defined $v, 'password: no value without AUTH');
    like($err, qr/^NOAUTH/, "password: NOAUTH ($err)");
    my @r = $p->pipeline({ auth => 0 }, ['AUTH', 'wrong'], ['AUTH', $pw], ['SET', 'k', 'v']);
    like($r[0][1], qr/^WRONGPASS/, 'password: a wrong password is refused');
    is($r[1][0], 'OK', 'password: AUTH with the password');
    is($r[2][0], 'OK', 'password: then SET works');
    is($p->cmd('GET', 'k'), 'v', 'password: cmd authenticates by itself');
    is($p->address, sprintf('{ host = "127.0.0.1", port = %d, password = "se\\"cr\\\\et" }', $p->port),
       'password: address');
    my $u = WorkerManager::Redis->new(unix => 1, password => 'x')->start;
    like(($u->cmd_err({ auth => 0 }, 'PING'))[1], qr/^NOAUTH/, 'password on a unix socket');
    is($u->cmd('PING'), 'PONG', '... with AUTH');
}

# ------------------------------------------------- cleanup at exit / die
my $lib = dirname(abs_path($INC{'WorkerManager/Redis.pm'})) . '/..';
for my $keep (0, 1) {
    local $ENV{WM_KEEP} = $keep;
    open my $fh, '-|', $^X, "-I$lib", '-e', <<'PERL' or die "run perl: $!";
BEGIN { open STDERR, '>', '/dev/null' }    # (before Test::Builder copies it)
use WorkerManager::Redis;
my $r = WorkerManager::Redis->new->start;
print $r->pid, ' ', $r->dir, "\n";
die "boom\n";
PERL
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my ($pid, $dir) = $out =~ /^(\d+) (\S+)$/m;
    ok($pid, "WM_KEEP=$keep: a script that dies started redis-server " . ($pid // "(none)")) or diag $out;
    next unless $pid;
    ok(gone($pid), "WM_KEEP=$keep: its redis-server is gone after the die");
    if ($keep) {
        ok(-f "$dir/redis.log", 'WM_KEEP=1: the dir is kept when the script fails');
        remove_tree($dir);
    } else {
        ok(!-e $dir, 'WM_KEEP=0: the dir is removed');
    }
}

# ------------------------------------------------------------- sentinel
{
    my $s = WorkerManager::Redis->sentinel_setup(master_name => 'wmtest');
    my @sent = $s->sentinels;
    is(scalar @sent, 3, 'three sentinels');
    is($s->master_name, 'wmtest', 'master name');
    my ($pp, $rp) = ($s->primary->port, $s->replica->port);
    is($s->current_primary_port, $pp, 'the sentinels name the primary');
    is($s->current_primary, $s->primary, 'current_primary');
    is($s->replica->info('replication')->{master_link_status}, 'up', 'replica in sync');
    is($s->sentinels_lua, '{ ' . join(', ', map { '{ host = "127.0.0.1", port = ' . $_->port . ' }' } @sent) . ' }',
       'sentinels_lua');
    $s->primary->cmd('SET', 'before', 'failover');
    $s->replica->wait_until(sub { ($s->replica->cmd('GET', 'before') // '') eq 'failover' },
                            desc => 'the write replicated');
    ok(!defined(($s->replica->cmd_err('SET', 'x', 1))[0]), 'the replica refuses writes');

    my $old = $s->primary->pid;
    $s->primary->kill;
    ok(gone($old), 'primary killed');
    my $new = $s->wait_failover;
    is($new, $s->replica, 'wait_failover returns the old replica');
    is($s->current_primary_port, $rp, 'the sentinels name the old replica');
    is($s->replica->info('replication')->{role}, 'master', 'the old replica is a master');
    is($new->cmd('SET', 'after', 'failover'), 'OK', 'the new primary accepts writes');
    is($new->cmd('GET', 'before'), 'failover', 'replicated data survived');

    my @pids = map { $_->pid } grep { $_->running } $s->all;
    is(scalar @pids, 4, 'three sentinels and the new primary running');
    $s->stop_all;
    ok(!(grep { !gone($_) } @pids), 'stop_all stops them all');
}

done_testing;
