# The fleet's bad input (README.md, Fleet and Bad input): every bad opts.cluster is
# refused by on_init_by_lua, so nginx does not start, with an error that
# names the option and what is wrong with it, at the caller's line (the
# user's init_by_lua block, not a line of the module):
#
#   cluster not a table; redis missing or not a table; none of host, path
#   and sentinels, or several; sentinels without master_name, an empty or
#   bad sentinels list, a sentinel without host or with a bad port; a bad
#   port (0, 70000, "x", 1.5 ...); a path that is no unix socket path; a
#   bad database, pool_size, username or password (whose value is never
#   echoed); ssl / ssl_verify not boolean; ssl = true with lua-resty-redis
#   older than 0.28 (Debian's 0.27); bad connect_timeout / read_timeout; a
#   node name with a space or a control character (shown escaped), empty,
#   or over 200 bytes; a prefix with a brace; interval / failed 0, negative,
#   NaN, a string, too small or too big; on_join / on_leave not functions;
#   lua-resty-redis not installed (the error says how to install it).
#
# Each case is one short nginx start that fails (~25 ms): the message is
# read from nginx's stderr ("init_by_lua error: <position>: <message>") and
# compared in full; <position> must be the nginx.conf line of the call.
# Values at the edge of what is allowed are shown to pass by a case whose
# only bad option comes later.
#
# The good cases: a node without opts.cluster never loads resty.redis nor
# nginx.redis and nodes() is empty; a cluster with only a Redis address
# starts with the defaults (node "<hostname>:<nginx prefix>", key prefix
# "wm"), joins, is listed by nodes() and leaves on QUIT. Singleton names
# starting with "[worker-manager]" (the fleet's agent is one) are refused by
# singleton(), every() and holds() as the module's own.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::Redis;
use WorkerManager::BadInput;
use WorkerManager::FleetCheck;

# ------------------------------------------------------------ the cases

# A good address: never contacted, every case fails before the first connection.
my $R = '{ host = "127.0.0.1", port = 6379 }';
my $S = '{ { host = "127.0.0.1", port = 26379 } }';
my $SECONDS = 'a number of seconds from 0.01 to 3600';
my $PORT = 'a port number from 1 to 65535';
my $NODE = 'a name of 1 to 200 bytes without spaces or control characters';
my $PREFIX = 'a string without braces, spaces or control characters';
my $REDIS = 'a table with host and port, path, or sentinels and master_name';
my $ONE = 'opts.cluster.redis must give exactly one of host (with port), path (a unix socket) or sentinels (with master_name)';
my $SENTINELS = 'opts.cluster.redis.sentinels must be a non-empty list of { host = ..., port = ... }';
my $MISSING = 'package.preload["resty.redis"] = function() error("not installed") end '
            . 'package.preload["nginx.redis"] = function() error("not installed") end';
my $INSTALL = 'opts.cluster needs lua-resty-redis, found neither resty.redis nor nginx.redis: install it with '
            . '`luarocks install lua-resty-redis` (OpenResty has it already; Debian: apt install lua-nginx-redis)';

my @CASES;    # [label, opts.cluster (Lua), the whole message (string: exact; qr: anchored), init_extra]
sub bad { push @CASES, [@_] }

# opts.cluster itself
bad('cluster string', '"redis://127.0.0.1:6379"', 'opts.cluster must be a table, got string');
bad('cluster number', '6379', 'opts.cluster must be a table, got number');
bad('cluster boolean', 'true', 'opts.cluster must be a table, got boolean');

