package WorkerManager::Nginx;

# A small driver that runs a real nginx (master + workers, daemonized) in a
# temporary prefix for the resty.worker.manager test suites.  Perl core
# modules only.
#
#   my $n = WorkerManager::Nginx->new(workers => 2);
#   $n->start;                       # waits for the pid file and N ready workers
#   $n->signal('HUP');
#   $n->wait_log(qr/WMCB master_exit id=1 /, count => 1);
#   my @cbs = $n->callbacks;         # every WMCB line, in log order, as hashes
#   $n->signal('QUIT'); $n->wait_exit;
#
# Methods: new(%opts) (see %DEFAULTS), start(wait =>, expect_fail =>),
# signal($sig), reload() (HUP + wait for the new workers), reload_conf(%opts),
# write_conf(%opts), kill_worker($pid, $sig), wait_log($re, count =>, since =>,
# timeout =>, soft =>), wait_until($code, ...), absent_for($re, $seconds,
# since =>), wait_exit($timeout), mark(),
# grep_log($re, since =>, foreign =>), entries(), callbacks(since =>, event =>, gen =>),
# foreign($master), foreign_node($master, %from_log),
# enter_leave(), errors(allow => [...]), dump_log(), worker_pids(all =>),
# children(), frozen(), run_cmd(@args), get($path), get_async/finish, block_workers($ms),
# cleanup() (also from DESTROY and END: KILLs whatever of the node is left);
# WorkerManager::Nginx->from_log($file, ...) reads a log written elsewhere.
#
# Generated confs log WMREADY after on_init_worker_by_lua returned, and
# wm_test.lua's recorders log the WMCB lines parsed by callbacks().
#
# Environment:
#   WM_NGINX         nginx binary (default /usr/sbin/nginx)
#   WM_LOAD_MODULES  space-separated dynamic module paths to load_module
#                    (default: the Debian ndk + lua modules when WM_NGINX is
#                    /usr/sbin/nginx, none otherwise)
#   WM_KEEP          1: keep the temp prefix when the test fails; 2: always
#   WM_TIMEOUT       default timeout (seconds) for the wait_* helpers (20)
#   WM_VERBOSE       1: note every signal, start and nginx command
#   WM_SAVE_LOGS     a directory: on cleanup, copy each node's error.log there
#                    as <prefix name>.error.log (t/21-demo.t checks the demo's)
#   WM_AUDIT         a file: on cleanup, append which checks ran on the node
#                    and what invariant_errors() says (see _audit)

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(sleep time);

our $REPO = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)), '..', '..', '..'));
our $NGINX = $ENV{WM_NGINX} || '/usr/sbin/nginx';
our @LOAD_MODULES = defined $ENV{WM_LOAD_MODULES}
    ? grep { length } split /\s+/, $ENV{WM_LOAD_MODULES}
    : ($NGINX eq '/usr/sbin/nginx'
        ? ('/usr/lib/nginx/modules/ndk_http_module.so',
           '/usr/lib/nginx/modules/ngx_http_lua_module.so')
        : ());
our $TIMEOUT = $ENV{WM_TIMEOUT} || 20;
our $POLL = 0.03;

my %LIVE;    # refaddr => object, for the END-block cleanup

$SIG{INT}  = sub { Test::More::diag("interrupted, cleaning up"); exit 130 };
$SIG{TERM} = sub { Test::More::diag("terminated, cleaning up"); exit 143 };

# Nodes whose log no check read for warn+ lines (Check.pm's no_errors_ok
# marks the ones it read): the suite fails at its end, so that no suite
# lets noise in the log pass unseen.
my @UNCHECKED;

END {
    my $rc = $?;
    $_ && $_->cleanup for values %LIVE;
    if (@UNCHECKED && !$rc) {
        Test::More::diag("no warn+ check (no_errors_ok) ran on the log of: @UNCHECKED");
        $rc = 1;
    }
    $? = $rc;
}

my %DEFAULTS = (
    workers           => 2,
    module            => 1,     # 0: do not load resty.worker.manager at all
    lib_dir           => undef, # where resty/worker/manager.lua is found (default: the repo's lib/)
    shm               => 'wm',
    shm_size          => '1m',
    opts              => undef, # Lua table text; default { shm = "<shm>", interval = 1 }
    master_start      => 'wm.rec("master_start")',
    master_exit       => 'wm.rec("master_exit")',
    worker_start      => 'wm.rec("worker_start")',
    worker_exit       => 'wm.rec("worker_exit")',
    exit_hook         => 0,     # 1: add exit_worker_by_lua_block with on_exit_worker_by_lua()
    linger            => 0,     # seconds a worker stays alive after it starts a graceful exit
    init              => undef, # full init_by_lua body (overrides the module call)
    init_worker       => undef, # full init_worker_by_lua body (overrides the module call)
    exit_worker       => undef, # full exit_worker_by_lua body
    init_extra        => '',    # Lua run before the module call in init_by_lua
    init_after        => '',    # Lua run after it
    init_worker_extra => '',
    init_worker_after => '',
    main_extra        => '',    # main-context directives
    events_extra      => '',
    http_extra        => '',
    server_extra      => '',    # directives inside the test server{}
    listen_extra      => [],    # additional "host:port" to listen on
    raw_conf          => undef, # use this conf text as is (load_module lines go to -g)
);

