# Re-entry: a public function called from inside one of the module's
# callbacks.  on_init_by_lua, on_init_worker_by_lua and on_exit_worker_by_lua
# raise a clear error there (their own work is under way in the callback's
# caller, which holds the node lock); status() and exit_reason() work.
# The case that broke: on_exit_worker_by_lua() inside a worker exit callback
# on TERM ran the master exit nested inside that callback and freed the lock
# under it.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 1, on_crash = wm.rec("crash") }';
my $INSIDE = 'must not be called from inside a callback of resty.worker.manager';

# a recorder whose callback calls `call` (Lua source of a function of the
# module `M`) under pcall and logs "WMRE <event> <name> ok=.. msg=.."
sub calling {
    my ($event, %calls) = @_;
    my $body = join ' ', map {
        qq{do local ok, r = pcall(function() local v = $calls{$_}; return v end) }
      . qq{ngx.log(ngx.WARN, "WMRE $event $_ ok=", tostring(ok), " msg=", tostring(r)) end}
    } sort keys %calls;
    return qq{wm.wrap("$event", function() local M = require("resty.worker.manager") $body end)};
}

sub re_calls {
    my ($n, $event, $name) = @_;
    my @r;
    for my $e ($n->grep_log(qr/WMRE $event \Q$name\E ok=/)) {
        my ($ok) = $e->{text} =~ /ok=(\w+)/;
        my ($msg) = $e->{text} =~ /msg=(.*?)(?:, context:.*)?$/s;
        push @r, { ok => $ok // '', msg => $msg // '' };
    }
    return @r;
}

# --- the callbacks of a start, a crash and a graceful stop call everything
{
    my $label = 'start, crash, stop';
    my $n = WorkerManager::Nginx->new(
        workers => 2, exit_hook => 1,
        opts => '{ shm = "wm", interval = 1, failed = 1, on_crash = '
              . calling('crash', init_worker => 'M.on_init_worker_by_lua()', status => 'M.status().generation') . ' }',
        master_start => calling('master_start', init => 'M.on_init_by_lua({ shm = "wm" })',
                                status => 'M.status().generation', reason => 'M.exit_reason()'),
        worker_start => calling('worker_start', init_worker => 'M.on_init_worker_by_lua()',
                                status => '#M.status().generations[1].workers', reason => 'M.exit_reason()'),
        worker_exit  => calling('worker_exit', exit_worker => 'M.on_exit_worker_by_lua()', reason => 'M.exit_reason()'),
        master_exit  => calling('master_exit', exit_worker => 'M.on_exit_worker_by_lua()', status => 'M.status().generation',
                                reason => 'M.exit_reason()'),
    );
    $n->start;
    my @r = re_calls($n, 'master_start', 'init');
    is_deeply([map { $_->{ok} } @r], ['false'], "[$label] on_init_by_lua inside master start raises");
    like($r[0]{msg} // '', qr/^init_by_lua\(nginx\.conf:\d+\):\d+: on_init_by_lua \Q$INSIDE\E$/, "[$label] ... at the caller's line: $r[0]{msg}");
    is_deeply([map { "$_->{ok}:$_->{msg}" } re_calls($n, 'master_start', 'status')], ['true:1'],
              "[$label] status() inside master start reads generation 1");
    is_deeply([map { "$_->{ok}:$_->{msg}" } re_calls($n, 'master_start', 'reason')], ['true:nil'],
              "[$label] exit_reason() inside master start: nil");
    @r = re_calls($n, 'worker_start', 'init_worker');
    is_deeply([map { $_->{ok} } @r], ['false', 'false'], "[$label] on_init_worker_by_lua inside worker start raises");
    like($r[0]{msg} // '', qr/on_init_worker_by_lua \Q$INSIDE\E$/, "[$label] ... $r[0]{msg}");
    is(join(',', sort map { "$_->{ok}:$_->{msg}" } re_calls($n, 'worker_start', 'status')), 'true:1,true:2',
       "[$label] status() inside each worker start counts the workers so far");

    my ($victim) = grep { $_->{slot} eq '0' } $n->callbacks(event => 'worker_start');
    my $mark = $n->mark;
    $n->kill_worker($victim->{pid}, 'KILL');
    $n->wait_log(qr/WMRE crash status ok=/, since => $mark, desc => "[$label] the crash callback runs");
    @r = re_calls($n, 'crash', 'init_worker');
    is_deeply([map { $_->{ok} } @r], ['false'], "[$label] on_init_worker_by_lua inside on_crash (in the respawn's init_worker) raises");
    like($r[0]{msg} // '', qr/on_init_worker_by_lua \Q$INSIDE\E$/, "[$label] ... $r[0]{msg}");
    is_deeply([map { "$_->{ok}:$_->{msg}" } re_calls($n, 'crash', 'status')], ['true:1'], "[$label] status() inside on_crash works");

    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    @r = (re_calls($n, 'worker_exit', 'exit_worker'), re_calls($n, 'master_exit', 'exit_worker'));
    is(scalar(grep { $_->{ok} eq 'false' && $_->{msg} =~ /on_exit_worker_by_lua \Q$INSIDE\E$/ } @r), 3,
       "[$label] on_exit_worker_by_lua inside the graceful exits (timer phase) raises: inside a callback");
    is(join(',', map { $_->{msg} } re_calls($n, 'worker_exit', 'reason')), 'stop,stop', "[$label] exit_reason() inside the exits: stop");
    is(join(',', map { $_->{msg} } re_calls($n, 'master_exit', 'reason')), 'stop', "[$label] ... and inside the master exit");
    checker_ok($n, label => $label, on_crash => 1, complete => 1);
    no_errors_ok($n, "[$label] no errors but the kill and its report", qr/exited on signal 9/, qr/\b\Q$victim->{id}\E\b/);
}

# --- on TERM the exits run in exit_worker_by_lua: a worker exit callback that
# calls on_exit_worker_by_lua() (unprotected) gets the error; the exit goes on
# unnested, the lock held until the master exit is done
{
    my $label = 'TERM, on_exit_worker_by_lua() inside the worker exit';
    my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1, opts => $OPTS,
        worker_exit => 'wm.wrap("worker_exit", function() require("resty.worker.manager").on_exit_worker_by_lua() end)');
    $n->start;
    $n->signal('TERM');
    ok($n->wait_exit, "[$label] TERM stops nginx");
    my @c = $n->callbacks;
    note "[$label] callbacks:\n" . cbs_str(@c);
    is(join(' ', map { "$_->{event}:$_->{mine}" } grep { $_->{event} =~ /exit/ } @c), 'worker_exit:2 worker_exit:1 master_exit:0',
       "[$label] worker exits 2, 1, then the master exit, each once");
    my @failed = $n->grep_log(qr/\[worker-manager\] worker exit callback for 1-\d+ failed: .*on_exit_worker_by_lua \Q$INSIDE\E/);
    is(scalar @failed, 2, "[$label] each worker exit callback's call raised, logged at ERR with the module's message");
    is(scalar(() = $n->grep_log(qr/the node lock expired|ran over/)), 0, "[$label] no lock expiry, no callback said to run over 30 s");
    my @el = $n->enter_leave;
    my ($me) = grep { $_->{kind} eq 'ENTER' && $_->{event} eq 'master_exit' } @el;
    my ($last_we) = grep { $_->{kind} eq 'LEAVE' && $_->{event} eq 'worker_exit' } reverse @el;
    ok($me && $last_we && $me->{idx} > $last_we->{idx}, "[$label] the master exit is entered after the last worker exit left, not inside it");
    checker_ok($n, label => $label, complete => 1);
    no_errors_ok($n, "[$label] no errors but the two raised calls", qr/worker exit callback for 1-\d+ failed: .*\Q$INSIDE\E/);
}

done_testing;
