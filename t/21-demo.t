# nginx/demo.pl --check: the tour of `make demo` (nginx/demo.conf: start, a
# request, reload, kill -9 of a worker, two reloads in a row, stop) runs and
# its timeline has every expected event; the demo checks that itself and
# exits non-zero otherwise.
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
    exec $^X, '-I', "$repo/t/lib", "$repo/nginx/demo.pl", '--check' or POSIX::_exit(127);
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
cmp_ok($took, '<', 15, sprintf 'ran in under 15 s (%.1f s)', $took);

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
}
done_testing;
