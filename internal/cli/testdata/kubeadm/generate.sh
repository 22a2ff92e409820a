#!/bin/sh
# Regenerates help-<version>.txt: upstream kubeadm's command tree, read from the --help of every command,
# recursively (phase subcommands included), normalized for parity_test.go. One line per command:
#   <path>
# and one per flag of that command's "Flags:" section (its local flags; the root's are the global ones):
#   <path>\t--<name>\t-<shorthand>|""\t<type>\t<default>|""
# <type> is what --help prints after the name ("bool" where it prints nothing); <default> is the text of
# "(default ...)", absent when the default is the type's zero value. -h/--help and the help command are cobra's
# and left out. kubeadm only prints help: nothing on the machine is read or changed.
# Usage: KUBEADM=/tmp/kubeadm-v1.37.2 ./generate.sh
set -eu
KUBEADM=${KUBEADM:-/var/lib/kubeboot-lab/bin/kubeadm}
here=$(cd "$(dirname "$0")" && pwd)
version=$("$KUBEADM" version -o short)
out="$here/help-$version.txt"

# normalize prints the records of one command's help ($1: the command path, "" for the root).
normalize() {
	awk -v path="$1" '
	function flush() {
		if (name == "") return
		def = ""
		if (match(text, / \(default .*\)$/)) def = substr(text, RSTART + 10, RLENGTH - 11)
		if (name != "--help") printf "%s\t%s\t%s\t%s\t%s\n", path, name, short, type, def
		name = ""
	}
	/^[A-Za-z ]*Flags:$/ { flush(); inflags = ($0 == "Flags:"); next }
	/^$/ { flush(); inflags = 0; next }
	!inflags { next }
	/^  -[^-], --/ || /^      --/ {
		flush()
		line = $0; short = ""
		if (line ~ /^  -[^-], /) { short = substr(line, 3, 2); line = substr(line, 7) } else { line = substr(line, 7) }
		# "--name type   usage": the name and its type are separated by one space, the usage by at least two.
		split(line, parts, /   */)
		n = split(parts[1], nt, " ")
		name = nt[1]; type = (n > 1) ? nt[2] : "bool"
		text = substr(line, length(parts[1]) + 1)
		sub(/^ */, "", text)
		next
	}
	{ t = $0; sub(/^ */, "", t); text = text " " t }
	END { flush() }'
}

walk() {
	help=$("$KUBEADM" "$@" --help)
	path=kubeadm
	[ $# -eq 0 ] || path="kubeadm $*"
	echo "$path"
	printf '%s\n' "$help" | normalize "$path"
	for sub in $(printf '%s\n' "$help" | awk '/^Available Commands:$/ { f = 1; next } /^$/ { f = 0 } f { print $1 }'); do
		[ "$sub" = help ] && continue
		walk "$@" "$sub"
	done
}

walk >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(grep -vc '	' "$out") commands, $(grep -c '	' "$out") flags"
