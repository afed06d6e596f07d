# Issue #6 item 4: bad input at every public entry point raises a Lua error
# that names the problem, reported at the CALLER's line, and a caught bad call
# registers nothing (a later good call works, the node runs with exact counts).
#
#   on_init_by_lua(opts, master_start, master_exit)   opts, opts.shm,
#       opts.interval, opts.failed, opts.on_crash, both callbacks, wrong phase,
#       twice
#   on_init_worker_by_lua(worker_start, worker_exit)  both callbacks, wrong
#       phase, twice, without on_init_by_lua
#   on_exit_worker_by_lua()                            wrong phase
#   status()                                           nil + error (no raise)
#                                                      before on_init_by_lua
#
# Every bad call is `try(name, function() M.entry(...) end)`, the closure on
# ONE line: the expected error position is the closure's chunk and line, e.g.
# "init_by_lua(nginx.conf:28):17: ".  The Perl side also reads that line of
# nginx.conf and checks it holds the call.
#
# Nodes: A the whole matrix (init, init_worker, a timer, every request phase,
# exit_worker), then QUIT with exact counts; B on_init_by_lua never succeeded;
# C uncaught errors in init_by_lua (nginx refuses to start, position on
# stderr); R a HUP with bad opts is refused and the node goes on; E finite
# values that nginx cannot use (rejected: out of the 0.001 .. 31536000 s range).
#
# WM_BAD_TABLE=file: also write the markdown table (entry point | bad input |
# message) of every error seen, for the README.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::BadInput;

# ------------------------------------------------------------ Lua helpers

# Defined at the top of every Lua block.  `bad` is a recorder that must never
# run: every bad call passes it where a good callback is allowed.
my $HELPER = <<'LUA' . $TRY_LUA . <<'LUA';
        local M = require "resty.worker.manager"
        local wm = require "wm_test"
        local bad = wm.rec("bad")
        local callable = setmetatable({}, { __call = function() end })
        local function esc(s) return (tostring(s):gsub("\n", "\\n")) end
LUA
        local function try_status(name)
            local ok, a, b = pcall(M.status)
            ngx.log(ngx.WARN, "WMSTATUS ", name, " raised=", tostring(not ok), " r1=", type(a), " r2=", type(b),
                    " err=<<", esc(b), ">>")
        end
LUA

# ------------------------------------------------------------ the matrix

my %DIRECTIVE = (on_init_by_lua => 'init_by_lua*', on_init_worker_by_lua => 'init_worker_by_lua*',
                 on_exit_worker_by_lua => 'exit_worker_by_lua*');
my %CALL = (    # a call of each entry point that is fine but for the phase
    on_init_by_lua        => 'M.on_init_by_lua({ shm = "wm", interval = 1 }, bad, bad)',
    on_init_worker_by_lua => 'M.on_init_worker_by_lua(bad, bad)',
    on_exit_worker_by_lua => 'M.on_exit_worker_by_lua()',
);

# [label, Lua expression, type() of it]
my @OPTS    = (['nil', 'nil', 'nil'], ['string', '"wm"', 'string'], ['number', '42', 'number'],
               ['boolean', 'true', 'boolean']);
my @SHM     = (['missing', '{ interval = 1 }', 'nil'], ['number', '{ shm = 42 }', 'number'],
               ['table', '{ shm = {} }', 'table'], ['boolean', '{ shm = true }', 'boolean']);
# [label, Lua value, how the message must end: the type, and the value where it says something]
my @SECONDS = (['zero', '0', 'number 0'], ['negative', '-1', 'number -1'], ['string', '"10"', 'string "10"'],
               ['nan', '0/0', 'number -?nan'], ['huge', 'math.huge', 'number inf'],
               ['neg_huge', '-math.huge', 'number -inf'], ['boolean', 'true', 'boolean true'], ['table', '{}', 'table']);
my @CB      = (['table', '{}', 'table'], ['callable_table', 'callable', 'table'], ['string', '"f"', 'string'],
               ['number', '42', 'number'], ['true', 'true', 'boolean'], ['false', 'false', 'boolean']);

my @cases;    # { name, entry, input, want => [qr], phase }
my %lua;      # block => [ Lua lines ]

sub bad_case {
    my ($block, $name, $entry, $input, $call, @want) = @_;
    push @cases, { name => $name, entry => $entry, input => $input, want => \@want };
    push @{ $lua{$block} }, qq{try("$name", function() $call end)};
}

