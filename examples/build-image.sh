#!/usr/bin/env bash
# examples/build-image.sh DIR TAG: build the example image in examples/DIR
# (multi, wrapper) as TAG, from a temporary context holding DIR's files plus
# the two binaries every example copies in: `vigil` (bin/vigil, from
# `make build`) and `busybox` (a static busybox: Debian's busybox-static).
# Both images are FROM scratch, so nothing is pulled from a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: examples/build-image.sh DIR TAG}
tag=${2:?usage: examples/build-image.sh DIR TAG}
vigil=${VIGIL_BIN:-bin/vigil}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$vigil" ] || { echo "no $vigil: run 'make build' first" >&2; exit 1; }
[ -x "$busybox" ] || { echo "no $busybox: apt-get install busybox-static" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "examples/$dir/." "$ctx/"
cp "$vigil" "$ctx/vigil"
cp "$busybox" "$ctx/busybox"
# Quiet unless it fails (the legacy builder's deprecation note included).
if ! out=$(docker build -q -t "$tag" "$ctx" 2>&1); then
	echo "$out" >&2
	exit 1
fi
