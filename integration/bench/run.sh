#!/usr/bin/env bash
# make bench: vigil against tini, tini-static, dumb-init and catatonit, each as
# PID 1 of a fresh PID namespace; then `vigil status` against `supervisorctl
# status`, each daemon supervising the same 100 services; then the pause of
# `vigil reexec` with 10 and 1000 services; then the writes of state.json
# under a crash loop; then vigil against supervisord, runit (runsvdir) and
# s6 (s6-svscan) with the same services (start, memory, idle wake-ups,
# restart latency), vigil's log prefix and log_file throughput and its
# memory with 100 services' log rings full; then schedules: the
# lateness of @every 1s jobs against supercronic running the same jobs
# (-sched-long: 10 minutes of it), the wake-ups of both idle with 100 hourly
# jobs, the start of 1000 instances against 1000 definitions; then health
# checks and the HTTP endpoint (an exec probe against GET /readyz, the
# detection of a hung service, 100 tcp checks a second). Prints seven markdown
# tables (figures, and the issues' targets reported, never asserted) and
# keeps a copy in integration/bench/results/ (git-ignored).
# The inits table has a column "floor": integration/bench/floor, the least a
# Go init can do, so that each of vigil's figures reads against Go's own cost.
# Flags go to the bench program: ./integration/bench/run.sh -quick; see -h.
# One table or some: ./integration/bench/run.sh -tables reexec,statewrites
# Needs root (unshare --pid) and a built bin/vigil (make build).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" = 0 ] || { echo "bench: must run as root (unshare --pid)" >&2; exit 1; }
[ -x bin/vigil ] || { echo "bench: bin/vigil missing: run make build" >&2; exit 1; }

# The anchors, supervisor, runit, s6, and gcc with a static libc for the
# child; only what is missing.
missing=()
for pkg in tini dumb-init catatonit; do
	command -v "$pkg" >/dev/null || missing+=("$pkg")
done
command -v supervisord >/dev/null && command -v supervisorctl >/dev/null || missing+=(supervisor)
command -v runsvdir >/dev/null && command -v sv >/dev/null || missing+=(runit)
command -v s6-svscan >/dev/null && command -v s6-supervise >/dev/null || missing+=(s6)
command -v unshare >/dev/null || missing+=(util-linux)
command -v gcc >/dev/null || missing+=(gcc)
[ -n "$(gcc -print-file-name=libc.a 2>/dev/null | grep /)" ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench: installing ${missing[*]}" >&2
	apt-get install -y -qq "${missing[@]}" >&2 ||
		{ apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/bench" ./integration/bench
# The Go floor, built as vigil is (static, stripped).
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/floor" ./integration/bench/floor
gcc -static -O2 -Wall -Wextra -o "$work/child" integration/bench/child/child.c

# supercronic, the schedules table's second column: Debian has no package, so
# it is built from the Go module proxy in its own module (tools/supercronic),
# kept in a cache keyed by its version ($VIGIL_BENCH_CACHE, default
# /var/cache/vigil-bench); only when the schedules table is asked for. If it
# cannot be built, the table leaves the column out and says so.
sched=yes
prev=
for a in "$@"; do
	case $prev in -tables | --tables) [[ $a == *schedules* ]] || sched=no ;; esac
	case $a in -tables=* | --tables=*) [[ $a == *schedules* ]] || sched=no ;; esac
	prev=$a
done
sc_flag=()
if [ "$sched" = yes ]; then
	sc_mod=integration/bench/tools/supercronic
	sc_version=$(awk '$1 == "require" && $2 == "github.com/aptible/supercronic" {print $3}' "$sc_mod/go.mod")
	sc=${VIGIL_BENCH_CACHE:-/var/cache/vigil-bench}/supercronic-$sc_version
	if "$sc_mod/build.sh" "$sc" >&2; then
		sc_flag=(-supercronic "$sc")
	else
		echo "bench: supercronic $sc_version could not be built: the schedules table leaves it out" >&2
	fi
fi

mkdir -p integration/bench/results
out=integration/bench/results/$(date +%Y%m%d-%H%M%S).md
status=0
"$work/bench" -vigil bin/vigil -floor "$work/floor" -child "$work/child" ${sc_flag[@]+"${sc_flag[@]}"} "$@" | tee "$out" || status=$?
if [ -s "$out" ]; then
	echo "bench: table saved in $out" >&2
else
	rm -f "$out"
fi
exit "$status"
