#!/usr/bin/env bash
# build.sh OUT: build the kubelet of this module's go.mod (v1.34.4) as a static
# binary at OUT, unless OUT already exists. integration/k8s/run.sh keeps OUT
# in a cache keyed by the version, so only the first run on a machine pays the
# build (3-4 min on 2 cores, 0.7 GB module cache, 2 GB build cache).
set -euo pipefail
out=${1:?usage: build.sh OUT}
cd "$(dirname "$0")"
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' go.mod)
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
if [ -x "$out" ] && "$out" --version 2>/dev/null | grep -qx "Kubernetes $version"; then
	exit 0
fi
major=${version#v}; major=${major%%.*}
minor=${version#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
mkdir -p "$(dirname "$out")"
start=$SECONDS
echo "building kubelet $version (first run on this machine: a few minutes)"
# In the background, so that a TERM (run.sh interrupted) stops the go command too.
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" k8s.io/kubernetes/cmd/kubelet &
go_pid=$!
trap 'kill -TERM "$go_pid" 2>/dev/null; wait "$go_pid"; rm -f "$out.tmp"; exit 143' TERM INT
wait "$go_pid"
mv "$out.tmp" "$out"
echo "kubelet $version built in $((SECONDS - start)) s: $out"
