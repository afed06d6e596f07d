package WorkerManager::Redis;

# A small driver that runs a private redis-server (not daemonized: a child
# of the test, killed at the latest when the test exits) in a temporary
# directory, for the resty.worker.manager test suites.  Perl core modules
# only; no redis-cli needed: it speaks RESP itself.
#
#   my $r = WorkerManager::Redis->new;              # loopback TCP, a free port
#   my $u = WorkerManager::Redis->new(unix => 1);   # unix socket redis.sock, port 0
#   my $p = WorkerManager::Redis->new(password => 'secret');
#   $r->start;                         # returns once it answers PING
#   $r->cmd('SET', 'k', 'v');          # 'OK'
#   $r->cmd({ timeout => 0.3 }, 'PING');
#   my ($v, $err) = $r->cmd_err('INCR', 'k');    # (undef, 'ERR value is not ...')
#   $r->address;                       # '{ host = "127.0.0.1", port = 41234 }'
#   $r->pause; $r->resume; $r->restart; $r->kill; $r->stop;
#
#   my $s = WorkerManager::Redis->sentinel_setup;   # 1 primary, 1 replica, 3 sentinels
#   $s->primary->kill;
#   my $new = $s->wait_failover;       # the old replica, now the primary
#
# Methods: new(%opts) (see %DEFAULTS), start(timeout =>), stop(timeout =>),
# kill(), pause(), resume(), restart(), running(), pid(), port(),
# socket_path(), address(), password(), dir(), conf_path(), log_path(),
# log_tail($n), cmd([\%o,] @args), cmd_err([\%o,] @args),
# pipeline([\%o,] [@cmd], [@cmd], ...), ping($timeout), info($section),
# wait_until($code, timeout =>, desc =>), cleanup() (also from DESTROY and
# END: KILLs the server if it still runs; the temp dir goes when the test
# exits, with a diag of the log's last lines if the test failed);
# WorkerManager::Redis->sentinel_setup(%opts) (see WorkerManager::Redis::Sentinel
# at the end of this file); free_port().
#
# cmd options (a hash ref before the command):
#   timeout => seconds   for connect + write + the whole reply (default: the
#                        object's timeout, else WM_REDIS_TIMEOUT, else 10)
#   auth => 0            do not send AUTH first (when the server has a password)
# Every call opens its own connection (so a call never inherits the state of
# an earlier one: AUTH, SELECT, a half-read reply after a timeout ...).
# Error replies: cmd dies with the error text, cmd_err returns (undef, $text),
# pipeline returns one [$reply, $err] per command.  Errors nested in arrays
# (EXEC) are WorkerManager::Redis::Error objects (->text, stringify).
# Connection failures and timeouts die in all three.
#
# Environment:
#   WM_REDIS_SERVER   redis-server binary (default /usr/bin/redis-server)
#   WM_REDIS_TIMEOUT  default timeout (seconds) for the waits and commands (10)
#   WM_KEEP           1: keep the temp dirs when the test fails; 2: always
#   WM_VERBOSE        1: note every start, stop and signal

use strict;
use warnings;

use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(sleep time);

our $REDIS   = $ENV{WM_REDIS_SERVER} || '/usr/bin/redis-server';
our $TIMEOUT = $ENV{WM_REDIS_TIMEOUT} || 10;
our $POLL    = 0.02;

my %LIVE;       # refaddr => object, for the END-block cleanup
my $EXIT_RC;    # the test's exit code, once END runs

# (Nginx.pm sets the same handlers; whichever module loads first wins)
$SIG{INT}  = sub { Test::More::diag("interrupted, cleaning up"); exit 130 } unless ref $SIG{INT};
$SIG{TERM} = sub { Test::More::diag("terminated, cleaning up"); exit 143 } unless ref $SIG{TERM};

my %DIRS;       # dir => what cleanup() left of its object: removed (or kept) at END

END {
    my $rc = $?;
    $EXIT_RC = $rc;
    $_ && $_->cleanup for values %LIVE;
    _finish_dirs();
    $? = $rc;
}

