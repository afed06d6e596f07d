# The invariant checker checks what it says (issue 6, item 1): synthetic
# error.logs (no nginx) of a clean run (start, reload, QUIT) pass every part
# of it (lifecycle_errors, model_errors, lock_errors,
# invariant_errors); each broken variant is caught, by the part and with the
# message named here.
#
# The run invariants and where they are checked:
#   exactly one master exit per ended generation   invariant_errors (+ lifecycle: at most one;
#                                                   model complete => 1: every one, after a stop)
#   none for a generation still running            invariant_errors (processes), model (counts)
#   no callback of a generation after its master exit   lifecycle, invariant_errors
#   counts never negative                          invariant_errors (explicit), lifecycle (types)
#   n_mine of a start <= starts of its generation  invariant_errors
#   n_prev nil only (and always) in generation 1   invariant_errors, model
#   enter/leave intervals disjoint                 lock_errors
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(strftime);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $DIR = tempdir('wm-30-checker-XXXXXX', DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp', CLEANUP => 1);
my $T0 = 1795824612;
my $seq = 0;

# ---------------------------------------------------------------- the runs
#
# A run is a list of steps, turned into log lines by write_log:
#   [cb => event, id, prev, mine, next, pid]     ENTER, WMCB, LEAVE (in pid)
#   [m  => text]                                  a line of the master (pid 100)
#   [w  => pid, text]                             a line of another process
#   [sleep => seconds]                            the clock moves on
my $M = 100;

sub clean_run {
    return (
        [cb => 'master_start', 1, 'nil', 0, 'nil', 99],
        [m => 'start worker processes'],
        [m => 'start worker process 101'], [m => 'start worker process 102'],
        [cb => 'worker_start', '1-101', 'nil', 1, 'nil', 101],
        [cb => 'worker_start', '1-102', 'nil', 2, 'nil', 102],
        [sleep => 2],
        [m => 'signal 1 (SIGHUP) received from 1, reconfiguring'],
        [cb => 'master_start', 2, 2, 0, 'nil', $M],
        [m => 'start worker process 103'], [m => 'start worker process 104'],
        [cb => 'worker_start', '2-103', 2, 1, 'nil', 103],
        [cb => 'worker_start', '2-104', 2, 2, 'nil', 104],
        [cb => 'worker_exit', '1-101', 'nil', 2, 2, 101],
        [cb => 'worker_exit', '1-102', 'nil', 1, 2, 102],
        [cb => 'master_exit', 1, 'nil', 0, 2, 102],
        [m => 'worker process 101 exited with code 0'],
        [m => 'worker process 102 exited with code 0'],
        [sleep => 2],
        [m => 'signal 3 (SIGQUIT) received from 1, shutting down'],
        [cb => 'worker_exit', '2-103', 0, 2, 'nil', 103],
        [cb => 'worker_exit', '2-104', 0, 1, 'nil', 104],
        [cb => 'master_exit', 2, 0, 0, 'nil', 104],
        [m => 'worker process 103 exited with code 0'],
        [m => 'worker process 104 exited with code 0'],
        [m => 'exit'],
    );
}

sub write_log {
    my @steps = @_;
    my $file = sprintf '%s/run%03d.log', $DIR, ++$seq;
    open my $fh, '>', $file or die "$file: $!";
    my $t = $T0;
    my $us = 0;
    my $line = sub {
        my ($pid, $level, $text) = @_;
        print {$fh} strftime('%Y/%m/%d %H:%M:%S', localtime $t), " [$level] $pid#$pid: $text\n";
    };
    for my $s (@steps) {
        my ($k, @a) = @$s;
        if ($k eq 'sleep') { $t += $a[0]; next }
        if ($k eq 'm') { $line->($M, $a[0] =~ /signal 9/ ? 'alert' : 'notice', $a[0]); next }
        if ($k eq 'w') { $line->($a[0], $a[2] // 'notice', $a[1]); next }
        if ($k eq 'enter' || $k eq 'leave') {    # a lone ENTER or LEAVE line
            my ($event, $id, $pid) = @a;
            $line->($pid, 'warn', sprintf 'WMCB-%s %s id=%s pid=%s t=%d.%06d', uc $k, $event, $id, $pid, $t, $us += 10);
            next;
        }
        my ($event, $id, $prev, $mine, $next, $pid, %o) = @a;
        my $types = join ',', map { $_ eq 'nil' ? 'nil' : /^-?\d+$/ ? 'number' : 'string' } $id, $prev, $mine, $next;
        $line->($pid, 'warn', sprintf 'WMCB-ENTER %s id=%s pid=%s t=%d.%06d', $event, $id, $pid, $t, $us += 10)
            unless $o{no_enter};
        $line->($pid, 'warn', sprintf 'WMCB %s id=%s prev=%s mine=%s next=%s pid=%s slot=0 count=2 t=%d.000 nargs=4 types=%s%s',
                $event, $id, $prev, $mine, $next, $pid, $t, $types, defined $o{reason} ? " reason=$o{reason}" : '');
        $line->($pid, 'warn', sprintf 'WMCB-LEAVE %s id=%s pid=%s t=%d.%06d', $event, $id, $pid, $t, $us += 10)
            unless $o{no_leave};
    }
    close $fh;
    return WorkerManager::Nginx->from_log($file, workers => 2, master => $M,
                                          opts => '{ shm = "wm", interval = 1, failed = 2 }');
}

# every part of the checker on one run: { lifecycle => [..], model => [..], lock => [..], inv => [..], notes => [..] }
sub findings {
    my ($n, %o) = @_;
    my ($lock) = lock_errors($n);
    my ($inv, $notes) = invariant_errors($n, %o);
    return {
        lifecycle => [ lifecycle_errors($n) ],
        model     => [ model_errors($n, complete => $o{complete} // 0) ],
        lock      => $lock,
        inv       => $inv,
        notes     => $notes,
    };
}

# the step matching ($kind, $event, $id) in @$steps: its index
sub at {
    my ($steps, $event, $id) = @_;
    for my $i (0 .. $#$steps) {
        my $s = $steps->[$i];
        return $i if $s->[0] eq 'cb' && $s->[1] eq $event && $s->[2] eq $id;
        return $i if $s->[0] eq 'm' && $event eq 'm' && $s->[1] =~ $id;
    }
    die "no step $event $id";
}

# caught($label, \@steps, { part => qr/message/, ... }, %opts): each named part
# reports a matching finding; the parts not named may say anything.
sub caught {
    my ($label, $steps, $want, %o) = @_;
    my $f = findings(write_log(@$steps), %o);
    for my $part (sort keys %$want) {
        my @hit = grep { $_ =~ $want->{$part} } @{ $f->{$part} };
        ok(scalar @hit, "$label: $part catches it") or diag "  $part said:\n" . join '', map { "    $_\n" } @{ $f->{$part} };
        note "  $part: $hit[0]" if @hit;
    }
    return $f;
}

# ---------------------------------------------------------------- clean
{
    my @run = clean_run();
    my $f = findings(write_log(@run), complete => 1);
    for my $part (qw(lifecycle model lock inv)) {
        is_deeply($f->{$part}, [], "clean run: $part finds nothing") or diag join "\n", @{ $f->{$part} };
    }
    is_deeply($f->{notes}, [], 'clean run: no notes');
    my $n = write_log(@run);
    is(scalar $n->callbacks, 12, 'clean run: 12 callbacks parsed');
    my ($err, $iv) = lock_errors($n);
    is($iv, 12, 'clean run: 12 lock intervals');
}

# ---------------------------------------------------------------- master exits
{
    my @r = clean_run();
    splice @r, at(\@r, 'master_exit', 1) + 1, 0, [cb => 'master_exit', 1, 'nil', 0, 2, 102];
    caught('a second master exit', \@r, { inv => qr/second master exit of generation 1/, lifecycle => qr/master_exit twice for gen 1/ });
}
{
    # the reload's old generation ends (both exits, both reaped) without a
    # master exit, the node still running: only the run invariants see it
    my @r = clean_run();
    splice @r, at(\@r, 'm', qr/SIGQUIT/);
    splice @r, at(\@r, 'master_exit', 1), 1;
    my $f = caught('no master exit for an ended generation, node running', \@r,
                   { inv => qr/generation 1 ended \(its last worker 1-102 left through its worker exit .*\) but got no master exit/ });
    is_deeply($f->{model}, [], '... (the model, not told the node stopped, has nothing to say)');
}
{
    my @r = clean_run();
    splice @r, at(\@r, 'master_exit', 2), 1;
    caught('no master exit for the last generation, node stopped', \@r,
           { inv => qr/generation 2 ended .* but got no master exit/, model => qr/generation 2 never got its master exit/ },
           complete => 1);
}
{
    # none for a generation still running: the master exit comes after the
    # first worker exit, the other worker of generation 1 never exits
    my @r = clean_run();
    splice @r, at(\@r, 'm', qr/SIGQUIT/);
    my $i = at(\@r, 'worker_exit', '1-102');
    splice @r, $i, 4, [cb => 'master_exit', 1, 'nil', 0, 2, 101], [m => 'worker process 101 exited with code 0'];
    caught('a master exit while a worker of its generation runs', \@r,
           { inv => qr/master exit of generation 1 \(#\d+\) while its worker 1-102 still runs: no worker exit and never reaped before \(never reaped\)/,
             model => qr/master exit while workers of its generation are counted: 1-102/ });
}
{
    my @r = clean_run();
    my $i = at(\@r, 'worker_exit', '1-102');
    @r[$i, $i + 1] = ([cb => 'master_exit', 1, 'nil', 0, 2, 101], [cb => 'worker_exit', '1-102', 'nil', 1, 2, 102]);
    caught('a callback of a generation after its master exit', \@r,
           { inv => qr/worker_exit\(1-102, .*callback of generation 1 after its master exit/,
             lifecycle => qr/callback of generation 1 after its master_exit/ });
}

# ---------------------------------------------------------------- counts
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '2-104')][4] = -1;
    caught('a negative n_mine', \@r, { inv => qr/n_mine=-1 is negative/, lifecycle => qr/mine not an integer/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '1-101')][5] = -2;
    caught('a negative n_next', \@r, { inv => qr/n_next=-2 is negative/, lifecycle => qr/next not nil\/integer/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '2-103')][3] = -1;
    caught('a negative n_prev', \@r, { inv => qr/n_prev=-1 is negative/ });
}
{
    my @r = clean_run();
    splice @r, at(\@r, 'worker_exit', '1-101'), 0,
        [w => 104, '[lua] x: [worker-manager] worker 2-103 (pid 103, slot 0) crashed: its process is gone; dropped from the counts, -1 left in generation 2', 'error'];
    caught('a drop report with a negative count', \@r, { inv => qr/drop report of 2-103: -1 left in generation 2 is negative/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_start', '1-101')][4] = 2;
    caught('n_mine of a start above the starts of its generation', \@r,
           { inv => qr/worker_start\(1-101, nil, 2, nil\).*n_mine=2 of a start above the 1 starts of generation 1 so far/,
             model => qr/mine=2, expected 1/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '1-102')][4] = 2;
    caught('n_mine of an exit above the starts minus exits', \@r,
           { inv => qr/n_mine=2 above the starts minus exits of generation 1 so far \(1\)/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'master_start', 2)][3] = 3;
    caught('n_prev above the older generations\' workers', \@r,
           { inv => qr/n_prev=3 above the older generations' starts minus exits so far \(2\)/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '1-101')][5] = 3;
    caught('n_next above the newer generations\' workers', \@r,
           { inv => qr/n_next=3 above the newer generations' starts minus exits so far \(2\)/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_start', '2-103')][3] = 'nil';
    caught('n_prev nil in generation 2', \@r, { inv => qr/n_prev nil in generation 2/, model => qr/prev=nil, expected 2/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_start', '1-102')][3] = 0;
    caught('n_prev 0 in generation 1', \@r, { inv => qr/n_prev=0 in generation 1 \(must be nil\)/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'master_exit', 2)][4] = 1;
    caught('n_mine 1 in a master callback', \@r, { inv => qr/n_mine=1 in a master callback/ });
}
{
    my @r = clean_run();
    $r[at(\@r, 'worker_exit', '2-104')][4] = 0;
    caught('an exiting worker that does not count itself', \@r, { inv => qr/a starting or exiting worker counts itself/ });
}

{
    # 1-102 killed after the module counted it, before its start callback
    # logged: its respawn 1-105 counts it, the module reports the drop; the
    # checker infers the start it cannot see (ghost_starts)
    my $drop = [w => 105, '[lua] x: [worker-manager] worker 1-102 (pid 102, slot 1) crashed: nginx respawned its slot as 1-105; '
                        . 'dropped from the counts, 2 left in generation 1', 'error'];
    my @r = (
        [cb => 'master_start', 1, 'nil', 0, 'nil', 99],
        [m => 'start worker process 101'], [m => 'start worker process 102'],
        [cb => 'worker_start', '1-101', 'nil', 1, 'nil', 101],
        [m => 'worker process 102 exited on signal 9'],
        [m => 'start worker process 105'],
        [cb => 'worker_start', '1-105', 'nil', 3, 'nil', 105],
        $drop,
        [m => 'signal 3 (SIGQUIT) received from 1, shutting down'],
        [cb => 'worker_exit', '1-101', 'nil', 2, 'nil', 101],
        [cb => 'worker_exit', '1-105', 'nil', 1, 'nil', 105],
        [cb => 'master_exit', 1, 'nil', 0, 'nil', 105],
        [m => 'worker process 101 exited with code 0'], [m => 'worker process 105 exited with code 0'],
        [m => 'exit'],
    );
    my $n = write_log(@r);
    is(scalar(ghost_starts($n)), 1, 'a worker counted but not logged: one inferred start');
    my $f = findings($n, complete => 1);
    is_deeply([ map { @{ $f->{$_} } } qw(lifecycle model lock inv) ], [], '... and the run is clean with it')
        or diag join "\n", map { @{ $f->{$_} } } qw(lifecycle model lock inv);
    @r = grep { $_ != $drop } @r;
    caught('... without the module\'s drop report', \@r, { inv => qr/n_mine=3 of a start above the 2 starts of generation 1 so far/ });
}

# ---------------------------------------------------------------- the lock
{
    # 1-102's start enters while 1-101's still runs
    my @r = clean_run();
    my $i = at(\@r, 'worker_start', '1-101');
    splice @r, $i, 2,
        [enter => 'worker_start', '1-101', 101],
        [cb => 'worker_start', '1-101', 'nil', 1, 'nil', 101, no_enter => 1, no_leave => 1],
        [cb => 'worker_start', '1-102', 'nil', 2, 'nil', 102],
        [leave => 'worker_start', '1-101', 101];
    caught('two callbacks at once', \@r, { lock => qr/entered while .*worker_start id=1-101/ });
}

{
    # a hold that outlives the lock's 30 s expiry lets the next one in
    my @r = clean_run();
    my $i = at(\@r, 'worker_start', '1-101');
    splice @r, $i, 2,
        [enter => 'worker_start', '1-101', 101],
        [cb => 'worker_start', '1-101', 'nil', 1, 'nil', 101, no_enter => 1, no_leave => 1],
        [sleep => 31],
        [cb => 'worker_start', '1-102', 'nil', 2, 'nil', 102],
        [leave => 'worker_start', '1-101', 101];
    my ($err, $iv, $killed, $expired) = lock_errors(write_log(@r));
    is_deeply($err, [], 'a hold past the lock\'s 30 s expiry: the next callback may enter') or diag join "\n", @$err;
    is($expired, 1, '... counted as one expired hold');
    $r[ at(\@r, 'worker_start', '1-101') + 1 ] = [sleep => 20];
    caught('... but not 20 s after', \@r, { lock => qr/entered while .*worker_start id=1-101/ });
}

# ---------------------------------------------------------------- a full shm
# a worker whose slot key did not fit at its start: its start counts itself,
# the shm does not, until its heartbeat finds room ("is counted now") or it
# exits uncounted ("exits while not counted")
my $NOCOUNT = "[worker-manager] worker 2-104 could not be counted (no room for its keys in shm 'wm'); its heartbeat counts it once there is room";
{
    my @r = clean_run();
    splice @r, at(\@r, 'worker_start', '2-104'), 0, [w => 104, $NOCOUNT];
    splice @r, at(\@r, 'worker_start', '2-104') + 1, 0,
        [w => 104, "[worker-manager] worker 2-104 is counted now: its keys did not fit in shm 'wm' when it started"];
    my $f = findings(write_log(@r), complete => 1);
    is_deeply($f->{model}, [], 'counted late, before anyone needed it: the model agrees') or diag join "\n", @{ $f->{model} };
}
{
    my @r = clean_run();
    splice @r, at(\@r, 'worker_start', '2-104'), 0, [w => 104, $NOCOUNT];
    # never counted: the others do not see it, its own exit counts itself
    $r[ at(\@r, 'worker_exit', '1-101') ][5] = 1;
    $r[ at(\@r, 'worker_exit', '1-102') ][5] = 1;
    $r[ at(\@r, 'master_exit', 1) ][5] = 1;
    $r[ at(\@r, 'worker_exit', '2-103') ][4] = 1;
    splice @r, at(\@r, 'worker_exit', '2-104'), 0,
        [w => 104, "[worker-manager] worker 2-104 exits while not counted (its keys were lost from shm 'wm' or never fitted in it)"];
    my $f = findings(write_log(@r), complete => 1);
    is_deeply($f->{model}, [], 'never counted: the model agrees with counts that leave it out') or diag join "\n", @{ $f->{model} };
    $r[ at(\@r, 'worker_exit', '2-103') ][4] = 2;
    caught('... and catches a count that includes it', \@r, { model => qr/worker_exit\(2-103.*mine=2, expected 1/ }, complete => 1);
}
{
    my @r = clean_run();
    splice @r, at(\@r, 'worker_start', '2-104') + 1, 0,
        [w => 104, "[worker-manager] worker 2-104 is counted now: its keys did not fit in shm 'wm' when it started"];
    caught('"counted now" for a worker counted at its start', \@r, { model => qr/2-104 counted late but it was counted at its start/ });
}

# ---------------------------------------------------------------- exits
{
    my @r = clean_run();
    my $i = at(\@r, 'worker_exit', '2-103');
    splice @r, $i, 1;
    $r[at(\@r, 'worker_exit', '2-104')][4] = 2;
    caught('a worker that exits with code 0 without its worker exit', \@r,
           { inv => qr/worker 2-103 exited with code 0 \(#\d+\) without its worker exit/ });
}
{
    # TERM without the exit hook: nothing tracked, nothing due
    my @r = clean_run();
    my $i = at(\@r, 'm', qr/SIGQUIT/);
    splice @r, $i, scalar(@r) - $i,
        [m => 'signal 15 (SIGTERM) received from 1, exiting'],
        [m => 'worker process 103 exited with code 0'], [m => 'worker process 104 exited with code 0'], [m => 'exit'];
    my $f = findings(write_log(@r), exit_hook => 0);
    is_deeply($f->{inv}, [], 'TERM without the exit hook: no finding');
    like($f->{notes}[0] // '', qr/generation 2 ended without a master exit: its last worker 2-10\d exited untracked \(code 0\) and nobody was left to notice/,
         '... but a note that generation 2 ended unseen');
    $f = findings(write_log(@r), exit_hook => 1);
    like(join("\n", @{ $f->{inv} }), qr/worker 2-103 exited with code 0 .* without its worker exit \(fast stop, exit hook on\)/,
         'the same with the exit hook: the untracked exits are findings');
}
{
    # the last worker of generation 1 is killed after its sibling exited;
    # generation 2 lives on for 30 s: its heartbeats must find it
    my @r = clean_run();
    my $i = at(\@r, 'worker_exit', '1-102');
    splice @r, $i, 4, [m => 'worker process 101 exited with code 0'], [m => 'worker process 102 exited on signal 9'], [sleep => 30];
    caught('a generation whose last worker was killed, nobody runs its master exit', \@r,
           { inv => qr/generation 1 ended \(its last worker 1-102 reaped at #\d+, signal 9\) and worker 2-10\d lived on for >= 5s, but no master exit ran/ },
           grace => 5);
    # ... but when the node stops at once, nobody was left to notice: a note
    $r[ at(\@r, 'm', qr/exited on signal 9/) + 1 ] = [sleep => 1];
    my $f = findings(write_log(@r), grace => 5);
    is_deeply($f->{inv}, [], '... stopped a second later: no finding');
    like($f->{notes}[0] // '', qr/generation 1 ended without a master exit: its last worker 1-102 was killed \(signal 9\) and nobody was left to notice/,
         '... a note instead');
}

# ---------------------------------------------------------------- two lifetimes
{
    my @r = (clean_run(), [sleep => 1], map { [@$_] } clean_run());
    # the second lifetime has new pids
    for my $s (@r[ scalar(clean_run()) + 1 .. $#r ]) {
        if ($s->[0] eq 'cb') { $s->[6] += 100 unless $s->[6] == $M; $s->[2] =~ s/-(\d+)$/'-' . ($1 + 100)/e }
        elsif ($s->[0] eq 'm') { $s->[1] =~ s/process (\d+)/'process ' . ($1 + 100)/e }
    }
    my ($inv) = invariant_errors(write_log(@r));
    is_deeply($inv, [], 'a restart (two lifetimes in one log): each is checked on its own') or diag join "\n", @$inv;
    splice @r, at(\@r, 'master_exit', 1), 1;    # the first lifetime's gen-1 master exit
    ($inv) = invariant_errors(write_log(@r));
    like(join("\n", @$inv), qr/\[lifetime 1\] generation 1 ended .* no master exit/, '... and a fault is named with its lifetime');
}

# ---- exit_reason() in a worker exit agrees with its n_next
{
    my @steps = clean_run();
    $steps[ at(\@steps, 'worker_exit', '1-101') ] = [cb => 'worker_exit', '1-101', 'nil', 2, 2, 101, reason => 'replace'];
    caught('a reload\'s exit says replace', \@steps,
           { lifecycle => qr/worker_exit\(1-101, nil, 2, 2\).*: exit_reason\(\) replace with n_next=2 \(must be reload\)/ });
    @steps = clean_run();
    $steps[ at(\@steps, 'worker_exit', '2-103') ] = [cb => 'worker_exit', '2-103', 0, 2, 'nil', 103, reason => 'reload'];
    caught('a stop\'s exit says reload', \@steps,
           { lifecycle => qr/worker_exit\(2-103, 0, 2, nil\).*: exit_reason\(\) reload with n_next=nil \(must be stop or replace\)/ });
    @steps = clean_run();
    $steps[ at(\@steps, 'worker_exit', '1-101') ] = [cb => 'worker_exit', '1-101', 'nil', 2, 2, 101, reason => 'reload'];
    $steps[ at(\@steps, 'worker_exit', '2-103') ] = [cb => 'worker_exit', '2-103', 0, 2, 'nil', 103, reason => 'stop'];
    is_deeply([ lifecycle_errors(write_log(@steps)) ], [], 'exit reasons that agree with n_next pass');
}

# ---- a restart: the log of two node lifetimes passes; generation 1 again
# while a worker of the first lifetime is unaccounted for does not
{
    # the same run again, its workers with new pids (1xx -> 2xx)
    my @second = map {
        my @s = @$_;
        if ($s[0] eq 'cb') {
            $s[2] =~ s/^(\d+)-1(\d\d)$/$1-2$2/;
            $s[6] =~ s/^1(\d\d)$/2$1/;
        } elsif ($s[0] eq 'm') {
            $s[1] =~ s/\b1(0\d)\b/2$1/g;
        }
        \@s;
    } clean_run();
    my @restart = (clean_run(), [sleep => 2], @second);
    is_deeply([ lifecycle_errors(write_log(@restart)) ], [], 'a restart after a stop passes');
    my @early = clean_run();
    splice @early, at(\@early, 'worker_exit', '2-104'), 2;    # 2-104 exits no more
    caught('generation 1 again while a worker still runs', [@early, [sleep => 2], @second],
           { lifecycle => qr/master_start\(1, nil, 0, nil\).*: master_start twice for gen 1/ });
}

# ---- singletons (WorkerManager::SingletonCheck): a clean run passes, and
# each broken variant is caught
{
    use WorkerManager::SingletonCheck;
    # [sj => edge, kind, name, token, pid, reason, held] as wm_test.lua's sj() logs it
    my $sj = sub {
        my ($edge, $kind, $name, $token, $pid, $reason, $held) = @_;
        return [w => $pid, sprintf('WMSJ-%s %s name=%s token=%d pid=%d phase=timer reason=%s held=%s t=%d.000000',
                                   $edge, $kind, $name, $token, $pid, $reason // 'nil', $held // "true:$token", $T0), 'warn'];
    };
    my @clean = (clean_run());
    # job held by 101, then moved to 103 on the reload (stop before start)
    splice @clean, at(\@clean, 'worker_start', '1-102') + 1, 0,
        $sj->(qw(ENTER start job 1 101)), $sj->(qw(LEAVE start job 1 101)),
        $sj->(qw(ENTER fn tick 1 101)), $sj->(qw(LEAVE fn tick 1 101));
    splice @clean, at(\@clean, 'worker_start', '2-104') + 1, 0,
        $sj->(qw(ENTER stop job 1 101 reload)), $sj->(qw(LEAVE stop job 1 101)),
        $sj->(qw(ENTER start job 2 103)), $sj->(qw(LEAVE start job 2 103)),
        $sj->(qw(ENTER fn tick 2 104)), $sj->(qw(LEAVE fn tick 2 104));
    splice @clean, at(\@clean, 'worker_exit', '2-103'), 0,
        $sj->(qw(ENTER stop job 2 103 stop)), $sj->(qw(LEAVE stop job 2 103));
    is_deeply([ singleton_errors(write_log(@clean)) ], [], 'singletons: a clean run passes');

    my $broken = sub {
        my ($label, $edit, $want) = @_;
        my @steps = @clean;
        $edit->(\@steps);
        my @err = singleton_errors(write_log(@steps));
        ok((grep { $_ =~ $want } @err), "singletons: $label is caught") or diag join "\n", @err;
    };
    my $find = sub {
        my ($steps, $re) = @_;
        for my $i (0 .. $#$steps) { return $i if ($steps->[$i][2] // '') =~ $re }
        die "no step $re";
    };
    $broken->('a start before the stop returned', sub {
        my $s = shift;
        my $leave = splice @$s, $find->($s, qr/WMSJ-LEAVE stop name=job token=1 /), 1;
        splice @$s, $find->($s, qr/WMSJ-LEAVE start name=job token=2 /) + 1, 0, $leave;
    }, qr/ENTER start name=job token=2 pid=103: begins while token 1 of pid 101 is held/);
    $broken->('a token that does not grow', sub {
        my $s = shift;
        $s->[ $find->($s, qr/WMSJ-ENTER start name=job token=2 /) ] = $sj->(qw(ENTER start job 1 103));
    }, qr/token 1 is not above the name's last token 1/);
    $broken->('a lost stop of a holding not freed for a stall', sub {
        my $s = shift;
        $s->[ $find->($s, qr/WMSJ-ENTER stop name=job token=1 /) ] = $sj->('ENTER', 'stop', 'job', 1, 101, 'lost', 'false:nil');
    }, qr/lost, but the holding was not freed for a stall first/);
    $broken->('a stop where holds() was false', sub {
        my $s = shift;
        $s->[ $find->($s, qr/WMSJ-ENTER stop name=job token=1 /) ] = $sj->('ENTER', 'stop', 'job', 1, 101, 'reload', 'false:nil');
    }, qr/holds\(\) said false:nil, not true:1/);
    $broken->('overlapping runs of every()', sub {
        my $s = shift;
        my $leave = splice @$s, $find->($s, qr/WMSJ-LEAVE fn name=tick token=1 /), 1;
        splice @$s, $find->($s, qr/WMSJ-ENTER fn name=tick token=2 /) + 1, 0, $leave;
    }, qr/ENTER fn name=tick token=2 pid=104: runs while the run of .* token=1 pid=101 has not returned/);
    $broken->('a start after the stop of the node', sub {
        my $s = shift;
        splice @$s, $find->($s, qr/WMSJ-LEAVE stop name=job token=2 /) + 1, 0,
            $sj->(qw(ENTER start job 3 104)), $sj->(qw(LEAVE start job 3 104));
    }, qr/begins after the job was stopped for a stop of the node/);
    $broken->('a stop with an unknown reason', sub {
        my $s = shift;
        $s->[ $find->($s, qr/WMSJ-ENTER stop name=job token=1 /) ] = $sj->(qw(ENTER stop job 1 101 moved));
    }, qr/stop with reason moved/);
    # a holder freed (it crashed) may be followed at once
    my @freed = @clean;
    my $i = $find->(\@freed, qr/WMSJ-ENTER stop name=job token=1 /);
    splice @freed, $i, 2, [w => 102, "[lua] liveness.lua:1: free_singletons(): [worker-manager] singleton 'job' (token 1) of worker 1-101 is free again: its holder crashed"];
    is_deeply([ singleton_errors(write_log(@freed)) ], [], 'singletons: a start after the module freed a dead holder passes');
}

# ---- warn+ lines (no_errors_ok): the test's markers are left out, anything
# else is reported unless the suite allows it
{
    my $n = write_log(clean_run(),
                      [w => 101, '[lua] manager.lua:1: f(): [worker-manager] something odd', 'warn'],
                      [w => 102, 'ngx.sleep(0) called without delayed events patch, this will hurt performance', 'warn'],
                      [w => 103, '[lua] init_worker_by_lua(nginx.conf:3):1: WMREADY pid=103 slot=0 confv=0', 'warn']);
    is(join('|', map { $_->{pid} } $n->errors(level => 'warn')), '101|102',
       'warn+ lines: the module\'s and nginx\'s are found, the WMREADY marker is not');
    is(scalar($n->errors(level => 'warn', allow => [qr/something odd/, qr/ngx\.sleep\(0\)/])), 0, '... unless allowed');
    is(scalar($n->errors), 0, '... and none of them at error level');
}

# ---- cluster singletons over several nodes' logs
# (SingletonCheck::fleet_singleton_errors): a clean handover passes, and a
# start before the previous stop returned, a token reused or going back
# are caught, unless the previous holder's node was killed or frozen
{
    use WorkerManager::SingletonCheck;
    # [edge, kind, token, pid, t] as wm_test.lua's sj(kind, { scope = "cluster" }) logs them
    my $cj = sub {
        my ($edge, $kind, $token, $pid, $t, $reason) = @_;
        return [w => $pid, sprintf('WMSJ-%s %s name=job token=%d pid=%d phase=timer reason=%s held=true:%d scope=cluster t=%.6f',
                                   $edge, $kind, $token, $pid, $reason // 'nil', $token, $T0 + $t), 'warn'];
    };
    my $fleet = sub {
        my ($a, $b, %gone) = @_;
        return fleet_singleton_errors(nodes => [ [a => write_log(@$a)], [b => write_log(@$b)] ], gone => \%gone);
    };
    my @a = ($cj->(qw(ENTER start 1 101 1.0)), $cj->(qw(LEAVE start 1 101 1.1)),
             $cj->('ENTER', 'stop', 1, 101, 2.0, 'stop'), $cj->(qw(LEAVE stop 1 101 2.1)));
    my @b = ($cj->(qw(ENTER start 2 201 2.5)), $cj->(qw(LEAVE start 2 201 2.6)));
    is_deeply([ $fleet->(\@a, \@b) ], [], 'fleet: a start after the previous stop returned passes');
    my @early = ($cj->(qw(ENTER start 2 201 2.05)), $cj->(qw(LEAVE start 2 201 2.06)));
    my @err = $fleet->(\@a, \@early);
    ok((grep { /token 2 started in b .* before token 1's stop returned in a/ } @err), 'fleet: a start before the stop returned is caught')
        or diag join "\n", @err;
    @err = $fleet->([ @a[0, 1] ], \@b);
    ok((grep { /before token 1's stop returned in a \(it never did\)/ } @err), 'fleet: a holding that never stopped is caught');
    is_deeply([ $fleet->([ @a[0, 1] ], \@b, a => 1) ], [], '... unless its node was killed or frozen');
    my @again = ($cj->(qw(ENTER start 1 201 2.5)), $cj->(qw(LEAVE start 1 201 2.6)));
    @err = $fleet->(\@a, \@again);
    ok((grep { /token 1 started twice/ } @err), 'fleet: a token started twice is caught');
    my @back = ($cj->(qw(ENTER start 0 201 2.5)), $cj->(qw(LEAVE start 0 201 2.6)));
    @err = $fleet->(\@a, \@back);
    ok((grep { /token 0 in b started after token 1/ } @err), 'fleet: a token that goes back is caught');
}

done_testing;
