# nginx/demo.pl --check: the tour of `make demo` (nginx/demo.conf: start, a
# request, reload, kill -9 of a worker, two reloads in a row, a second node
# that joins the fleet and is killed, graceful stop, restart and fast stop)
# runs and its timeline has every expected event; the demo checks that
# itself and exits non-zero otherwise. The SVG timeline it draws is read
# back against the two nodes' own error.logs: one lane per worker, one mark
# per callback with its four counts, one lock hold per callback, one mark
# per fleet event, the signals sent, the crash, the conf lines. Nothing the
# demo started is left running: neither node, nor its Redis.
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
like($out, qr/^=== \[8\/8\] start again, then a fast stop: kill -TERM /m, 'the tour ends with a restart and a fast stop');
like($out, qr/^\s+[\d.]+  worker_exit   1-\d+ +nil +1 +nil /m, 'timeline: the fast stop\'s last worker exit (1-.., nil, 1, nil)');
like($out, qr/^  the conf lines that make the run:\n    worker_processes 2;\n    lua_shared_dict worker_manager 1m;\n    lua_socket_log_errors off;\n    init_by_lua_block \{\n/m,
     'the tour shows the conf lines that make the run');
like($out, qr/^ {12}cluster = \{\n {16}redis = \{ host = "127\.0\.0\.1", port = \d+ \},\n {16}node = "demo-1",\n {16}interval = 1, failed = 1,/m,
     '... with the fleet: the private Redis, node demo-1, interval 1, failed 1');
like($out, qr/^  timeline  \Q$logs\E\/timeline\.svg$/m, 'the tour says where its timeline is');
like($out, qr/^=== \[4\/8\] kill -9 \d+ \(worker 2-\d+, the singleton's holder\) /m, 'step 4 kills the singleton\'s holder');
like($out, qr/^\s+[\d.]+  job start     reporter #3 +worker \d+ /m, '... and the job starts again, token 3');
like($out, qr/^\s+[\d.]+  job stop      reporter #\d+  reason "reload" /m, 'timeline: the job\'s stop on a reload');

# the fleet: demo-1 joins at its start; step 6 starts demo-2, both nodes run
# its join, then kill -9 of all of demo-2 and demo-1 runs its leave, "lost"
like($out, qr/^\s+[\d.]+  fleet join    demo-1      n_nodes 1 +demo-1 worker \d+ \(slot \d\)$/m,
     'timeline: demo-1 runs on_join("demo-1", 1) at its start');
like($out, qr/^=== \[6\/8\] a second node: start demo-2, then kill -9 of all its processes /m, 'step 6: the second node');
my ($step6) = $out =~ /^(=== \[6\/8\] .*?)^=== \[7\/8\]/ms;
$step6 //= '';
like($step6, qr/^\s+[\d.]+  master_start  1 +nil +0 +nil +demo-2 master \d+ \(before daemonizing\)$/m,
     'step 6: demo-2 starts on its own, generation 1');
is(scalar(() = $step6 =~ /^\s+[\d.]+  worker_start  1-\d+ +nil +[12] +nil +demo-2 worker \d+ /mg), 2, 'step 6: demo-2\'s two workers start');
like($step6, qr/^\s+[\d.]+  fleet join    demo-2      n_nodes 2 +demo-1 worker \d+ \(slot \d\)$/m, 'step 6: demo-1 runs on_join("demo-2", 2)');
like($step6, qr/^\s+[\d.]+  fleet join    demo-2      n_nodes 2 +demo-2 worker \d+ \(slot \d\)$/m, 'step 6: demo-2 runs it for itself');
like($step6, qr/^  kill -9 \d+ \d+ \d+ \(demo-2: its master and its 2 workers\)$/m, 'step 6: kill -9 of demo-2\'s master and workers');
like($step6, qr/^\s+[\d.]+  fleet leave   demo-2      n_nodes 1  reason "lost"  demo-1 worker \d+ \(slot \d\)$/m,
     'step 6: demo-1 runs on_leave("demo-2", 1, "lost")');
like($step6, qr/^  nodes\(\)   demo-1 \(generation 4, 2 workers\), demo-2 \(generation 1, [12] workers?\)$/m, 'step 6: nodes() has both nodes after the join');
like($step6, qr/^  nodes\(\)   demo-1 \(generation 4, 2 workers\)\n\n\z/m, '... and demo-1 alone after the leave');
is(scalar(() = $out =~ /^\s+[\d.]+  fleet (?:join|leave) /mg), 5, 'five fleet events in all: demo-1\'s joins at its two starts, demo-2\'s join twice, its leave');

# nothing left running: no process of either node's prefix, the prefixes
# are gone, and so is the Redis
my ($prefix) = $out =~ m{-> (\S+)/conf/nginx\.conf$}m;
my ($prefix2) = $out =~ m{-> (\S+)/conf/nginx\.conf \(node = "demo-2"\)}m;
ok($prefix, 'the demo names its prefix');
ok($prefix2, '... and the second node\'s');
my @cmdlines = map { my $c = ''; if (open my $f, '<', $_) { local $/; $c = <$f> // ''; $c =~ s/\0/ /g } $c }
               glob '/proc/[0-9]*/cmdline';
for my $p (grep { defined } $prefix, $prefix2) {
    my @left = grep { index($_, $p) >= 0 } @cmdlines;
    is(scalar @left, 0, "no nginx of $p left running") or diag join "\n", @left;
    ok(!-e $p, "$p is removed");
}
my ($redis_port, $redis_pid) = $out =~ /^  redis   \S+ [\d.]+ on 127\.0\.0\.1:(\d+) \(pid (\d+)\), no persistence$/m;
ok($redis_pid, 'the demo names its Redis');
like($out, qr/^  redis   stopped$/m, 'it stops Redis at the end');
ok($redis_pid && !-e "/proc/$redis_pid", 'no redis-server of the demo left running') if $redis_pid;

# the invariant checker on the demo's own log (demo.conf logs every callback
# as "demo: <event> id=.. n_prev=.. n_mine=.. n_next=.." at NOTICE; it has no
# ENTER/LEAVE lines, so the lock is not checked here)
my @saved = glob "$logs/*.error.log";
is(scalar @saved, 2, 'the error.logs of both demo nodes were saved for the checker');
my ($saved1) = grep { $prefix && index($_, ($prefix =~ s{.*/}{}r) . '.error.log') >= 0 } @saved;
my ($saved2) = grep { $prefix2 && index($_, ($prefix2 =~ s{.*/}{}r) . '.error.log') >= 0 } @saved;
if ($saved1 && $saved2) {
    my $log = WorkerManager::Nginx->from_log($saved1, cb_format => 'demo', workers => 2, exit_hook => 1,
                                             opts => '{ shm = "worker_manager", interval = 1, failed = 2, on_crash = cb }');
    my @c = $log->callbacks;
    cmp_ok(scalar @c, '>=', 20, 'the demo log holds its callbacks (' . scalar(@c) . ')');
    checker_ok($log, label => 'demo', lock => 0, on_crash => 1, complete => 1);
    my @noise = map { $_->{line} } $log->errors(level => 'warn', allow => [
        qr/\[worker-manager\] worker 2-(\d+) \(pid \1, slot \d\) crashed: nginx respawned its slot/,
        qr/^worker process \d+ exited on signal 9$/,
    ]);
    is_deeply(\@noise, [], 'nothing at warn or worse in demo-1\'s log but the crash\'s own two lines: '
              . 'the kill of demo-2 logs nothing there');
    # demo-2: started, then killed whole (its lifetime has no end)
    my $log2 = WorkerManager::Nginx->from_log($saved2, cb_format => 'demo', workers => 2, exit_hook => 1,
                                              opts => '{ shm = "worker_manager", interval = 1, failed = 2, on_crash = cb }');
    is(scalar(() = $log2->callbacks), 3, 'the second node\'s log: master_start and two worker starts');
    checker_ok($log2, label => 'demo-2', lock => 0, on_crash => 1, complete => 0);
    my $text2 = do { local (@ARGV, $/) = ($saved2); <> };
    my @noise2 = grep { !/ \[notice\] / } split /\n/, $text2;
    is_deeply(\@noise2, [], 'nothing at warn or worse in the second node\'s log');

    # the SVG timeline against that log
    my $svg = -f "$logs/timeline.svg" ? do { local (@ARGV, $/) = ("$logs/timeline.svg"); <> } : '';
    ok(length $svg, 'the timeline was written');
    like($svg, qr/\A<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*>\n/, 'it is an SVG document');
    like($svg, qr/<\/svg>\n\z/, 'it is complete');
    unlike($svg, qr/&(?!(?:amp|lt|gt|quot);)|<[^\/!a-z]/, 'no unescaped & or < in it');
    # the callbacks, as the demo nodes' error.logs have them
    my $text = do { local (@ARGV, $/) = ($saved1); <> };
    my (@want, %workers, %workers2);
    for my $t ($text, $text2) {
        my @cbs = $t =~ /\bdemo: (\w+) id=(\S+) n_prev=(\S+) n_mine=(\S+) n_next=(\S+) /g;
        while (my ($ev, $id, $p, $m, $nx) = splice @cbs, 0, 5) {
            push @want, "$ev $id $p $m $nx";
            next unless $ev eq 'worker_start';
            $workers{$id} = 1;
            $workers2{$id} = 1 if $t eq $text2;
        }
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
    my @lanes2 = $svg =~ /<text class="lane-label worker" [^>]*data-id="([^"]+)" data-node="demo-2"/g;
    is_deeply([sort @lanes2], [sort keys %workers2], 'the second node\'s workers have their lanes, under demo-2 (' . keys(%workers2) . ')');
    my @nodes = $svg =~ /<text class="lane-label node" [^>]*data-node="([^"]+)"[^>]*>node \1</g;
    is("@nodes", 'demo-1 demo-2', 'a lane per node: demo-1, then demo-2');
    my @gens = $svg =~ /<text class="lane-label generation" [^>]*>generation (\d+)</g;
    is("@gens", '1 2 3 4 1 1', 'a group per generation, in order: 1 to 4, then 1 after the restart, then demo-2\'s 1');
    is(scalar(() = $svg =~ /<text class="lane-label master" /g), 3, 'a master lane per run of a node: two of demo-1, one of demo-2');
    is(scalar(() = $svg =~ /<text class="lane-label lock" /g), 2, 'a node lock lane per node');
    my @holds = $svg =~ /<rect class="hold" data-event="(\w+)"/g;
    is(scalar @holds, scalar @want, 'one node lock hold per callback');
    my @signals = $svg =~ /<g class="signal" data-signal="(\w+)" data-to="(\w+)"/g;
    is("@signals", 'HUP master HUP master HUP master QUIT master KILL worker TERM master KILL node',
       'the signals the tour sent: HUP, HUP, HUP, QUIT on the master lane, KILL on a worker\'s, TERM, then KILL of the whole of demo-2');
    # the fleet events: a mark each, on the lane of the node that ran it
    my @fleet_want;
    for ([demo1 => $text], [demo2 => $text2]) {
        my ($self, $t) = @$_;
        $self =~ s/(\d)$/-$1/;
        while ($t =~ /\bdemo: (fleet_join|fleet_leave) node=(\S+) n_nodes=(\S+)(?: reason=(\S+))? /g) {
            push @fleet_want, "$self $1 $2 $3 " . ($4 // '');
        }
    }
    is(scalar @fleet_want, 5, 'the logs have 5 fleet events: demo-1\'s two joins, demo-2\'s join on both nodes, its leave');
    my @fleet_marks;
    while ($svg =~ /<g class="mark fleet (\w+)" data-event="\1" data-node="([^"]*)" data-n-nodes="([^"]*)" data-reason="([^"]*)" data-self="([^"]*)">\n<circle [^>]*fill="(#\w+)"\/>\n<path [^>]*\/>\n<title>([^<]*)<\/title><\/g>/g) {
        my ($ev, $node, $nn, $reason, $self, $fill, $title) = ($1, $2, $3, $4, $5, $6, $7);
        push @fleet_marks, "$self $ev $node $nn $reason";
        my $call = $ev eq 'fleet_join' ? "on_join(&quot;$node&quot;, $nn)" : "on_leave(&quot;$node&quot;, $nn, &quot;$reason&quot;)";
        like($title, qr/\A\Q$call\E\nat [\d.]+ s in \Q$self\E, worker pid \d+, slot \d/, "the mark of $self\'s $ev $node says its call on hover");
    }
    is_deeply([sort @fleet_marks], [sort @fleet_want], 'one mark per fleet event of the logs, on its node\'s lane, with the member, n_nodes and reason');
    my %fill = $svg =~ /<g class="mark fleet (fleet_join|fleet_leave)" [^>]*>\n<circle [^>]*fill="(#\w+)"/g;
    ok($fill{fleet_join} && $fill{fleet_leave} && $fill{fleet_join} ne $fill{fleet_leave}, 'joins and leaves have colours of their own');
    like($svg, qr/<g class="mark fleet fleet_leave" data-event="fleet_leave" data-node="demo-2" data-n-nodes="1" data-reason="lost" data-self="demo-1">/,
         'demo-1\'s lane has the lost leave of demo-2');
    like($svg, qr/<text class="sub" x="14" y="4">a node joins \(on_join\)<\/text>/, 'the legend names the fleet marks');
    like($svg, qr/class="mark cb crash" data-event="crash" data-id="2-\d+"/, 'the crash is marked on the dead worker\'s lane');
    like($svg, qr/xml:space="preserve">init_by_lua_block \{<\/text>/, 'the conf lines are shown');
    # the singleton's holdings: a line and a star per start, a star per stop
    my @jstarts = "$text$text2" =~ /\bdemo: singleton_start name=reporter token=(\d+) /g;
    my @jstops = "$text$text2" =~ /\bdemo: singleton_stop name=reporter token=(\d+) /g;
    ok(@jstarts >= 6, 'the demo\'s singleton started at least 6 times, once on demo-2 (' . scalar(@jstarts) . ')');
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
