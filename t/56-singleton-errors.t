# Singletons: user code that raises, and bad input.
#
# A start, stop or fn that raises is logged at ERR with the name, the token
# and the worker id; a raising start still holds the job (nobody else
# starts it), a raising stop still releases it (the next holder starts),
# a raising fn runs again at its interval.
#
# Every bad call of singleton(), every() and holds() raises an error that
# names the problem, at the caller's line, and registers nothing: a bad
# name, the same name twice in one worker, a job that is no table or has no
# start function, a stop that is no function, a bad interval, a fn that is
# no function, a call outside init_worker_by_lua*, a call before
# on_init_worker_by_lua.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;
use WorkerManager::BadInput;

# try(name, call) (WorkerManager::BadInput) logs each bad call's outcome.
my $HELPER = <<'LUA' . $TRY_LUA . <<'LUA';
        local M = require "resty.worker.manager"
        local wm = require "wm_test"
LUA
        local good = { start = function() end }
        local fn = function() end
LUA

my $NAME_ERR = 'name must be a non-empty string of at most 128 bytes without control characters, got';
my @BAD_NAMES = (['nil', 'nil', 'nil'], ['empty', '""', 'string ""'], ['long', '("a"):rep(129)', 'string "a{129}"'],
                 ['newline', '"a\\nb"', 'string "a\\\\\\\\nb"'], ['number', '42', 'number 42'], ['table', '{}', 'table']);
my @BAD_SECONDS = (['zero', '0', 'number 0'], ['negative', '-1', 'number -1'], ['string', '"1"', 'string "1"'],
                   ['nan', '0/0', 'number -?nan'], ['huge', 'math.huge', 'number inf'], ['boolean', 'true', 'boolean true']);

my (@init_worker, %want);
sub bad {
    my ($name, $lua, $msg) = @_;
    push @init_worker, qq{        try("$name", function() $lua end)};
    $want{$name} = $msg;
}
# before on_init_worker_by_lua
bad('early singleton', 'M.singleton("early", good)', 'singleton needs on_init_worker_by_lua in init_worker_by_lua\* first');
bad('early every', 'M.every("early", 1, fn)', 'every needs on_init_worker_by_lua in init_worker_by_lua\* first');
push @init_worker, '        M.on_init_worker_by_lua(wm.rec("worker_start"), wm.rec("worker_exit"))';
for my $b (@BAD_NAMES) {
    bad("singleton name $b->[0]", "M.singleton($b->[1], good)", "singleton: $NAME_ERR $b->[2]");
    bad("every name $b->[0]", "M.every($b->[1], 1, fn)", "every: $NAME_ERR $b->[2]");
    bad("holds name $b->[0]", "M.holds($b->[1])", "holds: $NAME_ERR $b->[2]");
}
bad('job nil', 'M.singleton("j", nil)', 'singleton: job must be a table with a start function, got nil');
bad('job string', 'M.singleton("j", "f")', 'singleton: job must be a table with a start function, got string');
bad('job no start', 'M.singleton("j", {})', 'singleton: job.start must be a function, got nil');
bad('job start string', 'M.singleton("j", { start = "f" })', 'singleton: job.start must be a function, got string');
bad('job callable start', 'M.singleton("j", { start = setmetatable({}, { __call = fn }) })',
    'singleton: job.start must be a function, got table');
bad('job stop number', 'M.singleton("j", { start = fn, stop = 42 })', 'singleton: job.stop must be a function or nil, got number');
for my $b (@BAD_SECONDS) {
    bad("every interval $b->[0]", "M.every(\"e\", $b->[1], fn)",
        "every: interval must be a number of seconds from 0.001 to 31536000, got $b->[2]");
}
bad('every fn nil', 'M.every("e", 1, nil)', 'every: fn must be a function, got nil');
bad('every fn table', 'M.every("e", 1, {})', 'every: fn must be a function, got table');
# the bad calls registered nothing: these work
push @init_worker, '        M.singleton("j", good)', '        M.every("e", 1, fn)';
bad('twice singleton', 'M.singleton("j", good)', "singleton: singleton 'j' is registered twice in this worker");
bad('twice every', 'M.every("j", 1, fn)', "every: singleton 'j' is registered twice in this worker");
bad('twice across', 'M.singleton("e", good)', "singleton: singleton 'e' is registered twice in this worker");
# user code that raises
push @init_worker,
    '        M.singleton("raise-start", { start = wm.sj("start", { raise = "boom in start" }), stop = wm.sj("stop") })',
    '        M.singleton("raise-stop", { start = wm.sj("start"), stop = wm.sj("stop", { raise = "boom in stop" }) })',
    '        M.every("raise-fn", 0.2, wm.sj("fn", { raise = "boom in fn" }))';

