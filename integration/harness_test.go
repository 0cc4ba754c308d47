// Package integration runs the real vigil binary the way users do: as PID 1
// of a fresh PID namespace (unshare --pid --fork --mount-proc --kill-child)
// and as a plain child, and checks what they see: exit codes, signals that
// arrive, zombies in /proc.
package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	vigilBin string // the binary under test
	testProg string // integration/testprog
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// vigil keeps a HUP or INT its parent ignored ignored (nohup): started
	// in the background by a script, or under nohup, the tests would hand
	// it that and see those signals vanish. A handler here makes every
	// child start with the default; tests that want them ignored say so.
	for _, s := range []os.Signal{unix.SIGHUP, unix.SIGINT} {
		if signal.Ignored(s) {
			signal.Notify(make(chan os.Signal, 1), s)
		}
	}
	vigilBin = os.Getenv("VIGIL_TEST_BIN")
	if vigilBin == "" {
		vigilBin = filepath.Join(dir, "vigil")
		build(vigilBin, "../cmd/vigil")
	}
	testProg = filepath.Join(dir, "testprog")
	build(testProg, "./testprog")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a static binary the way `make build` does.
func build(out, pkg string) {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
		os.Exit(1)
	}
}

// mode is how vigil is started: as PID 1 of a new PID namespace, or as a
// plain child of the test (then it is a child subreaper).
type mode struct {
	name string
	pid1 bool
}

var modes = []mode{{"pid1", true}, {"child", false}}

// vigil is one running vigil.
type vigil struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	code   int
	pid1   bool
	vpid   int // vigil's PID as seen from the test, once known
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opts adjust how a vigil is started.
type opts struct {
	env   []string
	setup func(*exec.Cmd) // e.g. to attach a terminal or extra files
}

// start runs vigil with args and returns once its process exists. The
// environment is the test's, plus GODEBUG=asyncpreemptoff=1 for testprog.
func start(t *testing.T, m mode, o opts, args ...string) *vigil {
	t.Helper()
	var cmd *exec.Cmd
	if m.pid1 {
		cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", vigilBin}, args...)...)
	} else {
		cmd = exec.Command(vigilBin, args...)
	}
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	cmd.Env = append(cmd.Env, o.env...)
	v := &vigil{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{}), pid1: m.pid1}
	cmd.Stderr = v.stderr
	// Leftover grandchildren may hold stderr open; do not wait on them.
	cmd.WaitDelay = 3 * time.Second
	if o.setup != nil {
		o.setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vigil: %v", err)
	}
	go func() {
		cmd.Wait()
		v.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			v.code = 128 + int(ws.Signal())
		}
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			killTree(cmd.Process.Pid)
			<-v.done
		}
		if t.Failed() {
			t.Logf("vigil stderr:\n%s", v.stderr.String())
		}
	})
	return v
}

// pid is vigil's PID as the test sees it: in pid1 mode, the child unshare
// forked.
func (v *vigil) pid() int {
	v.t.Helper()
	if v.vpid != 0 {
		return v.vpid
	}
	if !v.pid1 {
		v.vpid = v.cmd.Process.Pid
		return v.vpid
	}
	waitFor(v.t, 10*time.Second, "vigil forked by unshare", func() bool {
		if kids := children(v.cmd.Process.Pid); len(kids) == 1 {
			v.vpid = kids[0]
		}
		return v.vpid != 0
	})
	return v.vpid
}

// wait returns vigil's exit status, failing the test after timeout.
func (v *vigil) wait(timeout time.Duration) int {
	v.t.Helper()
	select {
	case <-v.done:
		return v.code
	case <-time.After(timeout):
		v.t.Fatalf("vigil still running after %s; stderr:\n%s", timeout, v.stderr.String())
		return -1
	}
}

// signal sends sig to vigil itself (PID 1 of its namespace, in pid1 mode).
func (v *vigil) signal(sig syscall.Signal) {
	v.t.Helper()
	if err := unix.Kill(v.pid(), sig); err != nil {
		v.t.Fatalf("kill %d %v: %v", v.pid(), sig, err)
	}
}

// run starts vigil and waits for its exit status.
func run(t *testing.T, m mode, o opts, args ...string) (int, string) {
	t.Helper()
	v := start(t, m, o, args...)
	code := v.wait(30 * time.Second)
	return code, v.stderr.String()
}

// waitFor polls cond until it holds or the deadline passes. It is for
// conditions only observable from outside (files, /proc), never a fixed sleep.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lines reads file as lines; a missing file has none.
func lines(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func count(list []string, s string) int {
	n := 0
	for _, l := range list {
		if l == s {
			n++
		}
	}
	return n
}

// waitForLine waits until file holds line at least n times.
func waitForLine(t *testing.T, file, line string, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%q x%d in %s", line, n, filepath.Base(file)), func() bool {
		return count(lines(file), line) >= n
	})
}

// waitReady waits for testprog's "ready pid=P ppid=Q" line and returns P.
func waitReady(t *testing.T, file string) int {
	t.Helper()
	pid := 0
	waitFor(t, 30*time.Second, "testprog ready in "+filepath.Base(file), func() bool {
		for _, l := range lines(file) {
			if strings.HasPrefix(l, "ready pid=") {
				pid, _ = strconv.Atoi(strings.Fields(l)[1][len("pid="):])
				return true
			}
		}
		return false
	})
	return pid
}

// procStat is what the tests read of /proc/PID/stat.
type procStat struct {
	state byte
	ppid  int
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return procStat{state: f[0][0], ppid: ppid}, true
}

// children lists the PIDs whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(p); ok && st.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// zombies counts the children of pid that are zombies.
func zombies(pid int) int {
	n := 0
	for _, c := range children(pid) {
		if st, ok := readStat(c); ok && st.state == 'Z' {
			n++
		}
	}
	return n
}

// cmdOutput runs a short command and returns its stdout.
func cmdOutput(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).Output()
	return string(b), err
}

// killTree SIGKILLs pid and every descendant, children first found, so none
// is re-parented away before it is seen.
func killTree(pid int) {
	for _, c := range children(pid) {
		killTree(c)
	}
	unix.Kill(pid, unix.SIGKILL)
}