# redis: missing, not a table, no address, several
bad('redis missing', '{}', "opts.cluster.redis must be $REDIS, got nil");
bad('redis missing, host at the wrong level', '{ host = "127.0.0.1", port = 6379 }', "opts.cluster.redis must be $REDIS, got nil");
bad('redis string', '{ redis = "127.0.0.1:6379" }', qq{opts.cluster.redis must be $REDIS, got "127.0.0.1:6379"});
bad('redis number', '{ redis = 6379 }', "opts.cluster.redis must be $REDIS, got 6379");
bad('redis empty', '{ redis = {} }', "$ONE, got none");
bad('redis port only', '{ redis = { port = 6379, password = "secret" } }', "$ONE, got none");
bad('redis host and path', '{ redis = { host = "127.0.0.1", path = "unix:/tmp/redis.sock" } }', "$ONE, got several");
bad('redis host and sentinels', qq{{ redis = { host = "127.0.0.1", sentinels = $S, master_name = "m" } }}, "$ONE, got several");
bad('redis path and sentinels', qq{{ redis = { path = "/tmp/redis.sock", sentinels = $S, master_name = "m" } }}, "$ONE, got several");
bad('redis all three', qq{{ redis = { host = "127.0.0.1", path = "/tmp/redis.sock", sentinels = $S, master_name = "m" } }},
    "$ONE, got several");
bad('redis host empty', '{ redis = { host = "" } }', 'opts.cluster.redis.host must be a non-empty string, got ""');
bad('redis host number', '{ redis = { host = 127 } }', 'opts.cluster.redis.host must be a non-empty string, got 127');

# sentinels
bad('sentinels without master_name', qq{{ redis = { sentinels = $S } }},
    'opts.cluster.redis.master_name must name the master the sentinels watch');
bad('master_name empty', qq{{ redis = { sentinels = $S, master_name = "" } }},
    'opts.cluster.redis.master_name must be a non-empty string, got ""');
bad('sentinels empty', '{ redis = { sentinels = {}, master_name = "m" } }', "$SENTINELS, got an empty table");
bad('sentinels one table, not a list', '{ redis = { sentinels = { host = "127.0.0.1", port = 26379 }, master_name = "m" } }',
    "$SENTINELS, got table");
bad('sentinels string', '{ redis = { sentinels = "127.0.0.1:26379", master_name = "m" } }', qq{$SENTINELS, got "127.0.0.1:26379"});
bad('sentinel without host', '{ redis = { sentinels = { { port = 26379 } }, master_name = "m" } }',
    'opts.cluster.redis.sentinels[1] must be a table with a host, got table');
bad('second sentinel without host', '{ redis = { sentinels = { { host = "a" }, { port = 26380 } }, master_name = "m" } }',
    'opts.cluster.redis.sentinels[2] must be a table with a host, got table');
bad('sentinel host empty', '{ redis = { sentinels = { { host = "" } }, master_name = "m" } }',
    'opts.cluster.redis.sentinels[1] must be a table with a host, got table');
bad('sentinel a string', '{ redis = { sentinels = { "127.0.0.1:26379" }, master_name = "m" } }',
    'opts.cluster.redis.sentinels[1] must be a table with a host, got "127.0.0.1:26379"');
bad('sentinel port 0', '{ redis = { sentinels = { { host = "a", port = 0 } }, master_name = "m" } }',
    "opts.cluster.redis.sentinels[1].port must be $PORT, got 0");
bad('sentinel port string', '{ redis = { sentinels = { { host = "a" }, { host = "b", port = "26379" } }, master_name = "m" } }',
    qq{opts.cluster.redis.sentinels[2].port must be $PORT, got "26379"});

# port
for ([0, '0'], [70000, '70000'], [65536, '65536'], ['"x"', '"x"'], ['"6379"', '"6379"'], [1.5, '1.5'], [-1, '-1'],
     ['0/0', qr/-?nan/], ['true', 'boolean']) {
    my ($v, $got) = @$_;
    bad("port $v", qq{{ redis = { host = "127.0.0.1", port = $v } }},
        ref $got ? qr/\Qopts.cluster.redis.port must be $PORT, got \E$got/ : "opts.cluster.redis.port must be $PORT, got $got");
}

# path
my $UNIX = 'a unix socket path ("unix:/..." or "/...")';
bad('path relative', '{ redis = { path = "redis.sock" } }', qq{opts.cluster.redis.path must be $UNIX, got "redis.sock"});
bad('path host:port', '{ redis = { path = "127.0.0.1:6379" } }', qq{opts.cluster.redis.path must be $UNIX, got "127.0.0.1:6379"});
bad('path empty', '{ redis = { path = "" } }', 'opts.cluster.redis.path must be a non-empty string, got ""');

