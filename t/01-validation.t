# Bad use gets a clear Lua error naming the problem, and nothing breaks:
# wrong phase, called twice, unknown shm, bad interval/failed, non-function
# callbacks.  Checks keywords, not sentences.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $init = <<'LUA';
        local wm = require "wm_test"
        local M = require "resty.worker.manager"
        local f = function() end
        local good = { shm = "wm", interval = 1 }
        wm.check("init.on_init_worker_by_lua", M.on_init_worker_by_lua, f, f)
        wm.check("init.on_exit_worker_by_lua", M.on_exit_worker_by_lua)
        wm.check("init.unknown_shm", M.on_init_by_lua, { shm = "nope_shm", interval = 1 }, f, f)
        wm.check("init.no_shm", M.on_init_by_lua, { interval = 1 }, f, f)
        wm.check("init.shm_number", M.on_init_by_lua, { shm = 42, interval = 1 }, f, f)
        wm.check("init.opts_nil", M.on_init_by_lua, nil, f, f)
        wm.check("init.opts_string", M.on_init_by_lua, "wm", f, f)
        wm.check("init.interval_0", M.on_init_by_lua, { shm = "wm", interval = 0 }, f, f)
        wm.check("init.interval_neg", M.on_init_by_lua, { shm = "wm", interval = -1 }, f, f)
        wm.check("init.interval_string", M.on_init_by_lua, { shm = "wm", interval = "10" }, f, f)
        wm.check("init.interval_nan", M.on_init_by_lua, { shm = "wm", interval = 0/0 }, f, f)
        wm.check("init.failed_0", M.on_init_by_lua, { shm = "wm", interval = 1, failed = 0 }, f, f)
        wm.check("init.failed_neg", M.on_init_by_lua, { shm = "wm", interval = 1, failed = -1 }, f, f)
        wm.check("init.failed_string", M.on_init_by_lua, { shm = "wm", interval = 1, failed = "5" }, f, f)
        wm.check("init.master_start_number", M.on_init_by_lua, good, 42, f)
        wm.check("init.master_exit_string", M.on_init_by_lua, good, f, "x")
        wm.check("init.master_start_table", M.on_init_by_lua, good, {}, f)
        wm.check("init.good", M.on_init_by_lua, good, wm.rec("master_start"), wm.rec("master_exit"))
        wm.check("init.twice", M.on_init_by_lua, good, f, f)
LUA

my $init_worker = <<'LUA';
        local wm = require "wm_test"
        local M = require "resty.worker.manager"
        local f = function() end
        if ngx.worker.id() == 0 then
            wm.check("iw.on_init_by_lua", M.on_init_by_lua, { shm = "wm", interval = 1 }, f, f)
            wm.check("iw.on_exit_worker_by_lua", M.on_exit_worker_by_lua)
            wm.check("iw.worker_start_number", M.on_init_worker_by_lua, 42, f)
            wm.check("iw.worker_exit_table", M.on_init_worker_by_lua, f, {})
        end
        wm.check("iw.good." .. ngx.worker.id(), M.on_init_worker_by_lua, wm.rec("worker_start"), wm.rec("worker_exit"))
        if ngx.worker.id() == 0 then
            wm.check("iw.twice", M.on_init_worker_by_lua, f, f)
        end
LUA

my $content = <<'LUA';
                local M = require "resty.worker.manager"
                local f = function() end
                local function chk(name, fn, ...)
                    local ok, err = pcall(fn, ...)
                    ngx.say(name, "\t", tostring(ok), "\t", (tostring(err):gsub("\n", "\\n")))
                end
                chk("content.on_init_by_lua", M.on_init_by_lua, { shm = "wm", interval = 1 }, f, f)
                chk("content.on_init_worker_by_lua", M.on_init_worker_by_lua, f, f)
                chk("content.on_exit_worker_by_lua", M.on_exit_worker_by_lua)
LUA

my $n = WorkerManager::Nginx->new(
    workers      => 2,
    init         => $init,
    init_worker  => $init_worker,
    server_extra => "location = /validate {\n            content_by_lua_block {\n$content            }\n        }",
);
$n->start;

