package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openDir is a directory that any user can enter and write: t.TempDir's
// parent is root's alone.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-open-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestServiceRunsAsUser(t *testing.T) {
	dir := openDir(t)
	cfg := config(t, dir, `{"services": [
		{"name": "n", "command": "id -u > $D/id; id -g >> $D/id; echo $HOME >> $D/id", "user": "nobody", "oneshot": true},
		{"name": "u", "command": "id -u > $D/id2; id -G >> $D/id2", "user": "65534:65534", "oneshot": true}
	]}`)
	code, stderr := run(t, modes[0], opts{}, "-c", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := lines(filepath.Join(dir, "id")); len(got) < 2 || got[0] != "65534" || got[1] != "65534" {
		t.Errorf("user nobody ran as %q", got)
	}
	if got := lines(filepath.Join(dir, "id2")); len(got) != 2 || got[0] != "65534" || got[1] != "65534" {
		t.Errorf("uid:gid ran as %q (want no supplementary groups of root)", got)
	}
}

func TestUnknownUserIsAConfigError(t *testing.T) {
	cfg := config(t, t.TempDir(), `{"services": [{"name": "a", "command": ["true"], "user": "no-such-user-vigil"}]}`)
	code, stderr := run(t, modes[1], opts{}, "check", "-c", cfg)
	if code != 78 || !strings.Contains(stderr, "no-such-user-vigil") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestNonRootVigilRefusesOtherUser(t *testing.T) {
	dir := openDir(t)
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["true"], "user": "root"}]}`)
	os.Chmod(cfg, 0o644)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", vigilBin, "check", "-c", cfg)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 78 || !strings.Contains(string(out), "cannot switch") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestReadinessChecks(t *testing.T) {
	tests := []struct{ name, db string }{
		{"tcp", `{"name": "db", "command": ["$T", "listen", "127.0.0.1:PORT", "200"], "ready": {"tcp": "127.0.0.1:PORT", "timeout": "20s"}}`},
		{"exec", `{"name": "db", "command": "sleep 0.2; touch $D/flag; exec sleep 100", "ready": {"exec": ["test", "-e", "$D/flag"], "timeout": "20s"}}`},
		{"notify_fd", `{"name": "db", "command": "sleep 0.2; touch $D/flag; echo ready >&3; exec sleep 100", "ready": {"notify_fd": 3, "timeout": "20s"}}`},
		{"file", `{"name": "db", "command": "sleep 0.2; touch $D/flag; exec sleep 100", "ready": {"file": "$D/flag", "timeout": "20s"}}`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := strings.ReplaceAll(tc.db, "PORT", strconv.Itoa(41000+i+os.Getpid()%1000*4))
			cfg := config(t, dir, `{"services": [`+db+`,
				{"name": "web", "command": "echo started > $D/web; exec sleep 100", "depends_on": ["db"]}]}`)
			v := start(t, modes[0], opts{}, "-c", cfg)
			waitFor(t, 20*time.Second, "web started", func() bool { return len(lines(filepath.Join(dir, "web"))) > 0 })
			if tc.name != "tcp" {
				if _, err := os.Stat(filepath.Join(dir, "flag")); err != nil {
					t.Errorf("web started before db was ready")
				}
			}
			if !strings.Contains(v.stderr.String(), "ready service=db") {
				t.Errorf("no readiness log line")
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

func TestReadinessTimeoutFailsTheRun(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "slow", "command": "echo run >> $D/runs; exec sleep 100", "ready": {"file": "$D/never", "timeout": "200ms"}, "max_retries": 1, "backoff": {"initial": "10ms"}},
		{"name": "web", "command": "touch $D/web-ran; exec sleep 100", "depends_on": ["slow"]}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 20*time.Second, "slow given up", func() bool { return strings.Contains(v.stderr.String(), "given up service=slow") })
	if n := len(lines(filepath.Join(dir, "runs"))); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	if !strings.Contains(v.stderr.String(), "not ready in time") {
		t.Errorf("no timeout log line")
	}
	waitFor(t, 10*time.Second, "web blocked", func() bool { return strings.Contains(v.stderr.String(), "blocked") })
	if _, err := os.Stat(filepath.Join(dir, "web-ran")); err == nil {
		t.Errorf("dependent started")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestRespawnLimitDelaysRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "crash", "command": "echo run >> $D/runs; exit 1", "max_retries": -1, "backoff": {"initial": "1ms", "max": "1ms", "jitter": 0}}
	], "respawn_limit": "2/1s"}`)
	began := time.Now()
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 30*time.Second, "6 runs", func() bool { return len(lines(filepath.Join(dir, "runs"))) >= 6 })
	took := time.Since(began)
	// The first run and two restarts are free; each later restart waits for
	// a token, refilled every 500ms: runs 4, 5 and 6 need 1.5s at least.
	if took < 1400*time.Millisecond {
		t.Errorf("6 runs in %s: the respawn limit did not hold", took)
	}
	if !strings.Contains(v.stderr.String(), "respawn limit reached: restart delayed service=crash") {
		t.Errorf("no respawn-limit log line")
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestStableRunResetsRetries(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "s", "command": "echo run >> $D/runs; sleep 0.2; exit 1", "stable_after": "50ms", "max_retries": 1}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 30*time.Second, "4 runs", func() bool { return len(lines(filepath.Join(dir, "runs"))) >= 4 })
	if strings.Contains(v.stderr.String(), "given up") {
		t.Errorf("stable runs were counted as failures")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestRestartPolicies(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "ok", "command": "echo run >> $D/ok; exit 0", "restart": "on-failure"},
		{"name": "never", "command": "echo run >> $D/never; exit 5", "restart": "never"},
		{"name": "keep", "command": ["sleep", "100"]}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 15*time.Second, "never given up", func() bool {
		return strings.Contains(v.stderr.String(), "will not restart service=never")
	})
	waitFor(t, 15*time.Second, "ok exited", func() bool { return strings.Contains(v.stderr.String(), "exited service=ok") })
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, f := range []string{"ok", "never"} {
		if n := len(lines(filepath.Join(dir, f))); n != 1 {
			t.Errorf("%s ran %d times, want once", f, n)
		}
	}
}

