# OpenResty users vendor libraries by git clone or luarocks and have no node:
# with node, npm and npx hidden from PATH,
#  - a git clone's plain `make` needs no build (lib/ is committed), and
#    nginx runs the clone's lib/ with nginx/example.conf as its header says;
#  - `luarocks make` of the scm rockspec installs from the clone;
#  - the release tarball's plain `make` and `make install` work.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use WorkerManager::Nginx;
use WorkerManager::Check;

my $repo = $WorkerManager::Nginx::REPO;
my $tmp = tempdir('wm-44-without-node-XXXXXX', DIR => $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp',
                  CLEANUP => 1);
chmod 0755, $tmp;

# PATH with every command of the system's PATH but node's
my $shim = "$tmp/bin";
mkdir $shim or die "$shim: $!";
my %hidden = map { $_ => 1 } qw(node nodejs npm npx corepack tsc tstl);
for my $dir (split /:/, $ENV{PATH}) {
    opendir my $d, $dir or next;
    for my $f (readdir $d) {
        next if $f =~ /^\./ || $hidden{$f} || -e "$shim/$f" || !-x "$dir/$f" || -d "$dir/$f";
        symlink "$dir/$f", "$shim/$f";
    }
}
sub without_node {
    my ($cmd) = @_;
    my $out = `env PATH='$shim' sh -c '$cmd' 2>&1`;
    return ($? >> 8, $out);
}
my ($rc, $out) = without_node('command -v node npm npx || echo none');
is($out, "none\n", 'node, npm and npx are not on the PATH of these runs');

# --- a git clone
my $clone = "$tmp/clone";
($rc, $out) = without_node("git clone -q '$repo' '$clone'");
is($rc, 0, 'git clone') or diag $out;
ok(-f "$clone/lib/resty/worker/manager.lua", 'the clone has lib/ (committed)');
($rc, $out) = without_node("make -C '$clone'");
is($rc, 0, 'plain make in the clone') or diag $out;
like($out, qr/lib\/ is prebuilt/, '... builds nothing: lib/ is prebuilt');
system("chmod -R a+rX '$tmp'");

# nginx/example.conf from the clone: $prefix/lib is the clone's lib/
sub example_conf {
    my ($n) = @_;
    my $text = do { local (@ARGV, $/) = ("$clone/nginx/example.conf"); <> };
    my $port = $n->port;
    $text =~ s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/;
    $text =~ s/^load_module .*\n//mg;    # the driver loads them (WM_NGINX, WM_LOAD_MODULES)
    return $text;
}
{
    my $n = WorkerManager::Nginx->new(raw_conf => '');
    $n->write_conf(raw_conf => example_conf($n));
    symlink "$clone/lib", $n->prefix . '/lib' or die "symlink: $!";
    $n->start(wait => 0);
    $n->wait_log(qr/example: worker start: 1-\d+/, count => 2, desc => 'the clone\'s example starts two workers');
    is(scalar $n->get('/'), 200, 'it serves');
    $n->signal('QUIT');
    ok($n->wait_exit, 'QUIT stops it');
    is(scalar $n->grep_log(qr/example: master exit: generation 1 \(stop\)/), 1, 'one master exit, a stop');
    no_errors_ok($n, '[clone] no warn or error lines');
}

# --- luarocks make of the scm rockspec, from the clone
my $tree = "$tmp/tree";
($rc, $out) = without_node("cd '$clone' && luarocks make --tree '$tree' rockspec/lua-resty-worker-manager-scm-1.rockspec");
is($rc, 0, 'luarocks make of the scm rockspec, in the clone') or diag $out;
my ($lua) = glob("$tree/share/lua/*");
ok($lua && -f "$lua/resty/worker/manager/exit_reason.lua", 'the tree has the module and its parts');
system("chmod -R a+rX '$tree'");
{
    my $n = WorkerManager::Nginx->new(workers => 2, lib_dir => $lua);
    $n->start;
    my $mark = $n->reload;
    $n->wait_log(qr/\bWMCB master_exit id=1 /, since => $mark, desc => '[luarocks tree] master exit of generation 1');
    $n->signal('QUIT');
    ok($n->wait_exit, '[luarocks tree] QUIT stops nginx');
    checker_ok($n, label => 'luarocks tree', complete => 1);
    no_errors_ok($n, '[luarocks tree] no warn or error lines');
}

# nginx/example.conf from the luarocks tree, as pasted: no lib/ in the
# prefix, so "$prefix/lib/?.lua" finds nothing and the default path (;;)
# finds the tree, here through LUA_PATH (what a tree on the default path
# amounts to)
{
    local $ENV{LUA_PATH} = "$lua/?.lua;$lua/?/init.lua;;";
    my $n = WorkerManager::Nginx->new(raw_conf => '');
    $n->write_conf(raw_conf => example_conf($n));
    ok(!-e $n->prefix . '/lib', '[luarocks tree] the example\'s prefix has no lib/');
    $n->start(wait => 0);
    $n->wait_log(qr/example: worker start: 1-\d+/, count => 2, desc => 'the example starts two workers from the tree');
    $n->signal('QUIT');
    ok($n->wait_exit, '[luarocks tree] QUIT stops the example');
    is(scalar $n->grep_log(qr/example: master exit: generation 1 \(stop\)/), 1, '[luarocks tree] one master exit, a stop');
    no_errors_ok($n, '[luarocks tree example] no warn or error lines');
}

# --- the release tarball (made with node, here, then used without)
($rc, $out) = (system("make -s -C '$repo' dist > '$tmp/dist.out' 2>&1") >> 8, '');
is($rc, 0, 'make dist (with node)') or diag do { local (@ARGV, $/) = ("$tmp/dist.out"); <> };
my ($tarball) = glob("$repo/dist/*.tar.gz");
ok($tarball, "a release tarball ($tarball)");
($rc, $out) = without_node("mkdir -p '$tmp/rel' && tar -C '$tmp/rel' -xzf '$tarball'");
my ($rel) = glob("$tmp/rel/*");
ok($rel && !-e "$rel/package.json" && !-d "$rel/src", 'the tarball holds no TypeScript build');
($rc, $out) = without_node("make -C '$rel'");
is($rc, 0, "plain make in the tarball's folder") or diag $out;
like($out, qr/lib\/ is prebuilt/, '... builds nothing');
($rc, $out) = without_node("make -C '$rel' install PREFIX='$tmp/usr' LUA_LIB_DIR='$tmp/usr/lua'");
is($rc, 0, 'make install from the tarball') or diag $out;
ok(-f "$tmp/usr/lua/resty/worker/manager.lua" && -f "$tmp/usr/lua/resty/worker/manager/resume.lua",
   'make install copied the module and its parts');

done_testing;