# ---- init_by_lua: options, callbacks, wrong entry points
for (@OPTS) {
    my ($l, $v, $t) = @$_;
    bad_case(init => "init.opts.$l", 'on_init_by_lua', "opts = $v", "M.on_init_by_lua($v, bad, bad)",
             qr/\bopts\b/, qr/\btable\b/, qr/\bgot $t\b/);
}
for (@SHM) {
    my ($l, $v, $t) = @$_;
    bad_case(init => "init.shm.$l", 'on_init_by_lua', "opts = $v", "M.on_init_by_lua($v, bad, bad)",
             qr/\bopts\.shm\b/, qr/lua_shared_dict/, qr/\bgot $t\b/);
}
bad_case(init => 'init.shm.unknown', 'on_init_by_lua', 'opts = { shm = "foo" }',
         'M.on_init_by_lua({ shm = "foo", interval = 1 }, bad, bad)', qr/unknown shm 'foo'/);
bad_case(init => 'init.shm.empty', 'on_init_by_lua', 'opts = { shm = "" }',
         'M.on_init_by_lua({ shm = "", interval = 1 }, bad, bad)', qr/unknown shm ''/);
for (@SECONDS) {
    my ($l, $v, $t) = @$_;
    bad_case(init => "init.interval.$l", 'on_init_by_lua', "opts.interval = $v",
             qq{M.on_init_by_lua({ shm = "wm", interval = $v }, bad, bad)},
             qr/\bopts\.interval\b/, qr/number of seconds from 0\.001 to 31536000/, qr/, got $t$/);
    bad_case(init => "init.failed.$l", 'on_init_by_lua', "opts.failed = $v",
             qq{M.on_init_by_lua({ shm = "wm", interval = 1, failed = $v }, bad, bad)},
             qr/\bopts\.failed\b/, qr/number of seconds from 0\.001 to 31536000/, qr/, got $t$/);
}
for (@CB) {
    my ($l, $v, $t) = @$_;
    bad_case(init => "init.on_crash.$l", 'on_init_by_lua', "opts.on_crash = $v",
             qq{M.on_init_by_lua({ shm = "wm", interval = 1, on_crash = $v }, bad, bad)},
             qr/\bopts\.on_crash\b/, qr/function or nil/, qr/\bgot $t\b/);
    bad_case(init => "init.master_start.$l", 'on_init_by_lua', "master_start = $v",
             qq{M.on_init_by_lua({ shm = "wm", interval = 1 }, $v, bad)},
             qr/\bmaster_start\b/, qr/function or nil/, qr/\bgot $t\b/);
    bad_case(init => "init.master_exit.$l", 'on_init_by_lua', "master_exit = $v",
             qq{M.on_init_by_lua({ shm = "wm", interval = 1 }, bad, $v)},
             qr/\bmaster_exit\b/, qr/function or nil/, qr/\bgot $t\b/);
}

sub phase_case {
    my ($block, $phase, $entry, $cond) = @_;
    bad_case($block => "$phase.$entry", $entry, "called in phase '$phase'", $CALL{$entry},
             qr/\Q$DIRECTIVE{$entry}\E/, qr/phase '\Q$phase\E'/);
}
phase_case(init => 'init', $_) for qw(on_init_worker_by_lua on_exit_worker_by_lua);

# ---- init_worker_by_lua (slot 0 only; every slot makes the good call)
phase_case(init_worker => 'init_worker', $_) for qw(on_init_by_lua on_exit_worker_by_lua);
for (@CB) {
    my ($l, $v, $t) = @$_;
    bad_case(init_worker => "init_worker.worker_start.$l", 'on_init_worker_by_lua', "worker_start = $v",
             "M.on_init_worker_by_lua($v, bad)", qr/\bworker_start\b/, qr/function or nil/, qr/\bgot $t\b/);
    bad_case(init_worker => "init_worker.worker_exit.$l", 'on_init_worker_by_lua', "worker_exit = $v",
             "M.on_init_worker_by_lua(bad, $v)", qr/\bworker_exit\b/, qr/function or nil/, qr/\bgot $t\b/);
}

# ---- a timer (started in init_worker), every request phase, exit_worker
my @REQUEST_PHASES = qw(set rewrite access content header_filter body_filter log);
for my $phase ('timer', @REQUEST_PHASES, 'exit_worker') {
    for my $entry (sort keys %CALL) {
        next if $phase eq 'exit_worker' && $entry eq 'on_exit_worker_by_lua';
        phase_case($phase => $phase, $entry);
    }
}

