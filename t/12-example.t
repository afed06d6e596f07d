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

$n->start(wait => 0);
my @ws = $n->wait_log(qr/example: worker start: 1-\d+/, count => 2);
like($ws[0]{text}, qr/example: worker start: 1-\d+, 1 in its generation, nil in older ones/, 'first worker start');
like(join("\n", map { $_->{text} } $n->grep_log(qr/example: master start/)),
     qr/master start: generation 1, workers in older generations: nil/, 'master start of generation 1');
my ($code, $body) = $n->get('/');
is($code, 200, 'GET /');
like($body, qr/^hello from worker \d+/, 'body');

my $mark = $n->mark;
$r = $n->run_cmd('-s', 'reload');
is($r->{rc}, 0, 'nginx -s reload') or diag $r->{out};
$n->wait_log(qr/example: master exit: generation 1 \(reload\)/, since => $mark);
like(join("\n", map { $_->{text} } $n->grep_log(qr/example: master start/, since => $mark)),
     qr/master start: generation 2, workers in older generations: 2/, 'reload: master start of generation 2');
# n_next is 2 once both new workers started; under load the second one may
# still be starting when the old ones are told to quit (then 1).
is(scalar $n->grep_log(qr/example: worker exit: 1-\d+, \d left .*, [12] in newer ones: reload/, since => $mark), 2,
   'reload: both old workers report a reload');

$mark = $n->mark;
$r = $n->run_cmd('-s', 'quit');
is($r->{rc}, 0, 'nginx -s quit');
ok($n->wait_exit, 'stopped');
is(scalar $n->grep_log(qr/example: worker exit: 2-\d+, \d left .*, stop/, since => $mark), 2, 'stop: both workers report a stop');
is(scalar $n->grep_log(qr/example: master exit: generation 2 \(stop\)/, since => $mark), 1, 'stop: one master exit');
no_errors_ok($n, 'no warn or error lines');
# the example's own settings (interval 10, failed 5, the exit hook)
$n->{opts} = '{ shm = "worker_manager", interval = 10, failed = 5 }';
is(scalar $n->callbacks, 12, 'the recorders saw the 12 callbacks (2 master starts, 4 worker starts, 4 worker exits, 2 master exits)');
checker_ok($n, label => 'example', complete => 1);
done_testing;