# ------------------------------------------------------------------ setup

sub new {
    my ($class, %args) = @_;
    for my $k (keys %args) {
        die "WorkerManager::Nginx: unknown option '$k'\n" unless exists $DEFAULTS{$k};
    }
    my $self = bless { %DEFAULTS, %args }, $class;
    if ($self->{module} && !$self->{lib_dir} && !-f "$REPO/lib/resty/worker/manager.lua") {
        Test::More->builder->BAIL_OUT("$REPO/lib/resty/worker/manager.lua is not built "
            . "(run: cd $REPO && npx tstl -p tsconfig.json)");
    }
    $self->{opts} //= qq{{ shm = "$self->{shm}", interval = 1 }};

    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    my $script = $0; $script =~ s{.*/}{}; $script =~ s/\.t$//; $script =~ s/[^\w.-]/_/g;
    $self->{prefix} = tempdir("wm-$script-XXXXXX", DIR => $base, CLEANUP => 0);
    # workers run as "nobody" when we are root: they must read lua files and the prefix
    chmod 0755, $self->{prefix};
    make_path(map { "$self->{prefix}/$_" } qw(logs conf tmp));
    chmod 0755, map { "$self->{prefix}/$_" } qw(logs conf tmp);
    $self->{conf}    = "$self->{prefix}/conf/nginx.conf";
    $self->{errlog}  = "$self->{prefix}/logs/error.log";
    $self->{pidfile} = "$self->{prefix}/logs/nginx.pid";
    $self->{port}    = free_port();
    $self->{entries} = [];
    $self->{log_off} = 0;
    $self->{log_buf} = '';
    $self->{seen_pids} = {};
    $self->{conf_version} = 0;

    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});
    $self->write_conf;
    return $self;
}

sub prefix  { $_[0]{prefix} }
sub port    { $_[0]{port} }
sub conf    { $_[0]{conf} }
sub errlog  { $_[0]{errlog} }
sub workers { $_[0]{workers} }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 0)
        or die "cannot find a free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# Which temp-path directives this binary knows (OpenResty builds may lack some).
my %NGINX_V;
sub _nginx_v {
    return $NGINX_V{$NGINX} //= do { my $v = `'$NGINX' -V 2>&1`; $v // '' };
}

