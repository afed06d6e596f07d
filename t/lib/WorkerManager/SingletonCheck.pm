package WorkerManager::SingletonCheck;
# The singleton contract (README.md, Singletons) checked on a node's
# error.log: the WMSJ-ENTER / WMSJ-LEAVE lines of t/lib/wm_test.lua's
# sj()/job() recorders, the module's own lines about singletons, and
# nginx's lines about reaped workers.
#
#   one holder   a start of a name begins only after the previous holding
#                ended: its stop returned, or the module freed it (its
#                holder crashed, stopped beating, or was found gone), or its
#                holder's process was reaped (an every() job has no stop: its
#                holdings show as runs, checked below)
#   tokens       strictly increasing per name over a node lifetime
#   stops        of the current holding, in its holder, with a valid reason;
#                "lost" only for a holding freed while its holder stopped
#                beating; holds() true in start, fn and every stop but a
#                lost one
#   runs         every()'s fn runs of one name never overlap, except with a
#                run cut off by its holder's death or stall
#   stop         after a stop with reason "stop", no start of the name in
#                that lifetime (unless the module said the stop did not
#                come: a tombstone taken over)
#
# A lifetime ends where a new master start of generation 1 begins.
use strict;
use warnings;
use Exporter 'import';
use Test::More ();

our @EXPORT = qw(sj_events singleton_errors singletons_ok freed_notice_re fleet_singleton_errors fleet_singletons_ok
                 $HOLDERS_LOCATION);

# For server_extra: GET /holders lists status()'s singletons, a line
# "name holder token generation" each (holder "<gen>-<pid>", or nil; the
# generation is the node's newest).
our $HOLDERS_LOCATION = <<'CONF';
        location = /holders {
            content_by_lua_block {
                local st = require("resty.worker.manager").status()
                for _, s in ipairs(st.singletons) do
                    ngx.say(s.name, " ", tostring(s.holder), " ", s.token, " ", tostring(st.generation))
                end
            }
        }
CONF

my $FREED_RE = qr/singleton '(.+?)' \(token (\d+)\) of worker \d+-(\d+) is free again: its holder (crashed|stopped beating)/;
my $GONE_RE = qr/singleton '(.+?)' \(token (\d+)\) was held by worker \d+-(\d+), which is gone( after it stopped the job)?/;
my $REAPED_RE = qr/worker process (\d+) exited (?:with code \d+|on signal \d+)/;
my $LIFE_RE = qr/\bWMCB master_start id=1 prev=nil /;

# The module's notice that holding `token` of `name` by `pid` ended without
# its stop because the holder died: a sibling that finds the crash frees it
# ("is free again"), or a worker that finds the holder's pid gone first
# takes it over ("which is gone"); which one comes first is nginx's order.
sub freed_notice_re {
    my ($name, $token, $pid) = @_;
    return qr/singleton '\Q$name\E' \(token $token\) (?:of worker \d+-$pid is free again: its holder crashed|was held by worker \d+-$pid, which is gone)/;
}

