package WorkerManager::Load;

# HTTP load on a test node while something else happens (a HUP storm, kills):
# wrk when it is installed (Debian package `wrk`; `make bench` installs it),
# else a small Perl loop of HTTP/1.0 GETs in forked children.  Perl core only.
#
#   my $load = WorkerManager::Load->start(port => $n->port, path => '/ping',
#                                         seconds => 8, connections => 4);
#   ... storm ...
#   my $r = $load->finish;   # waits for the end
#   # { tool => 'wrk'|'perl', requests, ok (2xx), non2xx, errors, seconds, text }
#
# WM_LOAD=perl forces the Perl loop (to test it, or where wrk misbehaves).

use strict;
use warnings;
use File::Temp qw(tempfile);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

sub have_wrk {
    return 0 if ($ENV{WM_LOAD} // '') eq 'perl';
    for my $d (split /:/, $ENV{PATH} // '') { return "$d/wrk" if -x "$d/wrk" }
    return 0;
}

sub start {
    my ($class, %o) = @_;
    my $self = bless { port => $o{port}, path => $o{path} // '/ping', seconds => $o{seconds} // 5,
                       connections => $o{connections} // 4, t0 => time }, $class;
    my $url = "http://127.0.0.1:$self->{port}$self->{path}";
    if (my $wrk = have_wrk()) {
        $self->{tool} = 'wrk';
        my ($fh, $file) = tempfile('wm-load-XXXXXX', TMPDIR => 1, UNLINK => 1);
        $self->{out} = $file;
        my $secs = POSIX::ceil($self->{seconds});
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $file;
            open STDERR, '>&', \*STDOUT;
            exec $wrk, '-t1', "-c$self->{connections}", "-d${secs}s", '--timeout', '5s', $url
                or POSIX::_exit(127);
        }
        $self->{pids} = [$pid];
    } else {
        $self->{tool} = 'perl';
        my @pids;
        for my $c (1 .. $self->{connections}) {
            my ($fh, $file) = tempfile('wm-load-XXXXXX', TMPDIR => 1, UNLINK => 1);
            push @{ $self->{outs} }, $file;
            my $pid = fork // die "fork: $!";
            if (!$pid) {
                _perl_loop($self->{port}, $self->{path}, $self->{seconds}, $file);
                POSIX::_exit(0);
            }
            push @pids, $pid;
        }
        $self->{pids} = \@pids;
    }
    return $self;
}

sub _perl_loop {
    my ($port, $path, $seconds, $file) = @_;
    my %r = (requests => 0, ok => 0, non2xx => 0, errors => 0);
    my $end = time + $seconds;
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5);
        if (!$s) { $r{errors}++; sleep 0.01; next }
        $r{requests}++;
        print {$s} "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
        my $resp = '';
        while (1) { my $k = sysread($s, my $buf, 65536); last unless $k; $resp .= $buf }
        close $s;
        if ($resp =~ m{^HTTP/\d\.\d 2\d\d}) { $r{ok}++ }
        elsif ($resp =~ m{^HTTP/}) { $r{non2xx}++ }
        else { $r{errors}++ }
    }
    open my $fh, '>', $file or return;
    print {$fh} join(' ', map { "$_=$r{$_}" } sort keys %r), "\n";
    close $fh;
}

sub finish {
    my $self = shift;
    return $self->{result} if $self->{result};
    waitpid $_, 0 for @{ $self->{pids} };
    my %r = (tool => $self->{tool}, requests => 0, ok => 0, non2xx => 0, errors => 0,
             seconds => sprintf('%.1f', time - $self->{t0}), text => '');
    if ($self->{tool} eq 'wrk') {
        my $text = do { local (@ARGV, $/) = ($self->{out}); <> } // '';
        $r{text} = $text;
        $r{requests} = $1 if $text =~ /(\d+) requests in/;
        $r{non2xx} = $1 if $text =~ /Non-2xx or 3xx responses: (\d+)/;
        if ($text =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
            $r{errors} = $1 + $2 + $3 + $4;
        }
        $r{ok} = $r{requests} - $r{non2xx};
        $r{ok} = 0 if $r{ok} < 0;
    } else {
        for my $f (@{ $self->{outs} }) {
            my $line = do { local (@ARGV, $/) = ($f); <> } // '';
            $r{$1} += $2 while $line =~ /(\w+)=(\d+)/g;
        }
    }
    $self->{result} = \%r;
    return \%r;
}

sub summary {
    my $r = shift;
    return sprintf '%s: %d requests, %d 2xx, %d non-2xx, %d socket errors in %s s',
        @$r{qw(tool requests ok non2xx errors seconds)};
}

sub DESTROY {
    my $self = shift;
    return if $self->{result};
    kill 'TERM', @{ $self->{pids} // [] };
    waitpid $_, 0 for @{ $self->{pids} // [] };
}

1;