# The temp dirs go at the end only: a test that dies destroys its objects
# before END runs, when nothing tells yet that it fails.
sub _finish_dirs {
    local ($!, $?, $@);
    my $failing = !Test::More->builder->is_passing || ($EXIT_RC // 0) != 0;
    my $keep = $ENV{WM_KEEP} // 0;
    for my $d (sort keys %DIRS) {
        my $o = delete $DIRS{$d};
        next if ($o->{owner} // 0) != $$;
        if ($failing) {
            my $tail = log_tail($o, 8);
            Test::More::diag($tail) if length $tail;
        }
        if ($keep eq '2' || ($keep && $failing)) {
            Test::More::diag("kept $o->{name} dir $d");
        } else {
            remove_tree($d);
        }
    }
}

my %DEFAULTS = (
    unix       => 0,        # 1: listen on <dir>/redis.sock only (port 0)
    port       => undef,    # a fixed TCP port (default: a free one, another one if taken at start)
    password   => undef,    # requirepass (cmd sends AUTH by itself)
    replicaof  => undef,    # [host, port]: start as a replica of that server
    masterauth => undef,    # password to give the primary (replicas)
    conf_extra => '',       # more redis.conf lines
    sentinel   => undef,    # sentinel mode: the "sentinel ..." lines of its conf
    name       => undef,    # part of the temp dir name (default redis / sentinel)
    timeout    => undef,    # default timeout of start/stop/cmd (default $TIMEOUT)
);

# ------------------------------------------------------------------ setup

sub new {
    my ($class, %args) = @_;
    for my $k (keys %args) {
        die "WorkerManager::Redis: unknown option '$k'\n" unless exists $DEFAULTS{$k};
    }
    my $self = bless { %DEFAULTS, %args }, $class;
    $self->{name} //= defined $self->{sentinel} ? 'sentinel' : 'redis';
    die "WorkerManager::Redis: unix => 1 and sentinel do not go together\n"
        if $self->{unix} && defined $self->{sentinel};

    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    my $script = $0; $script =~ s{.*/}{}; $script =~ s/\.t$//; $script =~ s/[^\w.-]/_/g;
    (my $name = $self->{name}) =~ s/[^\w.-]/_/g;
    $self->{dir}    = tempdir("wm-$script-$name-XXXXXX", DIR => $base, CLEANUP => 0);
    $self->{conf}   = "$self->{dir}/" . (defined $self->{sentinel} ? 'sentinel.conf' : 'redis.conf');
    $self->{log}    = "$self->{dir}/redis.log";
    $self->{stdout} = "$self->{dir}/stdout.log";
    $self->{owner}  = $$;
    if ($self->{unix}) {
        $self->{socket} = "$self->{dir}/redis.sock";
        $self->{port}   = 0;
        # (sun_path holds 107 bytes)
        die "WorkerManager::Redis: socket path too long: $self->{socket}\n" if length $self->{socket} > 107;
    } else {
        $self->{fixed_port} = defined $self->{port};
        $self->{port} //= free_port();
    }

    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});
    $self->_write_conf;
    return $self;
}

# accessors: method => field
my %FIELD = (pid => 'pid', port => 'port', socket_path => 'socket', password => 'password', dir => 'dir',
             conf_path => 'conf', log_path => 'log');
for my $method (keys %FIELD) {
    no strict 'refs';
    *{$method} = sub { $_[0]{ $FIELD{$method} } };
}
sub is_sentinel { defined $_[0]{sentinel} }

my %HANDED_OUT;    # ports free_port() returned already: never twice in one test

sub free_port {
    for (1 .. 20) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 0)
            or die "cannot find a free port: $!";
        my $p = $s->sockport;
        close $s;
        return $p unless $HANDED_OUT{$p}++;
    }
    die "cannot find a free port: the kernel keeps handing out used ones\n";
}

