package WorkerManager::Chance;
# The soaks' random decisions (t/soak/*.pl): srand with their seed first,
# and a run replays.
use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(pick);

# pick(name => weight, ...): one of the names, each as likely as its weight
sub pick {
    my @w = @_;
    my $total = 0;
    $total += $w[$_] for grep { $_ % 2 } 0 .. $#w;
    my $r = rand $total;
    for (my $i = 0; $i < @w; $i += 2) {
        return $w[$i] if ($r -= $w[ $i + 1 ]) < 0;
    }
    return $w[-2];
}

1;
