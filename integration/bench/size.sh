#!/bin/sh
# size.sh (make size): where vigil's bytes go. It builds vigil as `make
# build` does (static, -trimpath) and once more with its symbol table, then
# prints the size of the binary `make build` ships (stripped), its ELF
# sections, and what each Go package's symbols weigh, from `go tool nm
# -size`: code, read-only data and variables. The function tables of
# .gopclntab belong to no symbol; they grow with the code. Beside it, the
# Go floor of the bench and the library floor (sizefloor): the libraries
# vigil links, linked alone.
# Usage: integration/bench/size.sh [TOP]
set -eu
top=${1:-30}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0
go build -trimpath -ldflags '-s -w' -o "$tmp/vigil" ./cmd/vigil
go build -trimpath -o "$tmp/vigil.sym" ./cmd/vigil
go build -trimpath -ldflags '-s -w' -o "$tmp/floor" ./integration/bench/floor
go build -trimpath -ldflags '-s -w' -o "$tmp/libs" ./integration/bench/sizefloor
bytes=$(stat -c %s "$tmp/vigil")
floor=$(stat -c %s "$tmp/floor")
libs=$(stat -c %s "$tmp/libs")
echo "| binary (stripped, static) | bytes | KiB |"
echo '|---|--:|--:|'
echo "| vigil as shipped | $bytes | $((bytes / 1024)) |"
echo "| the Go floor (integration/bench/floor: catch, fork, forward, reap) | $floor | $((floor / 1024)) |"
echo "| the library floor (integration/bench/sizefloor: what vigil links besides its own code) | $libs | $((libs / 1024)) |"
echo "| vigil over the library floor: its own code and what it uses of the libraries | $((bytes - libs)) | $(((bytes - libs) / 1024)) |"
echo
echo '| section | KiB |'
echo '|---|--:|'
readelf -SW "$tmp/vigil" | sed -n 's/^ *\[ *[0-9]*\] *//p' |
	awk '$1 ~ /^\./ && $1 !~ /^\.(note|shstrtab)/ { print $1, $5 }' |
	while read -r name hex; do
		echo "| $name | $((0x$hex / 1024)) |"
	done
echo
echo "| package (the $top heaviest) | KiB |"
echo '|---|--:|'
go tool nm -size "$tmp/vigil.sym" | awk '
{
	name = $4
	for (i = 5; i <= NF; i++) name = name " " $i
	if (name ~ /^go:/) { size["(go: function data, strings)"] += $2; next }
	if (name ~ /^type:/) { size["(type: descriptors)"] += $2; next }
	# Type arguments ([...]) may name other packages: cut them off.
	if ((i = index(name, "[")) > 0) name = substr(name, 1, i - 1)
	prefix = ""
	while ((i = index(name, "/")) > 0) { prefix = prefix substr(name, 1, i); name = substr(name, i + 1) }
	if ((i = index(name, ".")) > 0) name = substr(name, 1, i - 1)
	size[prefix name] += $2
}
END { for (p in size) printf "%d\t%s\n", size[p], p }' |
	sort -rn | head -n "$top" | awk -F'\t' '{ printf "| %s | %d |\n", $2, $1 / 1024 }'