# $s in double quotes: backslash, quote, newline and return escaped, other
# control bytes as $control (a sprintf format of the byte's code)
sub _quoted {
    my ($s, $control) = @_;
    $s =~ s/([\\"])/\\$1/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/([\x00-\x1f\x7f])/sprintf $control, ord $1/ge;
    return qq{"$s"};
}

# a string as a redis.conf argument
sub _conf_str { _quoted(shift, '\\x%02x') }

# a string as a Lua literal
sub _lua_str { _quoted(shift, '\\%03d') }

sub conf_text {
    my $self = shift;
    my @l = ('# generated by WorkerManager::Redis (t/lib/WorkerManager/Redis.pm)',
             'daemonize no',
             'dir ' . _conf_str($self->{dir}),
             'logfile ' . _conf_str($self->{log}),
             'loglevel notice',
             # nothing persists: a restart comes back empty
             'save ""',
             'appendonly no');
    if ($self->{unix}) {
        push @l, 'port 0', 'unixsocket ' . _conf_str($self->{socket}), 'unixsocketperm 700';
    } else {
        push @l, 'bind 127.0.0.1', "port $self->{port}";
    }
    if (!defined $self->{sentinel}) {
        # DEBUG SLEEP and friends, for tests that want a slow server
        push @l, 'enable-debug-command local';
        # a replica's first sync starts at once (7.0 waits 5 s for more replicas)
        push @l, 'repl-diskless-sync-delay 0';
    }
    push @l, 'requirepass ' . _conf_str($self->{password}) if defined $self->{password};
    push @l, 'masterauth ' . _conf_str($self->{masterauth}) if defined $self->{masterauth};
    push @l, "replicaof $self->{replicaof}[0] $self->{replicaof}[1]" if $self->{replicaof};
    push @l, $self->{conf_extra} if length $self->{conf_extra};
    push @l, $self->{sentinel} if defined $self->{sentinel};
    return join("\n", @l) . "\n";
}

sub _write_conf {
    my $self = shift;
    open my $fh, '>', $self->{conf} or die "write $self->{conf}: $!";
    print {$fh} $self->conf_text;
    close $fh or die "write $self->{conf}: $!";
    return $self;
}

# A readable name for messages.
sub describe {
    my $self = shift;
    my $what = defined $self->{sentinel} ? 'redis sentinel' : 'redis-server';
    my $at = $self->{unix} ? "unix:$self->{socket}" : "127.0.0.1:$self->{port}";
    return "$what $at" . ($self->{pid} ? " (pid $self->{pid})" : '');
}

# Lua table text for the library's options.
sub address {
    my $self = shift;
    my @kv = $self->{unix}
        ? ('path = ' . _lua_str("unix:$self->{socket}"))
        : ('host = "127.0.0.1"', "port = $self->{port}");
    push @kv, 'password = ' . _lua_str($self->{password}) if defined $self->{password};
    return '{ ' . join(', ', @kv) . ' }';
}

sub _verbose { Test::More::note(@_) if $ENV{WM_VERBOSE} }

# --------------------------------------------------------------- processes

sub _spawn {
    my $self = shift;
    $self->{log_off} = -s $self->{log} // 0;
    $self->{stdout_off} = -s $self->{stdout} // 0;
    my @cmd = ($REDIS, $self->{conf}, (defined $self->{sentinel} ? '--sentinel' : ()));
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>>', $self->{stdout};
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec { $cmd[0] } @cmd }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    delete $self->{status};
    _verbose("started @cmd (pid $pid)");
    return $pid;
}

# Reap our child if it exited (within $timeout seconds; 0: just look).
# True when it is gone.
sub _reap {
    my ($self, $timeout) = @_;
    my $pid = $self->{pid} or return 1;
    local ($?, $!);
    my $t0 = time;
    while (1) {
        my $r = waitpid $pid, WNOHANG;
        if ($r == $pid || $r == -1) {    # (-1: not our child any more, or SIGCHLD ignored)
            $self->{status} = $r == $pid ? $? : undef;
            $self->{last_pid} = $pid;
            delete $self->{pid};
            return 1;
        }
        return 0 if time - $t0 >= $timeout;
        sleep $POLL;
    }
}

sub _status_text {
    my $st = shift;
    return 'exit status unknown' unless defined $st;
    return 'killed by signal ' . ($st & 127) if $st & 127;
    return 'exit code ' . ($st >> 8);
}

sub running {
    my $self = shift;
    return 0 unless $self->{pid};
    return !$self->_reap(0);
}

# Start the server; returns once it answers PING (with AUTH when it has a
# password).  A TCP port someone took since new() is replaced by another
# free one (unless the port was given, or this is a restart).
sub start {
    my ($self, %o) = @_;
    die $self->describe . " is running already\n" if $self->running;
    my $timeout = $o{timeout} // $self->{timeout} // $TIMEOUT;
    for my $try (1 .. 4) {
        $self->_spawn;
        my $t0 = time;
        my $last = '';
        while (1) {
            if ($self->_reap(0)) {
                last;
            }
            my ($pong, $err) = eval { $self->cmd_err({ timeout => 1 }, 'PING') };
            if (defined $pong && $pong eq 'PONG') {
                _verbose($self->describe . " answers PING");
                return $self;
            }
            $last = $@ || $err || '';
            if (time - $t0 > $timeout) {
                chomp $last;
                die "timed out after ${timeout}s waiting for " . $self->describe
                    . " to answer PING (last: $last)\n" . $self->log_tail(15);
            }
            sleep $POLL;
        }
        # it exited before answering
        my $why = _status_text($self->{status});
        if (!$self->{unix} && !$self->{fixed_port} && !$o{same_port} && $try < 4
            && $self->_new_log_text =~ /Address already in use/) {
            my $old = $self->{port};
            $self->{port} = free_port();
            Test::More::note("port $old taken, retrying $self->{name} on $self->{port}");
            $self->_write_conf;
            next;
        }
        die "$REDIS ($self->{name}, conf $self->{conf}) exited before answering PING: $why\n"
            . $self->log_tail(15);
    }
}

# what the log and stdout gained since the last spawn
sub _new_log_text {
    my $self = shift;
    my $t = '';
    for ([$self->{log}, $self->{log_off} // 0], [$self->{stdout}, $self->{stdout_off} // 0]) {
        my ($f, $off) = @$_;
        open my $fh, '<', $f or next;
        seek $fh, $off, 0;
        local $/;
        $t .= <$fh> // '';
        close $fh;
    }
    return $t;
}

# The last $n lines of the log (and of stdout/stderr, where redis-server
# writes what goes wrong before it opened its log), as text for a message.
sub log_tail {
    my ($self, $n) = @_;
    $n //= 20;
    my $out = '';
    for my $f ($self->{log}, $self->{stdout}) {
        open my $fh, '<', $f or next;
        my @l = <$fh>;
        close $fh;
        next unless @l;
        splice @l, 0, @l - $n if @l > $n;
        $out .= "---- last lines of $f:\n" . join '', map { "  $_" } @l;
    }
    $out .= "\n" if length $out && $out !~ /\n\z/;
    return $out;
}

# SIGTERM (and SIGCONT, should it be paused), wait for the exit, reap.
# Falls back to SIGKILL after the timeout.
sub stop {
    my ($self, %o) = @_;
    my $pid = $self->{pid} or return $self;
    my $timeout = $o{timeout} // $self->{timeout} // $TIMEOUT;
    _verbose("kill -TERM " . $self->describe);
    CORE::kill('TERM', $pid);
    CORE::kill('CONT', $pid);
    unless ($self->_reap($timeout)) {
        Test::More::diag($self->describe . " still running ${timeout}s after SIGTERM: SIGKILL");
        CORE::kill('KILL', $pid);
        $self->_reap($TIMEOUT) or die $self->describe . " survives SIGKILL\n";
    }
    return $self;
}

# SIGKILL, wait for the exit, reap.
sub kill {
    my $self = shift;
    my $pid = $self->{pid} or die $self->describe . " is not running\n";
    _verbose("kill -KILL " . $self->describe);
    CORE::kill('KILL', $pid);
    $self->_reap($TIMEOUT) or die $self->describe . " survives SIGKILL\n";
    return $self;
}

sub _proc_state {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/stat" or return '';
    my $s = <$fh> // '';
    close $fh;
    return $s =~ /^\d+ \(.*\) (\S)/s ? $1 : '';
}

# sends $sig; returns once the process's state (a /proc letter) is $settled
sub _signal_until {
    my ($self, $sig, $settled, $what) = @_;
    my $pid = $self->{pid} or die $self->describe . " is not running\n";
    _verbose("kill -$sig " . $self->describe);
    CORE::kill($sig, $pid);
    $self->wait_until(sub { $settled->(_proc_state($pid)) }, desc => $self->describe . " $what");
    return $self;
}

# SIGSTOP; returns once the process is stopped.
sub pause { $_[0]->_signal_until('STOP', sub { $_[0] =~ /^[Tt]$/ }, 'stopped by SIGSTOP') }

# SIGCONT; returns once the process runs again.
sub resume { $_[0]->_signal_until('CONT', sub { $_[0] !~ /^[Tt]$/ }, 'running after SIGCONT') }

# stop, then start on the same port / socket: the server comes back empty.
sub restart {
    my ($self, %o) = @_;
    $self->stop(%o);
    return $self->start(%o, same_port => 1);
}

# Poll $code every $POLL s until it returns true (a die counts as false);
# returns its value.  On timeout, dies naming desc (soft => 1: returns the
# false value instead).
sub wait_until {
    my ($self, $code, %o) = @_;
    my $timeout = $o{timeout} // (ref $self ? $self->{timeout} : undef) // $TIMEOUT;
    my $desc = $o{desc} // 'a condition';
    my $t0 = time;
    my $err = '';
    while (1) {
        my $v = eval { $code->() };
        if ($@) { $err = $@; chomp $err; $v = undef }
        return $v if $v;
        if (time - $t0 > $timeout) {
            my $msg = "timed out after ${timeout}s waiting for $desc" . (length $err ? " (last error: $err)" : '');
            if ($o{soft}) { Test::More::diag($msg); return $v }
            die "$msg\n";
        }
        sleep $o{poll} // $POLL;
    }
}

# ------------------------------------------------------------------ RESP

sub _connect {
    my ($self, $timeout) = @_;
    my $s;
    if ($self->{unix}) {
        $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $self->{socket}, Timeout => $timeout);
    } else {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                   Proto => 'tcp', Timeout => $timeout);
    }
    die "cannot connect to " . $self->describe . ": " . ($! || $@ || 'error') . "\n" unless $s;
    binmode $s;
    return $s;
}

