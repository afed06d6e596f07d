# kill -9 at exact points of a graceful exit (issue 6), found by the HUP
# storm with kills (t/31) and made deterministic here: the last worker of
# generation 1 (after a reload) installs a debug call hook in its worker exit
# callback that pauses it (busy, 4 s) at the first call of a given module
# function after the callback; the test kills it there.
#   - at lock.renew (right after the worker exit callback) and at
#     registry.begin_close (the module about to mark the generation
#     closing): the generation has no worker left and no master exit yet; a
#     heartbeat of generation 2 must run it on its behalf
#   - at callbacks.run of the master exit (marked closing, the callback not
#     entered yet): the same promise (the mark tells "entered" apart)
#   - at registry.end_generation (the master exit ran): not a second one
#   (before 6a9331e the module deleted the generation's records before its
#   master exit ran: a kill at neighbours lost it; /proc state Z now counts
#   as dead, which fixed the 30 s wait of the case "holder killed while the
#   master waits" below)
#   - inside the master exit callback (its WMCB line logged): it ran, no
#     second one
#   - a starting worker inside its start callback before it logged: counted,
#     reported once (the checker infers the start it cannot see)
#   - the holder killed while the master waits for the lock in init_by_lua
#     of a reload: "the next waiter takes the lock over at once" (README)
#   - a respawned worker killed in its own start callback during a reload:
#     its predecessor's queued report is given by whoever finds it dead
#   - a worker killed while it holds the dict's own mutex: nginx recovers
#     when the master is idle; during a reload the master, inside
#     on_init_by_lua, would wait for that mutex forever (it reaps nothing
#     there): the module frees it
# Each node ends with the checker.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $OPTS = '{ shm = "wm", interval = 1, failed = 2, on_crash = wm.rec("crash") }';

# worker_exit: records; in generation 1's last worker, pauses at the first
# call of module function $fn after the callback
sub exit_pausing_at {
    my ($fn) = @_;
    return 'function(id, p, m, n) wm.rec("worker_exit")(id, p, m, n) '
         . 'if m == 1 and id:match("^1%-") then debug.sethook(function() '
         . 'local info = debug.getinfo(2, "Sn") '
         . "if info and info.name == \"$fn\" and info.short_src:find(\"worker/manager\") then debug.sethook() "
         . 'ngx.log(ngx.WARN, "WMT paused at ", info.name, " (", info.short_src, ":", info.linedefined, ") in ", id) '
         . 'require("wm_test").busy_sleep(4000) end end, "c") end end';
}

sub master_exits { my ($n, $g) = @_; scalar $n->callbacks(event => 'master_exit', gen => $g) }

for my $case (['renew', 'right after the worker exit'], ['begin_close', 'at the close mark'], ['run', 'marked closing, the master exit not entered'],
              ['end_generation', 'after the master exit']) {
    my ($fn, $where) = @$case;
    my $label = "killed at $fn ($where)";
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, worker_exit => exit_pausing_at($fn));
    $n->start;
    my $mark = $n->reload;
    my ($p) = $n->wait_log(qr/WMT paused at $fn/, since => $mark, desc => "[$label] the last gen-1 worker pauses");
    my $victim = $p->{pid};
    kill 'KILL', $victim;
    $n->wait_log(qr/worker process $victim exited on signal 9/, since => $mark, desc => "[$label] reaped");
    note "[$label] $p->{text}";
    my $t0 = time;
    my $got = poll(sub { master_exits($n, 1) }, 4);
    ok($got, sprintf "[%s] generation 1 gets its master exit (%.1f s)", $label, time - $t0);
    ok(!$n->absent_for(qr/\bWMCB master_exit id=1 /, 1, since => ($n->callbacks(event => 'master_exit', gen => 1))[0]{idx} + 1),
       "[$label] ... only one") if $got;
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    is(master_exits($n, 2), 1, "[$label] one master exit of generation 2");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors but the kill, the lock takeover and its report", qr/exited on signal 9/, $TAKEOVER_RE,
                 qr/\[worker-manager\] worker 1-$victim \(pid $victim/);
}