# database, pool_size, username, password (a password's value never shows)
my $DB = 'opts.cluster.redis.database must be a database number (0 or more)';
bad('database -1', qq{{ redis = { host = "127.0.0.1", database = -1 } }}, "$DB, got -1");
bad('database 1.5', qq{{ redis = { host = "127.0.0.1", database = 1.5 } }}, "$DB, got 1.5");
bad('database string', qq{{ redis = { host = "127.0.0.1", database = "1" } }}, qq{$DB, got "1"});
bad('database NaN', qq{{ redis = { host = "127.0.0.1", database = 0/0 } }}, qr/\Q$DB, got \E-?nan/);
bad('pool_size 0', qq{{ redis = { host = "127.0.0.1", pool_size = 0 } }},
    'opts.cluster.redis.pool_size must be a whole number of connections (1 or more), got 0');
bad('username empty', qq{{ redis = { host = "127.0.0.1", username = "", password = "secret" } }},
    'opts.cluster.redis.username must be a non-empty string, got ""');
bad('password empty', qq{{ redis = { host = "127.0.0.1", password = "" } }},
    'opts.cluster.redis.password must be a non-empty string, got ""');
bad('password a number (not echoed)', qq{{ redis = { host = "127.0.0.1", password = 271828 } }},
    'opts.cluster.redis.password must be a non-empty string, got number');

# ssl
bad('ssl string', qq{{ redis = { host = "127.0.0.1", ssl = "yes" } }}, 'opts.cluster.redis.ssl must be a boolean, got "yes"');
bad('ssl number', qq{{ redis = { host = "127.0.0.1", ssl = 1 } }}, 'opts.cluster.redis.ssl must be a boolean, got 1');
bad('ssl_verify string', qq{{ redis = { host = "127.0.0.1", ssl = true, ssl_verify = "no" } }},
    'opts.cluster.redis.ssl_verify must be a boolean, got "no"');
