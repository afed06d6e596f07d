package WorkerManager::Check;

# Assertions shared by the t/*.t suites, built on WorkerManager::Nginx.
#
#   cbs_ok / model_ok / lifecycle_ok / lock_ok / cb_is / sorted_field
#
# The invariant checker (issue 6) is checker_ok($n, label => ..): on one
# node's log it runs lifecycle_ok, model_ok (exact replay of the module's
# reports), lock_ok and invariants_ok (the run invariants: counts never
# negative, bounded by the starts, n_prev nil only in generation 1, exactly
# one master exit per ended generation, none for a running one).  Every
# t/*.t runs it (or its parts) on each node it starts; checker_errors() is
# the same without Test::More (t/soak/soak.pl); the *_errors functions give
# each part's findings (t/30-checker.t feeds them broken logs).
#
# Callback hashes come from WorkerManager::Nginx::callbacks(); every value is
# the string the Lua side printed ('nil' for nil).

use strict;
use warnings;
use Exporter 'import';
use Test::More ();
use Time::HiRes ();
use WorkerManager::SingletonCheck ();

our @EXPORT = qw(cb_is cb_str cbs_str sorted_field select_cbs model_errors drops counted_at model_ok
                 lifecycle_ok lifecycle_errors lock_ok lock_errors no_errors_ok exactly_one ghost_starts
                 invariant_errors invariants_ok checker_ok checker_errors
                 late_starters poll killed_allow $TAKEOVER_RE $RECOUNT_RE $MISSED_RE);

