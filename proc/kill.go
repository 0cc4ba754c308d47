package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"

	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// SignalAll sends sig to every process vigil is responsible for: as PID 1,
// the whole PID namespace through kill(-1); otherwise vigil's descendants
// (Descendants), since kill(-1) would reach every process the user owns. It
// reports whether there was any process to signal.
func SignalAll(sig syscall.Signal) bool {
	if os.Getpid() == 1 {
		return unix.Kill(-1, sig) == nil
	}
	// No child, no descendant: a subreaper's orphans come to it.
	if !reaper.HasChildren() {
		return false
	}
	pids := Descendants(os.Getpid())
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	return len(pids) > 0
}

// Descendants lists the living descendants of pid, parents before children.
//
// It follows the tree down from pid through /proc/PID/task/TID/children, so
// it reads as many processes as the tree holds, not every process of the
// host (a vigil that is not PID 1 is a child subreaper: its children's
// orphans come to it, so its tree is all it answers for). The kernel keeps
// a child on the list of the thread that forked it and an adopted orphan on
// a thread of its reaper: every thread's list is read. A kernel without
// those files (CONFIG_PROC_CHILDREN unset) gets the walk of every
// /proc/PID/stat.
func Descendants(pid int) []int {
	out, ok := descendantsByChildren(pid)
	if !ok {
		return descendantsByScan(pid)
	}
	return out
}

// descendantsByChildren walks the tree below pid breadth first; ok is false
// when the kernel has no children files.
func descendantsByChildren(pid int) (out []int, ok bool) {
	var buf [4096]byte
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		err := childrenOf(p, buf[:], func(c int) {
			// A PID freed and used again while the tree is read could
			// show up twice; no process is its own descendant.
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		})
		if err == errNoChildrenFile && p == pid {
			return nil, false
		}
		// Any other error is a process that exited meanwhile: its
		// children have gone to a reaper, and are found there or not
		// ours.
	}
	return out, true
}

var errNoChildrenFile = errors.New("no /proc/PID/task/TID/children")

// childrenOf calls fn with the PID of each child of every thread of pid.
func childrenOf(pid int, buf []byte, fn func(int)) error {
	var path [64]byte
	dir := strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10)
	dir = append(dir, "/task"...)
	var tids []int
	if err := readDirNumbers(string(dir), buf, func(tid int) { tids = append(tids, tid) }); err != nil {
		return err
	}
	for _, tid := range tids {
		p := strconv.AppendInt(append(dir, '/'), int64(tid), 10)
		p = append(p, "/children"...)
		err := readNumbers(string(p), buf, fn)
		if errors.Is(err, unix.ENOENT) {
			// The thread is gone, or the kernel has no such file:
			// the directory of a living thread tells which.
			if unix.Access(string(p[:len(p)-len("/children")]), unix.F_OK) == nil {
				return errNoChildrenFile
			}
		}
	}
	return nil
}

// readNumbers calls fn with each decimal number of the file at path,
// separated by anything else (the children file: "12 34 "). It reads with
// buf, in as many reads as the file takes: a subreaper with thousands of
// orphans has a long list.
func readNumbers(path string, buf []byte, fn func(int)) error {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	n, in := 0, false
	for {
		k, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		// A number may be cut between two reads: n carries it over.
		for _, c := range buf[:k] {
			if '0' <= c && c <= '9' {
				n, in = n*10+int(c-'0'), true
				continue
			}
			if in {
				fn(n)
			}
			n, in = 0, false
		}
	}
	if in {
		fn(n)
	}
	return nil
}

// readDirNumbers calls fn with every entry of the directory at path whose
// name is a decimal number, with getdents into buf (os.ReadDir would make a
// *os.File, an entry slice and a string per name).
func readDirNumbers(path string, buf []byte, fn func(int)) error {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		k, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return nil
		}
		// struct linux_dirent64: inode (8 bytes), offset (8), record
		// length (2), type (1), then the name, NUL-terminated.
		for b := buf[:k]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if n, ok := atoi(name); ok {
				fn(n)
			}
			b = b[reclen:]
		}
	}
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// atoi reads a non-negative decimal number of at most 9 digits (a PID, a
// descriptor) without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// descendantsByScan reads the parent of every process in /proc.
func descendantsByScan(pid int) []int {
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
