package early

import (
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// onOneCPU moves every thread of the process onto the CPU the caller runs
// on and returns the function that gives them back the CPUs they had.
//
// Notify is a round trip with the runtime's signal-mask thread for each
// signal it enables. With two CPUs or more, each trip wakes that thread on
// another CPU, which in a VM means waking an idle virtual CPU; on one CPU it
// is a plain switch. For vigil's 56 signals: 1.9 ms against 1.2 ms (median
// of 80 starts of a Go program that does only this, on a 2-core VM), all of
// it before the main process can be spawned.
//
// Restoring matters more than pinning: a thread left on one CPU would fork
// the services with its affinity.
func onOneCPU() (restore func()) {
	var all unix.CPUSet
	if unix.SchedGetaffinity(0, &all) != nil || all.Count() < 2 {
		return func() {}
	}
	cpu, ok := currentCPU()
	if !ok || !all.IsSet(cpu) {
		return func() {}
	}
	// The runtime re-reads the affinity mask and the cgroup's CPU limit
	// now and then (sysmon) and follows them with GOMAXPROCS: seeing one
	// CPU here, it would leave vigil on one P for a second or so. Setting
	// GOMAXPROCS to its start value (no stop of the world for the same
	// value) turns that off for good, which an init that mostly sleeps
	// can afford: it also spares sysmon those reads on every wake-up.
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var one unix.CPUSet
	one.Set(cpu)
	restore = func() {
		// A thread the runtime started meanwhile was cloned on the one
		// CPU: pass again until a pass finds no thread not yet seen.
		seen := map[int]bool{}
		for found, _ := setAffinity(&all, seen); found; found, _ = setAffinity(&all, seen) {
		}
	}
	if _, ok := setAffinity(&one, map[int]bool{}); !ok {
		// Not allowed (a seccomp profile, say): leave everything as it was.
		restore()
		return func() {}
	}
	return restore
}

// setAffinity sets mask on every thread of the process not in seen and adds
// them to seen. found: there was such a thread; ok: /proc/self/task could be
// read and no thread refused (one that is gone meanwhile does not count).
func setAffinity(mask *unix.CPUSet, seen map[int]bool) (found, ok bool) {
	// os.ReadDir, not proc's getdents walk: importing proc would make
	// log/slog, cron and more initialise before this package, and every
	// package before it lengthens the window in which a TERM kills vigil.
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, false
	}
	ok = true
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil || seen[tid] {
			continue
		}
		seen[tid], found = true, true
		if err := unix.SchedSetaffinity(tid, mask); err != nil && err != unix.ESRCH {
			ok = false
		}
	}
	return found, ok
}

// currentCPU is the CPU the calling thread runs on (getcpu(2)).
func currentCPU() (int, bool) {
	var cpu uint32
	_, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0)
	return int(cpu), errno == 0
}