# ---- twice, and calls that come after all the bad ones
my @TWICE = (
    { name => 'init.twice', entry => 'on_init_by_lua', input => 'a second call',
      want => [qr/\btwice\b/] },
    { name => 'init.twice_bad_opts', entry => 'on_init_by_lua', input => 'a second call (with opts = nil)',
      want => [qr/\btwice\b/] },
    { name => 'init_worker.twice', entry => 'on_init_worker_by_lua', input => 'a second call',
      want => [qr/\btwice\b/] },
    { name => 'init_worker.twice_bad_cb', entry => 'on_init_worker_by_lua',
      input => 'a second call (with worker_start = 42)', want => [qr/\btwice\b/] },
);
push @cases, @TWICE;

my $lines = sub { join '', map { "        $_\n" } @{ $lua{ $_[0] } // [] } };

my $init = $HELPER . <<"LUA";
        try_status("init.before")
${\ $lines->('init')}
        try_status("init.after_bad")
        try("init.good", function() M.on_init_by_lua({ shm = "wm", interval = 1 }, wm.rec("master_start"), wm.rec("master_exit")) end)
        try_status("init.after_good")
        try("init.twice", function() M.on_init_by_lua({ shm = "wm", interval = 1 }, bad, bad) end)
        try("init.twice_bad_opts", function() M.on_init_by_lua(nil, bad, bad) end)
LUA

my $timer = $lines->('timer');
my $init_worker = $HELPER . <<"LUA";
        local slot = ngx.worker.id()
        if slot == 0 then
            try_status("init_worker.before")
${\ $lines->('init_worker')}
        end
        try("init_worker.good." .. slot, function() M.on_init_worker_by_lua(wm.rec("worker_start"), wm.rec("worker_exit")) end)
        if slot == 0 then
            try("init_worker.twice", function() M.on_init_worker_by_lua(bad, bad) end)
            try("init_worker.twice_bad_cb", function() M.on_init_worker_by_lua(42, bad) end)
            assert(ngx.timer.at(0, function()
$timer
                try_status("timer")
                ngx.log(ngx.WARN, "WMTIMER done")
            end))
        end
LUA

my $exit_worker = $HELPER . <<"LUA";
        if ngx.worker.id() == 0 then
${\ $lines->('exit_worker')}
            try_status("exit_worker")
        end
        try("exit_worker.good." .. ngx.worker.id(), function() M.on_exit_worker_by_lua() end)
        try("exit_worker.again." .. ngx.worker.id(), function() M.on_exit_worker_by_lua() end)
LUA

sub request_block {
    my $phase = shift;
    my $body = $HELPER . $lines->($phase) . qq{        try_status("$phase")\n};
    return "set_by_lua_block \$wm_bad_set {\n$body        return \"x\"\n        }" if $phase eq 'set';
    $body = "        if ngx.ctx.wm_bad_done then return end\n        ngx.ctx.wm_bad_done = true\n$body"
        if $phase eq 'body_filter';
    $body .= qq{        ngx.say("done")\n} if $phase eq 'content';
    return "${phase}_by_lua_block {\n$body        }";
}
my $location = "location = /bad {\n" . join("\n", map { request_block($_) } @REQUEST_PHASES) . "\n        }";

# ------------------------------------------------------------ parsing

# the first try of each call, and the status() probes
sub parse_bad {
    my ($n) = @_;
    my %st;
    for my $e ($n->grep_log(qr/\bWMSTATUS /)) {
        next unless $e->{text} =~ /\bWMSTATUS (\S+) raised=(\w+) r1=(\w+) r2=(\w+) err=<<(.*)>>/s;
        $st{$1} //= { raised => $2, r1 => $3, r2 => $4, err => $5 };
    }
    return (first_bad_calls($n), \%st);
}

my @table;    # [entry, input, message] for WM_BAD_TABLE

sub rejected_ok {
    my ($n, $val, $c) = @_;
    my $name = $c->{name};
    my $v = $val->{$name};
    ok($v, "$name: ran") or return;
    is($v->{ok}, 'false', "$name: raises") or return;
    my @miss = grep { $v->{msg} !~ $_ } @{ $c->{want} };
    ok(!@miss, "$name: the message names the problem") or diag "message: $v->{msg}\nmissing: @miss";
    is($v->{at}, 'true', "$name: reported at the caller's line ($v->{where})") or diag "message: $v->{msg}";
    my $src = conf_line($n, $v->{where});
    ok(defined $src && index($src, "M.$c->{entry}(") >= 0, "$name: that line of nginx.conf is the call")
        or diag "where=$v->{where} line: " . ($src // 'none');
    push @table, [$c->{entry}, $c->{input}, $v->{msg}];
}

# =========================================================== node A: the matrix
{
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        init         => $init,
        init_worker  => $init_worker,
        exit_worker  => $exit_worker,
        server_extra => $location,
    );
    $n->start;
    $n->wait_log(qr/WMTIMER done/, desc => 'the timer probes ran');
    my ($code, $body) = $n->get('/bad');
    is($code, 200, 'GET /bad');
    $n->wait_log(qr/WMSTATUS log /, desc => 'the log-phase probes ran');

    my $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, 'QUIT stops nginx');
    my ($val, $st) = parse_bad($n);
    note join '', map { sprintf "  %-42s ok=%-5s at=%-5s %s\n", $_, @{ $val->{$_} }{qw(ok at msg)} } sort keys %$val;

    rejected_ok($n, $val, $_) for @cases;

    # the calls that must work
    is($val->{'init.good'}{ok}, 'true', 'init: the good on_init_by_lua after every bad call works')
        or diag $val->{'init.good'}{msg};
    for my $s (0, 1) {
        is($val->{"init_worker.good.$s"}{ok}, 'true', "init_worker: the good on_init_worker_by_lua in slot $s works")
            or diag $val->{"init_worker.good.$s"}{msg};
        is($val->{"exit_worker.$_.$s"}{ok}, 'true', "exit_worker: on_exit_worker_by_lua ($_) in slot $s returns")
            for qw(good again);
    }

    # status(): nil + error (no raise) until on_init_by_lua succeeded, a table after
    for my $k (qw(init.before init.after_bad)) {
        my $s = $st->{$k};
        ok($s, "status() $k: ran") or next;
        is("$s->{raised} $s->{r1} $s->{r2}", 'false nil string', "status() $k: returns nil, string (no raise)");
        like($s->{err}, qr/on_init_by_lua/, "status() $k: the error names on_init_by_lua");
        push @table, ['status', 'called before on_init_by_lua (or after it raised)', "(returns nil, \"$s->{err}\")"]
            if $k eq 'init.before';
    }
    for my $k ('init.after_good', 'init_worker.before', 'timer', @REQUEST_PHASES, 'exit_worker') {
        my $s = $st->{$k};
        ok($s && "$s->{raised} $s->{r1}" eq 'false table', "status() in $k after on_init_by_lua: a table")
            or diag explain $s;
    }

    # nothing a bad call passed ever ran; the node was tracked as usual
    is(scalar $n->grep_log(qr/\bWMCB(?:-ENTER|-LEAVE)? bad\b/), 0, 'no callback passed to a rejected call ran');
    my @c = $n->callbacks;
    note cbs_str(@c);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_start')], 'one master_start'), [1, 'nil', 0, 'nil'],
          'master_start(1, nil, 0, nil)');
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_start')), '1,2',
       'worker_start mine 1 then 2: the rejected calls counted nothing');
    @c = $n->callbacks(since => $mark);
    is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', 'worker_exit mine 2 then 1');
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], 'one master_exit'), [1, 'nil', 0, 'nil'],
          'master_exit(1, nil, 0, nil)');
    checker_ok($n);
    no_errors_ok($n);
}

