package supervise

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// SignalAll sends sig to every process vigil is responsible for: as PID 1,
// the whole PID namespace through kill(-1); otherwise vigil's descendants,
// found by walking /proc, since kill(-1) would reach every process the user
// owns. It reports whether there was any process to signal.
func SignalAll(sig syscall.Signal) bool {
	if os.Getpid() == 1 {
		return unix.Kill(-1, sig) == nil
	}
	pids := Descendants(os.Getpid())
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	return len(pids) > 0
}

// Descendants lists the living descendants of pid, parents before children.
func Descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf reads the parent PID from /proc/PID/stat.
func parentOf(pid int) (int, bool) {
	ppid, _, err := procStat(pid)
	return ppid, err == nil
}

// procStat reads a process's parent PID and start time (fields 4 and 22 of
// /proc/PID/stat; the start time, in clock ticks since boot, tells it apart
// from a later process with the same PID). The command name in field 2 may
// hold spaces and parentheses, so fields are counted after the last ')'.
func procStat(pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errMalformedStat
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, 0, errMalformedStat
	}
	if ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, 0, errMalformedStat
	}
	if start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return 0, 0, errMalformedStat
	}
	return ppid, start, nil
}

var errMalformedStat = errors.New("malformed /proc/PID/stat")

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) { unix.Kill(-pid, unix.SIGKILL) }
