package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// jobStatus is what status --json says of a scheduled service.
type jobStatus struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Pid        int       `json:"pid"`
	LastExit   *int      `json:"last_exit"`
	Ready      bool      `json:"ready"`
	Schedule   string    `json:"schedule"`
	NextRun    time.Time `json:"next_run"`
	LastRun    time.Time `json:"last_run"`
	FailedRuns int       `json:"failed_runs"`
}

func jobs(t *testing.T, sock string) map[string]jobStatus {
	t.Helper()
	code, out, errs := ctl(t, sock, "status", "--json")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	var doc struct{ Services []jobStatus }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --json %q: %v", out, err)
	}
	m := map[string]jobStatus{}
	for _, s := range doc.Services {
		m[s.Name] = s
	}
	return m
}

// TestScheduledServices: as PID 1, a job runs on its ticks and not at
// start, overlapping ticks are skipped under forbid, failed runs never end
// the container, vigil start runs a job once now, and status shows it all.
func TestScheduledServices(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "tick", "command": "echo run >> $D/tick", "schedule": "@every 1s"},
		{"name": "slow", "command": "echo start >> $D/slow; sleep 2.5; echo end >> $D/slow", "schedule": "@every 1s"},
		{"name": "fail", "command": "echo run >> $D/fail; exit 3", "schedule": "@every 1s", "max_retries": 0},
		{"name": "hourly", "command": "echo run >> $D/hourly", "schedule": "@hourly"}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)

	waitFor(t, 30*time.Second, "3 runs of tick", func() bool { return len(lines(filepath.Join(dir, "tick"))) >= 3 })
	// Each run was started by a tick: one "started" line per run, and the
	// hourly job (whose first tick is up to an hour away) has not run.
	if n, started := len(lines(filepath.Join(dir, "tick"))), strings.Count(v.stderr.String(), "started service=tick "); started < n {
		t.Errorf("%d runs of tick, %d logged starts", n, started)
	}
	st := jobs(t, sock)
	if h := st["hourly"]; h.State != "scheduled" || !h.LastRun.IsZero() || h.LastExit != nil || !h.Ready ||
		h.Schedule != "@hourly" || !h.NextRun.After(time.Now()) || h.NextRun.After(time.Now().Add(time.Hour)) {
		t.Errorf("hourly before its first tick: %+v", h)
	}
	if got := lines(filepath.Join(dir, "hourly")); len(got) != 0 {
		t.Errorf("hourly ran at start: %q", got)
	}

	// forbid: slow's runs never overlap, and the ticks during a run are
	// skipped, each logged.
	waitFor(t, 30*time.Second, "2 runs of slow", func() bool { return count(lines(filepath.Join(dir, "slow")), "end") >= 2 })
	for i, l := range lines(filepath.Join(dir, "slow")) {
		if want := []string{"start", "end"}[i%2]; l != want {
			t.Fatalf("slow's runs overlap: line %d is %q: %q", i, l, lines(filepath.Join(dir, "slow")))
		}
	}
	if !strings.Contains(v.stderr.String(), "tick skipped: the previous run is still going service=slow") {
		t.Error("no skipped tick logged for slow")
	}

	// Failed runs are counted and never end the container.
	waitFor(t, 30*time.Second, "3 failed runs", func() bool { return jobs(t, sock)["fail"].FailedRuns >= 3 })
	if f := jobs(t, sock)["fail"]; f.LastExit == nil || *f.LastExit != 3 || f.LastRun.IsZero() {
		t.Errorf("fail: %+v", f)
	}

	// vigil start runs a job once, now, and keeps its schedule.
	next := jobs(t, sock)["hourly"].NextRun
	if code, _, errs := ctl(t, sock, "start", "hourly"); code != 0 {
		t.Fatalf("start hourly: exit %d %s", code, errs)
	}
	if got := lines(filepath.Join(dir, "hourly")); len(got) != 1 {
		t.Errorf("hourly ran %d times after vigil start, want 1", len(got))
	}
	if h := jobs(t, sock)["hourly"]; h.State != "scheduled" || h.LastExit == nil || *h.LastExit != 0 || h.LastRun.IsZero() || !h.NextRun.Equal(next) {
		t.Errorf("hourly after vigil start: %+v (next was %s)", h, next)
	}
	if code, _, errs := ctl(t, sock, "start", "fail"); code != 1 || !strings.Contains(errs, "last exit 3") {
		t.Errorf("start of a failing job: exit %d %q", code, errs)
	}
	code, out, _ := ctl(t, sock, "status")
	if code != 0 || !strings.Contains(out, "NEXT") || !strings.Contains(out, "scheduled") {
		t.Errorf("status: exit %d\n%s", code, out)
	}

	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
