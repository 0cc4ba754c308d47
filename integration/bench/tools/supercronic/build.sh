#!/usr/bin/env bash
# build.sh OUT: build the supercronic of this module's go.mod as a static
# binary at OUT, unless OUT already is that version. integration/bench/run.sh
# keeps OUT in a cache keyed by the version, so only the first run on a
# machine pays the build (about 30 s on 2 cores).
set -euo pipefail
out=${1:?usage: build.sh OUT}
cd "$(dirname "$0")"
version=$(awk '$1 == "require" && $2 == "github.com/aptible/supercronic" {print $3}' go.mod)
[ -n "$version" ] || { echo "build.sh: no supercronic version in go.mod" >&2; exit 1; }
if [ -x "$out" ] && [ "$("$out" -version 2>/dev/null)" = "$version" ]; then
	exit 0
fi
mkdir -p "$(dirname "$out")"
echo "building supercronic $version (first run on this machine: about 30 s)" >&2
# Its main.Version is set by its own release build; -version prints it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=$version" -o "$out.tmp" github.com/aptible/supercronic
mv "$out.tmp" "$out"
