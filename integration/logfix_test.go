package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// asNobodyVigil makes start run a copy of vigil (in dir, which uid 65534
// can reach) as uid/gid 65534.
func asNobodyVigil(vig string) func(*exec.Cmd) {
	return func(c *exec.Cmd) {
		c.Path, c.Args[0] = vig, vig
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	}
}

// TestNonRootVigilIsNotDumpable: a non-root vigil's environment holds its
// services' secrets; a service of the same uid must not read it (nor
// ptrace vigil), before or after a re-exec, and the control verbs of that
// uid must still work.
func TestNonRootVigilIsNotDumpable(t *testing.T) {
	dir := openDir(t)
	vig := copyExe(t, vigilBin, dir)
	sock := filepath.Join(dir, "vigil.sock")
	services := strings.ReplaceAll(`[{"name": "spy", "env": {"DB_PASSWORD": "hunter2"},
	  "command": "if cat /proc/$PPID/environ > $D/environ 2>/dev/null; then echo readable; else echo refused; fi >> $D/spy; exec sleep 1000"}]`, "$D", dir)
	env := []string{"VIGIL_SOCKET=" + sock, "VIGIL_STATE_DIR=none", "VIGIL_SERVICES=" + services}
	v := start(t, modes[1], opts{env: env, setup: asNobodyVigil(vig)})
	spy := filepath.Join(dir, "spy")
	waitFor(t, 15*time.Second, "spy's first look", func() bool { return len(lines(spy)) == 1 })
	if code, out := asNobody(t, env, vig, "reexec"); code != 0 {
		t.Fatalf("vigil reexec as uid 65534: exit %d %s", code, out)
	}
	waitFor(t, 15*time.Second, "the re-exec", func() bool {
		return strings.Contains(v.stderr.String(), "adopted services after re-exec generation=1")
	})
	if code, out := asNobody(t, env, vig, "restart", "spy"); code != 0 {
		t.Fatalf("vigil restart as uid 65534: exit %d %s", code, out)
	}
	waitFor(t, 15*time.Second, "spy's second look", func() bool { return len(lines(spy)) == 2 })
	if code, out := asNobody(t, env, vig, "status"); code != 0 || !strings.Contains(out, "spy") {
		t.Errorf("vigil status as uid 65534: exit %d %s", code, out)
	}
	if got := lines(spy); got[0] != "refused" || got[1] != "refused" {
		t.Errorf("a service of vigil's uid read /proc/<vigil>/environ (before, after re-exec): %q", got)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// junkFilter keeps the lines of a stream that do not start with "junk ":
// a flood's lines would take gigabytes to keep.
type junkFilter struct {
	mu      sync.Mutex
	partial []byte
	kept    bytes.Buffer
	junk    int
}

func (f *junkFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		if line := f.partial[:i+1]; bytes.HasPrefix(line, []byte("junk ")) {
			f.junk++
		} else {
			f.kept.Write(line)
		}
		f.partial = f.partial[i+1:]
	}
	f.partial = append([]byte(nil), f.partial...)
	return len(p), nil
}

func (f *junkFilter) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kept.String() + string(f.partial)
}