my $init_worker = join "\n", $HELPER, @init_worker;
my $n = WorkerManager::Nginx->new(
    workers => 2,
    opts => '{ shm = "wm", interval = 1, failed = 2 }',
    init => $HELPER . qq{        M.on_init_by_lua({ shm = "wm", interval = 1, failed = 2 }, wm.rec("master_start"), wm.rec("master_exit"))
        try("init singleton", function() M.singleton("i", good) end)
        try("init every", function() M.every("i", 1, fn) end)},
    init_worker => $init_worker,
    server_extra => <<'CONF',
        location = /bad {
            content_by_lua_block {
                local M = require "resty.worker.manager"
                local function try(name, call)
                    local ok, err = pcall(call)
                    ngx.say(name, " ok=", tostring(ok), " msg=<<", tostring(err), ">>")
                end
                try("content singleton", function() M.singleton("c", { start = function() end }) end)
                try("content every", function() M.every("c", 1, function() end) end)
                ngx.say("holds unknown: ", tostring(M.holds("nope")), " ", tostring(select(2, M.holds("nope"))))
            }
        }
CONF
);
$want{'init singleton'} = "singleton must be called from init_worker_by_lua\\*, not in phase 'init'";
$want{'init every'} = "every must be called from init_worker_by_lua\\*, not in phase 'init'";
$n->start;

# every bad call, in each worker (and the master for the init ones)
my $seen = bad_calls($n);
for my $name (sort keys %want) {
    my @s = @{ $seen->{$name} // [] };
    ok(@s >= 1, "$name: tried") or next;
    is(scalar(grep { $_->{ok} eq 'false' } @s), scalar @s, "$name: raises");
    is(scalar(grep { $_->{at} eq 'true' } @s), scalar @s, "$name: at the caller's line");
    my @wrong = grep { $_->{msg} !~ /\A(?:$want{$name})\z/ } @s;
    is(scalar @wrong, 0, "$name: $want{$name}") or diag join "\n", map { $_->{msg} } @wrong;
}
my ($code, $body) = $n->get('/bad');
like($body, qr/^content singleton ok=false msg=<<.*singleton must be called from init_worker_by_lua\*, not in phase 'content'>>$/m,
     'singleton() in a request: raises, naming the phase');
like($body, qr/^content every ok=false msg=<<.*every must be called from init_worker_by_lua\*, not in phase 'content'>>$/m,
     'every() in a request: raises');
like($body, qr/^holds unknown: false nil$/m, 'holds() of a name not registered here: false, nil');

# raising user code
my ($s) = $n->wait_log(qr/WMSJ-LEAVE start name=raise-start token=1 /, desc => 'raise-start ran');
my ($holder) = $s->{text} =~ /pid=(\d+)/;
my ($err) = $n->wait_log(qr/singleton 'raise-start' start failed in worker 1-$holder \(token 1\): .*boom in start/,
                         desc => 'its error logged');
is($err->{level}, 'error', 'logged at ERR with the name, worker id and token');
my @more = $n->absent_for(qr/WMSJ-ENTER start name=raise-start /, 1.5, since => $s->{idx} + 1);
is(scalar @more, 0, 'a raising start still holds the job: nobody else starts it');
$n->wait_log(qr/singleton 'raise-fn' fn failed in worker 1-\d+ \(token 1\): .*boom in fn/, count => 3,
             desc => 'a raising fn: logged at each run, and run again');

my $mark = $n->mark;
$n->reload;
$n->wait_log(qr/singleton 'raise-stop' stop failed in worker 1-\d+ \(token 1\): .*boom in stop/, since => $mark,
             desc => 'the raising stop logged');
$n->wait_log(qr/WMSJ-ENTER start name=raise-stop token=2 /, since => $mark,
             desc => 'a raising stop still releases the job: token 2 starts');
$n->wait_log(qr/WMSJ-ENTER start name=raise-start token=2 /, since => $mark, desc => 'raise-start moves too');

$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
checker_ok($n, label => 'errors', complete => 1);
no_errors_ok($n, 'no errors but the raising callbacks', qr/singleton 'raise-(?:start|stop|fn)' (?:start|stop|fn) failed/);
done_testing;