# =========================== node B: on_init_by_lua never succeeded in this conf
{
    my $init_b = $HELPER . <<'LUA';
        try_status("B.init.before")
        try("B.init.unknown_shm", function() M.on_init_by_lua({ shm = "foo" }, bad, bad) end)
        try_status("B.init.after_bad")
LUA
    my $init_worker_b = $HELPER . <<'LUA';
        try("B.init_worker.first." .. ngx.worker.id(), function() M.on_init_worker_by_lua(bad, bad) end)
        try("B.init_worker.again." .. ngx.worker.id(), function() M.on_init_worker_by_lua(bad, bad) end)
        try_status("B.init_worker." .. ngx.worker.id())
LUA
    my $exit_worker_b = $HELPER . <<'LUA';
        try("B.exit_worker." .. ngx.worker.id(), function() M.on_exit_worker_by_lua() end)
LUA
    my $content_b = $HELPER . <<'LUA';
        try_status("B.content")
        ngx.say("done")
LUA
    my $n = WorkerManager::Nginx->new(
        workers      => 2,
        init         => $init_b,
        init_worker  => $init_worker_b,
        exit_worker  => $exit_worker_b,
        server_extra => "location = /status {\n        content_by_lua_block {\n$content_b        }\n        }",
    );
    $n->start;
    my ($code) = $n->get('/status');
    is($code, 200, '[no on_init_by_lua] GET /status');
    $n->signal('QUIT');
    ok($n->wait_exit, '[no on_init_by_lua] QUIT stops nginx');
    my ($val, $st) = parse_bad($n);
    note join '', map { sprintf "  %-42s ok=%-5s at=%-5s %s\n", $_, @{ $val->{$_} }{qw(ok at msg)} } sort keys %$val;

    rejected_ok($n, $val, { name => 'B.init.unknown_shm', entry => 'on_init_by_lua', input => 'opts = { shm = "foo" }',
                            want => [qr/unknown shm 'foo'/] });
    for my $s (0, 1) {
        for my $k (qw(first again)) {
            my $c = { name => "B.init_worker.$k.$s", entry => 'on_init_worker_by_lua',
                      input => 'called when on_init_by_lua was not (or raised)',
                      want => [qr/\bon_init_by_lua\b/, qr/\bfirst\b/] };
            rejected_ok($n, $val, $c);
            pop @table unless $s == 0 && $k eq 'first';
        }
        is($val->{"B.exit_worker.$s"}{ok}, 'true', "[no on_init_by_lua] on_exit_worker_by_lua in slot $s: a no-op")
            or diag $val->{"B.exit_worker.$s"}{msg};
    }
    for my $k ('B.init.before', 'B.init.after_bad', 'B.init_worker.0', 'B.init_worker.1', 'B.content') {
        my $s = $st->{$k};
        ok($s && "$s->{raised} $s->{r1} $s->{r2}" eq 'false nil string', "status() $k: nil, string")
            or diag explain $s;
    }
    is(scalar $n->callbacks, 0, '[no on_init_by_lua] no callback ran at all');
    no_errors_ok($n, '[no on_init_by_lua] no errors logged');
}

