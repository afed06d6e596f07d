#!/usr/bin/env perl
# A scripted tour of resty.worker.manager on a real nginx (`make demo`):
# start, reload (HUP), kill -9 of a worker, stop (QUIT), printing every
# callback with its arguments, in the order the node ran them.
#
#   perl -I t/lib nginx/demo.pl            (from the repository root, after `make build`)
#
# WM_NGINX / WM_LOAD_MODULES choose the nginx binary as for the tests;
# WM_KEEP=2 keeps the temporary prefix (conf and error.log) for a look.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Test::More ();
use WorkerManager::Nginx;

Test::More->builder->no_ending(1);    # the driver reports through Test::More; no TAP here
$| = 1;

sub say_step { print "\n== $_[0]\n" }

my $n = WorkerManager::Nginx->new(workers => 2, exit_hook => 1,
                                  opts => '{ shm = "wm", interval = 1 }');

# Print the callbacks (and the module's own log lines) logged since $mark.
sub show {
    my ($mark) = @_;
    for my $e ($n->grep_log(qr/\bWMCB \w+ id=|\[worker-manager\]/, since => $mark)) {
        if ($e->{text} =~ /\bWMCB (\w+) id=(\S+) prev=(\S+) mine=(\S+) next=(\S+)/) {
            my ($ev, $id, $prev, $mine, $next) = ($1, $2, $3, $4, $5);
            my $where = $ev =~ /^master_start/ ? 'master' : "worker pid $e->{pid}";
            printf "  %-13s (%-8s n_prev=%-3s n_mine=%-2s n_next=%-3s)  in %s\n",
                $ev, "$id,", $prev, $mine, $next, $where;
        } elsif ($e->{text} =~ /(\[worker-manager\].*?)(?:, context: .*)?$/) {
            print "  [log $e->{level}] $1\n";
        }
    }
    return $n->mark;
}

print "nginx: $WorkerManager::Nginx::NGINX, prefix ", $n->prefix, "\n";
print "callback arguments: (id, n_prev, n_mine, n_next); nil = no such generation\n";

say_step('start: master start in init_by_lua, then each worker counts itself');
my $mark = $n->mark;
$n->start;
$mark = show($mark);

say_step('reload (HUP): generation 2 starts while generation 1 still runs, then generation 1 exits');
$n->signal('HUP');
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark);
$mark = show($mark);

say_step('kill -9 of a worker: nginx respawns it; its start still counts the dead one, which is dropped right after');
my ($victim) = $n->worker_pids;
print "  (kill -9 $victim)\n";
$n->kill_worker($victim, 'KILL');
$n->wait_log(qr/\bWMCB worker_start id=2-/, since => $mark);
$n->wait_log(qr/\[worker-manager\].*\b$victim\b/, since => $mark);
$mark = show($mark);

say_step('stop (QUIT): each worker exits; the last one runs the master exit (n_next nil: the node stops)');
$n->signal('QUIT');
$n->wait_exit or die "nginx did not stop\n";
$mark = show($mark);

print "\ndone; the conf used is in ", $n->conf, ($ENV{WM_KEEP} && $ENV{WM_KEEP} eq '2' ? "\n" : " (removed; WM_KEEP=2 keeps it)\n");
