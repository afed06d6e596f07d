# The documents a user reads: the README's table of contents is its
# sections, in order and at their level; every link inside the repository
# (README, docs/, CHANGELOG) names a file that exists and, with a #anchor,
# a heading of that file as GitHub anchors it; the README stays a user's
# manual (under 700 lines, naming make test and make demo, no issue numbers
# or commit hashes).
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);
use File::Spec;

my $REPO = File::Spec->rel2abs(dirname(__FILE__) . '/..');

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

# Lines outside fenced code blocks, with their line numbers.
sub prose_lines {
    my ($text) = @_;
    my (@out, $fence);
    my $no = 0;
    for my $line (split /\n/, $text, -1) {
        $no++;
        if ($line =~ /^\s*(```|~~~)/) {
            $fence = $fence ? undef : 1;
            next;
        }
        push @out, [$no, $line] unless $fence;
    }
    return @out;
}

# GitHub's anchor for a heading: lower case, inline code marks and
# punctuation dropped (letters, digits, '_' and '-' stay), spaces to '-';
# a repeated heading gets -1, -2, ...
sub anchor_of {
    my ($title) = @_;
    my $a = lc $title;
    $a =~ s/[^\w\- ]//g;
    $a =~ s/ /-/g;
    return $a;
}

# Headings of a Markdown file, in order: [level, title, anchor, line].
# Both kinds: '# Title' (ATX) and a title underlined with === or ---.
sub headings {
    my ($text) = @_;
    my @lines = prose_lines($text);
    my (@h, %seen);
    for my $i (0 .. $#lines) {
        my ($no, $line) = @{ $lines[$i] };
        my ($level, $title);
        if ($line =~ /^(#{1,6})\s+(.*?)\s*#*\s*$/) {
            ($level, $title) = (length $1, $2);
        } elsif ($i < $#lines && $lines[$i + 1][0] == $no + 1 && $line =~ /\S/
                 && $line !~ /^\s*[*|>-]/) {
            my $under = $lines[$i + 1][1];
            $level = 1 if $under =~ /^=+\s*$/;
            $level = 2 if $under =~ /^-+\s*$/;
            $title = $line if $level;
        }
        next unless $level;
        my $a = anchor_of($title);
        my $n = $seen{$a}++;
        $a .= "-$n" if $n;
        push @h, [$level, $title, $a, $no];
    }
    return @h;
}

# ---- the README's table of contents ------------------------------------

my $readme = slurp("$REPO/README.md");
my @sections = grep { $_->[1] ne 'Table of Contents' } headings($readme);
ok(@sections > 10, 'the README has sections') or diag scalar @sections;

my ($toc) = $readme =~ /\nTable of Contents\n=+\n\n(.*?)\n\n/s;
ok(defined $toc, 'the README has a Table of Contents');
my @entries;
for my $line (split /\n/, $toc // '') {
    if ($line =~ /^( *)\* \[(.+?)\]\(#([^)]+)\)$/) {
        push @entries, [length($1) / 4 + 1, $2, $3];
    } else {
        fail("a table of contents line is '* [Title](#anchor)': $line");
    }
}
is(scalar @entries, scalar @sections,
   'the table of contents lists as many entries as the README has sections')
    or diag join "\n", map { "section: $_->[1]" } @sections;
for my $i (0 .. $#sections) {
    my ($s, $e) = ($sections[$i], $entries[$i] // [0, '(none)', '(none)']);
    is("$e->[0] $e->[1] #$e->[2]", "$s->[0] $s->[1] #$s->[2]",
       "table of contents entry " . ($i + 1) . " is section '$s->[1]' at its level");
}

# ---- links inside the repository ---------------------------------------

my @docs = ('README.md', 'CHANGELOG.md',
            map { s{^\Q$REPO\E/}{}r } glob("$REPO/docs/*.md"));
ok(@docs >= 5, 'README, CHANGELOG and the docs/ files are checked')
    or diag "@docs";

my %anchors;
for my $doc (@docs) {
    $anchors{$doc} = { map { $_->[2] => 1 } headings(slurp("$REPO/$doc")) };
}

# 'docs/../README.md' -> 'README.md' (undef when it leaves the repository)
sub in_repo {
    my @parts;
    for my $part (split m{/+}, shift) {
        next if $part eq '.' || $part eq '';
        if ($part eq '..') { return undef unless @parts; pop @parts; next }
        push @parts, $part;
    }
    return join '/', @parts;
}

my $checked = 0;
for my $doc (@docs) {
    my $dir = dirname($doc);
    for my $l (prose_lines(slurp("$REPO/$doc"))) {
        my ($no, $line) = @$l;
        (my $plain = $line) =~ s/`[^`]*`//g;    # code spans hold no links
        while ($plain =~ /\]\(([^)\s]+)\)/g) {
            my $target = $1;
            next if $target =~ m{^[a-z]+:}i;    # https:, mailto:
            $checked++;
            my ($path, $frag) = $target =~ /^([^#]*)(?:#(.*))?$/;
            my $file = $path eq '' ? $doc : in_repo("$dir/$path");
            my $where = "$doc:$no links to '$target'";
            if (!defined $file || !-e "$REPO/$file") {
                fail("$where: no such file in the repository");
                next;
            }
            next unless defined $frag;
            if (!$anchors{$file}) {
                fail("$where: an anchor into a file that is not a checked document");
                next;
            }
            ok($anchors{$file}{$frag}, "$where: the anchor exists")
                or diag "anchors of $file: " . join ' ', sort keys %{ $anchors{$file} };
        }
    }
}
ok($checked > 20, "links inside the repository were found and checked ($checked)");

# ---- the README is a user's manual -------------------------------------

my $lines = () = $readme =~ /\n/g;
cmp_ok($lines, "<", 700, "the README is under 700 lines ($lines)");
like($readme, qr/^make test\b/m, 'the README names make test');
like($readme, qr/^make demo\b/m, 'the README names make demo');
my @refs;
for my $l (prose_lines($readme)) {
    my ($no, $line) = @$l;
    push @refs, "$no: $line" if $line =~ /(?:\bissue\s*#?\d|(?<![\w&])#\d+\b|\b[0-9a-f]{7,40}\b)/i
                            && $line !~ /\b\d{7,}\b/;
}
is_deeply(\@refs, [], 'the README names no issue numbers and no commit hashes')
    or diag join "\n", @refs;

done_testing();