# killed inside its start callback before the callback logged anything: the
# module had counted it (the storm of t/31 hit this); the respawn counts it,
# one drop report, one on_crash, and the checker infers the unlogged start
# from the drop report (ghost_starts)
{
    my $label = 'killed in its start callback before it logged';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, http_extra => 'lua_shared_dict wm_test 64k;',
        worker_start => 'function(id, p, m, n) if wm.once("pre")() then ngx.log(ngx.WARN, "WMT paused before logging the start of ", id, " slot=", ngx.worker.id()) '
                      . 'require("wm_test").busy_sleep(4000) end wm.rec("worker_start")(id, p, m, n) end');
    $n->start(wait => 0);
    my ($e) = $n->wait_log(qr/WMT paused before logging the start of (\S+)/, desc => "[$label] the first start pauses");
    my ($wid) = $e->{text} =~ /of (\d+-\d+)/;
    kill 'KILL', $e->{pid};
    $n->wait_log(qr/\bWMCB crash id=\Q$wid\E /, desc => "[$label] on_crash for $wid");
    $n->wait_log(qr/WMREADY /, count => 2, desc => "[$label] two workers ready");
    # It counts in every start that comes before its drop: its sibling's, if
    # that took the lock before the respawn (2, then 3 in the respawn), and
    # its respawn's, which drops it (2, then 2 in the sibling)
    my @ws = $n->callbacks(event => 'worker_start');
    my ($slot) = $e->{text} =~ /slot=(\d+)/;
    my ($respawn) = grep { $_->{slot} eq $slot } @ws;
    my $order = join ',', map { $_->{pid} eq ($respawn->{pid} // '') ? 'respawn' : 'sibling' } @ws;
    my %want = ('sibling,respawn' => '2,3', 'respawn,sibling' => '2,2');
    is(join(',', map { $_->{mine} } @ws), $want{$order} // 'an order with one respawn and one sibling',
       "[$label] the starts ($order) count it until its respawn drops it: n_mine " . ($want{$order} // '?'));
    is(scalar drops($n, wid => $wid), 1, "[$label] one drop report for $wid");
    is(scalar $n->callbacks(event => 'crash'), 1, "[$label] one on_crash");
    is(scalar(ghost_starts($n)), 1, "[$label] the checker infers one start it cannot see");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    checker_ok($n, label => $label);
    no_errors_ok($n, "[$label] no errors but the kill, the lock takeover and its report", qr/exited on signal 9/, $TAKEOVER_RE, qr/\b\Q$wid\E\b/);
}

# killed inside the master exit callback, after its WMCB line: it ran once
{
    my $label = 'killed inside master exit';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS,
        master_exit => 'wm.rec("master_exit", { slow = 4000, when = function(id) return id == 1 end })');
    $n->start;
    my $mark = $n->reload;
    my ($e) = $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => "[$label] gen-1 master exit runs");
    kill 'KILL', $e->{pid};
    $n->wait_log(qr/worker process $e->{pid} exited on signal 9/, since => $mark, desc => "[$label] reaped");
    ok(!$n->absent_for(qr/\bWMCB master_exit id=1 /, 4, since => $e->{idx} + 1), "[$label] no second master exit of generation 1 over 4 s");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    is(master_exits($n, 1), 1, "[$label] generation 1: one master exit");
    checker_ok($n, label => $label, killed => 1);
    no_errors_ok($n, "[$label] no errors but the kill and the lock takeover", qr/exited on signal 9/, $TAKEOVER_RE);
}

# the lock holder killed while the master waits for the lock (a reload):
# the holder is a zombie until the master reaps it, and the master is busy
# waiting in init_by_lua
{
    my $label = 'holder killed while the master waits';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS,
        worker_exit => 'wm.rec("worker_exit", { slow = 4000, when = function(id, p, m) return m == 1 and id:match("^1%-") ~= nil end })');
    $n->start;
    my $mark = $n->reload;
    my ($e) = $n->wait_log(qr/\bWMCB worker_exit id=1-\d+ prev=nil mine=1 /, since => $mark, desc => "[$label] the slow gen-1 exit holds the lock");
    my $hup = $n->mark;
    $n->signal('HUP');
    $n->wait_log(qr/signal 1 \(SIGHUP\) received/, since => $hup, desc => "[$label] the master takes the HUP");
    sleep 0.3;
    kill 'KILL', $e->{pid};
    my $t0 = time;
    my $ms = poll(sub { scalar $n->callbacks(since => $hup, event => 'master_start') }, 5);
    # (the killed holder is a zombie the waiting master cannot reap: the
    # module counts a zombie as dead)
    ok($ms, sprintf "[%s] the master takes the lock over at once: master start %.1f s after the kill", $label, time - $t0);
    if (!$ms) {
        # the master handles no signal until the lock's 30 s expiry: the
        # checker on the log so far (a running node), then the node is killed
        ok(!$n->alive($e->{pid}) || (WorkerManager::Nginx::_proc_stat($e->{pid}) // {})->{state} eq 'Z',
           "[$label] ... the killed holder is a zombie meanwhile");
        checker_ok($n, label => "$label, the master still waiting", complete => 0);
        no_errors_ok($n, "[$label] no errors but the kill and the lock takeover", qr/exited on signal 9/, $TAKEOVER_RE);
        $n->cleanup;
    } else {
        $n->wait_until(sub { $n->worker_pids(all => 1) == 2 }, desc => "[$label] older generations gone");
        $n->signal('QUIT');
        ok($n->wait_exit, "[$label] QUIT stops nginx");
        checker_ok($n, label => $label, killed => 1);
        no_errors_ok($n, "[$label] no errors but the kill and the lock takeover", qr/exited on signal 9/, $TAKEOVER_RE);
    }
}

# a respawned worker killed in its own start callback while a reload is
# under way: the respawn had dropped its dead predecessor and queued that
# report for after its callback; nginx respawns no worker of the old
# generation any more, so no successor gives the report. Whoever finds the
# respawn dead reports both (liveness.settle, then report_replaced).
{
    my $label = 'respawn killed in its start callback during a reload';
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS,
        init_extra => 'ngx.log(ngx.WARN, "WMT init_by_lua")',
        worker_start => 'wm.rec("worker_start", { slow = 20000, when = function(id, p, m) '
                      . 'return m > ngx.worker.count() and id:match("^1%-") ~= nil end })');
    $n->start;
    my ($first) = $n->callbacks(event => 'worker_start');
    my ($dead) = $first->{id} =~ /^1-(\d+)$/ or die "no generation-1 worker start\n";
    my $kill = $n->mark;
    $n->kill_worker($dead, 'KILL');
    my ($p) = $n->wait_log(qr/\bWMCB worker_start id=1-\d+ prev=nil mine=3 /, since => $kill,
                           desc => "[$label] the respawn is in its (slow) start callback");
    my ($respawn) = $p->{text} =~ /id=1-(\d+)/;
    # The HUP once the respawn holds the lock; the kill once the master is
    # inside init_by_lua, where nginx reaps nothing: the reload goes on, and
    # the respawn's slot is not respawned again.
    my $hup = $n->mark;
    $n->signal('HUP');
    $n->wait_log(qr/WMT init_by_lua/, since => $hup, desc => "[$label] the master runs init_by_lua of the reload");
    $n->kill_worker($respawn, 'KILL');
    $n->wait_log(qr/\bWMCB master_start id=2 /, since => $hup, desc => "[$label] the master takes the lock over: generation 2 starts");
    for my $pid ($dead, $respawn) {
        $n->wait_log(qr/\bWMCB crash id=1-$pid /, desc => "[$label] on_crash for 1-$pid");
    }
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $hup, desc => "[$label] generation 1 ends");
    $n->wait_log(qr/\bWMREADY /, since => $hup, count => 2, desc => "[$label] two generation-2 workers ready");
    my @crash = $n->callbacks(event => 'crash');
    is(join(' ', sort map { $_->{id} } @crash), join(' ', sort "1-$dead", "1-$respawn"),
       "[$label] on_crash once for the killed worker and once for its killed respawn");
    my ($late) = grep { $_->{id} eq "1-$dead" } @crash;
    ok($late && $late->{idx} > $p->{idx}, "[$label] the predecessor is reported after its respawn's callback began");
    is(scalar $n->grep_log(qr/worker 1-$dead \(pid $dead, slot \d+\) crashed: nginx respawned its slot as 1-$respawn;/), 1,
       "[$label] one report of the predecessor, naming its respawn");
    is(scalar $n->grep_log(qr/\bWMCB worker_start id=1-\d+ /), 3, "[$label] generation 1: three starts, none after the kill");
    $n->signal('QUIT');
    ok($n->wait_exit, "[$label] QUIT stops nginx");
    is(master_exits($n, 1), 1, "[$label] generation 1: one master exit");
    checker_ok($n, label => $label, killed => 1);
    no_errors_ok($n, "[$label] no errors but the kills, the lock takeover and their reports", qr/exited on signal 9/, $TAKEOVER_RE,
                 qr/\b1-$dead\b/, qr/\b1-$respawn\b/);
}

