# The release as a user gets it: `make dist`, then `luarocks install` of the
# .src.rock into a fresh tree (offline, no node), then a real nginx whose
# lua_package_path points only at that tree (plus the system's resty.core):
# start, reload, stop, with the same callbacks as from the build folder.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $repo = $WorkerManager::Nginx::REPO;

my $out = `make -s -C $repo dist 2>&1`;
is($?, 0, 'make dist') or diag $out;
my ($rock) = glob("$repo/dist/*.src.rock");
ok($rock, "dist made a .src.rock ($out)") or BAIL_OUT('no rock');

my $tree = tempdir('wm-rock-XXXXXX', DIR => '/tmp', CLEANUP => 1);
chmod 0755, $tree;
$out = `cd $tree && luarocks install --tree $tree $rock 2>&1`;
is($?, 0, 'luarocks install of the .src.rock into a temp tree') or diag $out;
my ($lib) = glob("$tree/share/lua/*");
ok($lib && -f "$lib/resty/worker/manager.lua", "installed resty/worker/manager.lua under $tree")
    or BAIL_OUT("nothing installed:\n$out");
ok(-f "$lib/resty/worker/manager/registry.lua", 'submodules installed too');
system("chmod -R a+rX $tree");

my $n = WorkerManager::Nginx->new(workers => 2, lib_dir => $lib);
$n->start;
my $conf = do { local (@ARGV, $/) = ($n->conf); <> };
like($conf, qr/lua_package_path "\Q$lib\E\/\?\.lua;/, 'the conf loads the module from the tree');
unlike($conf, qr/\Q$repo\E\/lib\//, 'and not from the build folder');
my $mark = $n->reload;
$n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => 'master_exit of generation 1');
$mark = $n->mark;
$n->signal('QUIT');
ok($n->wait_exit, 'QUIT stops nginx');

my @c = $n->callbacks;
note cbs_str(@c);
cb_is(exactly_one([select_cbs(\@c, event => 'master_start', gen => 1)], 'master start 1'), [1, 'nil', 0, 'nil'],
      'master_start(1, nil, 0, nil)');
cb_is(exactly_one([select_cbs(\@c, event => 'master_start', gen => 2)], 'master start 2'), [2, 2, 0, 'nil'],
      'master_start(2, 2, 0, nil)');
cb_is(exactly_one([select_cbs(\@c, event => 'master_exit', gen => 2)], 'master exit 2'), [2, 0, 0, 'nil'],
      'master_exit(2, 0, 0, nil)');
is(scalar select_cbs(\@c, event => 'worker_start'), 4, 'four worker starts');
checker_ok($n);
no_errors_ok($n);
done_testing;
