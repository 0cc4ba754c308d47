#!/usr/bin/env bash
# integration/k8s/run.sh (make test-k8s): vigil's pods under a real node agent.
#
# On this machine, as root: installs containerd, runc, buildah, busybox-static
# and catatonit from Debian; builds kubelet v1.34.4 from the Go module proxy
# in tools/kubelet (cached in $VIGIL_K8S_CACHE, default /var/cache/vigil-k8s,
# keyed by the version); builds the pause image and vigil's test images with
# buildah (vfs storage under the work dir) and imports them into a containerd
# of its own (own config, socket, root and state); starts a standalone
# kubelet (static pods, no API server) on it; runs the Go tests of this
# directory (build tag k8s); and tears everything down again (teardown.sh),
# however the run ends: a failed test, a timeout, Ctrl-C or SIGTERM. A run
# killed with SIGKILL is torn down by the next run, which finds its work dir
# in $VIGIL_K8S_CACHE/current.
#
# Everything lives in one work dir, /var/tmp/vigil-k8s.XXXXXX; it is removed
# at the end unless VIGIL_K8S_KEEP=1 (the logs of containerd and the kubelet
# are printed on a failure either way). Extra arguments go to the test binary,
# e.g. `integration/k8s/run.sh -test.run 'TestShutdown'`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
cache=${VIGIL_K8S_CACHE:-/var/cache/vigil-k8s}
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/tools/kubelet/go.mod")
start_all=$SECONDS
step() { printf '=== k8s: %s (%d s)\n' "$*" $((SECONDS - start_all)); }
die() { echo "k8s: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (containerd, the kubelet and cgroups need it)"
mkdir -p "$cache"

# A run killed before its teardown left its work dir's name here; a run still
# going (its run.sh alive) is left alone.
if [ -s "$cache/current" ]; then
	stale=$(cat "$cache/current")
	if [ -d "$stale" ]; then
		other=$(cat "$stale/pids/run" 2>/dev/null || true)
		if [ -n "$other" ] && [ "$other" != $$ ] && grep -qF run.sh "/proc/$other/cmdline" 2>/dev/null; then
			die "another run is going on (pid $other, $stale)"
		fi
		step "tearing down the leftovers of an earlier run: $stale"
		if "$here/teardown.sh" "$stale"; then
			rm -rf --one-file-system "$stale"
		else
			echo "k8s: $stale could not be torn down completely: left in place" >&2
		fi
	fi
	rm -f "$cache/current"
fi

# Ports the kubelet listens on (127.0.0.1): 10250 (API), 10255 (read-only),
# 10248 (healthz). Another kubelet on them would answer our tests.
for port in 10248 10250 10255; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is taken: another kubelet is running?"
	fi
done

step "packages"
need=()
for p in containerd runc buildah busybox-static catatonit; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# No service start from the package scripts (containerd's unit): we start
	# our own containerd with its own socket below.
	policy=/usr/sbin/policy-rc.d own_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
	fi
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[ -z "$own_policy" ] || rm -f "$policy"
fi

# The work dir, and the teardown that runs however this script ends.
W=$(mktemp -d /var/tmp/vigil-k8s.XXXXXX)
mkdir -p "$W/pids"
echo $$ >"$W/pids/run"
echo "$W" >"$cache/current"
test_pid= build_pid=
finish() {
	local rc=$?
	# The teardown must run to its end: a TERM to the whole process group
	# (timeout(1), as in .ci/run) reaches make too, and make passes a second
	# TERM on to this script while it is here. Ignored signals stay ignored
	# in teardown.sh and the commands it runs.
	trap - EXIT
	trap '' INT TERM
	if [ -n "$build_pid" ] && kill -0 "$build_pid" 2>/dev/null; then
		kill -TERM "$build_pid" 2>/dev/null || true
		wait "$build_pid" 2>/dev/null || true
	fi
	if [ -n "$test_pid" ] && kill -0 "$test_pid" 2>/dev/null; then
		kill -TERM "$test_pid" 2>/dev/null || true
		wait "$test_pid" 2>/dev/null || true
	fi
	if [ "$rc" != 0 ]; then
		for f in containerd kubelet; do
			[ -s "$W/$f.log" ] || continue
			echo "--- the end of $f's log ($W/$f.log):"
			tail -n 40 "$W/$f.log"
		done
	fi
	step "teardown"
	if "$here/teardown.sh" "$W"; then
		rm -f "$cache/current"
		if [ "${VIGIL_K8S_KEEP:-}" = 1 ]; then
			echo "k8s: kept $W"
		else
			rm -rf --one-file-system "$W"
		fi
	else
		echo "k8s: the teardown was not complete; $W is left for the next run" >&2
		[ "$rc" != 0 ] || rc=1
	fi
	step "done, exit $rc"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Paths outside W that buildah (/var/lib/containers for its blob cache,
# /run/containers, /etc/cni), the shims and ctr (/run/containerd/s and /fifo,
# whatever containerd's state dir) and the kubelet (/var/lib/kubelet/
# device-plugins, /var/log/...) create: teardown.sh removes the ones that did
# not exist before (of /run/containerd, only empty dirs: Docker's shims use it).
for p in /var/lib/containers /run/containers /etc/cni /run/containerd \
	/var/lib/kubelet /var/log/containers /var/log/pods; do
	[ -e "$p" ] || echo "$p"
done >"$W/created.paths"

# The kubelet (cached; a cold build takes minutes) builds while the rest is
# prepared.
kubelet=$cache/kubelet-$version/kubelet
"$here/tools/kubelet/build.sh" "$kubelet" >"$W/kubelet-build.log" 2>&1 </dev/null &
build_pid=$!

step "vigil and the test binary"
mkdir -p "$W/bin"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X main.version=k8s-test' -o "$W/bin/vigil" ./cmd/vigil)
(cd "$here" && go test -c -tags k8s -o "$W/bin/k8s.test" .)

step "images (buildah, vfs storage in $W/buildah)"
buildah() {
	command buildah --root "$W/buildah/root" --runroot "$W/buildah/run" --storage-driver vfs "$@"
}
# image NAME CONTEXT: build CONTEXT/Containerfile as NAME into NAME's archive.
image() {
	local name=$1 ctx=$2 out
	out=$W/images/$(echo "$name" | tr '/:' '__').tar
	buildah bud -q --isolation chroot -f "$ctx/Containerfile" -t "$name" "$ctx" >/dev/null
	buildah push -q "$name" "docker-archive:$out:$name"
}
mkdir -p "$W/images" "$W/ctx"
# The pod sandbox: catatonit, as pause.
mkdir -p "$W/ctx/pause"
cp /usr/bin/catatonit "$W/ctx/pause/"
printf 'FROM scratch\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P"]\n' >"$W/ctx/pause/Containerfile"
# The examples, as examples/build-image.sh builds them, under the names their
# manifests use (vigil-demo:dev is docker.io/library/vigil-demo:dev to the CRI).
for ex in multi:vigil-demo wrapper:vigil-wrapper; do
	dir=${ex%%:*}
	mkdir -p "$W/ctx/$dir"
	cp -r "$root/examples/$dir/." "$W/ctx/$dir/"
	mv "$W/ctx/$dir/Dockerfile" "$W/ctx/$dir/Containerfile"
	cp "$W/bin/vigil" /bin/busybox "$W/ctx/$dir/"
done
# The tests' own image: busybox, vigil and svc.sh, configs come from a hostPath.
mkdir -p "$W/ctx/test"
cp "$W/bin/vigil" /bin/busybox "$here/svc.sh" "$W/ctx/test/"
cat >"$W/ctx/test/Containerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/mkdir", "-p", "/tmp", "/data", "/state"]
COPY vigil /vigil
COPY svc.sh /svc.sh
ENTRYPOINT ["/vigil"]
EOF
pids=()
image localhost/vigil-k8s-pause:1 "$W/ctx/pause" & pids+=($!)
image docker.io/library/vigil-demo:dev "$W/ctx/multi" & pids+=($!)
image docker.io/library/vigil-wrapper:dev "$W/ctx/wrapper" & pids+=($!)
image localhost/vigil-k8s-test:1 "$W/ctx/test" & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || die "an image build failed"; done

step "containerd"
mkdir -p "$W/containerd/root" "$W/containerd/state" "$W/containerd/opt" "$W/cni/bin" "$W/cni/conf"
sock=$W/containerd.sock
cat >"$W/containerd.toml" <<EOF
# containerd for vigil's Kubernetes tests: nothing shared with a system
# containerd (socket, root, state, CNI dirs all under $W).
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$W/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/vigil-k8s-pause:1"
    # REQUIRED here: without CAP_SYS_RESOURCE a negative oom_score_adj makes
    # runc fail ("can't get final child's PID from pipe: EOF").
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$W/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$W/cni/bin"
      conf_dir = "$W/cni/conf"
EOF
# containerd and the kubelet in sessions of their own: a Ctrl-C (SIGINT to
# the terminal's process group) reaches run.sh and the tests, whose teardown
# then stops the pods, the kubelet and containerd in order. (setsid does not
# fork here, a background job is no group leader: $! is the daemon's PID.)
setsid containerd --config "$W/containerd.toml" --log-level info >"$W/containerd.log" 2>&1 </dev/null &
echo $! >"$W/pids/containerd"
ctr() { command ctr --address "$sock" -n k8s.io "$@"; }
for i in $(seq 120); do
	ctr version >/dev/null 2>&1 && break
	kill -0 "$(cat "$W/pids/containerd")" 2>/dev/null || die "containerd exited (see $W/containerd.log)"
	[ "$i" -lt 120 ] || die "containerd did not answer within 60 s"
	sleep 0.5
done
for f in "$W"/images/*.tar; do
	ctr images import --all-platforms "$f" >/dev/null
done
ctr images ls -q

step "kubelet $version"
if ! wait "$build_pid"; then
	build_pid=
	cat "$W/kubelet-build.log" >&2
	die "the kubelet build failed"
fi
build_pid=
cat "$W/kubelet-build.log"
"$kubelet" --version
# healthz: the kubelet's /healthz answers ok (bash's /dev/tcp: no curl needed).
healthz() {
	local reply
	reply=$(exec 3<>/dev/tcp/127.0.0.1/10248 && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3) 2>/dev/null || return 1
	[ "${reply##*$'\n'}" = ok ]
}
# What the kubelet changes outside its own dirs, to be undone by teardown.sh.
for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
	v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"
done >"$W/sysctl.saved"
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
	[ -e "$h/kubepods" ] || echo "${h%/}/kubepods"
done >"$W/created.cgroups"
mkdir -p "$W/kubelet" "$W/manifests" "$W/pod-logs" "$W/data" "$W/kubelet-certs"
cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: $W/manifests
fileCheckFrequency: 5s
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
healthzPort: 10248
port: 10250
readOnlyPort: 10255
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
volumePluginDir: $W/kubelet/volume-plugins
podLogsDir: $W/pod-logs
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
setsid "$kubelet" --config "$W/kubelet.yaml" --root-dir "$W/kubelet" --cert-dir "$W/kubelet-certs" \
	--v=2 >"$W/kubelet.log" 2>&1 </dev/null &
echo $! >"$W/pids/kubelet"
for i in $(seq 120); do
	healthz && break
	kill -0 "$(cat "$W/pids/kubelet")" 2>/dev/null || die "the kubelet exited (see $W/kubelet.log)"
	[ "$i" -lt 120 ] || die "the kubelet's healthz did not answer ok within 60 s"
	sleep 0.5
done

step "tests"
export VIGIL_K8S_WORK=$W VIGIL_K8S_KUBELET_VERSION=$version
# From this directory, as `go test` would run it (the examples are ../../examples).
(cd "$here" && exec "$W/bin/k8s.test" -test.v -test.count=1 -test.parallel 8 -test.timeout 9m "$@") > >(tee "$W/test.log") 2>&1 &
test_pid=$!
rc=0
wait "$test_pid" || rc=$?
test_pid=
sleep 0.2 # tee's last lines
passed=$(grep -c '^--- PASS' "$W/test.log" || true)
failed=$(grep -c '^--- FAIL' "$W/test.log" || true)
echo "k8s: $passed passed, $failed failed"
[ "$failed" = 0 ] || rc=1
exit "$rc"
