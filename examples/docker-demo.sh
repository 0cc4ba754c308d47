#!/usr/bin/env bash
# `make run` when a Docker engine answers: the multi-service example
# (examples/multi) in a real container, vigil as its PID 1.
set -euo pipefail
cd "$(dirname "$0")/.."
img=${VIGIL_DEMO_IMAGE:-vigil-demo:dev}
name=vigil-demo-$$
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
say() { printf '\n$ %s\n' "$*"; }
# Both streams of the container in the order they were written.
logs() { docker logs -t "$@" "$name" 2>&1 | sort -s -k1,1 | cut -d' ' -f2-; }

echo "Building $img: FROM scratch, vigil + a static busybox, services from examples/multi/vigil.json:"
echo "  migrate (a oneshot) -> web (busybox httpd, ready on tcp :8080) -> worker (stop_signal SIGQUIT)"
examples/build-image.sh multi "$img"

say "docker run -d --name $name $img"
docker run -d --name "$name" "$img" >/dev/null
for _ in $(seq 100); do
	docker exec "$name" /vigil ready >/dev/null 2>&1 && break
	sleep 0.1
done
say "docker logs $name        # vigil's log (stderr); the services' lines, prefixed (stdout)"
logs
say "docker exec $name /vigil status"
docker exec "$name" /vigil status
say "docker exec $name /vigil ready; echo \$?      # a Kubernetes exec probe"
docker exec "$name" /vigil ready && echo 0
say "docker exec $name wget -qO- http://127.0.0.1:8080/"
docker exec "$name" wget -qO- http://127.0.0.1:8080/
since=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
say "docker stop $name        # SIGTERM to vigil: each service gets its stop signal, dependents first"
t0=$(date +%s%N)
docker stop "$name" >/dev/null
t1=$(date +%s%N)
logs --since "$since"
status=$(docker inspect -f '{{.State.ExitCode}}' "$name")
printf '\ndocker stop took %d ms (docker would SIGKILL at 10 s); the container exited with status %s:\n' \
	$(((t1 - t0) / 1000000)) "$status"
echo "supervisor mode without a main process exits 0 after a requested shutdown (with \`-- CMD\`, CMD's status)."
echo "The image $img stays, to try more (examples/README.md)."