my %val;
for my $e ($n->grep_log(qr/\bWMVAL /)) {
    next unless $e->{text} =~ /\bWMVAL (\S+) ok=(\w+) msg=(.*?)(?:, context: .*)?\z/s;
    $val{$1} //= { ok => $2, msg => $3 };
}
my ($code, $body) = $n->get('/validate');
is($code, 200, 'GET /validate');
for my $line (split /\n/, $body) {
    my ($name, $ok, $msg) = split /\t/, $line, 3;
    $val{$name} = { ok => $ok, msg => $msg // '' };
}
note join '', map { sprintf "  %-32s ok=%-5s %s\n", $_, $val{$_}{ok}, $val{$_}{msg} } sort keys %val;

# message mentions the phase (the current one or the required one); the
# function's own name does not count
sub mentions_phase {
    my $m = shift;
    $m =~ s/\bon_(?:init|init_worker|exit_worker)_by_lua\b//g;
    return $m =~ /phase|content|init_by_lua|init_worker|exit_worker|\binit\b/i;
}

sub rejected {
    my ($name, $check, $what) = @_;
    my $v = $val{$name};
    ok($v, "$name ran") or return;
    is($v->{ok}, 'false', "$name: raises an error");
    ok($check->($v->{msg}), "$name: message $what") or diag "message: $v->{msg}";
}

my $phase = sub { mentions_phase($_[0]) };
rejected("content.$_", $phase, 'names the phase')
    for qw(on_init_by_lua on_init_worker_by_lua on_exit_worker_by_lua);
rejected('init.on_init_worker_by_lua', $phase, 'names the phase');
rejected('init.on_exit_worker_by_lua', $phase, 'names the phase');
rejected('iw.on_exit_worker_by_lua', $phase, 'names the phase');
rejected('iw.on_init_by_lua', sub { mentions_phase($_[0]) || $_[0] =~ /twice|already|once|again/i },
         'names the phase (or that init already ran)');

rejected('init.unknown_shm', sub { $_[0] =~ /unknown shm/i && $_[0] =~ /nope_shm/ }, "says unknown shm 'nope_shm'");
rejected("init.$_", sub { $_[0] =~ /shm/i }, 'mentions shm') for qw(no_shm shm_number);
rejected("init.$_", sub { $_[0] =~ /opts|table|shm/i }, 'mentions opts') for qw(opts_nil opts_string);
rejected("init.$_", sub { $_[0] =~ /interval/ }, 'mentions interval')
    for qw(interval_0 interval_neg interval_string interval_nan);
rejected("init.$_", sub { $_[0] =~ /failed/ }, 'mentions failed') for qw(failed_0 failed_neg failed_string);
rejected('init.master_start_number', sub { $_[0] =~ /master_start|function|callback/i }, 'names the callback problem');
rejected('init.master_exit_string', sub { $_[0] =~ /master_exit|function|callback/i }, 'names the callback problem');
rejected('init.master_start_table', sub { $_[0] =~ /function|callback/i }, 'names the callback problem');
rejected('iw.worker_start_number', sub { $_[0] =~ /worker_start|function|callback/i }, 'names the callback problem');
rejected('iw.worker_exit_table', sub { $_[0] =~ /worker_exit|function|callback/i }, 'names the callback problem');
rejected('init.twice', sub { $_[0] =~ /twice|already|once|again/i }, 'says it was called twice');
rejected('iw.twice', sub { $_[0] =~ /twice|already|once|again/i }, 'says it was called twice');

is($val{'init.good'}{ok}, 'true', 'the good on_init_by_lua after all the bad calls works');
is($val{"iw.good.$_"}{ok}, 'true', "the good on_init_worker_by_lua in slot $_ works") for 0, 1;

# and the node is tracked as usual
my @c = $n->callbacks;
note cbs_str(@c);
cb_is(exactly_one([select_cbs(\@c, event => 'master_start')], 'one master_start'), [1, 'nil', 0, 'nil'],
      'master_start(1, nil, 0, nil)');
my @ws = select_cbs(\@c, event => 'worker_start');
is(join(',', map { $_->{mine} } @ws), '1,2', 'worker_start mine 1 then 2 (rejected calls counted nothing)');
my $mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
@c = $n->callbacks(since => $mark);
is(join(',', map { $_->{mine} } select_cbs(\@c, event => 'worker_exit')), '2,1', 'worker_exit mine 2 then 1');
cb_is(exactly_one([select_cbs(\@c, event => 'master_exit')], 'one master_exit'), [1, 'nil', 0, 'nil'],
      'master_exit(1, nil, 0, nil)');
checker_ok($n);
no_errors_ok($n);

# a bad call without pcall in init_by_lua makes nginx refuse to start, with the message
{
    my $bad = WorkerManager::Nginx->new(workers => 1, opts => '{ shm = "nope_shm" }');
    my $rc = $bad->start(expect_fail => 1);
    isnt($rc, 0, 'nginx does not start with an unknown shm (init_by_lua error)');
    my $stderr = do { local (@ARGV, $/) = ($bad->prefix . '/logs/stderr.log'); <> // '' };
    my $log = join "\n", map { $_->{line} } $bad->entries;
    like("$stderr\n$log", qr/unknown shm.*nope_shm/i, 'the error names the unknown shm');
    no_errors_ok($bad, 'no warn or error lines but that one', qr/init_by_lua error: .*unknown shm 'nope_shm'/);
}

done_testing;
