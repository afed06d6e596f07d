package WorkerManager::FleetCheck;
# The fleet events a node ran, read from t/lib/wm_test.lua's fleet()
# recorder lines (WMFLEET <kind> node=.. n=.. reason=.. nargs=..), for the
# fleet suites.
#
#   fleet_events($n, since => mark)   "join n2 2", "leave n1 2 stopped", ...,
#                                     in log order; an event whose callback
#                                     got the wrong number of arguments (join
#                                     2, leave 3) carries " nargs=N"
#   saw_event($n, $event, $label, timeout => s)
#                                     waits until $event is among them
use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(fleet_events saw_event);

sub fleet_events {
    my ($n, %o) = @_;
    my @out;
    for ($n->grep_log(qr/WMFLEET /, since => $o{since})) {
        my ($kind, $node, $count, $reason, $nargs) = $_->{text} =~ /WMFLEET (\w+) node=(\S+) n=(\d+) reason=(\S+) nargs=(\d+)/
            or next;
        push @out, join(' ', $kind, $node, $count, $reason eq 'nil' ? () : $reason)
                   . ($nargs == ($kind eq 'join' ? 2 : 3) ? '' : " nargs=$nargs");
    }
    return @out;
}

sub saw_event {
    my ($n, $event, $label, %o) = @_;
    return $n->wait_until(sub { grep { $_ eq $event } fleet_events($n, since => $o{since}) },
                          desc => "[$label] '$event'", timeout => $o{timeout});
}

1;
