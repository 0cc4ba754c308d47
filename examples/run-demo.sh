#!/usr/bin/env bash
# `make run`: vigil as PID 1 of a fresh PID namespace (or as a plain
# subreaper when unshare is not allowed), running examples/demo.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
# With a Docker engine, the demo runs in a real container instead
# (examples/docker-demo.sh); VIGIL_DEMO=pidns keeps this one.
if [ "${VIGIL_DEMO:-}" != pidns ] && command -v docker >/dev/null 2>&1 &&
	timeout 10 docker info >/dev/null 2>&1; then
	exec ./examples/docker-demo.sh
fi
vigil=bin/vigil
export VIGIL_SHUTDOWN_TIMEOUT=2s

launcher=(unshare --pid --fork --mount-proc --kill-child)
if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
	echo "(unshare not permitted here: vigil runs as a plain process and makes itself a subreaper)"
	launcher=()
fi
echo "\$ VIGIL_SHUTDOWN_TIMEOUT=2s ${launcher[*]} $vigil -w -- sh examples/demo.sh"
"${launcher[@]}" "$vigil" -w -- sh examples/demo.sh &
outer=$!
sleep 1
target=$outer
if [ ${#launcher[@]} -gt 0 ]; then target=$(cat /proc/$outer/task/$outer/children | cut -d' ' -f1); fi
echo "\$ kill -USR1 <vigil>     # forwarded to the main process's group"
kill -USR1 "$target"
sleep 0.5
echo "\$ kill -TERM <vigil>     # as docker stop does"
kill -TERM "$target"
wait $outer
status=$?
echo "vigil exited with status $status: the main process's own exit code, after the"
echo "stubborn worker got SIGTERM, then SIGKILL when the 2s shutdown budget ran out."
