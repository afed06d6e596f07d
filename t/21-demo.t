# nginx/demo.pl --check: the tour of `make demo` (nginx/demo.conf: start, a
# request, reload, kill -9 of a worker, two reloads in a row, graceful stop,
# restart and fast stop) runs and its timeline has every expected event; the
# demo checks that itself and exits non-zero otherwise. The SVG timeline it
# draws is read back against the demo's own error.log: one lane per worker,
# one mark per callback with its four counts, one lock hold per callback,
# the signals sent, the crash, the conf lines.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use File::Temp qw(tempdir);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $repo = $WorkerManager::Nginx::REPO;
BAIL_OUT("lib/ is not built: run make build") unless -f "$repo/lib/resty/worker/manager.lua";

# the driver copies the demo node's error.log here when it cleans up, for the checker
my $logs = tempdir('wm-21-logs-XXXXXX', DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp', CLEANUP => 1);
my $t0 = time;
my $pid = open(my $fh, '-|') // die "fork: $!";
if (!$pid) {
    $ENV{WM_SAVE_LOGS} = $logs;
    open STDERR, '>&', \*STDOUT;
    open STDIN, '<', '/dev/null';
    exec $^X, '-I', "$repo/t/lib", "$repo/nginx/demo.pl", '--check', '--svg', "$logs/timeline.svg"
        or POSIX::_exit(127);
}
my $out = do { local $/; <$fh> } // '';
close $fh;
my $rc = $? >> 8;
my $took = time - $t0;

is($rc, 0, 'demo.pl --check exits 0') or diag $out;
like($out, qr/^all \d+ checks passed$/m, 'every check passed');
unlike($out, qr/^\s*FAIL /m, 'no failed check');
like($out, qr/^\s+[\d.]+  master_start  1 +nil +0 +nil +master \d+/m, 'timeline: master_start(1, nil, 0, nil) in the master');
like($out, qr/^\s+[\d.]+  worker_start  2-\d+ +\d+ +3 +nil /m, 'timeline: the respawned worker starts with n_mine=3');
like($out, qr/^\s+[\d.]+  log ERR +\[worker-manager\] .*\b2-\d+\b/m, 'timeline: the module\'s ERR line for the crash');
like($out, qr/^\s+[\d.]+  master_exit   4 +\d+ +0 +nil /m, 'timeline: master_exit(4, ., 0, nil) on stop');
like($out, qr/^\s+status\(\)  generation 4, crashes 1\b/m, 'status() after the reloads: generation 4, one crash');
unlike($out, qr/^(?:not )?ok \d|^#/m, 'no TAP noise in the output');
note(sprintf 'the tour took %.1f s', $took);
like($out, qr/^=== \[7\/7\] start again, then a fast stop: kill -TERM /m, 'the tour ends with a restart and a fast stop');
like($out, qr/^\s+[\d.]+  worker_exit   1-\d+ +nil +1 +nil /m, 'timeline: the fast stop\'s last worker exit (1-.., nil, 1, nil)');
like($out, qr/^  the conf lines that make the run:\n    worker_processes 2;\n    lua_shared_dict worker_manager 1m;\n    init_by_lua_block \{\n/m,
     'the tour shows the conf lines that make the run');
like($out, qr/^  timeline  \Q$logs\E\/timeline\.svg$/m, 'the tour says where its timeline is');
like($out, qr/^=== \[4\/7\] kill -9 \d+ \(worker 2-\d+, the singleton's holder\) /m, 'step 4 kills the singleton\'s holder');
like($out, qr/^\s+[\d.]+  job start     reporter #3 +worker \d+ /m, '... and the job starts again, token 3');
like($out, qr/^\s+[\d.]+  job stop      reporter #\d+  reason "reload" /m, 'timeline: the job\'s stop on a reload');

# nothing left running: no process of the demo's prefix, and the prefix is gone
my ($prefix) = $out =~ m{-> (\S+)/conf/nginx\.conf$}m;
ok($prefix, 'the demo names its prefix');
if ($prefix) {
    my @left = grep { index($_, $prefix) >= 0 }
               map { my $c = ''; if (open my $f, '<', $_) { local $/; $c = <$f> // ''; $c =~ s/\0/ /g } $c }
               glob '/proc/[0-9]*/cmdline';
    is(scalar @left, 0, 'no nginx of the demo left running') or diag join "\n", @left;
    ok(!-e $prefix, 'its temporary prefix is removed');
}

# the invariant checker on the demo's own log (demo.conf logs every callback
# as "demo: <event> id=.. n_prev=.. n_mine=.. n_next=.." at NOTICE; it has no
# ENTER/LEAVE lines, so the lock is not checked here)
my @saved = glob "$logs/*.error.log";
is(scalar @saved, 1, 'the demo node\'s error.log was saved for the checker');
if (@saved) {
    my $log = WorkerManager::Nginx->from_log($saved[0], cb_format => 'demo', workers => 2, exit_hook => 1,
                                             opts => '{ shm = "worker_manager", interval = 1, failed = 2, on_crash = cb }');
    my @c = $log->callbacks;
    cmp_ok(scalar @c, '>=', 20, 'the demo log holds its callbacks (' . scalar(@c) . ')');
    checker_ok($log, label => 'demo', lock => 0, on_crash => 1, complete => 1);

    # the SVG timeline against that log
    my $svg = -f "$logs/timeline.svg" ? do { local (@ARGV, $/) = ("$logs/timeline.svg"); <> } : '';
    ok(length $svg, 'the timeline was written');
    like($svg, qr/\A<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*>\n/, 'it is an SVG document');
    like($svg, qr/<\/svg>\n\z/, 'it is complete');
    unlike($svg, qr/&(?!(?:amp|lt|gt|quot);)|<[^\/!a-z]/, 'no unescaped & or < in it');
    # the callbacks, as the demo's error.log has them
    my $text = do { local (@ARGV, $/) = ($saved[0]); <> };
    my @cbs = $text =~ /\bdemo: (\w+) id=(\S+) n_prev=(\S+) n_mine=(\S+) n_next=(\S+) /g;
    my (@want, %workers);
    while (my ($ev, $id, $p, $m, $nx) = splice @cbs, 0, 5) {
        push @want, "$ev $id $p $m $nx";
        $workers{$id} = 1 if $ev eq 'worker_start';
    }
    my @marks;
    while ($svg =~ /<\w+ class="mark cb (\w+)" data-event="\1" data-id="([^"]*)" data-n-prev="([^"]*)" data-n-mine="([^"]*)" data-n-next="([^"]*)"[^>]*>\n<title>([^<]*)<\/title>/g) {
        push @marks, "$1 $2 $3 $4 $5";
        my ($ev, $id, $title, @n) = ($1, $2, $6, $3, $4, $5);
        my $args = ($ev =~ /^master/ ? $id : "&quot;$id&quot;") . ', ' . join ', ', @n;
        like($title, qr/\A\Q$ev($args)\E\nat [\d.]+ s in /, "the mark of $ev $id says its call and counts on hover");
    }
    is_deeply([sort @marks], [sort @want], 'one mark per callback of the log, with its id and four counts (' . scalar(@want) . ')');
    my @lanes = $svg =~ /<text class="lane-label worker" [^>]*data-id="([^"]+)"/g;
    is_deeply([sort @lanes], [sort keys %workers], 'one lane per worker the run had (' . keys(%workers) . ')');
    my @gens = $svg =~ /<text class="lane-label generation" [^>]*>generation (\d+)</g;
    is("@gens", '1 2 3 4 1', 'a group per generation, in order: 1 to 4, then 1 after the restart');
    is(scalar(() = $svg =~ /<text class="lane-label master" /g), 2, 'a master lane per run of the node');
    my @holds = $svg =~ /<rect class="hold" data-event="(\w+)"/g;
    is(scalar @holds, scalar @want, 'one node lock hold per callback');
    my @signals = $svg =~ /<g class="signal" data-signal="(\w+)"/g;
    is("@signals", 'HUP HUP HUP QUIT KILL TERM', 'the signals the tour sent: HUP, HUP, HUP, QUIT on the master lane, KILL on a worker\'s, TERM');
    like($svg, qr/class="mark cb crash" data-event="crash" data-id="2-\d+"/, 'the crash is marked on the dead worker\'s lane');
    like($svg, qr/xml:space="preserve">init_by_lua_block \{<\/text>/, 'the conf lines are shown');
    # the singleton's holdings: a line and a star per start, a star per stop
    my @jstarts = $text =~ /\bdemo: singleton_start name=reporter token=(\d+) /g;
    my @jstops = $text =~ /\bdemo: singleton_stop name=reporter token=(\d+) /g;
    ok(@jstarts >= 5, 'the demo\'s singleton started at least 5 times (' . scalar(@jstarts) . ')');
    is(scalar(() = $svg =~ /<line class="holding" /g), scalar @jstarts, 'a holding line per start of the singleton');
    is_deeply([ $svg =~ /class="mark job singleton_start" data-name="reporter" data-token="(\d+)"/g ], \@jstarts,
              'a start mark per start, with its token');
    is_deeply([ $svg =~ /class="mark job singleton_stop" data-name="reporter" data-token="(\d+)"/g ], \@jstops,
              'a stop mark per stop');
}
# `make demo` installs nothing without saying so first: with luajit2
# reported missing (a fake dpkg-query; apt-get and sudo fakes that only
# log), it names the package and why before apt-get runs, and it runs no
# npm or build (lib/ is committed)
{
    my $bin = "$logs/fake-bin";
    mkdir $bin or die "$bin: $!";
    my %fake = (
        'dpkg-query' => qq{#!/bin/sh\nfor a; do p=\$a; done\n[ "\$p" = luajit2 ] && exit 1\nprintf 'install ok installed'\n},
        'apt-get'    => qq{#!/bin/sh\necho "FAKE apt-get \$*"\n},
        'sudo'       => qq{#!/bin/sh\nexec "\$@"\n},
    );
    for my $name (keys %fake) {
        open my $fh, '>', "$bin/$name" or die "$bin/$name: $!";
        print $fh $fake{$name};
        close $fh;
        chmod 0755, "$bin/$name";
    }
    my $said = `cd '$repo' && PATH='$bin':"\$PATH" make --no-print-directory -s demo-apt 2>&1`;
    like($said, qr/\Amake demo needs Debian packages that are not installed: luajit2\ninstalling them: (?:sudo )?apt-get install luajit2\n/,
         'make demo says which package it installs, and why, first') or diag $said;
    like($said, qr/^FAKE apt-get install -y -qq --no-install-recommends luajit2$/m, '... then installs only that one');
    my $plan = `cd '$repo' && make --no-print-directory -n demo 2>&1`;
    unlike($plan, qr/\bnpm\b|\btstl\b/, 'make demo runs no npm and no build: it uses the committed lib/') or diag $plan;
}
done_testing;