# ================== node C: uncaught in init_by_lua, nginx refuses to start
# The message (position first) is on nginx's stderr and in the error log.
for my $t (
    [unknown_shm => 'M.on_init_by_lua({ shm = "foo" }) -- the call', qr/unknown shm 'foo'/],
    [interval    => 'M.on_init_by_lua({ shm = "wm", interval = "10" }) -- the call', qr/opts\.interval/],
    [callback    => 'M.on_init_by_lua({ shm = "wm", interval = 1 }, {}) -- the call', qr/master_start/],
    [twice       => "M.on_init_by_lua({ shm = \"wm\", interval = 1 })\n        M.on_init_by_lua({ shm = \"wm\", interval = 1 }) -- the call",
                    qr/twice/],
) {
    my ($label, $call, $want) = @$t;
    my $n = WorkerManager::Nginx->new(workers => 1,
        init => qq{        local M = require "resty.worker.manager"\n        $call\n});
    my $rc = $n->start(expect_fail => 1);
    isnt($rc, 0, "[uncaught $label] nginx refuses to start");
    my $stderr = do { local (@ARGV, $/) = ($n->prefix . '/logs/stderr.log'); <> // '' };
    my ($where, $msg) = $stderr =~ /init_by_lua error: (init_by_lua\(nginx\.conf:\d+\):\d+): ([^\n]*)/;
    ok(defined $msg && $msg =~ $want, "[uncaught $label] stderr: init_by_lua error: <position>: $want")
        or diag $stderr;
    my $src = defined $where ? conf_line($n, $where) : undef;
    ok(defined $src && $src =~ /-- the call/, "[uncaught $label] the position is the line of the bad call")
        or diag "where=" . ($where // 'none') . " line: " . ($src // 'none');
    ok(scalar $n->grep_log(qr/init_by_lua error: .*\Q$msg\E/), "[uncaught $label] the error log has it too")
        if defined $msg;
    no_errors_ok($n, "[uncaught $label] no warn or error lines but that one", qr/init_by_lua error: .*$want/);
}

# ============ node R: a reload with bad opts is refused; the node goes on
{
    my $label = 'reload with bad opts';
    my $n = WorkerManager::Nginx->new(workers => 2);
    $n->start;
    my @before = sort { $a <=> $b } $n->worker_pids;
    my $mark = $n->mark;
    $n->reload_conf(opts => '{ shm = "wm", interval = 0 }');
    my ($e) = $n->wait_log(qr/init_by_lua error: /, since => $mark, desc => "[$label] the init_by_lua error");
    like($e->{text}, qr/init_by_lua error: init_by_lua\(nginx\.conf:\d+\):\d+: opts\.interval must be/,
         "[$label] logged with the caller's position and opts.interval");
    sleep 0.5;
    is_deeply([sort { $a <=> $b } $n->worker_pids], \@before, "[$label] the old workers keep running");
    is(scalar $n->get('/ping'), 200, "[$label] nginx still serves");
    is(scalar $n->callbacks(since => $mark), 0, "[$label] no callback ran");

    $mark = $n->mark;
    $n->write_conf(opts => '{ shm = "wm", interval = 1 }');
    $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] master_exit of generation 1");
    my @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_start')], "[$label] one master_start on the good reload"),
          [2, 2, 0, 'nil'], "[$label] the good reload is generation 2: master_start(2, 2, 0, nil)");
    $mark = $n->mark;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @c = $n->callbacks(since => $mark);
    cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], "[$label] one master_exit at QUIT"),
          [2, 0, 0, 'nil'], "[$label] master_exit(2, 0, 0, nil)");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no other errors", qr/init_by_lua error: .*opts\.interval/);
}

