package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// unsharePath is util-linux's unshare, found once in main.
var unsharePath = "unshare"

// unshareArgs runs argv under initPath as PID 1 of a fresh PID namespace with
// its own /proc; initPath "" runs argv itself as PID 1 (the baseline).
func unshareArgs(initPath string, argv []string) []string {
	args := []string{"--pid", "--fork", "--mount-proc", "--kill-child"}
	if initPath != "" {
		args = append(args, initPath, "--")
	}
	return append(args, argv...)
}

// timeRun is the wall time of one whole run of argv under the init a, with
// every output thrown away; the run must exit 0.
func timeRun(a anchor, argv ...string) (time.Duration, error) {
	cmd := exec.Command(unsharePath, unshareArgs(a.real, argv)...)
	cmd.Env = append(os.Environ(), a.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	return d, err
}

// instance is one init running the bench child in its own PID namespace.
type instance struct {
	cmd  *exec.Cmd
	out  int      // read end of the child's stdout, a blocking fd
	errf *os.File // stderr of unshare, the init and the child (unlinked)
	pid  int      // host pid of the init, once found; 0 once it is gone
	err  error    // unshare's end, once waited for
	done bool
}

// launch starts argv under the init a. The child's stdout is a pipe that the
// bench reads with plain blocking syscalls (no Go netpoller in the timed path);
// stderr goes to an unlinked file, read only when something fails.
func launch(a anchor, argv ...string) (*instance, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	w := os.NewFile(uintptr(p[1]), "child-stdout")
	defer w.Close()
	errf, err := os.CreateTemp("", "vigil-bench-*.stderr")
	if err != nil {
		unix.Close(p[0])
		return nil, err
	}
	os.Remove(errf.Name())
	cmd := exec.Command(unsharePath, unshareArgs(a.real, argv)...)
	cmd.Env = append(os.Environ(), a.env...)
	cmd.Stdout, cmd.Stderr = w, errf
	// If the bench dies, unshare dies, and --kill-child takes the init along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		unix.Close(p[0])
		errf.Close()
		return nil, err
	}
	return &instance{cmd: cmd, out: p[0], errf: errf}, nil
}

// readLine reads the child's stdout up to a newline, for at most timeout.
func (in *instance) readLine(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var line []byte
	var b [1]byte
	for {
		if err := pollIn(in.out, time.Until(deadline)); err != nil {
			return string(line), in.failure(err)
		}
		n, err := unix.Read(in.out, b[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return string(line), in.failure(err)
		case n == 0:
			return string(line), in.failure(errors.New("child's stdout closed"))
		case b[0] == '\n':
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

// ready waits for the child's "ready" line and finds the init's host pid.
func (in *instance) ready() error {
	line, err := in.readLine(10 * time.Second)
	if err != nil {
		return err
	}
	if line != "ready" {
		return in.failure(fmt.Errorf("child said %q, want ready", line))
	}
	return in.findInit()
}

// findInit sets in.pid to the one child of unshare: the init, PID 1 inside.
func (in *instance) findInit() error {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if pid := childOf(in.cmd.Process.Pid); pid > 0 {
			in.pid = pid
			return nil
		}
	}
	return in.failure(errors.New("no child of unshare found"))
}

// childOf is the first process in /proc whose parent is ppid, or 0.
func childOf(ppid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

// stop kills the whole namespace (if still there) and collects unshare.
func (in *instance) stop() {
	if in.done {
		return
	}
	if in.pid > 0 {
		unix.Kill(in.pid, unix.SIGKILL)
	}
	in.cmd.Process.Kill()
	in.wait()
}

// wait collects unshare (once) and frees the instance's fds; it returns
// unshare's error (an exit status other than 0 is one).
func (in *instance) wait() error {
	if !in.done {
		in.done = true
		in.err = in.cmd.Wait()
		in.pid = 0
		unix.Close(in.out)
		in.errf.Close()
	}
	return in.err
}

// failure adds what unshare, the init and the child wrote on stderr to err.
func (in *instance) failure(err error) error {
	b := make([]byte, 2048)
	n, _ := in.errf.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return fmt.Errorf("%w; stderr: %s", err, strings.ReplaceAll(s, "\n", " / "))
	}
	return err
}

// pollIn waits until fd is readable, for at most timeout.
func pollIn(fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("timed out")
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

// readByte reads one byte of fd, waiting at most timeout.
func readByte(fd int, timeout time.Duration) error {
	if err := pollIn(fd, timeout); err != nil {
		return err
	}
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return errors.New("end of file")
		}
		return nil
	}
}

// taskSwitches sums the voluntary and involuntary context switches of every
// thread of pid, by thread id.
func taskSwitches(pid int) (map[int]int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64)
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread is gone
		}
		var sum int64
		for _, l := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
		out[tid] = sum
	}
	return out, nil
}

// switchesBetween is the context switches made from before to after; a
// thread born in between counts from 0, one that died in between is lost.
func switchesBetween(before, after map[int]int64) int64 {
	var d int64
	for tid, n := range after {
		d += n - before[tid]
	}
	return d
}

// memory reads Rss and Pss (KiB) from /proc/PID/smaps_rollup.
func memory(pid int) (rss, pss float64, err error) {
	m, err := smapsRollup(pid)
	if err != nil {
		return 0, 0, err
	}
	rss, ok1 := m["Rss:"]
	pss, ok2 := m["Pss:"]
	if !ok1 || !ok2 {
		return 0, 0, errors.New("no Rss or Pss in smaps_rollup")
	}
	return rss, pss, nil
}

// anonymous is the private anonymous memory of pid (KiB): its heap, stacks
// and written data. The rest of its RSS is the binary's clean pages, which
// every container of one image shares and the kernel can reclaim.
func anonymous(pid int) (float64, error) {
	m, err := smapsRollup(pid)
	if err != nil {
		return 0, err
	}
	v, ok := m["Anonymous:"]
	if !ok {
		return 0, errors.New("no Anonymous in smaps_rollup")
	}
	return v, nil
}

// smapsRollup reads /proc/PID/smaps_rollup: each "Name:" and its value.
func smapsRollup(pid int) (map[string]float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	return m, nil
}

// threads is the number of threads of pid.
func threads(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(ents)
}
