package WorkerManager::BadInput;
# The harness of the bad-input suites (t/23, t/56, t/64): a Lua try() that
# logs what each call came to, the reader of those lines, nginx's own error
# when it refuses to start, and the nginx.conf line an error points to.
use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw($TRY_LUA bad_calls first_bad_calls init_error conf_line slurp);

# Lua for the top of a block: try(name, call) runs call in pcall and logs
#   WMBAD <name> ok=<bool> at=<bool> where=<file:line>: msg=<<message>>
# at: the message begins with the closure's own position, which is the
# caller's line (what the module promises); msg then leaves it out.
# Newlines in the message are shown as \n.
our $TRY_LUA = <<'LUA';
        local function try(name, call)
            local info = debug.getinfo(call, "S")
            local where = info.short_src .. ":" .. info.linedefined .. ": "
            local ok, err = pcall(call)
            local msg = tostring(err)
            local at = msg:sub(1, #where) == where
            local shown = (at and msg:sub(#where + 1) or msg):gsub("\n", "\\n")
            ngx.log(ngx.WARN, "WMBAD ", name, " ok=", tostring(ok), " at=", tostring(at), " where=", where,
                    "msg=<<", shown, ">>")
        end
LUA

# name => [ { ok, at, where, msg }, ... ]: every try of it, in log order
# (one per process that ran it)
sub bad_calls {
    my ($n, %o) = @_;
    my %seen;
    for my $e ($n->grep_log(qr/\bWMBAD /, since => $o{since})) {
        my ($name, $ok, $at, $where, $msg) = $e->{text} =~ /\bWMBAD (.+?) ok=(\w+) at=(\w+) where=(.*?): msg=<<(.*)>>/s
            or next;
        push @{ $seen{$name} }, { ok => $ok, at => $at, where => $where, msg => $msg };
    }
    return \%seen;
}

# name => { ok, at, where, msg }: the first try of each
sub first_bad_calls {
    my $all = bad_calls(@_);
    return { map { $_ => $all->{$_}[0] } keys %$all };
}

sub slurp { my $f = shift; open my $fh, '<', $f or return ''; local $/; return <$fh> // '' }

# nginx refused to start: (position, message, both, nginx's stderr) of its
# "init_by_lua error: <position>: <message>" (without a traceback)
sub init_error {
    my ($n) = @_;
    my $stderr = slurp($n->prefix . '/logs/stderr.log');
    my ($all) = $stderr =~ /init_by_lua error: (.*?)(?:\nstack traceback:|\n?\z)/s;
    my ($where, $msg) = defined $all && $all =~ /\A(\S*?:\d+): (.*)\z/s ? ($1, $2) : (undef, $all);
    return ($where, $msg, $all, $stderr);
}

# "init_by_lua(nginx.conf:28):4" -> the text of that line of nginx.conf (the
# block's line 1 is the directive's line)
sub conf_line {
    my ($n, $where) = @_;
    return undef unless defined $where && $where =~ /^\w+_by_lua\(nginx\.conf:(\d+)\):(\d+)$/;
    my @l = split /\n/, slurp($n->conf);
    return $l[$1 + $2 - 2];
}

1;