sub _encode {
    my @a = map { my $x = defined $_ ? "$_" : ''; utf8::encode($x) if utf8::is_utf8($x); $x } @_;
    return '*' . scalar(@a) . "\r\n" . join '', map { '$' . length($_) . "\r\n$_\r\n" } @a;
}

# Send the commands on one new connection, read one reply each.
# Returns ([$reply, $err], ...).
sub _session {
    my ($self, $o, @cmds) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $timeout = $o->{timeout} // $self->{timeout} // $TIMEOUT;
    my $deadline = time + $timeout;
    my $auth = defined $self->{password} && ($o->{auth} // 1);
    unshift @cmds, ['AUTH', $self->{password}] if $auth;
    my $what = join(' ', map { $_->[0] } @cmds);
    my $rd = { deadline => $deadline, timeout => $timeout, buf => '', who => $self->describe, what => $what };
    $rd->{sock} = $self->_connect($timeout);
    $rd->{sel} = IO::Select->new($rd->{sock});

    my $out = join '', map { _encode(@$_) } @cmds;
    while (length $out) {
        my $left = $deadline - time;
        _timeout($rd) if $left <= 0;
        next unless $rd->{sel}->can_write($left);
        my $n = syswrite $rd->{sock}, $out;
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            die "write to $rd->{who}: $!\n";
        }
        substr($out, 0, $n, '');
    }
    my @res;
    for (@cmds) {
        my $v = _read_reply($rd);
        push @res, ref $v eq 'WorkerManager::Redis::Error' ? [undef, $v->text] : [$v, undef];
    }
    close $rd->{sock};
    if ($auth) {
        my $a = shift @res;
        die "AUTH to $rd->{who} failed: $a->[1]\n" if defined $a->[1];
    }
    return @res;
}

