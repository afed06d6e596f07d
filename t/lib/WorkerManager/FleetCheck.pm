package WorkerManager::FleetCheck;
# The fleet events a node ran, read from t/lib/wm_test.lua's fleet()
# recorder lines (WMFLEET <kind> node=.. n=.. reason=.. nargs=..), for the
# fleet suites.
#
#   fleet_events($n, since => mark)   "join n2 2", "leave n1 2 stopped", ...,
#                                     in log order; an event whose callback
#                                     got the wrong number of arguments (join
#                                     2, leave 3) carries " nargs=N"
#   saw_event($n, $event, $label, timeout => s, count => N)
#                                     waits until $event is among them (N
#                                     times, with count)
#
# and the node every fleet suite starts:
#
#   fleet_node($name, redis => LUA, interval => s, failed => s, recorders => 0, %nginx)
#       a node of 2 workers (node opts interval 1, failed 2) in the fleet on
#       that Redis (a Lua table: $redis->address, or sentinels); on_join and
#       on_leave are wm.fleet() recorders unless recorders => 0 (recorders =>
#       '{ raise = "x" }': the recorders' options, in Lua); GET /nodes
#       lists nodes(), a line "node generation workers started seen" each;
#       %nginx goes to WorkerManager::Nginx->new (server_extra is added to
#       the /nodes location)
use strict;
use warnings;
use Exporter 'import';
use WorkerManager::Nginx;

our @EXPORT = qw(fleet_events saw_event fleet_node);

my $NODES = <<'CONF';
        location = /nodes {
            content_by_lua_block {
                for _, m in ipairs(require("resty.worker.manager").nodes()) do
                    ngx.say(m.node, " ", m.generation, " ", m.workers, " ", m.started, " ", m.seen)
                end
            }
        }
CONF

sub fleet_node {
    my ($name, %o) = @_;
    my ($redis, $interval, $failed, $recorders) = delete @o{qw(redis interval failed recorders)};
    $recorders //= 1;
    my $with = $recorders =~ /^\{/ ? ", $recorders" : '';
    my $cluster = sprintf '{ redis = %s, node = "%s", interval = %s, failed = %s%s }', $redis, $name, $interval,
                          $failed, $recorders ? qq{, on_join = wm.fleet("join"$with), on_leave = wm.fleet("leave"$with)} : '';
    my $server_extra = $NODES . (delete $o{server_extra} // '');
    return WorkerManager::Nginx->new(
        workers => 2,
        opts => qq{{ shm = "wm", interval = 1, failed = 2, cluster = $cluster }},
        # (nginx itself logs each failed connect at ERR unless told not to)
        http_extra => 'lua_socket_log_errors off;',
        server_extra => $server_extra,
        %o,
    );
}

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
    my $count = $o{count};
    return $n->wait_until(sub {
        my $seen = grep { $_ eq $event } fleet_events($n, since => $o{since});
        return defined $count ? $seen == $count : $seen;
    }, desc => "[$label] '$event'" . (defined $count ? " $count times" : ''), timeout => $o{timeout});
}

1;