# a worker killed while it holds the dict's own mutex (the slab lock every
# shdict call takes; here taken through the FFI by a test location, as a
# worker is inside any shdict call).  An idle master reaps the dead worker
# and force-unlocks the zone ('shared memory zone "wm" was locked by P').
# During a reload the master is inside init_by_lua, where the module reads
# and writes the dict: it waits for the mutex and never reaps the holder.
my $HOLD = <<'NGX';
        location = /holdshm {
            content_by_lua_block {
                local ffi = require "ffi"
                pcall(ffi.cdef, "void *ngx_http_lua_ffi_shdict_udata_to_zone(void *zone_udata);")
                local zone = ffi.C.ngx_http_lua_ffi_shdict_udata_to_zone(ngx.shared.wm[1])
                -- ngx_shm_zone_t { void *data; ngx_shm_t shm { u_char *addr; ... } }: the slab pool,
                -- whose first field is the mutex's lock word (the holder's pid, 0 when free)
                local lockword = ffi.cast("volatile uint64_t *", ffi.cast("uintptr_t *", zone)[1])
                if lockword[0] ~= 0 then return ngx.say("busy") end
                lockword[0] = ngx.worker.pid()
                ngx.log(ngx.WARN, "WMHOLD the dict's mutex is held by ", ngx.worker.pid())
                require("wm_test").busy_sleep(10000)
                ngx.say("not killed")
            }
        }
