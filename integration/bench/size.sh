#!/bin/sh
# size.sh (make size): where vigil's bytes go. It builds vigil as `make
# build` does (static, -trimpath) and once more with its symbol table, then
# prints the size of the binary `make build` ships (stripped), its ELF
# sections, and what each Go package's symbols weigh, from `go tool nm
# -size`: code, read-only data and variables. The function tables of
# .gopclntab belong to no symbol; they grow with the code.
# Usage: integration/bench/size.sh [TOP]
set -eu
top=${1:-30}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0
go build -trimpath -ldflags '-s -w' -o "$tmp/vigil" ./cmd/vigil
go build -trimpath -o "$tmp/vigil.sym" ./cmd/vigil
bytes=$(stat -c %s "$tmp/vigil")
echo "vigil as shipped (stripped): $bytes bytes ($((bytes / 1024)) KiB)"
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