# The WMSJ lines: { edge => ENTER|LEAVE, kind, name, token, pid, phase,
# reason, held, idx, line }
sub sj_events {
    my ($n, %o) = @_;
    my @out;
    for my $e ($n->grep_log(qr/\bWMSJ-(?:ENTER|LEAVE) /, since => $o{since})) {
        next unless $e->{text} =~ /\bWMSJ-(ENTER|LEAVE) (\w+) (.*)\z/s;
        my %h = (edge => $1, kind => $2, idx => $e->{idx}, line => $e->{line});
        my $rest = $3;
        $h{$1} = $2 while $rest =~ /(\w+)=(\S+)/g;
        $h{t} =~ s/[^\d.]+\z// if defined $h{t};    # (", context: ..." follows it)
        # a cluster singleton's holdings span nodes: the suites check them
        # over every node's log (one node's log cannot tell)
        next if ($h{scope} // '') eq 'cluster' && !$o{cluster};
        push @out, \%h;
    }
    return @out;
}

sub _str {
    my $e = shift;
    return sprintf '#%d %s %s name=%s token=%s pid=%s%s', $e->{idx}, $e->{edge}, $e->{kind}, $e->{name},
        $e->{token}, $e->{pid}, ($e->{reason} // 'nil') ne 'nil' ? " reason=$e->{reason}" : '';
}

# singleton_errors($n, since => mark): the findings, as strings.
sub singleton_errors {
    my ($n, %o) = @_;
    my @err;
    # everything the rules read, in log order
    my @ev;
    for my $e (sj_events($n, %o)) {
        push @ev, { type => 'sj', %$e };
    }
    for my $e ($n->grep_log(qr/$FREED_RE|$GONE_RE|$REAPED_RE|$LIFE_RE/, since => $o{since})) {
        my $t = $e->{text};
        if ($t =~ $FREED_RE) {
            push @ev, { type => 'freed', name => $1, token => $2, pid => $3, why => $4, idx => $e->{idx} };
        } elsif ($t =~ $GONE_RE) {
            push @ev, { type => 'freed', name => $1, token => $2, pid => $3, why => $4 ? 'tombstone' : 'gone',
                        idx => $e->{idx} };
        } elsif ($t =~ $REAPED_RE) {
            push @ev, { type => 'reaped', pid => $1, idx => $e->{idx} };
        } elsif ($t =~ $LIFE_RE) {
            push @ev, { type => 'life', idx => $e->{idx} };
        }
    }
    @ev = sort { $a->{idx} <=> $b->{idx} } @ev;

    my (%name, %dead);
    my $reset = sub { %name = (); %dead = () };
    for my $e (@ev) {
        if ($e->{type} eq 'life') {
            $reset->();
            next;
        }
        if ($e->{type} eq 'reaped') {
            $dead{ $e->{pid} } = $e->{idx};
            next;
        }
        my $s = $name{ $e->{name} } //= { last => 0, holdings => {}, running => {}, stopped => undef };
        if ($e->{type} eq 'freed') {
            my $h = $s->{holdings}{ $e->{token} };
            if ($h && $h->{pid} == $e->{pid}) {
                $h->{freed} = $e->{why};
            } elsif ($e->{why} eq 'tombstone' || $e->{why} eq 'gone') {
                # a holding claimed whose start never ran, or a tombstone
                $s->{holdings}{ $e->{token} } //= { pid => $e->{pid}, token => $e->{token}, freed => $e->{why} };
            }
            $s->{stopped} = undef if $e->{why} eq 'tombstone';
            next;
        }
        my $str = _str($e);
        my $token = $e->{token};
        my $pid = $e->{pid};
        my $begins = $e->{edge} eq 'ENTER' && ($e->{kind} eq 'start' || ($e->{kind} eq 'fn' && !$s->{holdings}{$token}));
        if ($begins) {
            push @err, "$str: token $token is not above the name's last token $s->{last}" if $token <= $s->{last};
            # every earlier holding has ended (an every() job has no stop to
            # show it: for those, its runs must not overlap, see fn below)
            for my $t (sort { $a <=> $b } keys %{ $s->{holdings} }) {
                my $h = $s->{holdings}{$t};
                next if $h->{ended} || $h->{freed} || $h->{every} || defined $dead{ $h->{pid} };
                push @err, "$str: begins while token $t of pid $h->{pid} is held (its stop did not return, "
                         . "nobody freed it, its process was not reaped)";
                $h->{ended} = 'overlapped';
            }
            push @err, "$str: begins after the job was stopped for a stop of the node (" . _str($s->{stopped}) . ')'
                if $s->{stopped};
            $s->{last} = $token if $token > $s->{last};
            $s->{holdings}{$token} = { pid => $pid, token => $token, every => $e->{kind} eq 'fn' };
        }
        my $h = $s->{holdings}{$token};
        if (!$h) {
            push @err, "$str: no holding of token $token began";
            next;
        }
        push @err, "$str: token $token is held by pid $h->{pid}, not this one" if $h->{pid} != $pid;
        if ($e->{edge} eq 'ENTER') {
            my $lost = ($e->{reason} // '') eq 'lost';
            my $want = $lost ? 'false:nil' : "true:$token";
            push @err, "$str: holds() said $e->{held}, not $want" if ($e->{held} // '') ne $want;
        }
        if ($e->{kind} eq 'stop' && $e->{edge} eq 'ENTER') {
            my $r = $e->{reason} // 'nil';
            push @err, "$str: stop with reason $r" unless $r =~ /^(?:reload|stop|lost|exit)$/;
            push @err, "$str: a stop of token $token after its stop" if $h->{stopping} || $h->{ended};
            push @err, "$str: lost, but the holding was not freed for a stall first"
                if $r eq 'lost' && ($h->{freed} // '') ne 'stopped beating';
            push @err, "$str: $r, but the holding was freed meanwhile (" . ($h->{freed} // '') . ')'
                if $r ne 'lost' && $h->{freed};
            $h->{stopping} = $e;
        }
        if ($e->{kind} eq 'stop' && $e->{edge} eq 'LEAVE') {
            $h->{ended} = 'stopped';
            $s->{stopped} = $h->{stopping} if $h->{stopping} && ($h->{stopping}{reason} // '') eq 'stop';
        }
        if ($e->{kind} eq 'fn' && $e->{edge} eq 'ENTER') {
            for my $other (keys %{ $s->{running} }) {
                my $r = $s->{running}{$other};
                next if defined $dead{$other} || ($s->{holdings}{ $r->{token} }{freed} // '') ne '';
                push @err, "$str: runs while the run of " . _str($r) . ' has not returned';
            }
            $s->{running}{$pid} = $e;
        }
        if ($e->{kind} eq 'fn' && $e->{edge} eq 'LEAVE') {
            delete $s->{running}{$pid};
        }
    }
    return @err;
}

# The fleet-wide rule for cluster singletons (sj(kind, { scope = "cluster" })
# lines), over every node's log, by the lines' t= time stamps (one machine,
# one clock):
#   tokens     a name's starts carry strictly increasing tokens, none twice
#   one holder a start begins only after the previous holding's stop
#              returned, unless the previous holder's node was killed or
#              frozen (`gone`: then no stop could run in it first)
#              (or the previous holder's process died: killed, no stop)
# fleet_singleton_errors(nodes => [[label, $n], ...], gone => { label => 1 })
sub fleet_singleton_errors {
    my (%o) = @_;
    my $gone = $o{gone} // {};
    my (%by_name, %died);
    for my $pair (@{ $o{nodes} }) {
        my ($label, $n) = @$pair;
        for ($n->grep_log(qr/worker process \d+ exited on signal \d+/)) {
            $died{"$label $1"} = 1 if $_->{text} =~ /worker process (\d+) exited on signal/;
        }
        for my $e (sj_events($n, cluster => 1)) {
            next unless ($e->{scope} // '') eq 'cluster' && defined $e->{t};
            push @{ $by_name{ $e->{name} } }, { %$e, node => $label };
        }
    }
    my @err;
    for my $name (sort keys %by_name) {
        my @e = sort { $a->{t} <=> $b->{t} } @{ $by_name{$name} };
        my @starts = grep { $_->{edge} eq 'ENTER' && $_->{kind} eq 'start' } @e;
        my %seen;
        for my $i (0 .. $#starts) {
            my $cur = $starts[$i];
            push @err, "'$name': token $cur->{token} started twice (again in $cur->{node})" if $seen{ $cur->{token} }++;
            next unless $i;
            my $prev = $starts[ $i - 1 ];
            push @err, "'$name': token $cur->{token} in $cur->{node} started after token $prev->{token}"
                unless $cur->{token} > $prev->{token};
            next if $gone->{ $prev->{node} } || $died{"$prev->{node} $prev->{pid}"};
            my ($leave) = grep { $_->{edge} eq 'LEAVE' && $_->{kind} eq 'stop' && $_->{token} == $prev->{token} } @e;
            push @err, "'$name': token $cur->{token} started in $cur->{node} (t=$cur->{t}) before token "
                     . "$prev->{token}'s stop returned in $prev->{node}" . ($leave ? " (t=$leave->{t})" : ' (it never did)')
                unless $leave && $leave->{t} <= $cur->{t};
        }
    }
    return @err;
}

sub fleet_singletons_ok {
    my (%o) = @_;
    my @err = fleet_singleton_errors(%o);
    my $ok = Test::More::ok(!@err, $o{name} // 'cluster singletons: one holder in the fleet, tokens increasing');
    Test::More::diag(join '', map { "  $_\n" } @err) unless $ok;
    return $ok;
}

sub singletons_ok {
    my ($n, %o) = @_;
    my @err = singleton_errors($n, %o);
    my $ok = Test::More::ok(!@err, $o{name} // 'singletons: one holder at a time, tokens increasing, stops in order');
    Test::More::diag(join '', map { "  $_\n" } @err) unless $ok;
    return $ok;
}

1;
