package integration

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// healthJSON is one service of status --json with the health fields.
type healthJSON struct {
	Name             string  `json:"name"`
	State            string  `json:"state"`
	Pid              int     `json:"pid"`
	Restarts         int     `json:"restarts"`
	Retries          int     `json:"retries"`
	LastExit         *int    `json:"last_exit"`
	Ready            bool    `json:"ready"`
	Health           *string `json:"health"`
	HealthFailures   int     `json:"health_failures"`
	LastCheckFailure string  `json:"last_check_failure"`
}

func healthStatus(t *testing.T, sock string) map[string]healthJSON {
	t.Helper()
	code, out, errs := ctl(t, sock, "status", "--json")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	var st struct{ Services []healthJSON }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json %q: %v", out, err)
	}
	m := map[string]healthJSON{}
	for _, s := range st.Services {
		m[s.Name] = s
	}
	return m
}

// freeAddr is a loopback address nothing listens on (at the time of asking).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func str(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// TestHealthHungServiceRestarted: a web service that stops answering its
// health check is found unhealthy after failure_threshold attempts, stopped
// with its stop signal, and restarted; the restart is counted and the run
// counts as failed.
func TestHealthHungServiceRestarted(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	web := freeAddr(t)
	rec := filepath.Join(dir, "web")
	cfg := config(t, dir, `{"services": [
		{"name": "web", "command": ["$T", "http", "`+web+`", "$D/web"],
		 "ready": {"tcp": "`+web+`"},
		 "health": {"http": "http://`+web+`/healthz", "interval": "1s", "timeout": "300ms", "failure_threshold": 3},
		 "backoff": {"initial": "100ms"}}
	]}`)
	start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, rec)
	waitFor(t, 15*time.Second, "web ready and healthy", func() bool {
		s := healthStatus(t, sock)["web"]
		return s.Ready && str(s.Health) == "healthy"
	})
	hungAt := time.Now()
	os.WriteFile(rec+".hang", nil, 0o644)
	waitForLine(t, rec, "SIGTERM", 1)
	detected := time.Since(hungAt)
	os.Remove(rec + ".hang")
	waitFor(t, 30*time.Second, "web ready again", func() bool {
		s := healthStatus(t, sock)["web"]
		return s.Ready && s.Restarts == 1
	})
	s := healthStatus(t, sock)["web"]
	if s.Retries != 1 || !strings.Contains(s.LastCheckFailure, "/healthz") {
		t.Errorf("after the restart: %+v, want 1 failed run and the health failure", s)
	}
	if n := count(lines(rec), "SIGTERM"); n != 1 {
		t.Errorf("%d SIGTERMs, want 1", n)
	}
	// Figures, not asserted: detection is due within interval x threshold
	// + timeout (3.3 s) of the hang, give or take an interval's phase.
	t.Logf("hung service detected and stopped %s after it hung", detected.Round(time.Millisecond))
}

