package WorkerManager::Check;

# Assertions shared by the t/*.t suites, built on WorkerManager::Nginx.
#
#   cbs_ok / model_ok / lifecycle_ok / lock_ok / cb_is / sorted_field
#
# Callback hashes come from WorkerManager::Nginx::callbacks(); every value is
# the string the Lua side printed ('nil' for nil).

use strict;
use warnings;
use Exporter 'import';
use Test::More ();

our @EXPORT = qw(cb_is cb_str cbs_str sorted_field select_cbs model_errors model_exact_errors drops counted_at model_ok
                 lifecycle_ok lock_ok no_errors_ok exactly_one);

sub cb_str {
    my $c = shift;
    return sprintf '#%d %s(%s, %s, %s, %s) pid=%s slot=%s count=%s%s',
        $c->{idx}, $c->{event}, map({ $_ // '?' } @$c{qw(id prev mine next pid slot count)}),
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
# Replays the log (callbacks plus the master's "worker process P exited on
# signal S" lines) through the contract and returns the list of mismatches.
#
# State: alive{gen}{wid}, exists{gen} (from master start to master exit).
#   n_prev = nil if gen == 1, else the live workers of all older generations
#   n_mine = live workers of the own generation (a starting worker counts
#            itself; an exiting worker counts itself); 0 for master events
#   n_next = nil if no newer generation exists, else live workers of newer ones
# options:
#   phantom => [gens]   rolled-back reloads: their master_start is skipped
#   since   => mark
# A crashed worker (exited on signal) is "uncertain" (a callback may count it
# or not) until the worker_start of its respawn (same generation and slot),
# which must count it; it is dropped right after.  A crash without respawn
# stays uncertain.
sub model_errors {
    my ($n, %o) = @_;
    return model_exact_errors($n, %o) if $o{exact};
    my %phantom = map { $_ => 1 } @{ $o{phantom} // [] };
    my (%alive, %exists, %crashed, %pid2wid, %slot_of, @err);
    my $certain = {};    # crashed wids that must be counted by the current callback
    my $sum = sub {
        my ($pred) = @_;
        my ($lo, $hi) = (0, 0);
        for my $g (keys %alive) {
            next unless $pred->($g);
            for my $w (keys %{ $alive{$g} }) {
                if ($crashed{$w} && !$certain->{$w}) { $hi++ } else { $lo++; $hi++ }
            }
        }
        return ($lo, $hi);
    };
    my $check = sub {
        my ($c, $field, $lo, $hi) = @_;    # $lo undef: expect 'nil'
        my $got = $c->{$field};
        if (!defined $lo) {
            push @err, cb_str($c) . ": $field=$got, expected nil" if $got ne 'nil';
        } elsif ($got !~ /^\d+$/ || $got < $lo || $got > $hi) {
            push @err, cb_str($c) . ": $field=$got, expected " . ($lo == $hi ? $lo : "$lo..$hi");
        }
    };
    my @ev;
    for my $e ($n->grep_log(qr/\bWMCB \w+ id=|exited on signal \d+/, since => $o{since})) {
        if ($e->{text} =~ /worker process (\d+) exited on signal/) {
            push @ev, { crash => $1, idx => $e->{idx} };
        }
    }
    push @ev, $n->callbacks(since => $o{since});
    @ev = sort { $a->{idx} <=> $b->{idx} } @ev;

    for my $c (@ev) {
        if ($c->{crash}) {
            my $w = $pid2wid{ $c->{crash} };
            $crashed{$w} = 1 if $w;
            next;
        }
        my $g = $c->{gen};
        unless (defined $g) { push @err, cb_str($c) . ": cannot parse generation from id"; next }
        if ($c->{event} eq 'master_start' && $phantom{$g}) {
            next;
        }
        my $is_master = $c->{event} =~ /^master/;
        my $wid = $c->{id};
        if ($c->{event} eq 'master_start') {
            push @err, cb_str($c) . ": master_start for a generation that already exists" if $exists{$g};
            $exists{$g} = 1;
            $alive{$g} //= {};
        } elsif ($c->{event} eq 'worker_start') {
            push @err, cb_str($c) . ": worker start of a generation without master start" unless $exists{$g};
            push @err, cb_str($c) . ": worker id started twice" if $alive{$g}{$wid};
            $alive{$g}{$wid} = 1;
            $pid2wid{ $c->{wpid} } = $wid if $c->{wpid};
            $slot_of{$wid} = $c->{slot};
            # a respawn (same generation and slot as a crashed worker) still counts its predecessor
            $certain = { map { $_ => 1 } grep { $crashed{$_} && ($slot_of{$_} // '') eq $c->{slot} } keys %{ $alive{$g} } };
        } elsif ($c->{event} eq 'worker_exit') {
            push @err, cb_str($c) . ": exit of a worker that is not alive" unless $alive{$g}{$wid};
        } elsif ($c->{event} eq 'master_exit') {
            push @err, cb_str($c) . ": master exit of a generation that does not exist" unless $exists{$g};
        }
        # expected counts
        if ($g == 1) {
            $check->($c, 'prev', undef);
        } else {
            $check->($c, 'prev', $sum->(sub { $_[0] < $g }));
        }
        if ($is_master) {
            $check->($c, 'mine', 0, 0);
        } else {
            $check->($c, 'mine', $sum->(sub { $_[0] == $g }));
        }
        if (grep { $_ > $g } keys %exists) {
            $check->($c, 'next', $sum->(sub { $_[0] > $g }));
        } else {
            $check->($c, 'next', undef);
        }
        # state changes after the callback
        if ($c->{event} eq 'worker_start') {
            # the respawned worker's start counted its dead predecessor: drop it now
            delete $alive{$g}{$_} for keys %$certain;
        } elsif ($c->{event} eq 'worker_exit') {
            delete $alive{$g}{$wid};
        } elsif ($c->{event} eq 'master_exit') {
            push @err, cb_str($c) . ": master exit while workers of its generation are alive: "
                . join(' ', sort keys %{ $alive{$g} }) if grep { !$crashed{$_} } keys %{ $alive{$g} // {} };
            delete $exists{$g};
            delete $alive{$g};
        }
        $certain = {};
    }
    return @err;
}

# ------------------------------------------------ model, exact (crash-aware)
#
# model_errors($n, exact => 1, on_crash => 1, since =>, phantom =>) replays
# the log with the module's own reports as the state changes, so no count is
# "uncertain":
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
our $DROP_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) \(pid (\d+), slot (\d+)\) crashed: (.*?); dropped from the counts, (-?\d+) left in generation (\d+)/s;
our $LOST_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) \(pid (\d+), slot (\d+)\) crashed while starting, before it was counted/;
# counted again: "was dropped as crashed but is alive ...; counted again" (older
# wording) or "is alive but was not counted (...): restored [generation G and
# its ]slot S"
our $RECOUNT_RE = qr/\[worker-manager\] worker (\d+)-(\d+) (?:was dropped as crashed but is alive|is alive but was not counted)/;
our $LATE_RE    = qr/\[worker-manager\] worker (\d+)-(\d+) exits after it was dropped for a late heartbeat/;
our $BEHALF_RE  = qr/\[worker-manager\] generation (\d+) lost its last worker without an exit; running its master exit here/;
our $SIGNAL_RE  = qr/worker process (\d+) exited on signal (\d+)/;
our $TAKEOVER_RE = qr/\[worker-manager\] took over the node lock from dead process (\d+)/;

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

sub model_exact_errors {
    my ($n, %o) = @_;
    my %phantom = map { $_ => 1 } @{ $o{phantom} // [] };
    my (%alive, %exists, %stalled, %dead, %due, %dropped, %late, @err);
    my @ev;
    for my $e ($n->grep_log(qr/$DROP_RE|$LOST_RE|$RECOUNT_RE|$LATE_RE|$SIGNAL_RE/, since => $o{since})) {
        my $t = $e->{text};
        if ($t =~ $LOST_RE) {
            push @ev, { kind => 'lost', gen => $1, wpid => $2, pid => $3, slot => $4,
                        idx => $e->{idx}, logpid => $e->{pid}, line => $e->{line} };
        } elsif ($t =~ $DROP_RE) {
            push @ev, { kind => 'drop', gen => $1, wpid => $2, pid => $3, slot => $4, cause => $5,
                        left => $6, lgen => $7, idx => $e->{idx}, logpid => $e->{pid}, line => $e->{line} };
        } elsif ($t =~ $RECOUNT_RE) {
            push @ev, { kind => 'recount', gen => $1, wpid => $2, idx => $e->{idx}, line => $e->{line},
                        regen => scalar($t =~ /restored (?:generation counter and )?generation \d+/) };
        } elsif ($t =~ $LATE_RE) {
            push @ev, { kind => 'late', gen => $1, wpid => $2, idx => $e->{idx}, line => $e->{line} };
        } elsif ($t =~ $SIGNAL_RE) {
            push @ev, { kind => 'signal', pid => $1, idx => $e->{idx} };
        }
    }
    push @ev, map { { %$_, kind => 'cb' } } $n->callbacks(since => $o{since});
    # The module uncounts a worker replaced by a respawn right after the
    # respawned worker's start callback, and reports it once that worker (or,
    # if it was killed in that callback, the next respawn) can: the drop is
    # dated right after the start of the worker named in the report.
    my %start_idx = map { $_->{id} => $_->{idx} } grep { $_->{kind} eq 'cb' && $_->{event} eq 'worker_start' } @ev;
    for my $x (grep { $_->{kind} eq 'drop' } @ev) {
        next unless ($x->{cause} // '') =~ /respawned its slot as (\d+-\d+)/;
        $x->{idx} = $start_idx{$1} + 0.5 if defined $start_idx{$1} && $start_idx{$1} < $x->{idx};
    }
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
        if ($x->{kind} eq 'drop') {
            my ($g, $wid) = ($x->{gen}, "$x->{gen}-$x->{wpid}");
            my $s = "#$x->{idx} drop of $wid";
            push @err, "$s: pid $x->{pid} is not the pid of the id" if $x->{pid} ne $x->{wpid};
            push @err, "$s: 'left in generation $x->{lgen}' is not its generation" if $x->{lgen} ne $g;
            push @err, "$s: dropped twice" if $dropped{$wid}++;
            push @err, "$s: it is not counted (never started, exited or dropped already)" unless $alive{$g}{$wid};
            delete $alive{$g}{$wid};
            my $left = keys %{ $alive{$g} // {} };
            push @err, "$s: says $x->{left} left in generation $g, the replay has $left" if $x->{left} != $left;
            $stalled{$g}{$wid} = $x->{pid} if $x->{cause} =~ /^no heartbeat/ && !$dead{ $x->{pid} };
            $due{$wid} = $x;
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
            push @err, "#$x->{idx} $wid counted again: it was not dropped as stalled" unless $stalled{$g}{$wid};
            push @err, "#$x->{idx} $wid counted again: it is counted already" if $alive{$g}{$wid};
            push @err, "#$x->{idx} $wid counted again: its generation $g was restored" . ($exists{$g} ? '' : ' after it ended')
                if $x->{regen};
            delete $stalled{$g}{$wid};
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
            $alive{$g}{$wid} = 1;
        } elsif ($c->{event} eq 'worker_exit') {
            if (!$alive{$g}{$wid}) {
                if ($stalled{$g}{$wid} && $late{$wid}) {
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

sub model_ok {
    my ($n, $name, %o) = @_;
    my @err = model_errors($n, %o);
    my $ok = Test::More::ok(!@err, $name // 'every callback has the counts the contract gives');
    unless ($ok) {
        Test::More::diag(join '', map { "  $_\n" } @err);
        Test::More::diag("all callbacks:\n" . cbs_str($n->callbacks(since => $o{since})));
    }
    return $ok;
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
#   - nothing of a generation after its master_exit
sub lifecycle_ok {
    my ($n, %o) = @_;
    my @c = $n->callbacks(since => $o{since});
    my @err;
    my (%ws, %we, %ms, %me, %ended, %crash, %gen_of_pid);
    # the module's "running its master exit here" notices: pid => [ [gen, idx] ]
    my %behalf;
    for my $e ($n->grep_log($BEHALF_RE, since => $o{since})) {
        push @{ $behalf{ $e->{pid} } }, [ $1, $e->{idx} ] if $e->{text} =~ $BEHALF_RE;
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
        if ($c->{event} =~ /^master/) {
            push @err, "$s: master id is not an integer" unless $c->{id} =~ /^\d+$/;
            push @err, "$s: id type $c->{types}" unless ($c->{types} // '') =~ /^number,/;
        } else {
            push @err, "$s: worker id is not <gen>-<pid>" unless $c->{id} =~ /^\d+-\d+$/;
            push @err, "$s: id type $c->{types}" unless ($c->{types} // '') =~ /^string,/;
            push @err, "$s: worker id pid part is not the calling pid $c->{pid}"
                if defined $c->{wpid} && $c->{wpid} ne $c->{pid} && $c->{event} ne 'crash';
        }
        $gen_of_pid{ $c->{pid} } //= $c->{gen} if $c->{event} eq 'worker_start';
        push @err, "$s: prev not nil/integer" unless $c->{prev} =~ /^(?:nil|\d+)$/;
        push @err, "$s: next not nil/integer" unless $c->{next} =~ /^(?:nil|\d+)$/;
        push @err, "$s: mine not an integer"  unless $c->{mine} =~ /^\d+$/;
        push @err, "$s: callback given $c->{nargs} args, not 4" if ($c->{nargs} // 4) != 4;
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
                unless $ws{ $c->{id} } || ($lost{ $c->{id} } // 1e99) < $c->{idx};
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
                    if !defined $fg || $fg == $g;
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
    my $ok = Test::More::ok(!@err, $o{name} // 'lifecycle invariants hold');
    unless ($ok) {
        Test::More::diag(join '', map { "  $_\n" } @err);
        Test::More::diag("all callbacks:\n" . cbs_str(@c));
    }
    return $ok;
}

# The node-wide lock: ENTER/LEAVE lines strictly alternate in the log, each
# LEAVE matching the ENTER before it, and the time intervals are disjoint.
#
# A holder killed inside its callback never logs LEAVE: its hold ends when its
# process is known dead (the master's "exited on signal" line, or the
# module's "took over the node lock from dead process P"); the next ENTER
# must come after that in the log.  killed => N: exactly N holds ended so.
sub lock_ok {
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
    for my $x (@el) {
        if ($x->{kind} eq 'DEAD') {
            if ($open && $open->{pid} eq $x->{pid}) { $killed++; $open = undef }
            next;
        }
        my $s = "#$x->{idx} $x->{kind} $x->{event} id=$x->{id} pid=$x->{pid} t=$x->{t}";
        if ($x->{kind} eq 'ENTER') {
            push @err, "$s: entered while #$open->{idx} $open->{event} id=$open->{id} (pid $open->{pid}) still runs"
                if $open;
            $open = $x;
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
    my $ok = Test::More::ok(!@err && @iv >= ($o{min} // 1),
                            $o{name} // 'callbacks never overlap (' . scalar(@iv) . ' intervals'
                                . ($killed ? ", $killed ended by a kill" : '') . ')');
    Test::More::diag(join '', map { "  $_\n" } @err) unless $ok;
    return $ok;
}

# no error/crit/alert/emerg entries except the allowed ones
sub no_errors_ok {
    my ($n, $name, @allow) = @_;
    my @e = $n->errors(allow => \@allow);
    my $ok = Test::More::ok(!@e, $name // 'no unexpected errors in the log');
    Test::More::diag(join '', map { "  #$_->{idx} $_->{line}\n" } @e) unless $ok;
    return $ok;
}

1;