sub _timeout {
    my $rd = shift;
    close $rd->{sock};
    die "timed out after $rd->{timeout}s waiting for $rd->{who} to answer $rd->{what}\n";
}

sub _fill {
    my $rd = shift;
    while (1) {
        my $left = $rd->{deadline} - time;
        _timeout($rd) if $left <= 0;
        next unless $rd->{sel}->can_read($left);
        my $n = sysread $rd->{sock}, $rd->{buf}, 65536, length $rd->{buf};
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            die "read from $rd->{who}: $!\n";
        }
        die "$rd->{who} closed the connection (waiting for the reply to $rd->{what})\n" if $n == 0;
        return;
    }
}

sub _line {
    my $rd = shift;
    my $i;
    _fill($rd) while ($i = index($rd->{buf}, "\r\n")) < 0;
    my $l = substr($rd->{buf}, 0, $i);
    substr($rd->{buf}, 0, $i + 2, '');
    return $l;
}

sub _read_reply {
    my $rd = shift;
    my $l = _line($rd);
    my $t = substr($l, 0, 1, '');
    if ($t eq '+') { return $l }
    if ($t eq '-') { return WorkerManager::Redis::Error->new($l) }
    if ($t eq ':') { return 0 + $l }
    if ($t eq '$') {
        return undef if $l < 0;
        _fill($rd) while length $rd->{buf} < $l + 2;
        my $s = substr($rd->{buf}, 0, $l);
        substr($rd->{buf}, 0, $l + 2, '');
        return $s;
    }
    if ($t eq '*') {
        return undef if $l < 0;
        return [map { _read_reply($rd) } 1 .. $l];
    }
    die "unexpected reply from $rd->{who}: " . substr("$t$l", 0, 80) . "\n";
}

