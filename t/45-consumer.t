# A TypeScript user's project (t/consumer/, its own tsconfig as the README
# gives it, not the project's): the declarations installed from the npm
# package (`npm pack` of this repository: the .d.ts files, no build tooling),
# compiled with the pinned TypeScriptToLua, then run on a real nginx with
# every callback's arguments read back; and the callback mistake that used
# to shift every argument at run time (a plain function, compiled with a
# `self` first) refused at compile time.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $repo = $WorkerManager::Nginx::REPO;
my $tmp = tempdir('wm-45-consumer-XXXXXX', DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp', CLEANUP => 1);
chmod 0755, $tmp;
my $tstl = "$repo/node_modules/.bin/tstl";
-x $tstl or BAIL_OUT("no $tstl: run make npm");

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# --- the package
my ($rc, $out) = run("cd '$repo' && npm pack --silent --pack-destination '$tmp'");
is($rc, 0, 'npm pack') or diag $out;
my ($tgz) = glob("$tmp/lua-resty-worker-manager-*.tgz");
ok($tgz, "a package tarball ($out)");
($rc, $out) = run("tar -tzf '$tgz'");
my @files = sort split /\n/, $out;
is_deeply([grep { m{^package/types/} } @files],
          [map { "package/types/$_" } qw(index.d.ts ngx.d.ts resty.lock.d.ts resty.worker.manager.d.ts)],
          'it holds the declarations: the module, ngx and resty.lock');
is(scalar(grep { m{^package/(?:src|t|lib|node_modules|tsconfig\.json|Makefile)\b} } @files), 0,
   'and no sources, tests or build tooling') or diag join "\n", @files;

# --- the consumer project, with the package installed from the tarball
my $proj = "$tmp/consumer";
($rc, $out) = run("cp -r '$repo/t/consumer' '$proj'");
is($rc, 0, 'the consumer project copied apart from the repository') or diag $out;
($rc, $out) = run("cd '$proj' && npm install --no-save --offline --no-audit --no-fund '$tgz'");
is($rc, 0, 'npm install of the package tarball') or diag $out;
ok(-f "$proj/node_modules/lua-resty-worker-manager/types/resty.worker.manager.d.ts", 'installed under node_modules');
# the toolchain the README has users install (here: the repository's, pinned)
for my $m (qw(typescript typescript-to-lua lua-types @typescript-to-lua)) {
    symlink "$repo/node_modules/$m", "$proj/node_modules/$m" or die "symlink $m: $!";
}

($rc, $out) = run("cd '$proj' && '$tstl' -p tsconfig.json");
is($rc, 0, 'tstl compiles the consumer project') or diag $out;
my $lua = do { local (@ARGV, $/) = ("$proj/out/node.lua"); <> } // '';
like($lua, qr/local manager = require\("resty\.worker\.manager"\)/, 'a plain require of the module');
like($lua, qr/manager\.on_init_by_lua\(/, 'dot calls');

($rc, $out) = run("cd '$proj' && '$tstl' -p mistake/tsconfig.json");
isnt($rc, 0, 'a plain function passed as a callback does not compile');
like($out, qr/shifted\.ts\(\d+,\d+\): error TSTL: Unable to convert function with a 'this' parameter to function 'master_start' with no 'this'/,
     '... TypeScriptToLua names the callback') or diag $out;
like($out, qr/singleton\.ts\(\d+,\d+\): error TSTL: Unable to convert function with a 'this' parameter to function 'job\.start' with no 'this'/,
     '... and a plain function as a singleton\'s start') or diag $out;
like($out, qr/scope\.ts\(\d+,\d+\): error TS2769: No overload matches this call\..*?Type '"clustr"' is not assignable to type 'SingletonScope \| undefined'\. Did you mean '"cluster"'\?/s,
     '... and a singleton\'s scope spelt wrong') or diag $out;

# --- on a real nginx
system("chmod -R a+rX '$tmp'");
my $n = WorkerManager::Nginx->new(
    workers     => 2,
    http_extra  => 'lua_shared_dict app 1m;',
    shm         => 'wm',
    init        => qq{        package.path = "$proj/out/?.lua;" .. package.path\n        require("node").init()\n},
    init_worker => qq{        require("node").init_worker()\n        require("node").singletons()\n},
    exit_worker => 'require("node").exit_worker()',
    # (what t/consumer/src/node.ts passes, for the checker: interval, failed, on_crash)
    opts        => '{ shm = "wm", interval = 1, failed = 2, on_crash = <set> }',
);
$n->start;
my $mark = $n->reload;
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'the master exit of generation 1');
my ($victim) = grep { $n->alive($_->{pid}) } $n->callbacks(event => 'worker_start', gen => 2);
$mark = $n->mark;
$n->kill_worker($victim->{pid}, 'KILL');
$n->wait_log(qr/\bWMCB crash id=2-$victim->{pid} /, since => $mark, desc => 'on_crash for the killed worker');
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');
my @c = $n->callbacks;
note cbs_str(@c);
cb_is((select_cbs(\@c, event => 'master_start', gen => 1))[0], [1, 'nil', 0, 'nil'], 'master_start(1, nil, 0, nil)');
cb_is((select_cbs(\@c, event => 'master_start', gen => 2))[0], [2, 2, 0, 'nil'], 'master_start(2, 2, 0, nil)');
my @ws = select_cbs(\@c, event => 'worker_start', gen => 1);
is(join(',', map { $_->{mine} } @ws), '1,2', 'worker starts of generation 1 count 1, 2');
cb_is($ws[0], ["1-$ws[0]{pid}", 'nil', 1, 'nil'], 'worker_start("1-<pid>", nil, 1, nil): the id a string, nothing shifted');
is($ws[0]{types}, 'string,nil,number,nil', '... with those Lua types');
cb_is((select_cbs(\@c, event => 'crash'))[0], ["2-$victim->{pid}", 0, 2, 'nil'], 'crash("2-<pid>", 0, 2, nil)');
cb_is((select_cbs(\@c, event => 'master_exit', gen => 2))[0], [2, 0, 0, 'nil'], 'master_exit(2, 0, 0, nil)');
is(scalar $n->grep_log(qr/warm up, premature: false/), 1, "the recipe's warm-up ran once, in the node's first worker");
my @sj = map { $_->{text} } $n->grep_log(qr/WMSJ-ENTER /);
like($sj[0] // '', qr/WMSJ-ENTER (?:start name=job|fn name=tick) token=1 pid=\d+ phase=timer reason=nil held=true:1 types=string,number,nil/,
     'the singleton callbacks get (name, token): nothing shifted');
ok((grep { /WMSJ-ENTER stop name=job token=1 .* reason=reload held=true:1 types=string,number,string/ } @sj),
   'stop(name, token, "reload") on the reload');
ok((grep { /WMSJ-ENTER start name=job token=2 / } @sj), 'the job moves: start(name, 2)');
checker_ok($n, label => 'consumer', on_crash => 1, complete => 1, lock => 0);
no_errors_ok($n, 'no warn or error lines but the kill and its report', qr/exited on signal 9/, qr/\b2-$victim->{pid}\b/);

done_testing;