bad('ssl with lua-resty-redis 0.27', qq{{ redis = { host = "127.0.0.1", ssl = true } }},
    'opts.cluster.redis.ssl needs lua-resty-redis 0.28 or newer, found 0.27',
    'package.preload["resty.redis"] = function() return { _VERSION = "0.27" } end');
{   # the real thing: Debian's lua-nginx-redis 0.27 (resty.redis hidden, so that nginx.redis is the one found)
    my ($debian) = slurp('/usr/share/lua/5.1/nginx/redis.lua') =~ /_VERSION\s*=\s*['"]([\d.]+)['"]/;
    if (($debian // '') eq '0.27') {
        bad("ssl with Debian's nginx.redis 0.27", qq{{ redis = { host = "127.0.0.1", ssl = true } }},
            'opts.cluster.redis.ssl needs lua-resty-redis 0.28 or newer, found 0.27',
            'package.preload["resty.redis"] = function() error("not installed") end');
    } else {
        # (make test installs lua-nginx-redis: a missing one is a failure;
        # a newer one than Debian 12's would take ssl, which the case above
        # with a fake 0.27 still covers)
        ok(defined $debian, "Debian's lua-nginx-redis is installed (found version " . ($debian // 'none') . ')');
    }
}

# timeouts
for my $t (qw(connect_timeout read_timeout)) {
    for ([0, '0'], [-1, '-1'], [0.001, '0.001'], [3601, '3601'], ['"1"', '"1"'], ['0/0', qr/-?nan/], ['math.huge', 'inf']) {
        my ($v, $got) = @$_;
        bad("$t $v", qq{{ redis = { host = "127.0.0.1", $t = $v } }},
            ref $got ? qr/\Qopts.cluster.redis.$t must be $SECONDS, got \E$got/ : "opts.cluster.redis.$t must be $SECONDS, got $got");
    }
}

# node: control characters are shown escaped, as string.format("%q") does
bad('node with a space', qq{{ redis = $R, node = "edge 1" }}, qq{opts.cluster.node must be $NODE, got "edge 1"});
bad('node with a tab', qq{{ redis = $R, node = "edge\\tone" }}, qq{opts.cluster.node must be $NODE, got "edge\\9one"});
bad('node with a control character', qq{{ redis = $R, node = "edge\\1one" }}, qq{opts.cluster.node must be $NODE, got "edge\\1one"});
bad('node of 201 bytes', qq{{ redis = $R, node = ("n"):rep(201) }}, qq{opts.cluster.node must be $NODE, got "} . ('n' x 201) . '"');
bad('node empty', qq{{ redis = $R, node = "" }}, 'opts.cluster.node must be a non-empty string, got ""');
bad('node number', qq{{ redis = $R, node = 1 }}, 'opts.cluster.node must be a non-empty string, got 1');

# prefix: the keys are "{prefix}:...", one hash tag
bad('prefix {wm}', qq{{ redis = $R, prefix = "{wm}" }}, qq{opts.cluster.prefix must be $PREFIX, got "{wm}"});
bad('prefix with }', qq[{ redis = $R, prefix = "wm}" }], qq[opts.cluster.prefix must be $PREFIX, got "wm}"]);
bad('prefix with a space', qq{{ redis = $R, prefix = "w m" }}, qq{opts.cluster.prefix must be $PREFIX, got "w m"});
bad('prefix empty', qq{{ redis = $R, prefix = "" }}, 'opts.cluster.prefix must be a non-empty string, got ""');

# interval, failed
for my $f (qw(interval failed)) {
    for ([0, '0'], [-1, '-1'], [0.001, '0.001'], [3601, '3601'], ['"2"', '"2"'], ['0/0', qr/-?nan/], ['math.huge', 'inf'],
         ['-math.huge', '-inf'], ['{}', 'table']) {
        my ($v, $got) = @$_;
        bad("$f $v", qq{{ redis = $R, $f = $v }},
            ref $got ? qr/\Qopts.cluster.$f must be $SECONDS, got \E$got/ : "opts.cluster.$f must be $SECONDS, got $got");
    }
}

# on_join, on_leave
for my $f (qw(on_join on_leave)) {
    for (['"f"', '"f"'], ['42', '42'], ['true', 'boolean'], ['{}', 'table'],
         ['setmetatable({}, { __call = function() end })', 'table']) {
        my ($v, $got) = @$_;
        bad("$f $v", qq{{ redis = $R, $f = $v }}, "opts.cluster.$f must be a function or nil, got $got");
    }
}

# lua-resty-redis under neither of its names
bad('lua-resty-redis not installed', qq{{ redis = $R }}, $INSTALL, $MISSING);
bad('lua-resty-redis not installed, sentinels', qq{{ redis = { sentinels = $S, master_name = "m" } }}, $INSTALL, $MISSING);

# the edges of what is allowed pass: the error is about the one bad option after them
bad('allowed: node of 200 bytes', qq{{ redis = $R, node = ("n"):rep(200), interval = 0 }},
    "opts.cluster.interval must be $SECONDS, got 0");
bad('allowed: interval 0.01, failed 3600', qq{{ redis = $R, interval = 0.01, failed = 3600, on_join = 1 }},
    'opts.cluster.on_join must be a function or nil, got 1');
bad('allowed: port 1, timeouts 0.01 and 3600', '{ redis = { host = "h", port = 1, connect_timeout = 0.01, read_timeout = 3600 }, on_leave = 1 }',
    'opts.cluster.on_leave must be a function or nil, got 1');
bad('allowed: port 65535, database 15, ssl false', '{ redis = { host = "h", port = 65535, database = 15, ssl = false }, failed = 0 }',
    "opts.cluster.failed must be $SECONDS, got 0");
bad('allowed: path unix:/...', '{ redis = { path = "unix:/tmp/redis.sock" }, interval = -1 }',
    "opts.cluster.interval must be $SECONDS, got -1");
bad('allowed: path /...', '{ redis = { path = "/tmp/redis.sock" }, interval = -1 }',
    "opts.cluster.interval must be $SECONDS, got -1");
bad('allowed: sentinels with master_name', qq{{ redis = { sentinels = { { host = "a" }, { host = "b", port = 26380 } }, master_name = "m" }, prefix = "{x}" }},
    qq{opts.cluster.prefix must be $PREFIX, got "{x}"});
bad('allowed: prefix and node with punctuation', qq{{ redis = $R, node = "edge-1.example:/usr/local/openresty/nginx/", prefix = "app:wm", on_join = "x" }},
    'opts.cluster.on_join must be a function or nil, got "x"');
# (checks run in order: a bad option before the library's absence wins)
bad('bad interval before a missing library', qq{{ redis = $R, interval = 0 }}, "opts.cluster.interval must be $SECONDS, got 0", $MISSING);

# ------------------------------------------------------------ one start each

for my $c (@CASES) {
    my ($label, $cluster, $want, $extra) = @$c;
    my $n = WorkerManager::Nginx->new(workers => 1, init_extra => $extra // '',
                                      opts => qq{{ shm = "wm", interval = 1, cluster = $cluster }});
    my $rc = $n->start(expect_fail => 1);
    isnt($rc, 0, "[$label] nginx refuses to start");
    my ($where, $msg, $all, $stderr) = init_error($n);
    if (!defined $msg) {
        fail("[$label] the init_by_lua error") for 1, 2;
        diag $stderr;
    } else {
        if (ref $want) {
            like($msg, qr/\A$want\z/, "[$label] $want");
        } else {
            is($msg, $want, "[$label] $want");
        }
        my $src = conf_line($n, $where);
        ok(defined $src && $src =~ /\bon_init_by_lua\(/, "[$label] at the caller's line, in init_by_lua")
            or diag "where=" . ($where // 'none') . " line: " . ($src // 'none');
    }
    no_errors_ok($n, "[$label] nothing else logged", defined $all ? qr/init_by_lua error: \Q$all\E/ : ());
}

# ------------------------------------------------------------ the good cases

# try(name, call) (WorkerManager::BadInput) logs each bad call's outcome.
my $TRY = <<'LUA' . $TRY_LUA . <<'LUA';
        local M = require "resty.worker.manager"
LUA
        local job = { start = function() end }
LUA

my $FLEET = <<'CONF';
        location = /fleet {
            content_by_lua_block {
                local M = require "resty.worker.manager"
                for _, name in ipairs({ "resty.redis", "nginx.redis" }) do
                    ngx.say("loaded ", name, " ", type(package.loaded[name]))
                end
                for _, m in ipairs(M.nodes()) do
                    ngx.say("node ", m.node, " ", m.generation, " ", m.workers)
                end
                ngx.say("nodes ", #M.nodes())
            }
        }
CONF

# --- no opts.cluster: lua-resty-redis is never loaded, nodes() is empty
{
    my $n = WorkerManager::Nginx->new(workers => 1, server_extra => $FLEET);
    $n->start;
    my ($code, $body) = $n->get('/fleet');
    is($code, 200, '[no cluster] GET /fleet');
    like($body, qr/^loaded resty\.redis nil$/m, '[no cluster] resty.redis is never loaded');
    like($body, qr/^loaded nginx\.redis nil$/m, '[no cluster] nginx.redis is never loaded');
    like($body, qr/^nodes 0$/m, '[no cluster] nodes() is empty');
    $n->signal('QUIT');
    ok($n->wait_exit, '[no cluster] QUIT stops nginx');
    no_errors_ok($n, '[no cluster] no errors');
}

# --- a cluster with only a Redis address: the defaults; and reserved names
{
    my $redis = WorkerManager::Redis->new;
    $redis->start;
    my $reserved = 'singleton: names starting with "[worker-manager]" are the module\'s own, got string ';
    my %want = (
        'singleton agent' => $reserved . '"[worker-manager] fleet"',
        'singleton prefix' => $reserved . '"[worker-manager]"',
        'singleton mine' => $reserved . '"[worker-manager]mine"',
        'every agent' => 'every: names starting with "[worker-manager]" are the module\'s own, got string "[worker-manager] fleet"',
        'holds agent' => 'holds: names starting with "[worker-manager]" are the module\'s own, got string "[worker-manager] fleet"',
    );
    my $n = WorkerManager::Nginx->new(
        workers => 2,
        opts => sprintf('{ shm = "wm", interval = 1, cluster = { redis = %s } }', $redis->address),
        init_worker_after => $TRY . <<'LUA',
        try("singleton agent", function() M.singleton("[worker-manager] fleet", job) end)
        try("singleton prefix", function() M.singleton("[worker-manager]", job) end)
        try("singleton mine", function() M.singleton("[worker-manager]mine", job) end)
        try("every agent", function() M.every("[worker-manager] fleet", 1, function() end) end)
        try("holds agent", function() M.holds("[worker-manager] fleet") end)
        try("holds not at the start", function() assert(M.holds("mine [worker-manager]") == false) end)
LUA
        server_extra => $FLEET,
    );
    $n->start;

    my $host = slurp('/proc/sys/kernel/hostname');
    chomp $host;
    $host = 'localhost' if $host eq '';    # (nginx clears $HOSTNAME: the module falls back to "localhost")
    my $name = $host . ':' . $n->prefix . '/';    # nginx runs with -p <prefix>/
    my $body = $n->wait_until(sub {
        my ($code, $b) = $n->get('/fleet');
        return $b =~ /^node \Q$name\E 1 2$/m ? $b : undef;
    }, desc => "[defaults] nodes() lists '$name' in generation 1 with 2 workers");
    ok(defined $body, "[defaults] the node joined as '$name' (<hostname>:<nginx prefix>)");
    like($body // '', qr/^nodes 1$/m, '[defaults] nodes(): this node only');
    like($body // '', qr/^loaded (?:resty|nginx)\.redis table$/m, '[defaults] lua-resty-redis is loaded');
    is_deeply($redis->cmd('ZRANGE', '{wm}:members', 0, -1), [$name],
              '[defaults] the node is a member under the default prefix, by its default name');
    my @keys = @{ $redis->cmd('KEYS', '*') };
    is(scalar(grep { !/^\{wm\}:/ } @keys), 0, '[defaults] every key is under {wm}:') or diag "@keys";

    my $seen = bad_calls($n);
    for my $what (sort keys %want) {
        my @s = @{ $seen->{$what} // [] };
        is(scalar @s, 2, "[reserved] $what: tried in both workers") or next;
        is(scalar(grep { $_->{ok} eq 'false' && $_->{at} eq 'true' } @s), 2, "[reserved] $what: raises at the caller's line");
        is(scalar(grep { $_->{msg} ne $want{$what} } @s), 0, "[reserved] $what: $want{$what}")
            or diag join "\n", map { $_->{msg} } @s;
    }
    is(join(',', map { $_->{ok} } @{ $seen->{'holds not at the start'} // [] }), 'true,true',
       '[reserved] a name with "[worker-manager]" later in it is the user\'s');

    $n->signal('QUIT');
    ok($n->wait_exit, '[defaults] QUIT stops nginx');
    is($redis->cmd('ZCARD', '{wm}:members'), 0, '[defaults] the node left on QUIT');
    no_errors_ok($n, '[defaults] no errors');
    $redis->stop;
}

# --- user code that raises: on_join / on_leave, a cluster singleton's
# start, stop and fn. Each error is logged at ERR with a traceback, naming
# what ran (the member, or the job's name, worker pid and token); the
# events after a raising callback still run, a raising start still holds
# the job, a raising stop still releases it, a raising fn runs again.
{
    my $label = 'raising user code';
    my $redis = WorkerManager::Redis->new;
    $redis->start;
    my %n = map { $_ => fleet_node($_, redis => $redis->address, interval => 0.5, failed => 1,
                                   recorders => '{ raise = "boom in fleet" }',
        init_worker_after => q{local M = require("resty.worker.manager")
        M.singleton("cjob", { scope = "cluster", start = wm.sj("start", { scope = "cluster", raise = "boom in start" }),
                              stop = wm.sj("stop", { scope = "cluster", raise = "boom in stop" }) })
        M.every("cfn", 0.2, wm.sj("fn", { scope = "cluster", raise = "boom in fn" }), { scope = "cluster" })}) }
             qw(e1 e2);
    my $errors = sub {    # the ERR lines of one raised error, each with its traceback
        my ($n, $re) = @_;
        return grep { $_->{level} eq 'error' && $_->{text} =~ /stack traceback/ } $n->grep_log($re);
    };
    $n{e1}->start;
    saw_event($n{e1}, 'join e1 1', $label);
    $n{e1}->wait_until(sub { $errors->($n{e1}, qr/fleet: on_join\('e1', 1\) failed: .*boom in fleet/) },
                       desc => "[$label] the raising on_join logged at ERR, with a traceback");
    $n{e2}->start;
    saw_event($n{e1}, 'join e2 2', "$label: the next event still runs after a raising on_join");

    # the cluster singleton: where its start ran, it stays
    my ($start, $holder);
    my $holding = $n{e1}->wait_until(sub {
        for my $k (qw(e1 e2)) {
            my ($e) = $n{$k}->grep_log(qr/WMSJ-LEAVE start name=cjob token=\d+ /);
            return [$k, $e] if $e;
        }
        return undef;
    }, desc => "[$label] cjob's start ran");
    ($holder, $start) = @$holding;
    my ($token, $pid) = $start->{text} =~ /token=(\d+) pid=(\d+)/;
    $n{$holder}->wait_until(sub {
        $errors->($n{$holder}, qr/cluster singleton 'cjob' start failed in worker $pid \(token $token\): .*boom in start/)
    }, desc => "[$label] the raising start logged at ERR with name, worker pid and token, and a traceback");
    my $mark = { map { $_ => $n{$_}->mark } qw(e1 e2) };
    my @again = $n{$holder}->absent_for(qr/WMSJ-ENTER start name=cjob /, 1.5, since => $mark->{$holder});
    is(scalar @again, 0, "[$label] a raising start still holds cjob: no other start on its node");
    my ($other) = grep { $_ ne $holder } qw(e1 e2);
    is(scalar $n{$other}->grep_log(qr/WMSJ-ENTER start name=cjob /, since => $mark->{$other}), 0,
       "[$label] ... nor on the other node");
    for my $k (qw(e1 e2)) {
        my ($fn) = $n{$k}->grep_log(qr/WMSJ-LEAVE fn name=cfn /) or next;
        my ($fn_pid) = $fn->{text} =~ /pid=(\d+)/;
        $n{$k}->wait_until(sub {
            $errors->($n{$k}, qr/cluster singleton 'cfn' fn failed in worker $fn_pid \(token \d+\): .*boom in fn/) >= 3
        }, desc => "[$label] a raising fn: logged at each run, and run again");
    }

    # QUIT of cjob's node: its raising stop still releases cjob to the other node
    $n{$holder}->signal('QUIT');
    ok($n{$holder}->wait_exit, "[$label] QUIT stops $holder");
    ok(scalar $errors->($n{$holder}, qr/cluster singleton 'cjob' stop failed in worker $pid \(token $token\): .*boom in stop/),
       "[$label] the raising stop logged at ERR, with a traceback");
    $n{$other}->wait_log(qr/WMSJ-ENTER start name=cjob token=(?!$token )\d+ /, since => $mark->{$other},
                         desc => "[$label] a raising stop still releases cjob: $other starts it");
    saw_event($n{$other}, "leave $holder 1 stopped", $label);
    $n{$other}->wait_until(sub {
        $errors->($n{$other}, qr/fleet: on_leave\('$holder', 1, "stopped"\) failed: .*boom in fleet/)
    }, desc => "[$label] the raising on_leave logged at ERR, with a traceback");
    $n{$other}->signal('QUIT');
    ok($n{$other}->wait_exit, "[$label] QUIT stops $other");
    my $boom = qr/(?:fleet: on_(?:join|leave)\(.*\) failed|cluster singleton 'c(?:job|fn)' (?:start|stop|fn) failed in worker \d+ \(token \d+\)): .*boom in/;
    for my $k (qw(e1 e2)) {
        checker_ok($n{$k}, label => "$label $k");
        no_errors_ok($n{$k}, "[$label $k] no errors but the raising callbacks", $boom);
    }
    $redis->stop;
}

done_testing;