sub _lua_str {
    my $s = shift;
    $s =~ s/(["\\])/\\$1/g;
    return qq{"$s"};
}

sub conf_text {
    my $self = shift;
    my $p    = $self->{prefix};
    my $v    = _nginx_v();
    my @temp = ("client_body_temp_path $p/tmp/client_body;");
    for my $m (qw(proxy fastcgi uwsgi scgi)) {
        next if $v =~ /--without-http_${m}_module/;
        push @temp, "${m}_temp_path $p/tmp/$m;";
    }
    my $temp = join "\n    ", @temp;
    my $mods = join '', map { "load_module $_;\n" } @LOAD_MODULES;
    my $shm  = $self->{shm};
    my $lib = $self->{lib_dir} // "$REPO/lib";
    my $lua_path = "$lib/?.lua;$REPO/t/lib/?.lua;;";

    my $linger = '';
    if ($self->{linger}) {
        $linger = <<"LUA";
        do  -- keep this worker alive $self->{linger}s after it starts exiting
            local ok, err = ngx.timer.at(0, function()
                while not ngx.worker.exiting() do ngx.sleep(0.02) end
                ngx.log(ngx.WARN, "WMLINGER begin pid=", ngx.worker.pid())
                ngx.sleep($self->{linger})
                ngx.log(ngx.WARN, "WMLINGER end pid=", ngx.worker.pid())
            end)
            if not ok then ngx.log(ngx.ERR, "WMLINGER timer failed: ", err) end
        end
LUA
    }

    # the module's calls, or (driver self-test mode: no module) just a log line
    my ($init_call, $init_worker_call, $exit_worker) = $self->{module}
        ? (qq{require("resty.worker.manager").on_init_by_lua($self->{opts}, $self->{master_start}, $self->{master_exit})},
           qq{require("resty.worker.manager").on_init_worker_by_lua($self->{worker_start}, $self->{worker_exit})},
           $self->{exit_worker}
               // ($self->{exit_hook} ? 'require("resty.worker.manager").on_exit_worker_by_lua()' : undef))
        : ('ngx.log(ngx.WARN, "WMNOMOD init pid=", ngx.worker.pid())', '', $self->{exit_worker});
    my $init = $self->{init} // <<"LUA";
        local wm = require "wm_test"
        $self->{init_extra}
        $init_call
        $self->{init_after}
LUA
    my $init_worker = $self->{init_worker} // <<"LUA";
        local wm = require "wm_test"
$linger
        $self->{init_worker_extra}
        $init_worker_call
        $self->{init_worker_after}
LUA
    # Marker logged after the module call returned: start()/reload() wait for it.
    $init_worker .= qq{\n        ngx.log(ngx.WARN, "WMREADY pid=", ngx.worker.pid(), " slot=", tostring(ngx.worker.id()), " confv=$self->{conf_version}")\n};
    my $exit_block = defined $exit_worker
        ? "    exit_worker_by_lua_block {\n        $exit_worker\n    }\n" : '';
    my $listen_extra = join '', map { "        listen $_;\n" } @{ $self->{listen_extra} };

    # As root, workers run as "nobody": if they could not read the repository
    # (a checkout under /root, say), run them as root instead.
    my $readable = !grep { !_others_can_read($_) }
        ("$REPO/lib/resty/worker/manager.lua", "$REPO/t/lib/wm_test.lua");
    my $user = ($> == 0 && !$readable) ? "user root;\n" : '';

    return <<"CONF";
# generated by WorkerManager::Nginx (t/lib/WorkerManager/Nginx.pm), conf version $self->{conf_version}
$mods
${user}daemon on;
master_process on;
worker_processes $self->{workers};
pid $self->{pidfile};
error_log $self->{errlog} info;
$self->{main_extra}

events {
    worker_connections 256;
    $self->{events_extra}
}

http {
    access_log off;
    $temp
    lua_package_path "$lua_path";
    lua_shared_dict $shm $self->{shm_size};
    $self->{http_extra}

    init_by_lua_block {
$init
    }

    init_worker_by_lua_block {
$init_worker
    }
$exit_block
    server {
        listen 127.0.0.1:$self->{port};
$listen_extra        server_name localhost;
        $self->{server_extra}

        location = /ping {
            content_by_lua_block {
                ngx.say("pong ", ngx.worker.pid(), " ", tostring(ngx.worker.id()))
            }
        }

        # blocks the whole worker for ?ms= milliseconds (default 1000)
        location = /block {
            content_by_lua_block {
                local ms = tonumber(ngx.var.arg_ms) or 1000
                ngx.log(ngx.WARN, "WMBLOCK begin pid=", ngx.worker.pid(), " ms=", ms)
                require("wm_test").busy_sleep(ms)
                ngx.log(ngx.WARN, "WMBLOCK end pid=", ngx.worker.pid())
                ngx.say("blocked ", ms, " ms in ", ngx.worker.pid())
            }
        }

        # number of keys and bytes used in the node's shm
        location = /shm {
            content_by_lua_block {
                local d = ngx.shared[${\ _lua_str($shm)}]
                local keys = d:get_keys(0)
                table.sort(keys)
                local cap = d:capacity()
                ngx.say("keys=", #keys, " used=", cap - d:free_space(), " capacity=", cap)
                for _, k in ipairs(keys) do ngx.say(k) end
            }
        }
    }
}
CONF
}

# true when every ancestor of $path is searchable and $path readable by others
sub _others_can_read {
    my $path = shift;
    my @st = stat $path or return 1;    # missing: nothing to read
    return 0 unless $st[2] & 04;
    my $dir = $path;
    while ($dir =~ s{/[^/]+/?$}{} && length $dir) {
        my @d = stat $dir or return 0;
        return 0 unless $d[2] & 01;
    }
    return 1;
}

sub write_conf {
    my ($self, %changes) = @_;
    for my $k (keys %changes) {
        die "WorkerManager::Nginx: unknown option '$k'\n" unless exists $DEFAULTS{$k};
        $self->{$k} = $changes{$k};
    }
    $self->{conf_version}++ if %changes;
    open my $fh, '>', $self->{conf} or die "write $self->{conf}: $!";
    print {$fh} $self->{raw_conf} // $self->conf_text;
    close $fh;
    chmod 0644, $self->{conf};
    return $self;
}

# --------------------------------------------------------------- processes

sub _cmd {
    my $self = shift;
    my @g = defined $self->{raw_conf} && @LOAD_MODULES
        ? ('-g', join ' ', map { "load_module $_;" } @LOAD_MODULES) : ();
    return ($NGINX, '-p', "$self->{prefix}/", '-c', $self->{conf}, '-e', $self->{errlog}, @g, @_);
}

sub _verbose { Test::More::note(@_) if $ENV{WM_VERBOSE} }

# Start nginx; wait for the pid file and for `workers` ready workers.
#   start(wait => 0)         do not wait for workers
#   start(expect_fail => 1)  return the exit code instead of dying when nginx fails
sub start {
    my ($self, %o) = @_;
    my $mark = $self->mark;
    my $timeout = $o{timeout} // $TIMEOUT;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>>', "$self->{prefix}/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec $self->_cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    $self->{pre_daemon_pid} = $pid;
    _verbose("nginx start (pre-daemon pid $pid) rc=$rc");
    if ($rc != 0 && !defined $self->{raw_conf} && ($o{port_tries} // 0) < 3
        && $self->grep_log(qr/bind\(\) to 127\.0\.0\.1:$self->{port} failed/, since => $mark)) {
        # someone took our port between free_port() and now: take another
        $self->{port} = free_port();
        $self->write_conf;
        Test::More::note("port taken, retrying on $self->{port}");
        return $self->start(%o, port_tries => ($o{port_tries} // 0) + 1);
    }
    if ($rc != 0) {
        return $rc if $o{expect_fail};
        $self->_fail_dump("nginx failed to start (exit $rc)", stderr => 1);
        die "nginx failed to start\n";
    }
    my $t0 = time;
    until (-s $self->{pidfile}) {
        if (time - $t0 > $timeout) {
            $self->_fail_dump("no pid file after ${timeout}s", stderr => 1);
            die "nginx did not write its pid file\n";
        }
        sleep $POLL;
    }
    $self->{master} = $self->_read_pid;
    $self->{seen_pids}{ $self->{master} } = 1;
    if ($o{wait} // 1) {
        $self->wait_log(qr/WMREADY /, count => $self->{workers}, since => $mark,
                        timeout => $timeout, desc => "$self->{workers} workers ready after start");
    }
    return 0 if $o{expect_fail};
    return $self;
}

sub _read_pid {
    my $self = shift;
    open my $fh, '<', $self->{pidfile} or return undef;
    my $p = <$fh>;
    close $fh;
    return undef unless defined $p && $p =~ /(\d+)/;
    return $1;
}

sub master_pid { $_[0]{master} }

sub signal {
    my ($self, $sig) = @_;
    my $m = $self->{master} or die "nginx not started\n";
    _verbose("kill -$sig $m");
    kill($sig, $m) or die "kill -$sig $m: $!\n";
    return $self;
}

sub kill_worker {
    my ($self, $pid, $sig) = @_;
    $sig //= 'KILL';
    _verbose("kill -$sig worker $pid");
    kill($sig, $pid) or die "kill -$sig $pid: $!\n";
    return $self;
}

# The whole node at once, as when its machine dies: `sig` (default KILL, or
# STOP / CONT for a partition) to the master and every one of its children.
# KILL waits until they are gone and reaped. Returns the pids signalled.
sub signal_node {
    my ($self, $sig) = @_;
    $sig //= 'KILL';
    my $m = $self->{master} or die "nginx not started\n";
    my @pids = ($m, map { $_->{pid} } $self->children($m));
    _verbose("kill -$sig @pids (the whole node)");
    kill($sig, @pids);
    if ($sig eq 'KILL') {
        $self->wait_until(sub { !grep { $self->alive($_) } @pids }, desc => "the node's processes gone");
    }
    return @pids;
}

# HUP and wait for `workers` new ready workers (use signal('HUP') for a
# reload that is expected to fail).
sub reload {
    my ($self, %o) = @_;
    my $mark = $self->mark;
    $self->signal('HUP');
    $self->wait_log(qr/WMREADY /, count => $self->{workers}, since => $mark,
                    timeout => $o{timeout}, desc => "$self->{workers} new workers ready after HUP")
        if $o{wait} // 1;
    return $mark;
}

# Rewrite the conf with changed options, then HUP (does not wait).
sub reload_conf {
    my ($self, %changes) = @_;
    $self->write_conf(%changes);
    $self->signal('HUP');
    return $self;
}

sub _proc_stat {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/stat" or return;
    my $s = <$fh>;
    close $fh;
    return unless defined $s && $s =~ /^\d+ \((.*)\) (\S) (\d+)/s;
    return { comm => $1, state => $2, ppid => $3 };
}

sub _cmdline {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/cmdline" or return '';
    local $/;
    my $c = <$fh> // '';
    close $fh;
    $c =~ s/\0+$//;
    $c =~ s/\0/ /g;
    return $c;
}

sub alive {
    my ($self, $pid) = @_;
    $pid //= $self;    # also callable as a function
    my $st = _proc_stat($pid) or return 0;
    return $st->{state} ne 'Z' && $st->{state} ne 'X';
}

# Children of the master: list of { pid, cmd } (live ones only).
sub children {
    my ($self, $of) = @_;
    $of //= $self->{master};
    return () unless $of;
    my @out;
    opendir my $d, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my $st = _proc_stat($pid) or next;
        next unless $st->{ppid} == $of && $st->{state} ne 'Z';
        push @out, { pid => $pid, cmd => _cmdline($pid) };
    }
    closedir $d;
    return sort { $a->{pid} <=> $b->{pid} } @out;
}

# Pids of the master's worker processes; all => 1 includes those shutting down.
# A worker sets its title only after init_worker_by_lua* returned, so a child
# still titled "master process" is a worker that is starting (WMREADY may be
# logged already): it counts.
sub worker_pids {
    my ($self, %o) = @_;
    my @w = grep { $_->{cmd} =~ /worker process|^nginx: master process/ && !$self->{foreign}{ $_->{pid} } } $self->children;
    @w = grep { $_->{cmd} !~ /shutting down/ } @w unless $o{all};
    my @p = map { $_->{pid} } @w;
    $self->{seen_pids}{$_} = 1 for @p;
    return @p;
}

# A master that hangs: blocked on a futex (a shm mutex) with a child it does
# not reap (a zombie), twice 0.5 s apart.  Returns a description or ''.
sub frozen {
    my ($self) = @_;
    my $m = $self->{master} or return '';
    my $look = sub {
        open my $f, '<', "/proc/$m/wchan" or return '';
        my $w = <$f> // '';
        return '' unless $w =~ /futex/;
        opendir my $d, '/proc' or return '';
        my @z = grep { my $st = /^\d+$/ && _proc_stat($_); $st && $st->{ppid} == $m && $st->{state} eq 'Z' } readdir $d;
        return @z ? "master $m blocked in $w, unreaped child(ren) @z" : '';
    };
    my $first = $look->() or return '';
    sleep 0.5;
    return $look->();
}

# Wait until the master is gone (and every worker we know of).
sub wait_exit {
    my ($self, $timeout) = @_;
    $timeout //= $TIMEOUT;
    my $m = $self->{master} or return 1;
    my $t0 = time;
    $self->_refresh;
    while (time - $t0 < $timeout) {
        my @left = grep { $self->_ours($_) } ($m, $self->_known_pids);
        return 1 unless @left;
        sleep $POLL;
    }
    Test::More::diag("nginx (master $m) still running after ${timeout}s");
    return 0;
}

# A live nginx process of this node (guards against pid reuse by other nodes).
sub _ours {
    my ($self, $pid) = @_;
    return 0 if !$pid || $pid == $$;
    my $st = _proc_stat($pid) or return 0;
    return 0 if $st->{state} eq 'Z' || $st->{state} eq 'X';
    my $cmd = _cmdline($pid);
    return 0 unless $cmd =~ /^nginx/;
    my $m = $self->{master} // -1;
    return 1 if $pid == $m;
    return 0 if $cmd =~ /master process/ && index($cmd, $self->{prefix}) < 0;
    return 1 if $st->{ppid} == $m;
    # an orphan is ours unless its parent is another live nginx master
    return _cmdline($st->{ppid}) =~ /^nginx: master/ ? 0 : 1;
}

sub _known_pids {
    my $self = shift;
    $self->_refresh;
    my %p = %{ $self->{seen_pids} };
    for my $e (@{ $self->{entries} }) {
        $p{$1} = 1 if $e->{text} =~ /start (?:worker|cache \w+|privileged agent) process (\d+)/;
    }
    delete $p{$$};
    return grep { $_ != ($self->{master} // -1) } keys %p;
}

# Run the nginx binary against the same prefix/conf, e.g. run_cmd('-t'),
# run_cmd('-s', 'reload').  Returns { rc, out, pid }.
sub run_cmd {
    my ($self, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec $self->_cmd(@args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    _verbose("nginx @args (pid $pid) rc=$rc: $out");
    return { rc => $rc, out => $out, pid => $pid };
}

# Tiny HTTP/1.0 GET.  Returns (status, body) in list context, status otherwise.
sub get {
    my ($self, $path, %o) = @_;
    my $port = $o{port} // $self->{port};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => $o{timeout} // 5)
        or return wantarray ? (0, "connect: $!") : 0;
    print {$s} "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my $resp = '';
    my $t0 = time;
    my $limit = $o{timeout} // 5;
    # (a read timeout too: a node whose workers hang must not hang the test)
    my $sel = IO::Select->new($s);
    while (1) {
        my $left = $limit - (time - $t0);
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($code) = ($head // '') =~ m{^HTTP/\d\.\d (\d+)};
    return wantarray ? ($code // 0, $body // '') : ($code // 0);
}

# GET $path until each of the node's current workers answered; returns
# { pid => body }. The location must answer with its worker's pid first.
# Connections reach a worker the kernel picks: give the server a second
# listen with reuseport (listen_extra => ["127.0.0.1:<port> reuseport"]) and
# pass its port, so that it spreads them.
sub get_each_worker {
    my ($self, $path, %o) = @_;
    my %want = map { $_ => 1 } $self->worker_pids;
    my %got;
    my $t0 = time;
    while (grep { !exists $got{$_} } keys %want) {
        my ($code, $body) = $self->get($path, %o);
        if ($code == 200 && $body =~ /^(\d+)\b/) {
            $got{$1} = $body;
        }
        if (time - $t0 > $TIMEOUT) {
            $self->_fail_dump("timed out after ${TIMEOUT}s asking every worker for $path; answered: "
                              . join(' ', sort keys %got) . '; workers: ' . join(' ', sort keys %want));
            last;
        }
    }
    return \%got;
}

# Send a GET and return the socket without reading (see finish()).
sub get_async {
    my ($self, $path, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port} // $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    print {$s} "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    return $s;
}

sub finish {
    my ($self, $s) = @_;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($code) = $resp =~ m{^HTTP/\d\.\d (\d+)};
    return $code // 0;
}

# Block every current worker (busy loop, the worker processes nothing) for
# ms milliseconds; returns the sockets (pass them to finish()) once every
# worker logged that it is blocked.
sub block_workers {
    my ($self, $ms, %o) = @_;
    my $want = $o{count} // $self->{workers};
    my $mark = $self->mark;
    my @socks;
    my %pids;
    for my $try (1 .. 4 * $want) {
        push @socks, $self->get_async("/block?ms=$ms");
        my $t0 = time;
        while (time - $t0 < 0.3) {
            %pids = map { $_->{pid} => 1 } $self->grep_log(qr/WMBLOCK begin/, since => $mark);
            last if keys %pids >= @socks || keys %pids >= $want;
            sleep $POLL;
        }
        return @socks if keys %pids >= $want;
    }
    $self->_fail_dump("could not block $want workers (blocked: " . join(' ', keys %pids) . ")", since => $mark);
    die "block_workers failed\n";
}

# ------------------------------------------------------------------- log

# Read whatever the error log gained since last time; split it into entries
# (an entry is a line with the nginx time stamp plus continuation lines).
sub _refresh {
    my $self = shift;
    open my $fh, '<', $self->{errlog} or return;
    seek $fh, $self->{log_off}, 0;
    local $/;
    my $data = <$fh>;
    close $fh;
    return unless defined $data && length $data;
    $self->{log_off} += length $data;
    $data = $self->{log_buf} . $data;
    my $complete = rindex($data, "\n");
    if ($complete < 0) { $self->{log_buf} = $data; return }
    $self->{log_buf} = substr($data, $complete + 1);
    for my $line (split /\n/, substr($data, 0, $complete)) {
        if ($line =~ m{^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (.*)$}) {
            push @{ $self->{entries} }, {
                idx => scalar @{ $self->{entries} }, time => $1, level => $2,
                pid => $3, text => $5, line => $line,
            };
            $self->_mark_foreign($self->{entries}[-1]) if $self->{foreign};
        } elsif (@{ $self->{entries} }) {
            my $e = $self->{entries}[-1];
            $e->{text} .= "\n$line";
            $e->{line} .= "\n$line";
        } else {
            push @{ $self->{entries} }, { idx => 0, time => '', level => 'raw', pid => 0,
                                          text => $line, line => $line };
        }
    }
}

sub entries { my $self = shift; $self->_refresh; return grep { !$_->{foreign} } @{ $self->{entries} } }

# Another node logs to the same file: the new binary of a binary upgrade
# (USR2), whose master is $master.  From now on its lines and those of the
# workers it starts are left out of entries(), grep_log() and everything
# built on them (the checks see this node alone); foreign_node($master)
# reads them as a node of their own.
sub foreign {
    my ($self, $master) = @_;
    $self->_refresh;
    $self->{foreign}{$master} = $master;
    $self->_mark_foreign($_) for @{ $self->{entries} };
    return $self;
}

sub _mark_foreign {
    my ($self, $e) = @_;
    my $node = $self->{foreign}{ $e->{pid} } or return;
    $e->{foreign} = $node;
    if ($e->{pid} == $node && $e->{text} =~ /^start worker process (\d+)/ && !$self->{foreign}{$1}) {
        # (the worker may have logged before its master logged its start)
        my $w = $1;
        $self->{foreign}{$w} = $node;
        $_->{foreign} = $node for grep { $_->{pid} == $w } @{ $self->{entries} };
    }
}

# The lines of the foreign node of master $master as a node of their own
# (from_log; written to logs/node-<master>.log), with %o as from_log's.
sub foreign_node {
    my ($self, $master, %o) = @_;
    $self->_refresh;
    my $file = "$self->{prefix}/logs/node-$master.log";
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} "$_->{line}\n" for grep { ($_->{foreign} // 0) == $master } @{ $self->{entries} };
    close $fh;
    return (ref $self)->from_log($file, workers => $self->{workers}, opts => $self->{opts},
                                 exit_hook => $self->{exit_hook}, %o, master => $master);
}

# Position in the log, to pass as since => to wait_log / callbacks / grep_log.
sub mark { my $self = shift; $self->_refresh; return scalar @{ $self->{entries} } }

sub grep_log {
    my ($self, $re, %o) = @_;
    $self->_refresh;
    my $since = $o{since} // 0;
    my @e = @{ $self->{entries} };
    # (foreign => 1: the foreign nodes' lines too)
    return grep { $_->{text} =~ $re && ($o{foreign} || !$_->{foreign}) } @e[$since .. $#e];
}

# Poll the log until `count` entries (default 1) since `since` match $re.
# Returns the matching entries.  On timeout: a failed test, a dump, and die
# (soft => 1: return what matched instead of dying).
sub wait_log {
    my ($self, $re, %o) = @_;
    my $count   = $o{count} // 1;
    my $timeout = $o{timeout} // $TIMEOUT;
    my $t0 = time;
    while (1) {
        my @m = $self->grep_log($re, since => $o{since});
        return @m if @m >= $count;
        if (time - $t0 > $timeout) {
            my $desc = $o{desc} // "log matches $re";
            $self->_fail_dump("timed out after ${timeout}s waiting for $count x $re ($desc); got "
                              . scalar(@m));
            return @m if $o{soft};
            die "wait_log timed out: $desc\n";
        }
        sleep $POLL;
    }
}

# Poll until $code->() returns true; returns its value or fails/dies like
# wait_log (soft => 1: fail and return the false value).
sub wait_until {
    my ($self, $code, %o) = @_;
    my $timeout = $o{timeout} // $TIMEOUT;
    my $t0 = time;
    while (1) {
        my $v = $code->();
        return $v if $v;
        if (time - $t0 > $timeout) {
            my $desc = $o{desc} // 'condition';
            $self->_fail_dump("timed out after ${timeout}s waiting for $desc");
            return $v if $o{soft};
            die "wait_until timed out: $desc\n";
        }
        sleep $POLL;
    }
}

# Poll the log for $seconds: returns the entries since `since` that match $re
# (empty list: none appeared).  Stops early at the first match.  For the
# "this must NOT happen while ..." checks, where no log line can be awaited.
sub absent_for {
    my ($self, $re, $seconds, %o) = @_;
    my $t0 = time;
    while (1) {
        my @m = $self->grep_log($re, since => $o{since});
        return @m if @m;
        return () if time - $t0 >= $seconds;
        sleep $POLL;
    }
}

sub _parse_kv {
    my $s = shift;
    $s =~ s/, (?:context|client|server|request|host): .*\z//s;
    my %h;
    $h{$1} = $2 while $s =~ /(\w+)=(\S+)/g;
    return %h;
}

# All WMCB callback lines as hashes, in log order:
#   { event, id, prev, mine, next, pid, slot, count, t, nargs, types, tag,
#     gen, wpid, logpid, idx, line }
# Values are the strings the Lua side printed ('nil' for nil).
# Filters: since => mark, event => 'worker_start', gen => 2.
sub callbacks {
    my ($self, %o) = @_;
    my @out;
    my $demo = ($self->{cb_format} // '') eq 'demo';
    my $re = $demo ? qr/\bdemo: (\w+) (id=\S+ n_prev=.*)\z/s : qr/\bWMCB (\w+) (id=.*)\z/s;
    for my $e ($self->grep_log($demo ? qr/\bdemo: \w+ id=\S+ n_prev=/ : qr/\bWMCB \w+ id=/, since => $o{since})) {
        next unless $e->{text} =~ $re;
        my %h = (event => $1, _parse_kv($2));
        @h{qw(prev mine next)} = delete @h{qw(n_prev n_mine n_next)} if $demo;
        $h{logpid} = $e->{pid};
        $h{idx}    = $e->{idx};
        $h{line}   = $e->{line};
        if ($h{event} =~ /^master/) {
            $h{gen} = $h{id} =~ /^(\d+)$/ ? $1 : undef;
        } elsif ($h{id} =~ /^(\d+)-(\d+)$/) {
            ($h{gen}, $h{wpid}) = ($1, $2);
        }
        $self->{seen_pids}{ $h{pid} } = 1 if $h{pid} && $h{pid} =~ /^\d+$/ && $h{event} =~ /^worker/;
        push @out, \%h;
    }
    @out = grep { $_->{event} eq $o{event} } @out if defined $o{event};
    @out = grep { defined $_->{gen} && $_->{gen} == $o{gen} } @out if defined $o{gen};
    return @out;
}

# WMCB-ENTER / WMCB-LEAVE lines: { kind => ENTER|LEAVE, event, id, pid, t, idx }
sub enter_leave {
    my ($self, %o) = @_;
    my @out;
    for my $e ($self->grep_log(qr/\bWMCB-(?:ENTER|LEAVE) /, since => $o{since})) {
        next unless $e->{text} =~ /\bWMCB-(ENTER|LEAVE) (\w+) (.*)\z/s;
        push @out, { kind => $1, event => $2, _parse_kv($3), idx => $e->{idx}, logpid => $e->{pid} };
    }
    return @out;
}

# The test's own lines: markers that tests and wm_test.lua log at WARN
# (WMCB, WMCB-ENTER, WMREADY, WMBLOCK, ...) and the demo's callback lines.
our $MARKER_RE = qr/\bWM[A-Z]+(?:-[A-Z]+)?\b|\bdemo: /;

# Entries at error level or worse, minus those matching any of allow => [qr//...]
# (level => 'warn': at warn or worse, the test's own markers left out)
sub errors {
    my ($self, %o) = @_;
    my @allow = @{ $o{allow} // [] };
    my $levels = ($o{level} // 'error') eq 'warn' ? qr/^(?:warn|error|crit|alert|emerg)$/ : qr/^(?:error|crit|alert|emerg)$/;
    my @e = grep { $_->{level} =~ $levels } $self->grep_log(qr//, since => $o{since});
    @e = grep { $_->{text} !~ $MARKER_RE } @e if ($o{level} // '') eq 'warn';
    return grep { my $t = $_->{text}; !grep { $t =~ $_ } @allow } @e;
}

# Lines that matter when something fails.
sub dump_log {
    my ($self, %o) = @_;
    my @e = $self->grep_log(
        qr/WMCB |WMREADY|WMLINGER|WMBLOCK|WMVAL|\[lua\]|lua|signal|start worker|exited|reconfigur|gracefully|shutting|bind\(\)|worker.manager|resty/,
        since => $o{since});
    my @lvl = $self->errors(since => $o{since});
    my %seen;
    @e = grep { !$seen{ $_->{idx} }++ } sort { $a->{idx} <=> $b->{idx} } (@e, @lvl);
    my $max = $o{max} // 250;
    splice @e, 0, @e - $max if @e > $max;
    return join '', map { "  #$_->{idx} $_->{line}\n" } @e;
}

sub _fail_dump {
    my ($self, $msg, %o) = @_;
    Test::More::fail($msg);
    $self->{dumped} = 1;
    my $d = "---- relevant error.log entries ($self->{errlog}):\n" . $self->dump_log(max => 250);
    if ($o{stderr} && open my $fh, '<', "$self->{prefix}/logs/stderr.log") {
        local $/;
        $d .= "---- nginx stderr:\n" . (<$fh> // '');
    }
    Test::More::diag($d);
}

# ---------------------------------------------------------------- cleanup

sub cleanup {
    my $self = shift;
    return if $self->{cleaned}++;
    delete $LIVE{"$self"};
    local ($!, $?, $@);
    $self->_audit if $ENV{WM_AUDIT};
    # (the suites only: the soak, the bench and the demo read logs their own way)
    push @UNCHECKED, $self->{prefix} if $0 =~ /\.t$/ && !$self->{checked}{quiet} && -s $self->{errlog};
    # collect every nginx process of this node before killing anything
    my %kill;
    my $m = $self->{master} // $self->_read_pid;
    if ($m && $self->alive($m) && _cmdline($m) =~ /^nginx/) {
        $kill{$m} = 1;
        $kill{ $_->{pid} } = 1 for $self->children($m);
    }
    eval { $kill{$_} = 1 for $self->_known_pids };
    for my $pid (keys %kill) {
        delete $kill{$pid} unless $self->_ours($pid);
    }
    if (%kill) {
        kill 'KILL', $m if $m && $kill{$m};
        kill 'KILL', keys %kill;
        my $t0 = time;
        while (time - $t0 < 5 && grep { $self->alive($_) } keys %kill) { sleep 0.02 }
        Test::More::note("killed leftover nginx processes: " . join(' ', sort keys %kill));
    }
    my $failing = !Test::More->builder->is_passing;
    if ($failing && !$self->{dumped}++) {
        Test::More::diag("---- error.log summary ($self->{prefix}):\n" . $self->dump_log(max => 150));
    }
    if ($ENV{WM_SAVE_LOGS} && -d $ENV{WM_SAVE_LOGS} && -f $self->{errlog}) {
        # WM_SAVE_LOGS=<dir>: keep a copy of the error.log, named after the prefix
        (my $base = $self->{prefix}) =~ s{.*/}{};
        require File::Copy;
        File::Copy::copy($self->{errlog}, "$ENV{WM_SAVE_LOGS}/$base.error.log");
    }
    my $keep = $ENV{WM_KEEP} // 0;
    if ($keep eq '2' || ($keep && $failing)) {
        Test::More::diag("kept nginx prefix $self->{prefix}");
    } else {
        remove_tree($self->{prefix});
    }
}

# WM_AUDIT=<file>: on cleanup, append one line per node: the script, the
# number of callbacks in its log and which checks (WorkerManager::Check) ran
# on it, so a suite whose node escaped the invariant checker shows up.
sub _audit {
    my $self = shift;
    my $cbs = eval { scalar $self->callbacks } // 0;
    my $checked = join ',', sort keys %{ $self->{checked} // {} };
    my $inv = '';
    if ($cbs && eval { require WorkerManager::Check; 1 }) {
        my ($err, $notes) = eval { WorkerManager::Check::invariant_errors($self) };
        $inv = $err ? "\tinvariants=" . scalar(@$err) . (@$err ? " first: $err->[0]" : '')
                      . (@$notes ? "\tnotes: @$notes" : '') : "\tinvariants=died: $@";
    }
    open my $fh, '>>', $ENV{WM_AUDIT} or return;
    printf {$fh} "%s\t%s\tcallbacks=%d\tchecked=%s%s\n", $0, $self->{prefix} // '-', $cbs, $checked || '-', $inv;
    close $fh;
}

# A reader for an error.log written by someone else (a kept prefix, say):
# the log methods (entries, grep_log, callbacks, enter_leave, errors, mark)
# and WorkerManager::Check work on it; it runs and kills nothing.
#   from_log($file, cb_format => 'demo')  callbacks are nginx/demo.conf's
#                                        "demo: <event> id=.. n_prev=.." lines
#   other keys (workers, opts, exit_hook, master) as for new(), for the checks
sub from_log {
    my ($class, $file, %o) = @_;
    my $self = bless { %DEFAULTS, %o, errlog => $file, entries => [], log_off => 0, log_buf => '',
                       seen_pids => {}, cleaned => 1, prefix => undef }, $class;
    $self->{opts} //= '';
    return $self;
}

sub DESTROY {
    my $self = shift;
    $self->cleanup;
}

1;