func TestPlainArrayFormAndServicesVariable(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `[{"name": "a", "command": "echo file > $D/a; exec sleep 100"}]`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 15*time.Second, "a ran", func() bool { return len(lines(filepath.Join(dir, "a"))) > 0 })
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)

	// VIGIL_SERVICES replaces the file's services.
	services := strings.ReplaceAll(`[{"name": "b", "command": "echo env >> $D/b; exec sleep 100"}]`, "$D", dir)
	v = start(t, modes[0], opts{env: []string{"VIGIL_SERVICES=" + services}}, "-c", cfg)
	waitFor(t, 15*time.Second, "b ran", func() bool { return len(lines(filepath.Join(dir, "b"))) > 0 })
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	if n := len(lines(filepath.Join(dir, "a"))); n != 1 {
		t.Errorf("the file's service ran although VIGIL_SERVICES replaced it")
	}
	// No file at all: VIGIL_SERVICES alone is supervisor mode.
	v = start(t, modes[0], opts{env: []string{"VIGIL_SERVICES=" + services}})
	waitFor(t, 15*time.Second, "b ran again", func() bool { return len(lines(filepath.Join(dir, "b"))) > 1 })
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestEscapedProcessesAreStopped(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": "setsid sleep 1000 & echo $! > $D/escaped; exec $T record $D/rec"}
	], "shutdown_timeout": "20s"}`)
	v := start(t, modes[1], opts{}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	pid, _ := strconv.Atoi(lines(filepath.Join(dir, "escaped"))[0])
	// On a loaded machine setsid may not have run yet: until it has, the
	// process is still in the service's group and would get its TERM.
	waitFor(t, 30*time.Second, "the process to leave the service's session", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		return strings.HasPrefix(string(b), "sleep")
	})
	began := time.Now()
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if st, alive := readStat(pid); alive && st.state != 'Z' {
		t.Errorf("escaped process %d survived vigil", pid)
	}
	if !strings.Contains(v.stderr.String(), "outside the services' groups") {
		t.Errorf("no log line about escaped processes")
	}
}

// TestInheritedDescriptorsReachOnlyMain: a descriptor vigil's parent left
// open (fd 3 on a root-only file) reaches the main process, as under tini,
// but no service: services get 0-2 and what their config gives them.
func TestInheritedDescriptorsReachOnlyMain(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			secret := filepath.Join(dir, "secret")
			if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(secret)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cfg := config(t, dir, `{"services": [
				{"name": "svc", "command": "ls -l /proc/$$/fd > $D/svcfds; exec sleep 1000"}
			]}`)
			v := start(t, m, opts{
				env:   []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")},
				setup: func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} },
			}, "-c", cfg, "--", "sh", "-c", "ls -l /proc/$$/fd > "+dir+"/mainfds; exec sleep 1000")
			waitFor(t, 20*time.Second, "both listed", func() bool {
				return len(lines(filepath.Join(dir, "svcfds"))) > 0 && len(lines(filepath.Join(dir, "mainfds"))) > 0
			})
			has := func(file string) bool {
				for _, l := range lines(file) {
					if strings.HasSuffix(l, " 3 -> "+secret) {
						return true
					}
				}
				return false
			}
			if !has(filepath.Join(dir, "mainfds")) {
				t.Errorf("main did not get fd 3: %v", lines(filepath.Join(dir, "mainfds")))
			}
			if has(filepath.Join(dir, "svcfds")) {
				t.Errorf("a service got vigil's inherited fd 3: %v", lines(filepath.Join(dir, "svcfds")))
			}
			v.signal(unix.SIGTERM)
			v.wait(20 * time.Second)
		})
	}
}

// TestStopTakesEscapedDescendants: `vigil stop` returns once the service's
// whole tree is gone, a child that called setsid (left the group) included.
func TestStopTakesEscapedDescendants(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [
		{"name": "svc", "command": "setsid sleep 1000 & echo $! > $D/escaped; exec sleep 1000"}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 20*time.Second, "the escaped child", func() bool { return len(lines(filepath.Join(dir, "escaped"))) > 0 })
	pid := lines(filepath.Join(dir, "escaped"))[0]
	// Its pid in vigil's namespace: find the host pid by the escaped sleep's
	// session (it leads its own).
	var host int
	waitFor(t, 10*time.Second, "the escaped child in /proc", func() bool {
		for _, p := range descendantsOf(v.pid()) {
			if nsPid(p) == pid {
				host = p
				return true
			}
		}
		return false
	})
	if code, _, errs := ctl(t, sock, "stop", "svc"); code != 0 {
		t.Fatalf("stop: exit %d %s", code, errs)
	}
	if st, ok := readStat(host); ok && st.state != 'Z' {
		t.Errorf("vigil stop returned with the setsid child %d still running (%c)", host, st.state)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// descendantsOf lists the descendants of pid (host PIDs).
func descendantsOf(pid int) []int {
	var out []int
	for _, c := range children(pid) {
		out = append(out, c)
		out = append(out, descendantsOf(c)...)
	}
	return out
}

// nsPid is a process's PID in its own (innermost) namespace.
func nsPid(pid int) string {
	for _, l := range lines("/proc/" + strconv.Itoa(pid) + "/status") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			f := strings.Fields(v)
			return f[len(f)-1]
		}
	}
	return ""
}