sub cb_str {
    my $c = shift;
    return sprintf '#%d %s(%s, %s, %s, %s) pid=%s slot=%s count=%s%s%s',
        $c->{idx}, $c->{event}, map({ $_ // '?' } @$c{qw(id prev mine next pid slot count)}),
        ($c->{reason} // 'nil') ne 'nil' ? " reason=$c->{reason}" : '',
        $c->{tag} ? " tag=$c->{tag}" : '';
}

sub cbs_str { join '', map { '  ' . cb_str($_) . "\n" } @_ }

sub select_cbs {
    my ($cbs, %f) = @_;
    my @c = @$cbs;
    @c = grep { $_->{event} eq $f{event} } @c if defined $f{event};
    @c = grep { defined $_->{gen} && $_->{gen} == $f{gen} } @c if defined $f{gen};
    @c = grep { $_->{logpid} == $f{pid} } @c if defined $f{pid};
    return @c;
}

# cb_is($cb, [id, prev, mine, next], $name): exact args of one callback
sub cb_is {
    my ($c, $want, $name) = @_;
    my $tb = Test::More->builder;
    unless ($c) {
        $tb->ok(0, $name);
        $tb->diag("  no such callback");
        return 0;
    }
    my @got = @$c{qw(id prev mine next)};
    my $ok = 1;
    for my $i (0 .. 3) {
        next unless defined $want->[$i];    # undef in $want: don't care
        $ok = 0 if $got[$i] ne $want->[$i];
    }
    $tb->ok($ok, $name);
    $tb->diag(sprintf "  got:      (%s)\n  expected: (%s)\n  line: %s",
        join(', ', @got), join(', ', map { $_ // '*' } @$want), $c->{line}) unless $ok;
    return $ok;
}

# sorted list of one field, e.g. sorted_field('mine', @cbs) -> '1,2'
sub sorted_field {
    my ($f, @c) = @_;
    return join ',', sort { ($a =~ /^\d+$/ && $b =~ /^\d+$/) ? $a <=> $b : $a cmp $b } map { $_->{$f} } @c;
}

sub exactly_one {
    my ($list, $name) = @_;
    my $ok = Test::More::is(scalar @$list, 1, $name);
    Test::More::diag(cbs_str(@$list)) unless $ok;
    return $list->[0];
}

# ---------------------------------------------------------------- model
#
# model_errors($n, on_crash => 1, since =>, phantom =>, complete =>) replays
# the log (callbacks, the module's own reports as the state changes, and
# the master's "worker process P exited on signal S" lines) through the
# contract and returns the list of mismatches; model_ok is the same as a
# test.  There is one model (below): a killed worker stays counted until the
# module reports dropping it, so every count is known exactly.
#   n_prev = nil if gen == 1, else the counted workers of all older generations
#   n_mine = counted workers of the own generation (a starting worker counts
#            itself; an exiting worker counts itself); 0 for master events
#   n_next = nil if no newer generation exists, else counted workers of newer ones
#   phantom => [gens]   rolled-back reloads: their master_start is skipped
# ------------------------------------------------ the model's replay
#
# model_errors replays the log with the module's own reports as the
# state changes, so no count is "uncertain":
#   "[worker-manager] worker G-P (pid P, slot S) crashed: CAUSE; dropped from
#    the counts, N left in generation G"      -> G-P leaves the counts; N must
#                                                be what is left; CAUSE "no
#                                                heartbeat ..." on a live
#                                                process: G-P is "stalled"
#   "... worker G-P was dropped as crashed but is alive ...; counted again"
#   "... worker G-P is alive but was not counted (...): restored slot S"
#                                             -> a stalled G-P is counted again
#                                                (a restored "generation G"
#                                                that had ended is an error)
#   "... worker G-P exits after it was dropped for a late heartbeat"
#                                             -> its worker_exit counts itself
#                                                on top of the counted ones
#   "... worker G-P (pid P, slot S) crashed while starting, before it was
#    counted ..."                             -> a crash report (on_crash due)
#                                                for a worker never counted
#   "worker process P exited on signal S" (master) -> P is dead
# A killed worker stays counted until the module drops it (a callback before
# the drop must count it, one after must not).  A master exit is an error
# while its generation has a counted worker or a stalled one still running.
# on_crash => 1: every drop is followed by exactly one `crash` callback
# (wm.rec("crash") as opts.on_crash) for that worker id, in the process that
# dropped it, with the counts after the drop; a crash callback without a drop
# is always an error.  complete => 1 (the node was stopped gracefully): every
# generation must have had its master exit by the end of the log.
# wiped => idx: the module's keys were wiped (flush_all) at log entry idx;
# after it, "counted again" of a worker that is counted (in a generation that
# exists) is the module restoring its state, not a second count.
our $DROP_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) \(pid (\d+), slot (\d+)\) crashed: (.*?); dropped from the counts, (-?\d+) left in generation (\d+)/s;
our $LOST_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) \(pid (\d+), slot (\d+)\) crashed while starting, before it was counted/;
# counted again: "was dropped as crashed but is alive ...; counted again" (older
# wording) or "is alive but was not counted (...): restored [generation G and
# its ]slot S"
our $RECOUNT_RE = qr/\[worker-manager\] worker (\d+)-(\d+) (?:was dropped as crashed but is alive|is alive but was not counted)/;
our $LATE_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) exits after it was dropped for a late heartbeat/;
# a shm too full for a starting worker's keys: its start counts itself but
# the shm does not ("could not be counted"), until a heartbeat finds room
# ("is counted now"); if none did, its exit counts itself on top ("exits
# while not counted")
our $NOCOUNT_RE = qr/\[worker-manager\] worker (\d+)-(\d+) could not be counted \(no room/;
our $LATECOUNT_RE = qr/\[worker-manager\] worker (\d+)-(\d+) is counted now: its keys did not fit/;
our $UNCOUNTED_EXIT_RE = qr/\[worker-manager\] worker (\d+)-(\d+) exits while not counted/;
# (or of an idle generation, one whose last worker left while nginx's master
# kept its configuration: closed by a newer generation's worker or by
# whoever exits for a stop, its own last worker included)
our $BEHALF_RE  = qr/\[worker-manager\] generation (\d+) (lost its last worker|went idle)[^;]*; running its master exit here/;
our $SIGNAL_RE  = qr/worker process (\d+) exited on signal (\d+)/;
our $TAKEOVER_RE = qr/\[worker-manager\] took over the node lock from dead process (\d+)/;
# the module's once-per-worker note that its heartbeat missed runs (a worker
# blocked, stopped, or whose timer runs nginx dropped)
our $MISSED_RE = qr/\[worker-manager\] the heartbeat of worker \d+-\d+ did not run for /;

# The module's drop reports since `since`, in log order:
#   { wid, gen, pid, slot, cause, left, idx, logpid, level, line }
sub drops {
    my ($n, %o) = @_;
    my @d;
    for my $e ($n->grep_log($DROP_RE, since => $o{since})) {
        next unless $e->{text} =~ $DROP_RE;
        push @d, { wid => "$1-$2", gen => $1, pid => $3, slot => $4, cause => $5, left => $6,
                   idx => $e->{idx}, logpid => $e->{pid}, level => $e->{level}, line => $e->{line} };
    }
    @d = grep { $_->{wid} eq $o{wid} } @d if defined $o{wid};
    return @d;
}

# Workers the module counted whose start callback left no line in the log:
# killed after the module counted them and before their callback logged (the
# module counts a starting worker, then runs its callback, under the lock).
# The module's drop report names them; they count from their death on (the
# master's "exited on signal" line, or a takeover of their lock; before it
# they held the lock, so no callback could see them), or, without such a
# line, from just before the drop.  [ { gen, wid, wpid, idx } ]
sub ghost_starts {
    my ($n, %o) = @_;
    my %started = map { $_->{id} => 1 } $n->callbacks(since => $o{since}, event => 'worker_start');
    my %death;
    for my $e ($n->grep_log(qr/$SIGNAL_RE|$TAKEOVER_RE/, since => $o{since})) {
        my ($pid) = $e->{text} =~ $SIGNAL_RE ? ($1) : $e->{text} =~ $TAKEOVER_RE ? ($1) : ();
        $death{$pid} //= $e->{idx} if $pid;
    }
    my (@g, %seen);
    for my $d (drops($n, since => $o{since})) {
        next if $started{ $d->{wid} } || $seen{ $d->{wid} }++;
        my $idx = defined $death{ $d->{pid} } && $death{ $d->{pid} } < $d->{idx} ? $death{ $d->{pid} } + 0.25 : $d->{idx} - 0.25;
        push @g, { gen => $d->{gen}, wid => $d->{wid}, wpid => $d->{pid}, idx => $idx };
    }
    return @g;
}

# Workers of generation $g counted just before log entry $idx, from the log:
# worker starts - worker exits (of counted workers) - the module's drops +
# its "counted again" notes.  For expected n_prev/n_next of one callback
# where the order of starts and exits is up to the lock.
sub counted_at {
    my ($n, $g, $idx) = @_;
    my $k = 0;
    my %late;
    for my $e ($n->grep_log(qr/$LATE_RE/)) { $late{"$1-$2"} = 1 if $e->{idx} < $idx && $e->{text} =~ $LATE_RE }
    for my $c ($n->callbacks(gen => $g)) {
        last if $c->{idx} >= $idx;
        $k++ if $c->{event} eq 'worker_start';
        $k-- if $c->{event} eq 'worker_exit' && !$late{ $c->{id} };
    }
    for my $e ($n->grep_log(qr/$DROP_RE|$RECOUNT_RE/)) {
        last if $e->{idx} >= $idx;
        if ($e->{text} =~ $DROP_RE) { $k-- if $1 == $g }
        elsif ($e->{text} =~ $RECOUNT_RE) { $k++ if $1 == $g }
    }
    return $k;
}

sub model_errors {
    my ($n, %o) = @_;
    my %phantom = map { $_ => 1 } @{ $o{phantom} // [] };
    my (%alive, %exists, %stalled, %dead, %due, %dropped, %late, %nocount, @err);
    my @ev;
    for my $e ($n->grep_log(qr/$DROP_RE|$LOST_RE|$RECOUNT_RE|$LATE_RE|$NOCOUNT_RE|$LATECOUNT_RE|$UNCOUNTED_EXIT_RE|$SIGNAL_RE/,
                            since => $o{since})) {
        my $t = $e->{text};
        if ($t =~ $NOCOUNT_RE) {
            push @ev, { kind => 'nocount', gen => $1, wpid => $2, idx => $e->{idx} };
        } elsif ($t =~ $LATECOUNT_RE) {
            push @ev, { kind => 'latecount', gen => $1, wpid => $2, idx => $e->{idx} };
        } elsif ($t =~ $UNCOUNTED_EXIT_RE) {
            push @ev, { kind => 'uncounted_exit', gen => $1, wpid => $2, idx => $e->{idx} };
        } elsif ($t =~ $LOST_RE) {
            push @ev, { kind => 'lost', gen => $1, wpid => $2, pid => $3, slot => $4,
                        idx => $e->{idx}, logpid => $e->{pid}, line => $e->{line} };
        } elsif ($t =~ $DROP_RE) {
            push @ev, { kind => 'drop', gen => $1, wpid => $2, pid => $3, slot => $4, cause => $5,
                        left => $6, lgen => $7, idx => $e->{idx}, logpid => $e->{pid}, line => $e->{line} };
        } elsif ($t =~ $RECOUNT_RE) {
            # ($1/$2 copied before the second match resets them)
            my ($g, $wp) = ($1, $2);
            push @ev, { kind => 'recount', gen => $g, wpid => $wp, idx => $e->{idx}, line => $e->{line},
                        regen => scalar($t =~ /restored (?:generation counter and )?generation \d+/) };
        } elsif ($t =~ $LATE_RE) {
            push @ev, { kind => 'late', gen => $1, wpid => $2, idx => $e->{idx}, line => $e->{line} };
        } elsif ($t =~ $SIGNAL_RE) {
            push @ev, { kind => 'signal', pid => $1, idx => $e->{idx} };
        }
    }
    push @ev, map { { %$_, kind => 'cb' } } $n->callbacks(since => $o{since});
    push @ev, map { { %$_, kind => 'ghost' } } ghost_starts($n, since => $o{since});
    # The module uncounts a worker replaced by a respawn right after the
    # respawned worker's start callback, and reports it once that worker (or,
    # if it was killed in that callback, the next respawn) can: the drop is
    # dated right after the start of the worker named in the report.
    # (a respawned worker killed in its own start callback has no logged
    # start: its inferred one dates the drop of its predecessor, which the
    # module then reports when it drops the respawned worker in turn)
    my %start_idx = map { $_->{kind} eq 'ghost' ? ($_->{wid} => $_->{idx}) : ($_->{id} => $_->{idx}) }
                    grep { ($_->{kind} eq 'cb' && $_->{event} eq 'worker_start') || $_->{kind} eq 'ghost' } @ev;
    # Its "N left" is the count when the report was given, which may be much
    # later (the respawn killed in its callback during a reload: whoever
    # drops the respawn gives the report): it is checked there.
    my @left_checks;
    for my $x (grep { $_->{kind} eq 'drop' } @ev) {
        next unless ($x->{cause} // '') =~ /respawned its slot as (\d+-\d+)/;
        next unless defined $start_idx{$1} && $start_idx{$1} < $x->{idx};
        push @left_checks, { kind => 'left', gen => $x->{gen}, left => delete $x->{left}, idx => $x->{idx},
                             what => "#$x->{idx} report of the drop of $x->{gen}-$x->{wpid}" };
        $x->{idx} = $start_idx{$1} + 0.5;
    }
    push @ev, @left_checks;
    @ev = sort { $a->{idx} <=> $b->{idx} } @ev;

    my $sum = sub {
        my ($pred) = @_;
        my $k = 0;
        for my $g (keys %alive) { $k += keys %{ $alive{$g} } if $pred->($g) }
        return $k;
    };
    my $check = sub {
        my ($c, $field, $want) = @_;    # $want undef: expect 'nil'
        my $got = $c->{$field};
        if (!defined $want) {
            push @err, cb_str($c) . ": $field=$got, expected nil" if $got ne 'nil';
        } elsif ($got ne $want) {
            push @err, cb_str($c) . ": $field=$got, expected $want";
        }
    };
    for my $x (@ev) {
        if ($x->{kind} eq 'signal') { $dead{ $x->{pid} } = 1; next }
        if ($x->{kind} eq 'ghost') {
            push @err, "#$x->{idx} $x->{wid} (counted, its start not logged): generation $x->{gen} does not exist"
                unless $exists{ $x->{gen} };
            $alive{ $x->{gen} }{ $x->{wid} } = 1;
            next;
        }
        if ($x->{kind} eq 'left') {
            my $left = keys %{ $alive{ $x->{gen} } // {} };
            push @err, "$x->{what}: says $x->{left} left in generation $x->{gen}, the replay has $left"
                if $x->{left} != $left;
            next;
        }
        if ($x->{kind} eq 'drop') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            my $s = "#$x->{idx} drop of $wid";
            push @err, "$s: pid $x->{pid} is not the pid of the id" if $x->{pid} ne $x->{wpid};
            push @err, "$s: 'left in generation $x->{lgen}' is not its generation" if $x->{lgen} ne $g;
            push @err, "$s: dropped twice" if $dropped{$wid}++;
            push @err, "$s: it is not counted (never started, exited or dropped already)" unless $alive{$g}{$wid};
            delete $alive{$g}{$wid};
            my $left = keys %{ $alive{$g} // {} };
            push @err, "$s: says $x->{left} left in generation $g, the replay has $left"
                if defined $x->{left} && $x->{left} != $left;
            $stalled{$g}{$wid} = $x->{pid} if $x->{cause} =~ /^no heartbeat/ && !$dead{ $x->{pid} };
            $due{$wid} = $x;
            next;
        }
        if ($x->{kind} eq 'nocount') { $nocount{"$x->{gen}-$x->{wpid}"} = 1; next }
        if ($x->{kind} eq 'latecount') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            push @err, "#$x->{idx} $wid counted late but it was counted at its start" unless delete $nocount{$wid};
            push @err, "#$x->{idx} $wid counted late but it is counted already" if $alive{$g}{$wid};
            $alive{$g}{$wid} = 1;
            next;
        }
        if ($x->{kind} eq 'uncounted_exit') {
            my $wid = "$x->{gen}-$x->{wpid}";
            push @err, "#$x->{idx} $wid exits 'while not counted' but it was counted" unless $nocount{$wid};
            next;
        }
        if ($x->{kind} eq 'lost') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            push @err, "#$x->{idx} $wid reported crashed before it was counted, but it is counted" if $alive{$g}{$wid};
            push @err, "#$x->{idx} $wid reported twice" if $dropped{$wid}++;
            $due{$wid} = $x;
            next;
        }
        if ($x->{kind} eq 'recount') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            # the module's keys were wiped (flush_all) at log entry $o{wiped}:
            # counting a counted worker again after that restores, it does not add
            if (defined $o{wiped} && $x->{idx} > $o{wiped} && $alive{$g}{$wid} && $exists{$g}) {
                next;
            }
            push @err, "#$x->{idx} $wid counted again: it was not dropped as stalled" unless $stalled{$g}{$wid};
            push @err, "#$x->{idx} $wid counted again: it is counted already" if $alive{$g}{$wid};
            push @err, "#$x->{idx} $wid counted again: its generation $g was restored" . ($exists{$g} ? '' : ' after it ended')
                if $x->{regen};
            delete $stalled{$g}{$wid};
            delete $dropped{$wid};    # counted again: it may be dropped again (a later crash)
            $alive{$g}{$wid} = 1;
            next;
        }
        if ($x->{kind} eq 'late') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            push @err, "#$x->{idx} $wid exits 'after it was dropped' but it was not dropped as stalled"
                unless $stalled{$g}{$wid};
            $late{$wid} = 1;
            next;
        }
        my $c = $x;
        my $g = $c->{gen};
        unless (defined $g) { push @err, cb_str($c) . ": cannot parse generation from id"; next }
        next if $c->{event} eq 'master_start' && $phantom{$g};
        my $wid = $c->{id};
        my $self_extra = 0;
        if ($c->{event} eq 'master_start') {
            push @err, cb_str($c) . ": master_start for a generation that already exists" if $exists{$g};
            $exists{$g} = 1;
            $alive{$g} //= {};
        } elsif ($c->{event} eq 'worker_start') {
            push @err, cb_str($c) . ": worker start of a generation without master start" unless $exists{$g};
            push @err, cb_str($c) . ": worker id started twice" if $alive{$g}{$wid};
            if ($nocount{$wid}) { $self_extra = 1 } else { $alive{$g}{$wid} = 1 }
        } elsif ($c->{event} eq 'worker_exit') {
            if (!$alive{$g}{$wid}) {
                if (($stalled{$g}{$wid} && $late{$wid}) || $nocount{$wid}) {
                    $self_extra = 1;
                } else {
                    push @err, cb_str($c) . ": exit of a worker that is not counted"
                        . ($stalled{$g}{$wid} ? " (stalled, but no 'exits after it was dropped' line)" : '');
                }
            }
        } elsif ($c->{event} eq 'master_exit') {
            push @err, cb_str($c) . ": master exit of a generation that does not exist" unless $exists{$g};
            my @counted = sort keys %{ $alive{$g} // {} };
            push @err, cb_str($c) . ": master exit while workers of its generation are counted: @counted" if @counted;
            my @running = sort grep { !$dead{ $stalled{$g}{$_} } } keys %{ $stalled{$g} // {} };
            push @err, cb_str($c) . ": master exit while workers of its generation dropped as stalled still run: @running"
                if @running;
        } elsif ($c->{event} eq 'crash') {
            my $d = delete $due{$wid};
            if (!$d) {
                push @err, cb_str($c) . ": crash callback without a drop of $wid before it (or a second one)";
            } elsif ($d->{logpid} ne $c->{logpid}) {
                push @err, cb_str($c) . ": crash callback in process $c->{logpid}, the drop (#$d->{idx}) was in $d->{logpid}";
            }
        } else {
            push @err, cb_str($c) . ": unknown event";
            next;
        }
        if ($g == 1) { $check->($c, 'prev', undef) } else { $check->($c, 'prev', $sum->(sub { $_[0] < $g })) }
        if ($c->{event} =~ /^master/) {
            $check->($c, 'mine', 0);
        } else {
            $check->($c, 'mine', scalar(keys %{ $alive{$g} // {} }) + $self_extra);
        }
        if (grep { $_ > $g } keys %exists) {
            $check->($c, 'next', $sum->(sub { $_[0] > $g }));
        } else {
            $check->($c, 'next', undef);
        }
        if ($c->{event} eq 'worker_exit') {
            delete $alive{$g}{$wid};
            delete $stalled{$g}{$wid};
        } elsif ($c->{event} eq 'master_exit') {
            delete $exists{$g};
            delete $alive{$g};
            delete $stalled{$g};
        }
    }
    if ($o{on_crash}) {
        push @err, "#$_->{idx} drop of $_->{gen}-$_->{wpid}: no crash callback followed" for sort { $a->{idx} <=> $b->{idx} } values %due;
    }
    if ($o{complete}) {
        # the node stopped gracefully: every generation got its master exit
        for my $g (sort { $a <=> $b } keys %exists) {
            my @left = sort keys %{ $alive{$g} // {} };
            push @err, "generation $g never got its master exit (still counted: " . (@left ? "@left" : 'none') . ")";
        }
    }
    return @err;
}

# One part of the checker as a test named $name: ok when @$errors is
# empty, else the findings and every callback since $since as diagnostics.
sub _part_ok {
    my ($n, $part, $name, $errors, $since) = @_;
    $n->{checked}{$part}++;
    my $ok = Test::More::ok(!@$errors, $name);
    unless ($ok) {
        Test::More::diag(join '', map { "  $_\n" } @$errors);
        Test::More::diag("all callbacks:\n" . cbs_str($n->callbacks(since => $since)));
    }
    return $ok;
}

sub model_ok {
    my ($n, $name, %o) = @_;
    return _part_ok($n, 'model', $name // 'every callback has the counts the contract gives',
                    [ model_errors($n, %o) ], $o{since});
}

# ------------------------------------------------------ generic invariants
#
#   - arg types: master id integer, worker id "<gen>-<pid>", prev/next nil or
#     integer, mine integer; 4 args passed
#   - worker callbacks run in the worker the id names
#   - every worker id starts exactly once and exits at most once
#   - master_start at most once per generation, master_exit at most once per
#     generation, and it comes from the process of that generation's last
#     worker_exit (mine=1), as the next callback of that process
#   - nothing of a generation after its master_exit (a restart, once every
#     worker is accounted for, begins again at generation 1)
sub lifecycle_ok {
    my ($n, %o) = @_;
    return _part_ok($n, 'lifecycle', $o{name} // 'lifecycle invariants hold', [ lifecycle_errors($n, %o) ], $o{since});
}

# the list of lifecycle_ok's findings (same options)
sub lifecycle_errors {
    my ($n, %o) = @_;
    my @c = $n->callbacks(since => $o{since});
    my @err;
    my (%ws, %we, %ms, %me, %ended, %crash, %gen_of_pid);
    # the module's "running its master exit here" notices: pid => [ [gen, idx] ]
    my %behalf;
    for my $e ($n->grep_log($BEHALF_RE, since => $o{since})) {
        push @{ $behalf{ $e->{pid} } }, [ $1, $e->{idx}, $2 eq 'went idle' ] if $e->{text} =~ $BEHALF_RE;
    }
    my @drops = drops($n, since => $o{since});
    my %last_idx;    # logpid => idx of its previous callback
    # workers dropped for a late heartbeat that came back: idxs of the module's
    # "counted again" and "exits after it was dropped" lines
    my (%back, %late_exit, %lost);
    for my $e ($n->grep_log(qr/$RECOUNT_RE|$LATE_RE|$LOST_RE/, since => $o{since})) {
        if ($e->{text} =~ $RECOUNT_RE) { push @{ $back{"$1-$2"} }, $e->{idx} }
        elsif ($e->{text} =~ $LATE_RE) { $late_exit{"$1-$2"} = $e->{idx} }
        elsif ($e->{text} =~ $LOST_RE) { $lost{"$1-$2"} = $e->{idx} }
    }
    for my $i (0 .. $#c) {
        my $c = $c[$i];
        my $s = cb_str($c);
        # a restart (the log holds several node lifetimes): generation 1
        # starts again, with n_prev nil, once generation 1 ended and no
        # worker that started is left unaccounted for
        if ($c->{event} eq 'master_start' && $c->{id} eq '1' && $c->{prev} eq 'nil' && $ended{1}
            && !grep { !$we{$_} && !$crash{$_} } keys %ws) {
            %ms = (); %me = (); %ended = ();
        }
        if ($c->{event} =~ /^master/) {
            push @err, "$s: master id is not an integer" unless $c->{id} =~ /^\d+$/;
            push @err, "$s: id type $c->{types}" if defined $c->{types} && $c->{types} !~ /^number,/;
        } else {
            push @err, "$s: worker id is not <gen>-<pid>" unless $c->{id} =~ /^\d+-\d+$/;
            push @err, "$s: id type $c->{types}" if defined $c->{types} && $c->{types} !~ /^string,/;
            push @err, "$s: worker id pid part is not the calling pid $c->{pid}"
                if defined $c->{wpid} && $c->{wpid} ne $c->{pid} && $c->{event} ne 'crash';
        }
        $gen_of_pid{ $c->{pid} } //= $c->{gen} if $c->{event} eq 'worker_start';
        push @err, "$s: prev not nil/integer" unless $c->{prev} =~ /^(?:nil|\d+)$/;
        push @err, "$s: next not nil/integer" unless $c->{next} =~ /^(?:nil|\d+)$/;
        push @err, "$s: mine not an integer"  unless $c->{mine} =~ /^\d+$/;
        push @err, "$s: callback given $c->{nargs} args, not 4" if ($c->{nargs} // 4) != 4;
        # exit_reason() in a worker exit: "reload" exactly when n_next is a
        # number, "stop" or "replace" when it is nil (logged by wm_test.lua)
        if ($c->{event} eq 'worker_exit' && defined $c->{reason}) {
            if ($c->{next} =~ /^\d+$/) {
                push @err, "$s: exit_reason() $c->{reason} with n_next=$c->{next} (must be reload)" if $c->{reason} ne 'reload';
            } elsif ($c->{reason} !~ /^(?:stop|replace)$/) {
                push @err, "$s: exit_reason() $c->{reason} with n_next=nil (must be stop or replace)";
            }
        }
        my $g = $c->{gen} // -1;
        push @err, "$s: callback of generation $g after its master_exit" if $ended{$g};
        if ($c->{event} eq 'worker_start') { push @err, "$s: worker started twice" if $ws{ $c->{id} }++ }
        if ($c->{event} eq 'worker_exit') {
            push @err, "$s: worker exited twice" if $we{ $c->{id} }++;
            push @err, "$s: exit without start" unless $ws{ $c->{id} };
        }
        if ($c->{event} eq 'crash') {
            # on_crash: reported in another process, for a worker that started
            # and neither exited nor was reported before
            push @err, "$s: crash of a worker that never started (and no 'crashed while starting' report)"
                unless $ws{ $c->{id} } || ($lost{ $c->{id} } // 1e99) < $c->{idx}
                    || grep { $_->{wid} eq $c->{id} && $_->{idx} < $c->{idx} } @drops;
            push @err, "$s: crash of a worker that ran its worker_exit" if $we{ $c->{id} };
            my $before = $crash{ $c->{id} };
            push @err, "$s: crash reported twice (not counted again in between)"
                if defined $before && !grep { $_ > $before && $_ < $c->{idx} } @{ $back{ $c->{id} } // [] };
            $crash{ $c->{id} } = $c->{idx};
            push @err, "$s: crash reported by the dead worker itself" if defined $c->{wpid} && $c->{wpid} eq $c->{pid};
        }
        if ($c->{event} eq 'worker_exit' && defined $crash{ $c->{id} }) {
            my $cr = $crash{ $c->{id} };
            push @err, "$s: exit of a worker reported crashed (neither counted again nor 'exits after it was dropped')"
                unless grep({ $_ > $cr && $_ < $c->{idx} } @{ $back{ $c->{id} } // [] })
                    || ($late_exit{ $c->{id} } // -1) > $cr;
        }
        if ($c->{event} eq 'master_start') { push @err, "$s: master_start twice for gen $g" if $ms{$g}++ }
        my $prev_idx = $last_idx{ $c->{logpid} } // -1;
        $last_idx{ $c->{logpid} } = $c->{idx};
        if ($c->{event} eq 'master_exit') {
            push @err, "$s: master_exit twice for gen $g" if $me{$g}++;
            $ended{$g} = 1;
            # run on behalf of a generation whose last worker died: the module
            # says so in this process, after its previous callback
            my ($b) = grep { $_->[0] == $g && $_->[1] > $prev_idx && $_->[1] < $c->{idx} }
                      @{ $behalf{ $c->{logpid} } // [] };
            if ($b) {
                my $fg = $gen_of_pid{ $c->{logpid} };
                push @err, "$s: master exit on behalf of gen $g in a process that is not a worker of another generation"
                    if (!defined $fg || $fg == $g) && !$b->[2];
                $c->{_i} = $i;
                next;
            }
            # the last worker_exit of this generation
            my ($last) = grep { $_->{event} eq 'worker_exit' && ($_->{gen} // -1) == $g } reverse @c[0 .. $i - 1];
            if (!$last) {
                push @err, "$s: master_exit without any worker_exit of gen $g before it" unless $o{allow_crash_exit};
            } else {
                push @err, "$s: master_exit not in the process of the last worker_exit ($last->{pid})"
                    if $last->{pid} ne $c->{pid} && !$o{allow_crash_exit};
                # workers of gen $g the module dropped (found dead) after that
                # exit and before this master exit were still counted by it
                my $dropped = grep { $_->{gen} == $g && $_->{idx} > $last->{idx} && $_->{idx} < $c->{idx} } @drops;
                push @err, "$s: the last worker_exit before it had mine=$last->{mine}, not 1"
                    . ($dropped ? " + $dropped dropped in between" : '')
                    if $last->{mine} ne 1 + $dropped && !$o{allow_crash_exit};
                my ($between) = grep { $_->{pid} eq $last->{pid} && $_->{event} ne 'crash' } @c[ $last->{_i} + 1 .. $i - 1 ];
                push @err, "$s: not right after its worker_exit (in between: " . cb_str($between) . ")"
                    if $between;
            }
        }
        $c->{_i} = $i;
    }
    return @err;
}

# The node-wide lock: ENTER/LEAVE lines strictly alternate in the log, each
# LEAVE matching the ENTER before it, and the time intervals are disjoint.
#
# A holder killed inside its callback never logs LEAVE: its hold ends when its
# process is known dead (the master's "exited on signal" line, or the
# module's "took over the node lock from dead process P"); the next ENTER
# must come after that in the log.  killed => N: exactly N holds ended so.
# The lock expires expiry => 30 s after it was taken: an ENTER that late
# after the open hold's ENTER is allowed (the contract's expiry), and the old
# hold's LEAVE, if it comes, is not an error.
sub lock_ok {
    my ($n, %o) = @_;
    $n->{checked}{lock}++;
    my ($err, $iv, $killed, $expired) = lock_errors($n, %o);
    my @err = @$err;
    my $ok = Test::More::ok(!@err && $iv >= ($o{min} // 1),
                            ($o{name} // 'callbacks never overlap (' . $iv . ' intervals'
                                . ($killed ? ", $killed ended by a kill" : '') . ')')
                            . ($expired ? " ($expired holds outlived the lock's ${\ ($o{expiry} // 30)} s expiry)" : ''));
    Test::More::diag(join '', map { "  $_\n" } @err) unless $ok;
    return $ok;
}

# lock_ok's findings: (\@errors, number of intervals, holds ended by a kill)
sub lock_errors {
    my ($n, %o) = @_;
    my @el = $n->enter_leave(since => $o{since});
    for my $e ($n->grep_log(qr/$SIGNAL_RE|$TAKEOVER_RE/, since => $o{since})) {
        my ($pid) = $e->{text} =~ $SIGNAL_RE ? ($1) : $e->{text} =~ $TAKEOVER_RE ? ($1) : ();
        push @el, { kind => 'DEAD', pid => $pid, idx => $e->{idx} } if $pid;
    }
    @el = sort { $a->{idx} <=> $b->{idx} } @el;
    my @err;
    my $open;
    my @iv;
    my $killed = 0;
    my $expiry = $o{expiry} // 30;
    my %expired;    # "pid event" => the hold that outlived the lock's expiry
    my $n_expired = 0;
    for my $x (@el) {
        if ($x->{kind} eq 'DEAD') {
            if ($open && $open->{pid} eq $x->{pid}) { $killed++; $open = undef }
            next;
        }
        my $s = "#$x->{idx} $x->{kind} $x->{event} id=$x->{id} pid=$x->{pid} t=$x->{t}";
        if ($x->{kind} eq 'ENTER') {
            if ($open && $x->{t} - $open->{t} >= $expiry - 1) {
                # the open hold outlived the lock's expiry: the contract lets
                # the next one in (its LEAVE, if any, comes later)
                $expired{"$open->{pid} $open->{event}"} = $open;
                $n_expired++;
            } elsif ($open) {
                push @err, "$s: entered while #$open->{idx} $open->{event} id=$open->{id} (pid $open->{pid}) still runs";
            }
            $open = $x;
        } elsif (!($open && $open->{pid} eq $x->{pid} && $open->{event} eq $x->{event})
                 && delete $expired{"$x->{pid} $x->{event}"}) {
            next;    # the LEAVE of a hold that had expired
        } else {
            if (!$open) { push @err, "$s: LEAVE without ENTER" }
            elsif ($open->{pid} ne $x->{pid} || $open->{event} ne $x->{event}) {
                push @err, "$s: LEAVE does not match ENTER #$open->{idx}";
            } else {
                push @iv, [ $open->{t}, $x->{t}, "$open->{event} $open->{id} pid=$open->{pid}" ];
            }
            $open = undef;
        }
    }
    @iv = sort { $a->[0] <=> $b->[0] } @iv;
    for my $i (1 .. $#iv) {
        push @err, sprintf "overlap: [%s %s] %s and [%s %s] %s",
            $iv[$i - 1][0], $iv[$i - 1][1], $iv[$i - 1][2], $iv[$i][0], $iv[$i][1], $iv[$i][2]
            if $iv[$i][0] < $iv[$i - 1][1];
    }
    push @err, "$killed holds ended by a killed holder, expected $o{killed}"
        if defined $o{killed} && $killed != $o{killed};
    return (\@err, scalar @iv, $killed, $n_expired);
}

# ------------------------------------------------ the run invariants (issue 6)
#
# invariant_errors($n, %o) checks, for ANY run, what must hold whatever the
# timing, from the callbacks and nginx's own lines (the master's "worker
# process P exited with code C / on signal S", its final "exit"), independently
# of the models above:
#
#   - counts: n_prev/n_next nil or an integer >= 0, n_mine an integer >= 0
#     (a negative one is reported as such, likewise a drop report's
#     "N left"); 0 in master callbacks; >= 1 in worker start and exit (a
#     worker counts itself)
#   - n_prev nil exactly in generation 1
#   - n_mine of a worker start never above the number of starts of its
#     generation so far, and no worker callback's n_mine above that
#     generation's starts minus its exits so far; n_prev (n_next) never above
#     the starts minus exits of all older (newer) generations
#   - at most one master exit per generation, nothing of a generation after it
#   - no master exit for a generation still running: every worker of it that
#     started before has run its worker exit, or the master reaped it, or
#     the module dropped it as gone and the master reaps it
#   - exactly one master exit per generation that ended: all its workers
#     reaped, and it is an older generation or the node stopped (master
#     "exit").  Required when its last worker left through a worker exit;
#     when it left dead (killed, or gone untracked as on a TERM without the
#     exit hook), required only if a worker of another generation lived on
#     for `grace` seconds after (its heartbeats must find it); otherwise
#     noted as "nobody left to notice", which is not an error
#   - a worker reaped with exit code 0 ran its worker exit first, unless the
#     node was stopped fast (TERM/INT) without the exit hook
#
# A worker the module counted whose start left no line (killed before its
# callback logged; see ghost_starts) counts as a start from its death on.
# The log may hold several node lifetimes (a restart): each master start of
# generation 1 begins a new one.  Options:
#   since => mark, grace => seconds (default interval * (workers + 1) +
#   failed + 2, from the node's opts), exit_hook => 0|1 (default: from the
#   node's conf).  In list context: (errors, notes).
our $REAP_RE = qr/worker process (\d+) exited (?:with code (\d+)|on signal (\d+))/;
our $STOPSIG_RE = qr/^signal (2|3|15) \(SIG\w+\) received/;

sub _epoch {
    my $t = shift // '';
    return undef unless $t =~ m{^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)$};
    require POSIX;
    return POSIX::mktime($6, $5, $4, $3, $2 - 1, $1 - 1900);
}

sub _node_opt {
    my ($n, $name, $default) = @_;
    my $o = $n->{opts} // '';
    return $o =~ /\b$name\s*=\s*([\d.]+)/ ? $1 : $default;
}

sub _has_exit_hook {
    my $n = shift;
    return 1 if $n->{exit_hook};
    return 1 if ($n->{exit_worker} // '') =~ /on_exit_worker_by_lua/;
    return 1 if ($n->{raw_conf} // '') =~ /on_exit_worker_by_lua/;
    return 0;
}

sub invariant_errors {
    my ($n, %o) = @_;
    my $interval = _node_opt($n, 'interval', 10);
    my $failed   = _node_opt($n, 'failed', 5);
    my $grace    = $o{grace} // $interval * (($n->{workers} // 2) + 1) + $failed + 2;
    my $hook     = $o{exit_hook} // _has_exit_hook($n);
    my (@err, @notes);
    my %cb_at = map { $_->{idx} => $_ } $n->callbacks(since => $o{since});
    my @ent = grep { $cb_at{ $_->{idx} } || $_->{text} =~ /$REAP_RE|$DROP_RE|^exit$|^start worker process \d+|$STOPSIG_RE/ }
              $n->grep_log(qr/WMCB |$REAP_RE|$DROP_RE|^exit$|^start worker process|$STOPSIG_RE|demo: /, since => $o{since});
    # lifetimes
    my @life = ([]);
    for my $e (@ent) {
        my $c = $cb_at{ $e->{idx} };
        push @life, [] if $c && $c->{event} eq 'master_start' && $c->{id} eq '1'
                       && grep { $cb_at{ $_->{idx} } } @{ $life[-1] };
        push @{ $life[-1] }, $e;
    }
    my $L = 0;
    my @ghosts = ghost_starts($n, since => $o{since});
    for my $life (@life) {
        $L++;
        if (@ghosts && @$life) {
            my ($lo, $hi) = ($life->[0]{idx}, $life->[-1]{idx});
            $life = [ sort { $a->{idx} <=> $b->{idx} } @$life,
                      map { { %$_, ghost => 1, text => '' } } grep { $_->{idx} > $lo && $_->{idx} < $hi + 1 } @ghosts ];
        }
        my $lp = @life > 1 ? "[lifetime $L] " : '';
        my (%starts, %exits, %me, %wp, %dep, %dep_cb, %reap, %drop, %gen_of, %me_idx, %termed);
        my ($master, $stopped, $stopsig, $stopsig_idx);
        my $live = sub {    # started minus exited, of the generations $pred accepts
            my ($pred) = @_;
            my $k = 0;
            $k += ($starts{$_} // 0) - ($exits{$_} // 0) for grep { $pred->($_) } keys %starts;
            return $k;
        };
        for my $e (@$life) {
            if ($e->{ghost}) {    # counted by the module, its start not logged
                $starts{ $e->{gen} }++;
                $wp{ $e->{gen} }{ $e->{wpid} } = $e->{idx};
                $gen_of{ $e->{wpid} } = $e->{gen};
                next;
            }
            my $c = $cb_at{ $e->{idx} };
            my $t = $e->{text};
            if (!$c) {
                if ($t =~ /^start worker process (\d+)/) { $master //= $e->{pid} }
                elsif ($t =~ $REAP_RE) {
                    $reap{$1} //= { idx => $e->{idx}, code => $2, sig => $3, time => _epoch($e->{time}) };
                    $dep{$1} //= $reap{$1};
                }
                elsif ($t =~ $DROP_RE) {
                    my ($wid, $left) = ("$1-$2", $6);
                    $drop{$wid} //= { idx => $e->{idx}, cause => $5 };
                    push @err, "$lp#$e->{idx} drop report of $wid: $left left in generation $1 is negative" if $left < 0;
                }
                elsif ($t eq 'exit') { $stopped = $e->{idx} if defined $master && $e->{pid} eq $master }
                elsif ($t =~ $STOPSIG_RE) {
                    if (!defined $master || $e->{pid} eq $master) { $stopsig = $1; $stopsig_idx = $e->{idx} }
                    # a fast stop signal sent to one worker (recycled by TERM)
                    elsif ($1 ne '3') { $termed{ $e->{pid} } = $e->{idx} }
                }
                next;
            }
            my $s = $lp . cb_str($c);
            my $g = $c->{gen};
            unless (defined $g) { push @err, "$s: no generation in the id"; next }
            for my $f (qw(prev next)) {
                my $v = $c->{$f} // '?';
                if ($v =~ /^-\d/) { push @err, "$s: n_$f=$v is negative" }
                elsif ($v !~ /^(?:nil|\d+)$/) { push @err, "$s: n_$f=$v is neither nil nor a count" }
            }
            my $mine = $c->{mine} // '?';
            if ($mine =~ /^-\d/) { push @err, "$s: n_mine=$mine is negative" }
            elsif ($mine !~ /^\d+$/) { push @err, "$s: n_mine=$mine is not a count" }
            push @err, "$s: n_prev=$c->{prev} in generation 1 (must be nil)" if $g == 1 && $c->{prev} ne 'nil';
            push @err, "$s: n_prev nil in generation $g (nil only in generation 1)" if $g != 1 && $c->{prev} eq 'nil';
            push @err, "$s: callback of generation $g after its master exit (#$me_idx{$g})" if defined $me_idx{$g};
            my $ev = $c->{event};
            if ($ev =~ /^master/) {
                push @err, "$s: n_mine=$mine in a master callback (must be 0)" if $mine ne '0';
            } else {
                if ($ev eq 'worker_start') {
                    $starts{$g}++;
                    $wp{$g}{ $c->{wpid} } = $c->{idx} if $c->{wpid};
                    $gen_of{ $c->{wpid} } = $g if $c->{wpid};
                    push @err, "$s: n_mine=$mine of a start above the $starts{$g} starts of generation $g so far"
                        if $mine =~ /^\d+$/ && $mine > $starts{$g};
                }
                push @err, "$s: n_mine=$mine, but a starting or exiting worker counts itself"
                    if $ev =~ /^worker_/ && $mine =~ /^\d+$/ && $mine < 1;
                my $room = ($starts{$g} // 0) - ($exits{$g} // 0);
                push @err, "$s: n_mine=$mine above the starts minus exits of generation $g so far ($room)"
                    if $mine =~ /^\d+$/ && $mine > $room;
            }
            if ($c->{prev} =~ /^\d+$/) {
                my $k = $live->(sub { $_[0] < $g });
                push @err, "$s: n_prev=$c->{prev} above the older generations' starts minus exits so far ($k)" if $c->{prev} > $k;
            }
            if ($c->{next} =~ /^\d+$/) {
                my $k = $live->(sub { $_[0] > $g });
                push @err, "$s: n_next=$c->{next} above the newer generations' starts minus exits so far ($k)" if $c->{next} > $k;
            }
            if ($ev eq 'worker_exit') {
                $exits{$g}++;
                if ($c->{wpid}) {
                    $dep_cb{ $c->{wpid} } //= $c->{idx};
                    $dep{ $c->{wpid} } //= { idx => $c->{idx}, cb => 1, time => _epoch($e->{time}) };
                }
            } elsif ($ev eq 'master_exit') {
                push @err, "$s: second master exit of generation $g" if $me{$g}++;
                $me_idx{$g} //= $c->{idx};
            }
        }
        # no master exit while a worker of its generation still runs
        for my $g (sort { $a <=> $b } keys %me_idx) {
            my $i = $me_idx{$g};
            for my $p (sort keys %{ $wp{$g} // {} }) {
                next if $wp{$g}{$p} > $i;
                next if defined $dep_cb{$p} && $dep_cb{$p} < $i;
                next if $reap{$p} && $reap{$p}{idx} < $i;
                my $d = $drop{"$g-$p"};
                next if $d && $d->{idx} < $i && $reap{$p};    # dropped as gone; the master's reap line may come a moment later
                push @err, "${lp}master exit of generation $g (#$i) while its worker $g-$p still runs: no worker exit"
                    . ($d && $d->{idx} < $i ? ", dropped ($d->{cause}) but" : ' and') . ' never reaped before'
                    . ($reap{$p} ? " (reaped at #$reap{$p}{idx})" : ' (never reaped)');
            }
        }
        # exactly one master exit per generation that ended
        my ($newest) = sort { $b <=> $a } keys %wp;
        my $end_time = @$life ? _epoch($life->[-1]{time}) : undef;
        for my $g (sort { $a <=> $b } keys %wp) {
            my @p = keys %{ $wp{$g} };
            next if grep { !$reap{$_} } @p;                          # some worker still runs
            next unless defined $stopped || $g < $newest;           # the newest may still be respawned
            next if $me{$g};
            my ($last) = sort { $dep{$b}{idx} <=> $dep{$a}{idx} } @p;
            my $d = $dep{$last};
            if ($d->{cb}) {
                push @err, "${lp}generation $g ended (its last worker $g-$last left through its worker exit at #$d->{idx}) but got no master exit";
                next;
            }
            # left dead or untracked: a worker of another generation that lived on must find it
            my ($finder) = grep {
                my $q = $_;
                ($gen_of{$q} // $g) != $g && $wp{ $gen_of{$q} }{$q} < $d->{idx}
                    && (($dep{$q} ? $dep{$q}{time} : $end_time) // 0) - ($d->{time} // 0) >= $grace
            } keys %gen_of;
            if ($finder) {
                push @err, "${lp}generation $g ended (its last worker $g-$last reaped at #$d->{idx}, "
                    . ($d->{sig} ? "signal $d->{sig}" : "code $d->{code}") . ") and worker $gen_of{$finder}-$finder "
                    . "lived on for >= ${grace}s, but no master exit ran";
            } else {
                push @notes, "${lp}generation $g ended without a master exit: its last worker $g-$last "
                    . ($d->{sig} ? "was killed (signal $d->{sig})" : "exited untracked (code $d->{code})")
                    . " and nobody was left to notice";
            }
        }
        # a worker that exited with code 0 ran its worker exit
        my $fast = defined $stopsig && $stopsig ne '3';
        for my $p (sort keys %gen_of) {
            my $r = $reap{$p} or next;
            next unless defined $r->{code} && $r->{code} eq '0';
            next if defined $dep_cb{$p} && $dep_cb{$p} < $r->{idx};
            next if $fast && !$hook && $r->{idx} > $stopsig_idx;
            next if !$hook && defined $termed{$p};    # no Lua runs on a fast exit without the hook
            push @err, "${lp}worker $gen_of{$p}-$p exited with code 0 (#$r->{idx}) without its worker exit"
                . ($fast ? ' (fast stop, exit hook ' . ($hook ? 'on' : 'off') . ')' : '');
        }
    }
    return wantarray ? (\@err, \@notes) : \@err;
}

sub invariants_ok {
    my ($n, %o) = @_;
    $n->{checked}{invariants}++;
    my ($err, $notes) = invariant_errors($n, %o);
    my $ok = Test::More::ok(!@$err, $o{name} // 'run invariants hold (counts, bounds, one master exit per ended generation)');
    Test::More::diag(join '', map { "  $_\n" } @$err) unless $ok;
    Test::More::note(join '', map { "  $_\n" } @$notes) if @$notes;
    return $ok;
}

# checker_ok($n, label => 'x', %o): the whole invariant checker on one
# node's log: lifecycle_ok, model_ok (exact replay of the module's reports),
# lock_ok and invariants_ok.  Options (besides since, phantom, killed,
# allow_crash_exit, grace, exit_hook, passed on):
#   on_crash => 1   every drop has its crash callback (default: the node's
#                   opts name on_crash)
#   complete => 1   every generation got its master exit (default: the node
#                   stopped (master "exit") after QUIT, or after TERM/INT
#                   with the exit hook)
#   lock => 0       no lock_ok (a log without ENTER/LEAVE lines)
#   wiped => idx    model_ok: the module's keys were wiped at that entry
#   min => N        lock_ok: at least N intervals (default 1)
# Returns true when all hold.
sub _checker_setup {
    my ($n, %o) = @_;
    my %pass = map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(since phantom);
    my %model_only = map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(wiped);
    my $stopped = grep { $_->{text} eq 'exit' && defined $n->{master} && $_->{pid} eq $n->{master} }
                  $n->grep_log(qr/^exit$/, since => $o{since});
    if (!exists $o{phantom}) {
        # rolled-back reloads: a master start, no worker ever (the newest
        # generation of a running node may still be starting)
        my %ws = map { $_->{gen} => 1 } $n->callbacks(since => $o{since}, event => 'worker_start');
        my @ms = sort { $a <=> $b } map { $_->{gen} } $n->callbacks(since => $o{since}, event => 'master_start');
        pop @ms if @ms && !$stopped;
        $pass{phantom} = [ grep { !$ws{$_} } @ms ];
    }
    my $on_crash = $o{on_crash} // (($n->{opts} // '') =~ /\bon_crash\b/ ? 1 : 0);
    my $complete = $o{complete};
    if (!defined $complete) {
        my ($stop) = reverse $n->grep_log($STOPSIG_RE, since => $o{since});
        $complete = $stopped && $stop && ($stop->{text} =~ /^signal 3 / || _has_exit_hook($n)) ? 1 : 0;
    }
    return (\%pass, \%model_only, $on_crash, $complete);
}

#   todo => 'why'   a known contract violation: each part that has findings
#                   is reported as a TODO test with that reason (the parts
#                   without findings are plain tests)
sub checker_ok {
    my ($n, %o) = @_;
    my $l = defined $o{label} ? "[$o{label}] " : '';
    my ($pass, $model_only, $on_crash, $complete) = _checker_setup($n, %o);
    my $found = $o{todo} ? checker_errors($n, %o) : {};
    my $tb = Test::More->builder;
    my $part = sub {
        my ($name, $code) = @_;
        my $todo = $o{todo} && @{ $found->{$name} // [] };
        $tb->todo_start($o{todo}) if $todo;
        my $r = $code->();
        $tb->todo_end if $todo;
        return $todo ? 1 : $r;
    };
    my $ok = 1;
    $ok &= $part->(lifecycle => sub { lifecycle_ok($n, %$pass, name => "${l}lifecycle invariants",
                        map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(allow_crash_exit)) });
    $ok &= $part->(model => sub { model_ok($n, "${l}counts match the contract (exact replay"
                        . ($on_crash ? ', on_crash' : '') . ($complete ? ', complete' : '') . ')',
                    %$pass, %$model_only, on_crash => $on_crash, complete => $complete) });
    $ok &= $part->(lock => sub { lock_ok($n, name => "${l}callbacks never overlap", since => $o{since},
                   map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(killed min)) }) if $o{lock} // 1;
    $ok &= $part->(invariants => sub { invariants_ok($n, name => "${l}run invariants hold", since => $o{since},
                         map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(grace exit_hook)) });
    # where the node ran singletons recorded by wm_test.lua's sj()
    $ok &= $part->(singletons => sub { WorkerManager::SingletonCheck::singletons_ok($n, since => $o{since},
                         name => "${l}singletons: one holder at a time, tokens increasing, stops in order") })
        if $n->grep_log(qr/\bWMSJ-ENTER /, since => $o{since});
    return $ok;
}

# checker_errors($n, %o): what checker_ok checks (same options), without
# Test::More: { lifecycle => [..], model => [..], lock => [..],
# invariants => [..], notes => [..], intervals => N } (for t/soak/soak.pl)
sub checker_errors {
    my ($n, %o) = @_;
    my ($pass, $model_only, $on_crash, $complete) = _checker_setup($n, %o);
    my %r;
    $r{lifecycle} = [ lifecycle_errors($n, %$pass, map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(allow_crash_exit)) ];
    $r{model} = [ model_errors($n, %$pass, %$model_only, on_crash => $on_crash, complete => $complete) ];
    my ($lock, $iv) = lock_errors($n, since => $o{since}, map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(killed));
    $r{lock} = ($o{lock} // 1) ? $lock : [];
    $r{intervals} = $iv;
    my ($inv, $notes) = invariant_errors($n, since => $o{since}, map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(grace exit_hook));
    $r{invariants} = $inv;
    $r{notes} = $notes;
    $r{singletons} = [ WorkerManager::SingletonCheck::singleton_errors($n, since => $o{since}) ];
    return \%r;
}

# poll($code, $seconds, $step): calls $code until it returns true or
# $seconds passed, every $step s (0.05); its last value.  Unlike the
# driver's wait_until, running out is no failure.
sub poll {
    my ($code, $seconds, $step) = @_;
    my $t0 = Time::HiRes::time();
    while (1) {
        my $v = $code->();
        return $v if $v || Time::HiRes::time() - $t0 >= $seconds;
        Time::HiRes::sleep($step // 0.05);
    }
}

# worker starts of a generation after its (first) master exit (issue 6's
# "late starter": a worker nginx forked that reached its start only after its
# siblings had closed the generation)
sub late_starters {
    my ($n, %o) = @_;
    my %me;
    $me{ $_->{gen} } //= $_->{idx} for $n->callbacks(since => $o{since}, event => 'master_exit');
    return grep { defined $me{ $_->{gen} } && $_->{idx} > $me{ $_->{gen} } }
           $n->callbacks(since => $o{since}, event => 'worker_start');
}

# What may be logged at warn or above when workers are killed with -9 at a
# moment the test does not choose: nginx's alert for the signal, the
# module's crash report naming the worker (G-PID), and, when the kill lands
# while the worker holds the node lock or is inside a shdict call, the
# takeover of the lock and nginx's or the module's recovery of the zone's
# mutex. For no_errors_ok's allow list.
sub killed_allow {
    my $pids = join '|', @_;
    return (qr/worker process (?:$pids) exited on signal 9/, qr/\b\d+-(?:$pids)\b/,
            qr/\[worker-manager\] took over the node lock from dead process (?:$pids)\b/,
            qr/\[worker-manager\] the shm zone's mutex was held by dead process (?:$pids)\b/,
            qr/shared memory zone "\S+" was locked by (?:$pids)\b/);
}

# no warn/error/crit/alert/emerg entries but the test's own markers and
# the allowed ones (what the module or nginx is meant to log in that
# suite's scenario): noise in the log is a bug.  Every node's log must get
# this check (the driver fails the suite otherwise).
sub no_errors_ok {
    my ($n, $name, @allow) = @_;
    $n->{checked}{quiet}++;
    my @e = $n->errors(allow => \@allow, level => 'warn');
    my $ok = Test::More::ok(!@e, $name // 'no unexpected warn or error lines in the log');
    Test::More::diag(join '', map { "  #$_->{idx} $_->{line}\n" } @e) unless $ok;
    return $ok;
}

1;
