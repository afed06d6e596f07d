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

our @EXPORT = qw(cb_is cb_str cbs_str sorted_field select_cbs model_errors model_ok
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
    my (%ws, %we, %ms, %me, %ended);
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
                if defined $c->{wpid} && $c->{wpid} ne $c->{pid};
        }
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
        if ($c->{event} eq 'master_start') { push @err, "$s: master_start twice for gen $g" if $ms{$g}++ }
        if ($c->{event} eq 'master_exit') {
            push @err, "$s: master_exit twice for gen $g" if $me{$g}++;
            $ended{$g} = 1;
            # the last worker_exit of this generation
            my ($last) = grep { $_->{event} eq 'worker_exit' && ($_->{gen} // -1) == $g } reverse @c[0 .. $i - 1];
            if (!$last) {
                push @err, "$s: master_exit without any worker_exit of gen $g before it" unless $o{allow_crash_exit};
            } else {
                push @err, "$s: master_exit not in the process of the last worker_exit ($last->{pid})"
                    if $last->{pid} ne $c->{pid} && !$o{allow_crash_exit};
                push @err, "$s: the last worker_exit before it had mine=$last->{mine}, not 1"
                    if $last->{mine} ne '1' && !$o{allow_crash_exit};
                my ($between) = grep { $_->{pid} eq $last->{pid} } @c[ $last->{_i} + 1 .. $i - 1 ];
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
sub lock_ok {
    my ($n, %o) = @_;
    my @el = $n->enter_leave(since => $o{since});
    my @err;
    my $open;
    my @iv;
    for my $x (@el) {
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
    my $ok = Test::More::ok(!@err && @iv >= ($o{min} // 1),
                            $o{name} // 'callbacks never overlap (' . scalar(@iv) . ' intervals)');
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
