#!/usr/bin/env bash
# teardown.sh W: undo everything run.sh did with the work dir W, in order:
# the static pods (manifests removed, then wait until containerd runs no task),
# the kubelet, the remaining tasks and containers, containerd, the shims, the
# mounts under W, the kubepods cgroups the kubelet created, the sysctls it
# changed, and the paths it created outside W. Processes are stopped by the
# PIDs run.sh recorded (W/pids) and containerd's own pid files under W, each
# checked against /proc first (still ours, not a reused PID), never by name.
# Idempotent: run.sh calls it on every exit, and on the next start for a run
# that was killed before it could. Exits 1 if anything is left behind.
set -uo pipefail
W=${1:?usage: teardown.sh WORKDIR}
[ -d "$W" ] || exit 0
export PATH=$PATH:/usr/sbin:/sbin
sock=$W/containerd.sock
left=0
note() { echo "teardown: $*" >&2; }
ctr_bin=$(command -v ctr || echo /usr/bin/ctr)
ctr() { timeout 20 "$ctr_bin" --address "$sock" -n k8s.io "$@"; }

# ours PID WORD: PID is alive and its command line holds WORD (our work dir,
# or our socket), so a recycled PID is never signalled.
ours() {
	local pid=$1 word=$2 args
	[ -n "$pid" ] || return 1
	mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 1
	[[ "${args[*]}" == *"$word"* ]]
}
cmdline() {
	local args
	mapfile -d '' args 2>/dev/null <"/proc/$1/cmdline"
	echo "${args[*]}"
}
# stop PID WORD SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop() {
	local pid=$1 word=$2 secs=$3 i
	ours "$pid" "$word" || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < secs * 10; i++)); do
		ours "$pid" "$word" || return 0
		sleep 0.1
	done
	note "pid $pid did not stop within $secs s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		[ -e "/proc/$pid" ] || return 0
		sleep 0.1
	done
	note "pid $pid survived SIGKILL"
	left=1
}
running_tasks() { ctr tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" {print $1}'; }

containerd_pid=$(cat "$W/pids/containerd" 2>/dev/null)
kubelet_pid=$(cat "$W/pids/kubelet" 2>/dev/null)
containerd_up=
ours "$containerd_pid" "$W" && containerd_up=1

# 1. The static pods: without their manifests the kubelet kills them (each
# container gets its grace period). The kubelet forgets a pod before the kill
# is over, so wait for containerd to run no task at all (at most 60 s).
rm -f "$W"/manifests/* "$W"/manifests/.[!.]* 2>/dev/null
if [ -n "$containerd_up" ] && ours "$kubelet_pid" "$W"; then
	for ((i = 0; i < 120; i++)); do
		[ -z "$(running_tasks)" ] && break
		sleep 0.5
	done
fi

# 2. The kubelet.
stop "$kubelet_pid" "$W" 15

# 3. Whatever still runs in containerd (a test killed mid-way, a kubelet that
# did not finish): SIGKILL every process of each task, then delete tasks and
# containers. The containers' PIDs are read first (init.pid in each bundle
# under containerd's state dir), and the shims': their parents, and any
# process started for our socket (-address W/containerd.sock: this run's own).
inits=()
declare -A shim_set=()
for d in "$W"/containerd/state/io.containerd.runtime.v2.task/*/*/; do
	[ -s "$d/init.pid" ] || continue
	pid=$(cat "$d/init.pid")
	inits+=("$pid")
	ppid=$(awk '{sub(/.*\) /, ""); print $2}' "/proc/$pid/stat" 2>/dev/null)
	ours "$ppid" "-address $sock" && shim_set[$ppid]=1
done
for p in /proc/[0-9]*; do
	ours "${p#/proc/}" "-address $sock" && shim_set[${p#/proc/}]=1
done
shims=("${!shim_set[@]}")
if [ -n "$containerd_up" ]; then
	for t in $(running_tasks); do
		note "task $t still running: SIGKILL"
		ctr tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1
	done
	for ((i = 0; i < 50; i++)); do
		[ -z "$(running_tasks)" ] && break
		sleep 0.2
	done
	for t in $(ctr tasks ls -q 2>/dev/null); do
		ctr tasks delete -f "$t" >/dev/null 2>&1 || ctr tasks delete "$t" >/dev/null 2>&1
	done
	for c in $(ctr containers ls -q 2>/dev/null); do
		ctr containers delete "$c" >/dev/null 2>&1
	done
fi

# 4. containerd.
stop "$containerd_pid" "$W" 15

# 5. Shims outlive containerd; a shim whose task is gone exits by itself.
# Container processes that are still there (only after a SIGKILLed
# containerd) are recognised by their kubepods cgroup.
for pid in "${inits[@]}"; do
	if [ -r "/proc/$pid/cgroup" ] && grep -q '/kubepods/' "/proc/$pid/cgroup" 2>/dev/null; then
		note "container process $pid still alive: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
done
for pid in "${shims[@]}"; do
	stop "$pid" "$sock" 5
done

# 6. Mounts under W, deepest first: container root filesystems, sandbox
# /dev/shm, memory emptyDirs, the kubelet's bind mount of its root dir.
umount_all() {
	local m
	awk -v w="$W" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | uniq |
		while read -r m; do
			m=$(printf '%b' "$m") # mountinfo escapes spaces as \040
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || note "cannot unmount $m"
		done
}
umount_all
umount_all # a bind mount of the root dir over itself hides what was below it
if awk -v w="$W" '$5 == w || index($5, w "/") == 1' /proc/self/mountinfo | grep -q .; then
	note "mounts left under $W:"
	awk -v w="$W" '$5 == w || index($5, w "/") == 1 {print "  " $5}' /proc/self/mountinfo >&2
	left=1
fi

# 7. The kubepods cgroups the kubelet created (in every hierarchy), leaves
# first; a cgroup empties a moment after its last process died.
if [ -s "$W/created.cgroups" ]; then
	while read -r cg; do
		[ -d "$cg" ] || continue
		for ((i = 0; i < 20; i++)); do
			find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$cg" ] || break
			sleep 0.25
		done
		[ -d "$cg" ] && { note "cannot remove cgroup $cg"; left=1; }
	done <"$W/created.cgroups"
fi

# 8. The sysctls, as they were before the kubelet started.
if [ -s "$W/sysctl.saved" ]; then
	while IFS== read -r key val; do
		[ "$(sysctl -n "$key" 2>/dev/null)" = "$val" ] && continue
		sysctl -q -w "$key=$val" >/dev/null || { note "cannot restore $key=$val"; left=1; }
	done <"$W/sysctl.saved"
fi

# 9. Paths outside W that did not exist before (see run.sh: buildah's,
# the shims', the kubelet's).
if [ -s "$W/created.paths" ]; then
	while read -r p; do
		[ -e "$p" ] || continue
		case $p in
		# containerd 1.6's shims put their sockets in /run/containerd/s
		# whatever the state dir, Docker's too: remove empty dirs only.
		/run/containerd) find "$p" -depth -type d -empty -delete 2>/dev/null ;;
		*) rm -rf --one-file-system "$p" ;;
		esac
	done <"$W/created.paths"
fi

# 10. Nothing of ours may still run: a process whose command line names W
# (given 3 s: tee of the test log ends when the test binary's output closes).
for ((try = 0; try < 3; try++)); do
	rest=()
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = $$ ] && continue
		if ours "$pid" "$W/" || ours "$pid" "$sock"; then
			rest+=("$pid $(cmdline "$pid")")
		fi
	done
	[ ${#rest[@]} = 0 ] && break
	sleep 1
done
for r in "${rest[@]}"; do
	note "still running: $r"
	left=1
done
exit "$left"
