package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fileLine is a log file's line: time, stream, text.
var fileLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) (stdout|stderr) (.*)$`)

// logFileTexts reads the files of a rotated log, oldest first (base.N ..
// base.1, base), and returns each line's stream and text; a line not in
// the log file format fails the test.
func logFileTexts(t *testing.T, base string, maxFiles int) (streams, texts []string) {
	t.Helper()
	var files []string
	for i := maxFiles; i >= 1; i-- {
		files = append(files, base+"."+strconv.Itoa(i))
	}
	files = append(files, base)
	for _, f := range files {
		for _, l := range lines(f) {
			m := fileLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("%s: line %q is not TIME STREAM TEXT", filepath.Base(f), l)
			}
			streams, texts = append(streams, m[2]), append(texts, m[3])
		}
	}
	return streams, texts
}

// checkRun fails unless the numbers of the lines "TAG KIND N ..." of kind
// in texts run without a gap or a repeat up to last (from wherever they
// start) and it returns how many there were.
func checkRun(t *testing.T, what string, texts []string, tag, kind string, last int) int {
	t.Helper()
	next, n := -1, 0
	for _, x := range texts {
		f := strings.Fields(x)
		if len(f) < 3 || f[0] != tag || f[1] != kind {
			continue
		}
		i, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("%s: %q", what, x)
		}
		if next >= 0 && i != next {
			t.Fatalf("%s: %s %s %d after %d: a line lost or doubled", what, tag, kind, i, next-1)
		}
		next, n = i+1, n+1
	}
	if next != last+1 {
		t.Fatalf("%s: %s %s lines end at %d, want %d", what, tag, kind, next-1, last)
	}
	return n
}

// TestLogFileRotation: a service printing 300 KB through a log_file of
// max_size 64KiB and max_files 3 leaves four files of at most 64 KiB, 0640,
// whose lines (time, stream, text) run without a gap or a repeat up to the
// last one printed; the service's output still reaches vigil's stdout,
// and `vigil logs` has its last lines.
func TestLogFileRotation(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	const n = 1500 // lines of 100 bytes on each stream: 300 KB
	cfg := config(t, dir, `{"services": [
		{"name": "web", "command": "$T lines `+strconv.Itoa(n)+` web 100; exec sleep 1000", "log": "prefix",
		 "log_file": {"path": "$D/logs/web.log", "max_size": "64KiB", "max_files": 3}}
	]}`)
	var stdout syncBuffer
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
	base := filepath.Join(dir, "logs", "web.log")
	last := fmt.Sprintf("web %%s %d ", n-1)
	// The two streams are copied by two pumps at their own pace: the last
	// line in the ring is among the last few of the files (the pumps may
	// put their lines into the ring and the file's queue in another order).
	var lastLine string
	waitFor(t, 30*time.Second, "both streams' last lines in the ring", func() bool {
		_, out, _ := ctl(t, sock, "logs", "-n", "3000", "web")
		ring := strings.Split(strings.TrimSpace(out), "\n")
		lastLine = ring[len(ring)-1]
		return strings.Contains(out, fmt.Sprintf(last, "out")) && strings.Contains(out, fmt.Sprintf(last, "err"))
	})
	var tail []string
	defer func() {
		if t.Failed() {
			t.Logf("ring's last %q; files end with %q", lastLine, tail)
		}
	}()
	waitFor(t, 30*time.Second, "the ring's last line at the end of the files", func() bool {
		_, texts := logFileTexts(t, base, 3)
		tail = texts[max(0, len(texts)-4):]
		for _, x := range tail {
			if x == lastLine {
				return true
			}
		}
		return false
	})
	for i := 1; i <= 3; i++ {
		checkLogFile(t, base+"."+strconv.Itoa(i), 0, 0)
	}
	checkLogFile(t, base, 0, 0)
	if _, err := os.Lstat(base + ".4"); err == nil {
		t.Errorf("web.log.4 exists: max_files is 3")
	}
	streams, texts := logFileTexts(t, base, 3)
	// A stream that finished first may have been rotated away whole; the
	// lines of each that are kept run without a gap to its last.
	kept := 0
	for _, kind := range []string{"out", "err"} {
		if strings.Contains(strings.Join(texts, "\n"), "web "+kind+" ") {
			kept += checkRun(t, "log files", texts, "web", kind, n-1)
		}
	}
	// Three full files of 64 KiB and the current one hold 1500 to 2000
	// of the 3000 lines of 132 bytes.
	if kept < 3*(64<<10)/132 || kept > 4*(64<<10)/132 {
		t.Errorf("%d lines kept in web.log..web.log.3, want 1489 to 1985", kept)
	}
	for i, x := range texts {
		if want := map[string]string{"out": "stdout", "err": "stderr"}[strings.Fields(x)[1]]; streams[i] != want {
			t.Fatalf("%q filed as %s", x, streams[i])
		}
	}
	t.Logf("%d lines kept in web.log..web.log.3", kept)

	// The destination is untouched by the file: every line, prefixed.
	waitFor(t, 10*time.Second, "the last line on stdout", func() bool {
		return strings.Contains(stdout.String(), "web | "+fmt.Sprintf(last, "out"))
	})
	outLines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	for i := range outLines {
		outLines[i] = strings.TrimPrefix(outLines[i], "web | ")
	}
	if got := checkRun(t, "stdout", outLines, "web", "out", n-1); got != n {
		t.Errorf("stdout has %d lines, want %d", got, n)
	}

	code, out, errs := ctl(t, sock, "logs", "-n", "4", "web")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, fmt.Sprintf(" %d ", n-1)) {
		t.Errorf("vigil logs -n 4 web: exit %d, %q, %q", code, out, errs)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("vigil exit %d", code)
	}
}

// checkLogFile fails unless path is a regular file of at most 64 KiB, mode
// 0640, owned by uid:gid.
func checkLogFile(t *testing.T, path string, uid, gid int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o640 {
		t.Errorf("%s: mode %o, want a regular file 0640", filepath.Base(path), st.Mode)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: owned by %d:%d, want %d:%d", filepath.Base(path), st.Uid, st.Gid, uid, gid)
	}
	if st.Size == 0 || st.Size > 64<<10 {
		t.Errorf("%s: %d bytes, want 1 to 64 KiB", filepath.Base(path), st.Size)
	}
}

// TestLogFileOwnedByServiceUser: the log file of a service run as nobody
// is created 0640 owned by nobody and nobody's group; its `log: inherit`
// output passes through vigil unprefixed.
func TestLogFileOwnedByServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a service as nobody")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [
		{"name": "nob", "user": "nobody", "command": "echo I am $(id -u); exec sleep 1000", "log_file": "$D/nob.log"}
	]}`)
	var stdout syncBuffer
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
	path := filepath.Join(dir, "nob.log")
	waitFor(t, 20*time.Second, "the line in the log file", func() bool { return len(lines(path)) > 0 })
	uid, gid := nobody(t)
	checkLogFile(t, path, uid, gid)
	if got := lines(path); len(got) != 1 || !strings.HasSuffix(got[0], " stdout I am "+strconv.Itoa(uid)) {
		t.Errorf("log file: %q", got)
	}
	waitFor(t, 10*time.Second, "the line on stdout", func() bool { return strings.Contains(stdout.String(), "I am") })
	if got := stdout.String(); got != "I am "+strconv.Itoa(uid)+"\n" {
		t.Errorf("inherit output through vigil: %q, want it as written", got)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// nobody is the uid and gid of the user nobody.
func nobody(t *testing.T) (int, int) {
	t.Helper()
	for _, l := range lines("/etc/passwd") {
		f := strings.Split(l, ":")
		if len(f) > 3 && f[0] == "nobody" {
			uid, _ := strconv.Atoi(f[2])
			gid, _ := strconv.Atoi(f[3])
			return uid, gid
		}
	}
	t.Skip("no user nobody")
	return 0, 0
}

// TestLogsVerb: `vigil logs -n` gives the last lines of each service,
// prefixed when several are named; an unknown name exits 1; a service whose
// output does not pass through vigil is said to keep none; `-f` follows
// new lines until interrupted, then exits 0.
func TestLogsVerb(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": "echo a1; echo a2; echo a3; exec sleep 1000", "log": "prefix"},
		{"name": "tick", "command": "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done", "log": "prefix"},
		{"name": "quiet", "command": "exec sleep 1000"}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 20*time.Second, "a's lines and two of tick's", func() bool {
		_, a, _ := ctl(t, sock, "logs", "a")
		_, tick, _ := ctl(t, sock, "logs", "tick")
		return strings.Count(a, "\n") == 3 && strings.Count(tick, "\n") >= 2
	})
	for _, tt := range []struct {
		args       []string
		code       int
		out, errs  string
		outNewline int
	}{
		{[]string{"logs", "a"}, 0, "a1\na2\na3\n", "", 3},
		{[]string{"logs", "-n", "1", "a"}, 0, "a3\n", "", 1},
		{[]string{"logs", "-n", "0", "a"}, 0, "", "", 0},
		{[]string{"logs", "nope"}, 1, "", `unknown service "nope"`, 0},
		{[]string{"logs", "quiet"}, 1, "", "does not pass through vigil", 0},
		{[]string{"logs", "-n", "1", "a", "quiet"}, 0, "a | a3\n", "quiet: its output does not pass through vigil", 1},
	} {
		code, out, errs := ctl(t, sock, tt.args...)
		if code != tt.code || out != tt.out || !strings.Contains(errs, tt.errs) {
			t.Errorf("vigil %s: exit %d, %q, %q; want %d, %q, %q", strings.Join(tt.args, " "), code, out, errs, tt.code, tt.out, tt.errs)
		}
	}
	// Several names: every line says whose it is.
	code, out, _ := ctl(t, sock, "logs", "-n", "2", "a", "tick")
	if code != 0 || strings.Count(out, "a | ") != 2 || strings.Count(out, "tick | tick ") != 2 {
		t.Errorf("vigil logs -n 2 a tick: exit %d, %q", code, out)
	}

	// -f: consecutive new lines as they come, until Ctrl-C.
	cmd := exec.Command(vigilBin, "logs", "-f", "-n", "1", "tick")
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	got := make(chan string)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	prev := -1
	for range 10 {
		select {
		case l := <-got:
			i, err := strconv.Atoi(strings.TrimPrefix(l, "tick "))
			if err != nil || prev >= 0 && i != prev+1 {
				t.Fatalf("vigil logs -f: %q after tick %d", l, prev)
			}
			prev = i
		case <-time.After(20 * time.Second):
			t.Fatal("vigil logs -f: no new line")
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	for range got {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("vigil logs -f after Ctrl-C: %v, want exit 0", err)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestLogsAcrossReexec: a chatty service's ring and log file go on across
// re-execs with no line lost or doubled, and a follower goes on with the
// new image.
func TestLogsAcrossReexec(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [
		{"name": "c", "command": "i=0; while :; do echo c out $i; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.01; done", "log": "prefix",
		 "log_file": {"path": "$D/c.log", "max_size": "100MiB"}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 20*time.Second, "c's lines", func() bool { return len(lines(filepath.Join(dir, "c.log"))) > 100 })
	follow := exec.Command(vigilBin, "logs", "-f", "-n", "0", "c")
	follow.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
	var followed syncBuffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	waitFor(t, 20*time.Second, "the follower's first lines", func() bool { return strings.Count(followed.String(), "\n") > 10 })
	adopted := regexp.MustCompile(`adopted services after re-exec generation=(\d+)`)
	for i := 1; i <= 3; i++ {
		if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
			t.Fatalf("reexec %d: exit %d %s", i, code, errs)
		}
		waitFor(t, 20*time.Second, "generation "+strconv.Itoa(i), func() bool {
			m := adopted.FindAllStringSubmatch(v.stderr.String(), -1)
			return len(m) > 0 && m[len(m)-1][1] == strconv.Itoa(i)
		})
	}
	// Stop the service: its last line is then the last everywhere.
	if code, _, errs := ctl(t, sock, "stop", "c"); code != 0 {
		t.Fatalf("stop: exit %d %s", code, errs)
	}
	_, texts := logFileTexts(t, filepath.Join(dir, "c.log"), 0)
	waitFor(t, 10*time.Second, "the log file to settle", func() bool {
		_, now := logFileTexts(t, filepath.Join(dir, "c.log"), 0)
		settled := len(now) == len(texts)
		texts = now
		return settled
	})
	lastLine := texts[len(texts)-1]
	last, _ := strconv.Atoi(strings.Fields(lastLine)[2])
	if got := checkRun(t, "log file", texts, "c", "out", last); got != last+1 {
		t.Errorf("log file: %d lines, want %d", got, last+1)
	}
	_, out, _ := ctl(t, sock, "logs", "-n", "1000000", "c")
	ring := strings.Split(strings.TrimSpace(out), "\n")
	checkRun(t, "ring", ring, "c", "out", last)
	waitFor(t, 10*time.Second, "the follower to get the last line", func() bool {
		return strings.Contains(followed.String(), lastLine+"\n")
	})
	checkRun(t, "follower", strings.Split(strings.TrimSpace(followed.String()), "\n"), "c", "out", last)
	t.Logf("%d lines across 3 re-execs; ring holds %d", last+1, len(ring))
	follow.Process.Signal(syscall.SIGINT)
	follow.Wait()
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestLogFileReload: a reload that changes a log_file reopens it and keeps
// the service running; one that adds a log_file to `log: inherit` output
// restarts the service, its output now passing through vigil.
func TestLogFileReload(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	doc := `{"services": [
		{"name": "p", "command": "i=0; while :; do echo p $i; i=$((i+1)); sleep 0.02; done", "log": "prefix", "log_file": "$D/%s"},
		{"name": "i", "command": "i=0; while :; do echo i $i; i=$((i+1)); sleep 0.02; done"%s}
	]}`
	cfg := config(t, dir, fmt.Sprintf(doc, "one.log", ""))
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 20*time.Second, "lines in one.log", func() bool { return len(lines(filepath.Join(dir, "one.log"))) > 2 })
	_, pPid, _ := svc(t, sock, "p")
	_, iPid, _ := svc(t, sock, "i")
	if code, _, _ := ctl(t, sock, "logs", "i"); code != 1 {
		t.Errorf("vigil logs i before it has a log_file: exit %d, want 1", code)
	}

	config(t, dir, fmt.Sprintf(doc, "two.log", `, "log_file": "$D/i.log"`))
	if code, _, errs := ctl(t, sock, "reload"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, errs)
	}
	waitFor(t, 20*time.Second, "lines in two.log and i.log", func() bool {
		return len(lines(filepath.Join(dir, "two.log"))) > 2 && len(lines(filepath.Join(dir, "i.log"))) > 2
	})
	if _, pid, _ := svc(t, sock, "p"); pid != pPid {
		t.Errorf("p restarted (pid %d -> %d) for a new log_file path", pPid, pid)
	}
	if _, pid, _ := svc(t, sock, "i"); pid == iPid {
		t.Errorf("i kept pid %d: its output cannot pass through vigil without a restart", pid)
	}
	// p's lines go on in two.log where they stopped in one.log.
	_, one := logFileTexts(t, filepath.Join(dir, "one.log"), 0)
	_, two := logFileTexts(t, filepath.Join(dir, "two.log"), 0)
	lastOne, _ := strconv.Atoi(strings.Fields(one[len(one)-1])[1])
	if firstTwo, _ := strconv.Atoi(strings.Fields(two[0])[1]); firstTwo != lastOne+1 {
		t.Errorf("one.log ends at p %d, two.log starts at p %d", lastOne, firstTwo)
	}
	if code, out, _ := ctl(t, sock, "logs", "-n", "1", "i"); code != 0 || !strings.HasPrefix(out, "i ") {
		t.Errorf("vigil logs i after the reload: exit %d, %q", code, out)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestLogFileFullDisk: a log file on a full filesystem is logged once,
// its lost lines are counted in status, and neither the service nor its
// lines to stdout or to `vigil logs` wait or go missing.
func TestLogFileFullDisk(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	sock := filepath.Join(dir, "sock")
	const n = 2000 // lines of 100 bytes on each stream: 400 KB for a 64 KiB disk
	cfg := config(t, dir, `{"services": [
		{"name": "web", "command": "$T lines `+strconv.Itoa(n)+` web 100; echo done; exec sleep 1000", "log": "prefix",
		 "log_file": {"path": "$D/small/web.log", "max_size": "1MiB", "max_files": 0}}
	]}`)
	var stdout syncBuffer
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
	waitFor(t, 30*time.Second, "the service's last line on stdout", func() bool { return strings.Contains(stdout.String(), "web | done\n") })
	outLines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	for i := range outLines {
		outLines[i] = strings.TrimPrefix(outLines[i], "web | ")
	}
	if got := checkRun(t, "stdout", outLines, "web", "out", n-1); got != n {
		t.Errorf("stdout has %d lines, want %d", got, n)
	}
	waitFor(t, 10*time.Second, "every line in the ring", func() bool {
		_, out, _ := ctl(t, sock, "logs", "-n", "5000", "web")
		return strings.Count(out, "\n") == 2*n+1 && strings.Contains(out, "\ndone\n")
	})
	// The lines written whole; a line cut by ENOSPC counts as dropped.
	kept := func() uint64 {
		b, _ := os.ReadFile(filepath.Join(mnt, "web.log"))
		return uint64(strings.Count(string(b), "\n"))
	}
	var dropped uint64
	waitFor(t, 10*time.Second, "every line written or counted as dropped", func() bool {
		_, out, _ := ctl(t, sock, "status", "--json")
		var st struct {
			Services []struct {
				Dropped uint64 `json:"log_file_dropped"`
			} `json:"services"`
		}
		if json.Unmarshal([]byte(out), &st) != nil || len(st.Services) != 1 {
			return false
		}
		dropped = st.Services[0].Dropped
		return dropped > 0 && kept()+dropped == 2*n+1
	})
	if c := strings.Count(v.stderr.String(), "cannot write the log file"); c != 1 {
		t.Errorf("the full disk was logged %d times, want once", c)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("vigil exit %d", code)
	}
}

// TestLogFileWrittenOutAtExit: the last lines of a oneshot are in its log
// file once vigil, which exits when every service has finished, is gone.
func TestLogFileWrittenOutAtExit(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "once", "oneshot": true, "command": "$T lines 3000 once", "log_file": "$D/once.log"}
	]}`)
	code, _ := run(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}}, "-c", cfg)
	if code != 0 {
		t.Fatalf("vigil exit %d", code)
	}
	_, texts := logFileTexts(t, filepath.Join(dir, "once.log"), 0)
	if n := checkRun(t, "log file", texts, "once", "out", 2999) + checkRun(t, "log file", texts, "once", "err", 2999); n != 6000 {
		t.Errorf("%d lines in the log file, want 6000", n)
	}
}