// TestNonblockFloodLosesNoLine: a log: inherit service sets O_NONBLOCK on
// the stdout and stderr it shares with vigil and floods them. vigil's own
// log lines (all of which VIGIL_LOG_FILE holds too) and another service's
// prefixed lines must all arrive, whole, none dropped on EAGAIN.
func TestNonblockFloodLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "vigil.log")
	const counted = 2000
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "flood", "command": ["$C", "nonblock-flood", "67108864", "$D/flood"], "restart": "never"},
		{"name": "count", "command": "i=0; while [ $i -lt `+strconv.Itoa(counted)+` ]; do echo n $i; i=$((i+1)); done", "log": "prefix", "restart": "never"},
		{"name": "chatter", "command": ["false"], "max_retries": 40, "backoff": {"initial": "1ms", "max": "1ms", "jitter": 0}}
	], "respawn_limit": "0"}`)
	var stdout, stderr junkFilter
	v := start(t, modes[0], opts{env: []string{"VIGIL_LOG_FILE=" + logFile, "VIGIL_STATE_DIR=none", "VIGIL_SOCKET=" + filepath.Join(dir, "sock")},
		setup: func(c *exec.Cmd) { c.Stdout, c.Stderr = &stdout, &stderr }}, "-c", cfg)
	waitFor(t, 60*time.Second, "the flood to end", func() bool { return len(lines(filepath.Join(dir, "flood"))) == 1 })
	waitFor(t, 30*time.Second, "chatter to give up", func() bool {
		b, _ := os.ReadFile(logFile)
		return bytes.Contains(b, []byte("given up service=chatter"))
	})
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	next := 0
	for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		if l != "count | n "+strconv.Itoa(next) {
			t.Fatalf("stdout: %q after line %d", l, next-1)
		}
		next++
	}
	if next != counted {
		t.Errorf("%d of %d prefixed lines arrived", next, counted)
	}
	got := map[string]bool{}
	for _, l := range strings.Split(stderr.String(), "\n") {
		got[l] = true
	}
	own, lost := lines(logFile), 0
	for _, l := range own {
		if !got[l] {
			lost++
			if lost < 5 {
				t.Errorf("vigil's line %q is missing from its stderr", l)
			}
		}
	}
	if lost > 0 || len(own) < 100 {
		t.Errorf("%d of vigil's %d log lines lost", lost, len(own))
	}
	figure(t, "flood of %d junk lines on the shared, non-blocking stdout/stderr: %d/%d prefixed lines and %d/%d of vigil's own lines arrived",
		stdout.junk+stderr.junk, next, counted, len(own)-lost, len(own))
}

// TestStalledStderrDoesNotStopVigil: when whatever reads vigil's stderr
// stops reading, the supervisor goes on: status, ready and SIGTERM are
// answered; the lines that did not fit are counted and the count reported
// once the reader is back.
func TestStalledStderrDoesNotStopVigil(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cfg := config(t, dir, `{"services": [
		{"name": "steady", "command": ["sleep", "1000"]},
		{"name": "crashloop", "command": ["false"], "max_retries": -1, "backoff": {"initial": "1ms", "max": "1ms", "jitter": 0}}
	], "respawn_limit": "0"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock, "VIGIL_STATE_DIR=none"},
		setup: func(c *exec.Cmd) { c.Stderr = pw }}, "-c", cfg)
	pw.Close()
	// The pipe is full: nobody reads it.
	waitFor(t, 60*time.Second, "vigil's stderr pipe to fill", func() bool { return pipeBytes(t, pr) >= 32768 })
	// More lines than vigil queues: some must be dropped. (The crash loop
	// logs 3 lines a run.)
	restarts := func() int { return status(t, sock)["crashloop"].Services[0].Restarts }
	r0 := restarts()
	waitFor(t, 120*time.Second, "2000 more runs of crashloop", func() bool { return restarts() >= r0+2000 })
	for _, verb := range [][]string{{"status"}, {"ready", "steady"}, {"status", "--json"}} {
		if code, out, errs := ctl(t, sock, verb...); code != 0 {
			t.Errorf("vigil %s with its stderr stalled: exit %d %s %s", strings.Join(verb, " "), code, out, errs)
		}
	}
	// The reader is back.
	var got syncBuffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&got, pr)
		close(copied)
	}()
	dropped := regexp.MustCompile(`log lines dropped: stderr was not read count=(\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for !dropped.MatchString(got.String()) {
		if time.Now().After(deadline) {
			out := got.String()
			t.Fatalf("no report of dropped lines in %d bytes; the last:\n%s", len(out), out[max(0, len(out)-2000):])
		}
		time.Sleep(10 * time.Millisecond)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	<-copied
	figure(t, "stderr stalled with %s; status and ready answered; %s", "a crash loop logging", dropped.FindString(got.String()))
}

// TestReexecWithStalledStdout: a service floods prefixed output while
// nothing reads vigil's stdout, so its pump waits in a write. `vigil
// reexec` must still go through, the services keep running, and once the
// reader is back every line arrives once, whole and in order.
func TestReexecWithStalledStdout(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cfg := config(t, dir, `{"services": [
		{"name": "flood", "command": "i=0; while :; do echo line $i; i=$((i+1)); done", "log": "prefix"},
		{"name": "steady", "command": ["sleep", "1000"]}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock, "VIGIL_STATE_DIR=none"},
		setup: func(c *exec.Cmd) { c.Stdout = pw }}, "-c", cfg)
	pw.Close()
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	_, before, _ := svc(t, sock, "flood")
	hostPid := 0
	for _, c := range children(v.pid()) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline"); bytes.Contains(b, []byte("echo line")) {
			hostPid = c
		}
	}
	if hostPid == 0 {
		t.Fatal("flood not found under vigil")
	}
	stalled(t, pr, hostPid)
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: exit %d %s", code, errs)
	}
	waitFor(t, 30*time.Second, "the re-exec", func() bool {
		return strings.Contains(v.stderr.String(), "adopted services after re-exec generation=1")
	})
	if !strings.Contains(v.stderr.String(), "prefixed output is handed over mid-write") {
		t.Errorf("the pump was not interrupted: the test did not stall it")
	}
	if state, after, _ := svc(t, sock, "flood"); after != before || state != "ready" {
		t.Errorf("flood is %s with pid %d, was %d", state, after, before)
	}
	// The reader is back.
	var out syncBuffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, pr)
		close(copied)
	}()
	waitFor(t, 30*time.Second, "output flowing again", func() bool { return strings.Count(out.String(), "\n") > 100000 })
	ctl(t, sock, "stop", "flood")
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	<-copied
	next := 0
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if l != "flood | line "+strconv.Itoa(next) {
			t.Fatalf("%q after line %d", l, next-1)
		}
		next++
	}
	figure(t, "re-exec with vigil's stdout stalled: went through; %d prefixed lines after, none lost, doubled or torn", next)
}

// pipeBytes is how much the pipe read by r holds.
func pipeBytes(t *testing.T, r *os.File) int {
	t.Helper()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stalled waits until the pipe read by r holds data that nobody takes and
// the process pid waits to write to its own output pipe: vigil's pump of
// it is stuck in a write. (A pipe is full when its slots are, at fewer
// bytes than its size, so the byte count alone cannot tell.)
func stalled(t *testing.T, r *os.File, pid int) {
	t.Helper()
	last, same := -1, 0
	waitFor(t, 60*time.Second, "the service and vigil's pump of it to wait for a reader", func() bool {
		n := pipeBytes(t, r)
		wchan, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
		if n == 0 || n != last || !strings.Contains(string(wchan), "pipe_write") {
			last, same = n, 0
			return false
		}
		same++
		return same >= 50
	})
}

// TestReexecWithLogFileReplacedBySymlink: a service that can write the log
// file's directory replaces the file by a symlink to a place of its
// choosing. vigil (root, PID 1) must not create or append to the target; at
// a re-exec it must not die over the refused file either (that would end
// the container): it logs to stderr only and says so. At a first start the
// same file is a config error.
func TestReexecWithLogFileReplacedBySymlink(t *testing.T) {
	dir := openDir(t)
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(logDir, 0o777)
	logFile := filepath.Join(logDir, "vigil.log")
	target := filepath.Join(dir, "root-only", "profile.sh")
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	env := []string{"VIGIL_SOCKET=" + sock, "VIGIL_STATE_DIR=none", "VIGIL_LOG_FILE=" + logFile}
	cfg := config(t, dir, `{"services": [
		{"name": "evil", "command": "rm -f $D/logs/vigil.log && ln -s $D/root-only/profile.sh $D/logs/vigil.log && echo done > $D/evil; exec sleep 1000", "user": "65534:65534"}
	]}`)
	v := start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 15*time.Second, "the symlink", func() bool { return len(lines(filepath.Join(dir, "evil"))) == 1 })
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: exit %d %s", code, errs)
	}
	waitFor(t, 30*time.Second, "the re-exec", func() bool {
		return strings.Contains(v.stderr.String(), "adopted services after re-exec generation=1")
	})
	if !strings.Contains(v.stderr.String(), "cannot open the log file after re-exec; logging to stderr only") ||
		!strings.Contains(v.stderr.String(), "symbolic link") {
		t.Errorf("no word of the refused log file")
	}
	if _, err := os.Lstat(target); err == nil {
		t.Errorf("vigil created the symlink's target %s", target)
	}
	if state, _, _ := svc(t, sock, "evil"); state != "ready" {
		t.Errorf("evil is %s", state)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	// A first start with the same file: a config error, nothing created.
	code, out := run(t, modes[0], opts{env: env}, "--", "true")
	if code != 78 || !strings.Contains(out, "symbolic link") {
		t.Errorf("first start with the log file a symlink: exit %d %q", code, out)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Errorf("vigil created the symlink's target %s", target)
	}
}

// TestSigtermWithStalledStderr: SIGTERM is acted on, and vigil exits, even
// when nothing ever reads its stderr again.
func TestSigtermWithStalledStderr(t *testing.T) {
	dir := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cfg := config(t, dir, `{"services": [
		{"name": "steady", "command": ["sleep", "1000"]},
		{"name": "crashloop", "command": ["false"], "max_retries": -1, "backoff": {"initial": "1ms", "max": "1ms", "jitter": 0}}
	], "respawn_limit": "0"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock"), "VIGIL_STATE_DIR=none"},
		setup: func(c *exec.Cmd) { c.Stderr = pw }}, "-c", cfg)
	pw.Close()
	// Full: the count stops moving while the crash loop goes on logging.
	last, same := -1, 0
	waitFor(t, 60*time.Second, "vigil's stderr pipe to fill", func() bool {
		n := pipeBytes(t, pr)
		if n < 32768 || n != last {
			last, same = n, 0
			return false
		}
		same++
		return same >= 100
	})
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