// TestHealthAlwaysFailingGivenUp: a health check that never passes makes
// every run fail; after max_retries the service is given up, and status
// says why.
func TestHealthAlwaysFailingGivenUp(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": ["$T", "record", "$D/a"], "max_retries": 2, "backoff": {"initial": "50ms"},
		 "health": {"exec": ["false"], "interval": "200ms", "timeout": "100ms", "failure_threshold": 2}},
		{"name": "b", "command": ["sleep", "1000"]}
	]}`)
	start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "the control socket", func() bool { _, err := os.Stat(sock); return err == nil })
	waitFor(t, 30*time.Second, "a given up", func() bool { return healthStatus(t, sock)["a"].State == "given-up" })
	s := healthStatus(t, sock)
	if a := s["a"]; a.Retries != 3 || a.Restarts != 2 || !strings.Contains(a.LastCheckFailure, "false exited with status 1") ||
		a.Health != nil {
		t.Errorf("a: %+v", a)
	}
	if b := s["b"]; b.Health != nil || b.State != "ready" {
		t.Errorf("b (no check): %+v", b)
	}
	code, out, _ := ctl(t, sock, "status", "a")
	if code != 0 || !strings.Contains(out, "HEALTH") || !strings.Contains(out, "false exited with status 1") {
		t.Errorf("status a: exit %d\n%s", code, out)
	}
}

// TestHealthExecHangKilled: an exec check that outlives its timeout is
// killed with its whole group (a child it started too) and reaped: no
// zombie, and never a second attempt beside a hung one.
func TestHealthExecHangKilled(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": ["sleep", "2000"],
		 "health": {"exec": ["sh", "-c", "echo x >> $D/attempts; test -e $D/stop && exit 0; sleep 1001 & wait"],
		            "interval": "300ms", "timeout": "200ms", "failure_threshold": 1000000}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	vpid := v.pid()
	attempts := filepath.Join(dir, "attempts")
	maxChecks := 0
	waitFor(t, 30*time.Second, "5 hung attempts", func() bool {
		// Each attempt is a group led by its sh: count the leaders.
		n := 0
		for _, p := range descendants(vpid) {
			if strings.HasPrefix(cmdline(p), "sh -c echo x") && pgid(p) == p {
				n++
			}
		}
		maxChecks = max(maxChecks, n)
		return len(lines(attempts)) >= 5
	})
	if maxChecks > 1 {
		t.Errorf("%d check attempts at once, want at most 1", maxChecks)
	}
	os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644)
	waitFor(t, 30*time.Second, "every hung check gone, no zombie", func() bool {
		for _, p := range descendants(vpid) {
			if strings.HasPrefix(cmdline(p), "sleep 1001") {
				return false
			}
		}
		return zombies(vpid) == 0
	})
	a := healthStatus(t, sock)["a"]
	if a.State != "ready" || a.Restarts != 0 || !strings.Contains(a.LastCheckFailure, "timed out: killed") {
		t.Errorf("a: %+v", a)
	}
}

// TestReadinessFlipWithoutRestart: a readiness check with an interval
// makes the service not ready while it fails, then ready again; the
// process is never signalled nor restarted.
func TestReadinessFlipWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	web := freeAddr(t)
	rec := filepath.Join(dir, "web")
	cfg := config(t, dir, `{"services": [
		{"name": "web", "command": ["$T", "http", "`+web+`", "$D/web"],
		 "ready": {"http": "http://`+web+`/ready", "interval": "200ms", "failure_threshold": 2, "timeout": "3s"}}
	]}`)
	start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, rec)
	waitFor(t, 15*time.Second, "ready", func() bool { c, _, _ := ctl(t, sock, "ready", "web"); return c == 0 })
	pid := healthStatus(t, sock)["web"].Pid
	for round := 0; round < 2; round++ {
		os.WriteFile(rec+".unready", nil, 0o644)
		waitFor(t, 15*time.Second, "not ready", func() bool { c, _, _ := ctl(t, sock, "ready", "web"); return c == 3 })
		if s := healthStatus(t, sock)["web"]; s.State != "running" || !strings.Contains(s.LastCheckFailure, "503") {
			t.Errorf("round %d, not ready: %+v", round, s)
		}
		os.Remove(rec + ".unready")
		waitFor(t, 15*time.Second, "ready again", func() bool { c, _, _ := ctl(t, sock, "ready", "web"); return c == 0 })
	}
	// Not ready across a re-exec: the new image does not take the run for
	// one that never got ready (its 3 s deadline past), so it is
	// neither failed nor restarted, through more than that deadline.
	os.WriteFile(rec+".unready", nil, 0o644)
	waitFor(t, 15*time.Second, "not ready", func() bool { c, _, _ := ctl(t, sock, "ready", "web"); return c == 3 })
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: %d %s", code, errs)
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		if s := healthStatus(t, sock)["web"]; s.State != "running" || s.Pid != pid {
			t.Fatalf("after the re-exec, not ready: %+v", s)
		}
	}
	os.Remove(rec + ".unready")
	waitFor(t, 15*time.Second, "ready after the re-exec", func() bool { c, _, _ := ctl(t, sock, "ready", "web"); return c == 0 })
	s := healthStatus(t, sock)["web"]
	if s.Pid != pid || s.Restarts != 0 || len(lines(rec)) != 1 {
		t.Errorf("the flips restarted or signalled it: %+v, recorded %q", s, lines(rec))
	}
}

// cmdline is a process's argv joined by spaces ("" once it is gone).
func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// pgid is a process's group (0 once it is gone).
func pgid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	g, _ := strconv.Atoi(f[2])
	return g
}

// TestHealthExecHungAtReexec: an exec check hung when vigil re-executes is
// killed with its group at the freeze (the new image does not know it) and
// reaped; the check goes on in the new image (and passes: only the first
// attempt hangs).
func TestHealthExecHungAtReexec(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": ["sleep", "2000"],
		 "health": {"exec": ["sh", "-c", "echo x >> $D/attempts; [ $(wc -l < $D/attempts) -gt 1 ] && exit 0; sleep 1001 & wait"],
		            "interval": "20s", "timeout": "15s", "failure_threshold": 3}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	vpid := v.pid()
	hung := func() bool {
		for _, p := range descendants(vpid) {
			if strings.HasPrefix(cmdline(p), "sleep 1001") {
				return true
			}
		}
		return false
	}
	waitFor(t, 30*time.Second, "an attempt hung", hung)
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: %d %s", code, errs)
	}
	waitFor(t, 30*time.Second, "the hung attempt gone and a new one passed after the re-exec, no zombie", func() bool {
		return !hung() && zombies(vpid) == 0 && len(lines(filepath.Join(dir, "attempts"))) >= 2
	})
	if a := healthStatus(t, sock)["a"]; a.State != "ready" || a.Restarts != 0 || a.HealthFailures != 0 {
		t.Errorf("a after the re-exec: %+v", a)
	}
}
