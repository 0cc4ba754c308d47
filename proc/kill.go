package proc

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
	ppid, _, err := ProcStat(pid)
	return ppid, err == nil
}

// ProcStat reads a process's parent PID and start time (fields 4 and 22 of
// /proc/PID/stat; the start time, in clock ticks since boot, tells it apart
// from a later process with the same PID).
//
// Three system calls, into a buffer on the stack: a re-exec checks every
// adopted service this way before vigil supervises again, and os.ReadFile
// (ten calls with its four fcntl, epoll_ctl, fstat and second read, and a
// buffer on the heap) made that check the longest part of the pause with a
// thousand services.
func ProcStat(pid int) (ppid int, start uint64, err error) {
	var path [32]byte
	p := strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10)
	p = append(p, "/stat"...)
	var fd int
	for {
		fd, err = unix.Open(string(p), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, 0, &os.PathError{Op: "open", Path: string(p), Err: err}
	}
	defer unix.Close(fd)
	// Fields 1 to 22 fit in far less: the command name is at most 64
	// bytes, each number at most 20 digits.
	var buf [1024]byte
	var n int
	for {
		n, err = unix.Read(fd, buf[:])
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, 0, &os.PathError{Op: "read", Path: string(p), Err: err}
	}
	return parseStat(buf[:n])
}

// parseStat takes the parent PID and start time out of the text of
// /proc/PID/stat. The command name in field 2 may hold spaces and
// parentheses, so fields are counted after the last ')'.
func parseStat(b []byte) (ppid int, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errMalformedStat
	}
	b = b[i+1:]
	// Field 3 (the state) is the first after the name. A field counts only
	// with a separator after it: one cut off by the end of the buffer is
	// not whole.
	var f4, f22 []byte
	for k := 3; k <= 22; k++ {
		if len(b) == 0 || b[0] != ' ' {
			return 0, 0, errMalformedStat
		}
		b = bytes.TrimLeft(b, " ")
		j := bytes.IndexAny(b, " \n")
		if j <= 0 {
			return 0, 0, errMalformedStat
		}
		switch k {
		case 4:
			f4 = b[:j]
		case 22:
			f22 = b[:j]
		}
		b = b[j:]
	}
	if ppid, err = strconv.Atoi(string(f4)); err != nil {
		return 0, 0, errMalformedStat
	}
	if start, err = strconv.ParseUint(string(f22), 10, 64); err != nil {
		return 0, 0, errMalformedStat
	}
	return ppid, start, nil
}

var errMalformedStat = errors.New("malformed /proc/PID/stat")

// KillGroup SIGKILLs the process group led by pid.
func KillGroup(pid int) { unix.Kill(-pid, unix.SIGKILL) }

// Proc is one process, told apart from a later one with the same PID by
// its start time.
type Proc struct {
	Pid   int
	Start uint64
}

// Escaped lists the living descendants of leader that left its process
// group (setsid, setpgid): a stop of the group alone would miss them.
func Escaped(leader, pgid int) []Proc {
	var out []Proc
	for _, pid := range Descendants(leader) {
		if g, err := unix.Getpgid(pid); err != nil || g == pgid {
			continue
		}
		if _, st, err := ProcStat(pid); err == nil {
			out = append(out, Proc{pid, st})
		}
	}
	return out
}

// Signal sends sig to p if it is still the process it was (0 probes it).
func (p Proc) Signal(sig syscall.Signal) error {
	if _, st, err := ProcStat(p.Pid); err != nil || st != p.Start {
		return unix.ESRCH
	}
	return unix.Kill(p.Pid, sig)
}
