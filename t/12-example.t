# nginx/example.conf works as documented on a real nginx: start, reload,
# stop; and it is the README's Synopsis, word for word.
use strict;
use warnings;
use Test::More;
use WorkerManager::Nginx;
use WorkerManager::Check;

my $file = "$WorkerManager::Nginx::REPO/nginx/example.conf";
open my $fh, '<', $file or die "$file: $!";
my $text = do { local $/; <$fh> };
close $fh;

# the README shows this very file as its Synopsis
my $readme = do { local (@ARGV, $/) = ("$WorkerManager::Nginx::REPO/README.md"); <> };
my ($synopsis) = $readme =~ /\nSynopsis\n=+\n.*?```nginx\n(.*?)```\n/s;
ok(defined $synopsis, "the README has an nginx block under Synopsis");
is($synopsis, $text, "the README's Synopsis is nginx/example.conf, word for word");

my $n = WorkerManager::Nginx->new(raw_conf => '');
my $port = $n->port;
like($text, qr/listen 127\.0\.0\.1:8080;/, 'example listens on 8080');
$text =~ s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/;
# Debian's dynamic modules: the driver loads them itself (as WM_NGINX and
# WM_LOAD_MODULES say), so that the same run works on OpenResty
like($text, qr/^load_module \S+ndk_http_module\.so;\nload_module \S+ngx_http_lua_module\.so;$/m,
     "the example loads Debian's ndk and lua modules");
$text =~ s/^load_module .*\n//mg;
# for the invariant checker: every callback of the example is wrapped in a
# recorder (t/lib/wm_test.lua's instrument()) that logs the WMCB lines; the
# example's own lines are unchanged
my $repo = $WorkerManager::Nginx::REPO;
ok($text =~ s{lua_package_path "\$prefix/lib/\?\.lua;;";}{lua_package_path "\$prefix/lib/?.lua;$repo/t/lib/?.lua;;";}
   && $text =~ s/(init_by_lua_block \{\n)/$1        require("wm_test").instrument()\n/,
   'the example is instrumented for the checker');
$n->write_conf(raw_conf => $text);
symlink "$WorkerManager::Nginx::REPO/lib", $n->prefix . '/lib' or die "symlink: $!";

my $r = $n->run_cmd('-t');
is($r->{rc}, 0, 'nginx -t accepts the example') or diag $r->{out};

# The example's own lines after each step, and how many of each: [count, line]
my @STEPS = (
    [start => [
        [1, qr/example: master start: generation 1, workers in older generations: nil/],
        [2, qr/example: worker start: 1-\d+, [12] in its generation, nil in older ones/],
    ]],
    [reload => [
        [1, qr/example: master start: generation 2, workers in older generations: 2/],
        # n_next is 2 once both new workers started; under load the second
        # one may still be starting when the old ones are told to quit (1)
        [2, qr/example: worker exit: 1-\d+, \d left .*, [12] in newer ones: reload/],
        [1, qr/example: master exit: generation 1 \(reload\)/],
    ]],
    [quit => [
        [2, qr/example: worker exit: 2-\d+, \d left .*, stop/],
        [1, qr/example: master exit: generation 2 \(stop\)/],
    ]],
);

for my $step (@STEPS) {
    my ($do, $lines) = @$step;
    my $mark = $n->mark;
    if ($do eq 'start') {
        $n->start(wait => 0);
    } else {
        my $r = $n->run_cmd('-s', $do);
        is($r->{rc}, 0, "nginx -s $do") or diag $r->{out};
    }
    for my $l (@$lines) {
        my ($count, $re) = @$l;
        $n->wait_log($re, since => $mark, count => $count);
    }
    ok($n->wait_exit, 'stopped') if $do eq 'quit';
    for my $l (@$lines) {
        my ($count, $re) = @$l;
        is(scalar $n->grep_log($re, since => $mark), $count, "[$do] $count x $re");
    }
    if ($do eq 'start') {
        my ($code, $body) = $n->get('/');
        is($code, 200, 'GET /');
        like($body, qr/^hello from worker \d+/, 'body');
    }
}
no_errors_ok($n, 'no warn or error lines');
# the example's own settings (interval 10, failed 5, the exit hook)
$n->{opts} = '{ shm = "worker_manager", interval = 10, failed = 5 }';
is(scalar $n->callbacks, 12, 'the recorders saw the 12 callbacks (2 master starts, 4 worker starts, 4 worker exits, 2 master exits)');
checker_ok($n, label => 'example', complete => 1);
done_testing;