NGX
for my $reload (0, 1) {
    my $label = "killed holding the dict's mutex" . ($reload ? ', the master reloading' : ', the master idle');
    my $n = WorkerManager::Nginx->new(workers => 2, opts => $OPTS, server_extra => $HOLD);
    $n->start;
    my $sock = $n->get_async('/holdshm');
    my ($h) = $n->wait_log(qr/WMHOLD/, desc => "[$label] a worker holds the mutex");
    my $mark = $n->mark;
    if ($reload) {
        $n->signal('HUP');
        $n->wait_log(qr/reconfiguring/, since => $mark, desc => "[$label] the master reloads");
        sleep 0.5;
    }
    kill 'KILL', $h->{pid};
    my $t0 = time;
    # nginx's line when its master reaped the holder, or the module's when
    # it freed the mutex itself (the master inside on_init_by_lua)
    my $freed_re = qr/shared memory zone "wm" was locked by $h->{pid}|\[worker-manager\] the shm zone's mutex was held by dead process $h->{pid}\b/;
    my $reaped = poll(sub { scalar $n->grep_log($freed_re, since => $mark) }, 3);
    my $serves = $reaped && poll(sub { $n->get('/ping', timeout => 1) == 200 }, 3);
    my $ms = !$reload || poll(sub { scalar $n->callbacks(since => $mark, event => 'master_start') }, 1);
    my $wchan = '';
    if (open my $f, '<', "/proc/$n->{master}/wchan") { local $/; $wchan = <$f> // '' }
    ok($reaped, sprintf "[%s] the zone is unlocked (%.1f s)%s", $label, time - $t0,
       $reaped ? '' : " (the master waits in $wchan)");
    ok($serves, "[$label] nginx serves again");
    ok($ms, "[$label] the reload goes on: master start of generation 2") if $reload;
    # nginx's and the module's lines about the freed mutex, the kill, and a
    # takeover if the holder also held the node lock
    my @expected = (qr/exited on signal 9/, $freed_re, $TAKEOVER_RE, qr/\b1-$h->{pid}\b/);
    if ($reaped) {
        $n->signal('QUIT');
        ok($n->wait_exit, "[$label] QUIT stops nginx");
        checker_ok($n, label => $label);
        no_errors_ok($n, "[$label] no warn or error lines but the kill and the freed mutex", @expected);
    } else {
        checker_ok($n, label => "$label, frozen", complete => 0);
        no_errors_ok($n, "[$label] no warn or error lines but the kill", @expected);
        $n->cleanup;
    }
    $n->finish($sock) if $reaped;
}

done_testing;
