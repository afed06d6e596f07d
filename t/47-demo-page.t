# The live page of `make demo-serve` in a real browser (Debian's chromium,
# headless): the demo's node is reloaded and a worker killed by hand, as a
# user would, then the page loads with no console error, shows one lane per
# worker the node had (read back against its error.log) and status(), and a
# screenshot of it is saved (demo-out/demo-page.png, or $WM_ARTIFACTS/).
use strict;
use warnings;
use Test::More;
use POSIX ();
use HTTP::Tiny;
use JSON::PP ();
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $repo = $WorkerManager::Nginx::REPO;
my $TIMEOUT = $WorkerManager::Nginx::TIMEOUT;
my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH} // '';
ok($chromium, 'chromium is installed (make deps installs it)') or BAIL_OUT('no chromium in PATH');

my $tmp = tempdir('wm-47-page-XXXXXX', DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp', CLEANUP => 1);
my $artifacts = $ENV{WM_ARTIFACTS} || "$repo/demo-out";
-d $artifacts or mkdir $artifacts or die "$artifacts: $!";

# ---- make demo-serve, its stdin ours: closing it stops nginx gracefully
my $port = WorkerManager::Nginx::free_port();
my $out_file = "$tmp/serve.out";
my $serve = open(my $stdin, '|-') // die "fork: $!";
if (!$serve) {
    $ENV{WM_SAVE_LOGS} = $tmp;
    open STDOUT, '>', $out_file or POSIX::_exit(127);
    open STDERR, '>&', \*STDOUT;
    exec $^X, '-I', "$repo/t/lib", "$repo/nginx/demo.pl", '--serve', '--port', $port or POSIX::_exit(127);
}
$stdin->autoflush(1);

sub output { open my $fh, '<', $out_file or return ''; local $/; return scalar <$fh> // '' }

sub wait_for {
    my ($what, $cond) = @_;
    my $t0 = time;
    until (my $r = $cond->()) {
        if (time - $t0 > $TIMEOUT) {
            fail("waited ${TIMEOUT}s for $what");
            diag output();
            return;
        }
        sleep 0.05;
    }
    return 1;
}

my $http = HTTP::Tiny->new(timeout => 5);
sub status {
    my $res = $http->get("http://127.0.0.1:$port/status");
    return $res->{success} ? eval { JSON::PP->new->decode($res->{content}) } : undef;
}
sub workers_of {
    my ($st, $g) = @_;
    my ($gen) = grep { $_->{id} == $g } @{ $st->{generations} || [] };
    return $gen ? map { $_->{pid} } @{ $gen->{workers} } : ();
}

my ($master, $errlog);
wait_for('demo-serve to start nginx', sub {
    ($master) = output() =~ /master pid (\d+)/;
    ($errlog) = output() =~ /^  log\s+(\S+)$/m;
    my $st = $master && status();
    return $st && workers_of($st, 1) == 2;
}) or BAIL_OUT('demo-serve did not start');
like(output(), qr{^  http://127\.0\.0\.1:$port/timeline  the node's timeline, live}m, 'demo-serve names the page');

# ---- by hand: a reload, then kill -9 of a worker of the new generation
kill 'HUP', $master;
wait_for('generation 2 with its 2 workers, generation 1 gone', sub {
    my $st = status();
    return $st && ($st->{generation} // 0) == 2 && @{ $st->{generations} } == 1 && workers_of($st, 2) == 2;
});
my ($victim) = workers_of(status(), 2);
kill 'KILL', $victim;
wait_for("the crash of $victim found and its slot respawned", sub {
    my $st = status();
    return $st && ($st->{crashes} // 0) == 1 && workers_of($st, 2) == 2 && !grep { $_ == $victim } workers_of($st, 2);
});

# the workers the node had, from its own log
my $log_text = do { local (@ARGV, $/) = ($errlog); <> };
my %had = map { $_ => 1 } $log_text =~ /\bdemo: worker_start id=(\S+) /g;
is(scalar keys %had, 5, 'the node had 5 workers: 2 of generation 1, 2 of generation 2 and the respawn');

# ---- the page, in chromium
sub chromium {
    my ($out, @args) = @_;
    my $rc = system("timeout 120 '$chromium' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage"
        . " --no-first-run --user-data-dir='$tmp/profile' --enable-logging=stderr --v=0"
        . " --virtual-time-budget=4000 @args 'http://127.0.0.1:$port/timeline' >'$out' 2>'$out.err'");
    return ($rc >> 8, do { local (@ARGV, $/) = ("$out.err"); <> } // '');
}

my ($rc, $err) = chromium("$tmp/dom.html", '--dump-dom');
is($rc, 0, 'chromium loaded the page') or diag $err;
my $dom = do { local (@ARGV, $/) = ("$tmp/dom.html"); <> } // '';
my @console = $err =~ /^.*:CONSOLE[:(].*$/mg;
is_deeply(\@console, [], 'no console message: no error, no failed request');
my ($root) = $dom =~ /<html([^>]*)>/;
$root //= '';
like($root, qr/\bdata-errors=""/, 'no script error on the page');
like($root, qr/\bdata-refreshes="[1-9]\d*"/, 'the page fetched the timeline and status()');
like($root, qr/\bdata-worker-lanes="5"/, 'it counts 5 worker lanes');
my @lanes = $dom =~ /<text class="lane-label worker" [^>]*data-id="([^"]+)"/g;
is_deeply([sort @lanes], [sort keys %had], 'one lane per worker the node had, named by its worker id');
my @gens = $dom =~ /<text class="lane-label generation" [^>]*>generation (\d+)</g;
is("@gens", '1 2', 'grouped by generation: 1, then 2');
like($dom, qr/<path class="mark cb crash" data-event="crash" data-id="2-$victim"/, "the crash of 2-$victim is marked");
my @marks = $dom =~ /class="mark cb \w+"/g;
my @cbs = $log_text =~ /\bdemo: \w+ id=/g;
is(scalar @marks, scalar @cbs, 'a mark for every callback so far (' . scalar(@cbs) . ')');
like($dom, qr/<pre id="status">\{\s+"consistent": true,\s+"crashes": 1,\s+"generation": 2,/, 'status() is shown');

my $png = "$artifacts/demo-page.png";
unlink $png;
($rc, $err) = chromium("$tmp/shot.out", '--hide-scrollbars', '--window-size=1300,1000', "--screenshot='$png'");
is($rc, 0, 'chromium took a screenshot') or diag $err;
my $head = -f $png ? do { open my $fh, '<:raw', $png; read $fh, my $b, 8; $b } : '';
is($head, "\x89PNG\r\n\x1a\n", "a screenshot of the page: $png");
cmp_ok(-s $png // 0, '>', 20_000, 'with something drawn in it');

# ---- end of input: demo-serve stops nginx gracefully and exits 0
close $stdin;
is($? >> 8, 0, 'demo-serve exits 0 when its input ends') or diag output();
like(output(), qr/stopping nginx: kill -QUIT $master\n/, 'it stopped nginx gracefully');

my @saved = glob "$tmp/*.error.log";
is(scalar @saved, 1, 'the node\'s error.log was saved');
if (@saved) {
    my $log = WorkerManager::Nginx->from_log($saved[0], cb_format => 'demo', workers => 2, exit_hook => 1,
                                             opts => '{ shm = "worker_manager", interval = 1, failed = 2, on_crash = cb }');
    checker_ok($log, label => 'demo-serve', lock => 0, on_crash => 1, complete => 1);
    my @noise = map { $_->{line} } $log->errors(level => 'warn', allow => [
        qr/\[worker-manager\] worker 2-$victim \(pid $victim, slot \d\) crashed: nginx respawned its slot/,
        qr/^worker process $victim exited on signal 9/,
    ]);
    is_deeply(\@noise, [], 'no warning or error in the log but the crash\'s own two lines');
}
done_testing;