# One command; the decoded reply (a die on an error reply).
sub cmd {
    my $self = shift;
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    die "cmd: no command\n" unless @_;
    my ($r) = $self->_session($o, [@_]);
    die "$_[0] on " . $self->describe . ": $r->[1]\n" if defined $r->[1];
    return $r->[0];
}

# One command; ($reply, undef), or (undef, $error_text) on an error reply.
sub cmd_err {
    my $self = shift;
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    die "cmd_err: no command\n" unless @_;
    my ($r) = $self->_session($o, [@_]);
    return @$r;
}

# Several commands on one connection, sent at once: ([$reply, $err], ...).
sub pipeline {
    my $self = shift;
    my $o = ref $_[0] eq 'HASH' ? shift : {};
    return $self->_session($o, @_);
}

# True when the server answers PING within $timeout seconds (never dies).
sub ping {
    my ($self, $timeout) = @_;
    my $pong = eval { $self->cmd({ timeout => $timeout // 1 }, 'PING') };
    return defined $pong && $pong eq 'PONG';
}

# INFO [section] as a hash ref (key => value).
sub info {
    my ($self, @section) = @_;
    my $text = $self->cmd('INFO', @section) // '';
    my %h;
    for (split /\r?\n/, $text) {
        next if /^#/ || !/:/;
        my ($k, $v) = split /:/, $_, 2;
        $h{$k} = $v;
    }
    return \%h;
}

# ---------------------------------------------------------------- cleanup

sub cleanup {
    my $self = shift;
    return if $self->{cleaned}++;
    return if ($self->{owner} // 0) != $$;    # a fork of the test: not its server
    delete $LIVE{"$self"};
    local ($!, $?, $@);
    if (my $pid = $self->{pid}) {
        CORE::kill('KILL', $pid);
        $self->_reap(5);
        Test::More::note("killed leftover " . $self->describe . " (pid $pid)");
    }
    $DIRS{ $self->{dir} } = { map { $_ => $self->{$_} } qw(name log stdout owner) } if defined $self->{dir};
}

sub DESTROY {
    my $self = shift;
    $self->cleanup;
}

# --------------------------------------------------------------- sentinel

# One primary, one replica of it and N sentinels (default 3) monitoring it,
# all on loopback TCP ports.  Returns once the replica is in sync and every
# sentinel knows the primary, the replica and the other sentinels (a
# sentinel that knows no other cannot reach the quorum: no failover).
#   master_name      (default "wm-master")
#   sentinels        how many (default 3)
#   quorum           (default 2)
#   down_after       sentinel down-after-milliseconds (default 1000)
#   failover_timeout sentinel failover-timeout in ms (default 3000)
#   password         requirepass / masterauth of primary and replica, and the
#                    sentinels' auth-pass (the sentinels have none themselves)
#   timeout          for each wait (default WM_REDIS_TIMEOUT or 10)
my %SENTINEL_DEFAULTS = (master_name => 'wm-master', sentinels => 3, quorum => 2, down_after => 1000,
                         failover_timeout => 3000, password => undef, timeout => undef);

sub sentinel_setup {
    my ($class, %o) = @_;
    for my $k (keys %o) {
        die "WorkerManager::Redis->sentinel_setup: unknown option '$k'\n" unless exists $SENTINEL_DEFAULTS{$k};
    }
    %o = (%SENTINEL_DEFAULTS, %o);
    my $timeout = $o{timeout} // $TIMEOUT;
    my $name = $o{master_name};
    die "sentinel_setup: bad master_name '$name'\n" unless $name =~ /^[\w.-]+$/;
    my $set = bless { master_name => $name, sentinels => [], timeout => $timeout },
                    'WorkerManager::Redis::Sentinel';
    my @pw = defined $o{password} ? (password => $o{password}, masterauth => $o{password}) : ();

    $set->{primary} = $class->new(name => 'primary', timeout => $o{timeout}, @pw)->start;
    my $pport = $set->{primary}->port;
    $set->{replica} = $class->new(name => 'replica', timeout => $o{timeout}, @pw,
                                  replicaof => ['127.0.0.1', $pport])->start;
    $set->{replica}->wait_until(sub { ($set->{replica}->info('replication')->{master_link_status} // '') eq 'up' },
                                timeout => $timeout,
                                desc => "the replica on $set->{replica}{port} in sync with the primary on $pport");

    for my $i (1 .. $o{sentinels}) {
        my $conf = join "\n",
            "sentinel monitor $name 127.0.0.1 $pport $o{quorum}",
            "sentinel down-after-milliseconds $name $o{down_after}",
            "sentinel failover-timeout $name $o{failover_timeout}",
            (defined $o{password} ? 'sentinel auth-pass ' . $name . ' ' . _conf_str($o{password}) : ());
        push @{ $set->{sentinels} }, $class->new(name => "sentinel$i", sentinel => $conf, timeout => $o{timeout})->start;
    }
    my $rport = $set->{replica}->port;
    my $others = $o{sentinels} - 1;
    for my $s (@{ $set->{sentinels} }) {
        $s->wait_until(sub {
            my $a = $s->cmd({ timeout => 1 }, 'SENTINEL', 'get-master-addr-by-name', $name);
            return ref $a eq 'ARRAY' && ($a->[1] // '') eq $pport;
        }, timeout => $timeout, desc => $s->describe . " knowing master $name at 127.0.0.1:$pport");
        $s->wait_until(sub {
            my $r = $s->cmd({ timeout => 1 }, 'SENTINEL', 'replicas', $name);
            return grep { my %h = @$_; ($h{port} // '') eq $rport && ($h{flags} // '') !~ /disconnected|s_down/ } @$r;
        }, timeout => $timeout, desc => $s->describe . " knowing the replica on $rport");
        $s->wait_until(sub {
            my $r = $s->cmd({ timeout => 1 }, 'SENTINEL', 'sentinels', $name);
            return @$r >= $others;
        }, timeout => $timeout, desc => $s->describe . " knowing the $others other sentinels");
    }
    return $set;
}

package WorkerManager::Redis::Error;

# An error reply nested in an array reply.
use overload '""' => sub { $_[0]{text} }, fallback => 1;
sub new  { my ($class, $text) = @_; return bless { text => $text }, $class }
sub text { $_[0]{text} }

package WorkerManager::Redis::Sentinel;

# What WorkerManager::Redis->sentinel_setup returns.
#   primary, replica    the WorkerManager::Redis objects as started (their
#                       roles swap on a failover: see current_primary)
#   sentinels           the sentinels (WorkerManager::Redis objects, sentinel
#                       mode): a list, or an array ref in scalar context
#   master_name
#   current_primary_port   asks the sentinels (the first that answers)
#   current_primary        the object on that port
#   wait_failover($timeout)  polls until every running sentinel names the
#                       old replica as the master and it says role:master;
#                       returns it (default timeout 30 s: a split vote among
#                       the sentinels costs a retry after 2 x failover-timeout)
#   sentinels_lua       '{ { host = "127.0.0.1", port = N }, ... }'
#   stop_all            stops the sentinels, the replica, the primary
# Destroying the object kills whatever of it still runs.

use strict;
use warnings;

sub primary     { $_[0]{primary} }
sub replica     { $_[0]{replica} }
sub master_name { $_[0]{master_name} }
sub sentinels   { wantarray ? @{ $_[0]{sentinels} } : [@{ $_[0]{sentinels} }] }
sub all         { my $s = shift; return (@{ $s->{sentinels} }, grep { $_ } $s->{replica}, $s->{primary}) }

sub _master_addr {
    my ($self, $s) = @_;
    my $a = $s->cmd({ timeout => 1 }, 'SENTINEL', 'get-master-addr-by-name', $self->{master_name});
    return ref $a eq 'ARRAY' ? $a : undef;
}

sub current_primary_port {
    my $self = shift;
    my @err;
    for my $s (grep { $_->running } @{ $self->{sentinels} }) {
        my $a = eval { $self->_master_addr($s) };
        return $a->[1] if $a;
        push @err, $@ || $s->describe . " does not know $self->{master_name}\n";
    }
    die "no sentinel told where $self->{master_name} is:\n" . join('', @err);
}

sub current_primary {
    my $self = shift;
    my $port = $self->current_primary_port;
    my ($r) = grep { $_ && $_->port == $port } $self->{primary}, $self->{replica};
    return $r;
}

sub wait_failover {
    my ($self, $timeout) = @_;
    $timeout //= 30;
    my $want = $self->{replica}->port;
    my $t0 = Time::HiRes::time();
    my %seen;
    my $ok = eval { $self->{replica}->wait_until(sub {
        my @run = grep { $_->running } @{ $self->{sentinels} };
        die "no sentinel running\n" unless @run;
        my $all = 1;
        for my $s (@run) {
            my $a = eval { $self->_master_addr($s) };
            $seen{ $s->port } = $a ? "$a->[0]:$a->[1]" : $@ ? 'no answer' : 'unknown';
            $all = 0 unless $a && $a->[1] eq $want;
        }
        return $all;
    }, timeout => $timeout, poll => 0.05,
       desc => "every sentinel naming the replica on 127.0.0.1:$want the master of $self->{master_name}"); 1 };
    die $@ . "  the sentinels said: " . join(', ', map { "$_ => $seen{$_}" } sort keys %seen) . "\n" unless $ok;
    my $left = $timeout - (Time::HiRes::time() - $t0);
    $left = 1 if $left < 1;
    $self->{replica}->wait_until(sub { ($self->{replica}->info('replication')->{role} // '') eq 'master' },
                                 timeout => $left, desc => $self->{replica}->describe . " saying role:master");
    return $self->{replica};
}

sub sentinels_lua {
    my $self = shift;
    return '{ ' . join(', ', map { '{ host = "127.0.0.1", port = ' . $_->port . ' }' } @{ $self->{sentinels} }) . ' }';
}

sub stop_all {
    my $self = shift;
    $_->stop for grep { $_->running } $self->all;
    return $self;
}

sub DESTROY {
    my $self = shift;
    local ($@, $?, $!);
    # (in global destruction the servers may be gone before the set)
    $_->cleanup for grep { defined } $self->all;
}

1;