# ============ node E: finite values nginx's timers (or a stop) cannot take
# ngx.timer.at(d) works in whole ms of an unsigned 64-bit msec: d < 0.0005
# rounds to 0 ms and d >= ~9.2e15 wraps; either way the heartbeat timer fires
# at once, forever: the worker spins at 100% CPU and serves nothing.  `failed`
# bounds how long an exiting worker waits for a newer generation that never
# showed up (a reload nginx rolled back): a huge one hangs the graceful stop.
# Each probe uses a fresh copy of the module and no worker calls
# on_init_worker_by_lua, so an accepted probe starts no heartbeat here.
{
    my $SPIN = 'else the worker would spin in its heartbeat timer and serve nothing';
    my @probes = (
        ['interval', '1e300', $SPIN], ['interval', '1e16', $SPIN], ['interval', '0.0001', $SPIN],
        ['failed', '1e300', 'else a QUIT after a rolled-back reload would never end'],
    );
    my $init_e = <<'LUA';
        local function probe(name, opts)
            package.loaded["resty.worker.manager"] = nil
            local M = require "resty.worker.manager"
            local ok, err = pcall(M.on_init_by_lua, opts)
            ngx.log(ngx.WARN, "WMPROBE ", name, " ok=", tostring(ok), " msg=<<", tostring(err), ">>")
        end
LUA
    $init_e .= join '', map { qq{        probe("$_->[0]=$_->[1]", { shm = "wm", interval = 1, $_->[0] = $_->[1] })\n} } @probes;
    my $n = WorkerManager::Nginx->new(workers => 1, init => $init_e, init_worker => '');
    $n->start;
    $n->signal('QUIT');
    ok($n->wait_exit, '[limits] QUIT stops nginx');
    for my $p (@probes) {
        my ($field, $v, $why) = @$p;
        my ($e) = $n->grep_log(qr/WMPROBE \Q$field=$v\E /);
        my ($ok, $msg) = $e ? $e->{text} =~ /ok=(\w+) msg=<<(.*)>>/ : ('none', '');
        note "opts.$field = $v: ok=$ok $msg";
        ok($ok eq 'false' && $msg =~ /opts\.\Q$field\E/, "[limits] opts.$field = $v is rejected");
    }
    no_errors_ok($n, '[limits] no warn or error lines but the probes');
}

if (my $file = $ENV{WM_BAD_TABLE}) {
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} "| entry point | bad input | error message |\n|---|---|---|\n";
    my %seen;
    for my $r (@table) {
        my ($entry, $input, $msg) = @$r;
        $msg =~ s/table: 0x[0-9a-f]+/table: 0x.../g;
        next if $seen{"$entry|$input"}++;
        s/\|/\\|/g for $input, $msg;
        printf {$fh} "| `%s` | %s | `%s` |\n", $entry eq 'status' ? 'status()' : "$entry()", $input, $msg;
    }
    close $fh;
    note "wrote $file";
}

done_testing;
