package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	// (vigil logs a start after the spawn, which the run may beat: wait.)
	n := len(lines(filepath.Join(dir, "tick")))
	waitFor(t, 10*time.Second, fmt.Sprintf("%d logged starts of tick", n), func() bool {
		return strings.Count(v.stderr.String(), "started service=tick ") >= n
	})
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

// TestInstances: as PID 1, the copies of a service with instances each get
// their number in their environment; a dependent waits for every copy; the
// template's name acts on all copies, a copy's on one; vigil scale and a
// reload that changes N start or stop the highest-numbered copies only.
func TestInstances(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	doc := func(n int) string {
		return `{"services": [
		{"name": "w", "instances": ` + strconv.Itoa(n) + `,
		 "command": "env | grep ^VIGIL_INST | sort > $D/env-$VIGIL_INSTANCE; exec $T record $D/rec-$VIGIL_INSTANCE",
		 "ready": {"exec": ["sh", "-c", "test -e $D/go-$VIGIL_INSTANCE"], "timeout": "60s"}},
		{"name": "lb", "command": "touch $D/lb; exec sleep 100", "depends_on": ["w"]}
	]}`
	}
	cfg := config(t, dir, doc(3))
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	for k := 1; k <= 3; k++ {
		waitReady(t, filepath.Join(dir, "rec-"+strconv.Itoa(k)))
		want := []string{"VIGIL_INSTANCE=" + strconv.Itoa(k), "VIGIL_INSTANCES=3"}
		if got := lines(filepath.Join(dir, "env-"+strconv.Itoa(k))); !slices.Equal(got, want) {
			t.Errorf("w-%d's env %q, want %q", k, got, want)
		}
	}
	state := func(name string) string { s, _, _ := svc(t, sock, name); return s }
	pid := func(name string) int { _, p, _ := svc(t, sock, name); return p }
	touch := func(name string) { os.WriteFile(filepath.Join(dir, name), nil, 0o644) }

	// lb waits for every copy.
	touch("go-1")
	touch("go-2")
	waitFor(t, 30*time.Second, "w-1 and w-2 ready", func() bool { return state("w-1") == "ready" && state("w-2") == "ready" })
	if _, err := os.Stat(filepath.Join(dir, "lb")); state("lb") != "starting" || err == nil {
		t.Errorf("lb is %s (ran: %v) with w-3 not ready", state("lb"), err == nil)
	}
	touch("go-3")
	waitFor(t, 30*time.Second, "lb started", func() bool { _, err := os.Stat(filepath.Join(dir, "lb")); return err == nil && state("lb") == "ready" })

	// The template's name is every copy; a copy's name is that copy.
	if code, out, _ := ctl(t, sock, "status", "w"); code != 0 || strings.Count(out, "\nw-") != 3 {
		t.Errorf("status w: exit %d\n%s", code, out)
	}
	if code, _, errs := ctl(t, sock, "signal", "USR1", "w-2"); code != 0 {
		t.Fatalf("signal w-2: exit %d %s", code, errs)
	}
	if code, _, errs := ctl(t, sock, "signal", "USR2", "w"); code != 0 {
		t.Fatalf("signal w: exit %d %s", code, errs)
	}
	for k := 1; k <= 3; k++ {
		waitForLine(t, filepath.Join(dir, "rec-"+strconv.Itoa(k)), "SIGUSR2", 1)
	}
	for k, want := range map[int]int{1: 0, 2: 1, 3: 0} {
		if got := count(lines(filepath.Join(dir, "rec-"+strconv.Itoa(k))), "SIGUSR1"); got != want {
			t.Errorf("w-%d got SIGUSR1 %d times, want %d", k, got, want)
		}
	}

	pids := map[string]int{}
	for _, n := range []string{"w-1", "w-2", "w-3", "lb"} {
		pids[n] = pid(n)
	}
	kept := func(when string, names ...string) {
		t.Helper()
		for _, n := range names {
			if p := pid(n); p != pids[n] {
				t.Errorf("%s: %s has pid %d, was %d", when, n, p, pids[n])
			}
		}
	}

	// vigil scale up and down.
	touch("go-4")
	touch("go-5")
	if code, _, errs := ctl(t, sock, "scale", "w", "5"); code != 0 {
		t.Fatalf("scale w 5: exit %d %s", code, errs)
	}
	waitReady(t, filepath.Join(dir, "rec-5"))
	if got := lines(filepath.Join(dir, "env-5")); !slices.Equal(got, []string{"VIGIL_INSTANCE=5", "VIGIL_INSTANCES=5"}) {
		t.Errorf("w-5's env %q", got)
	}
	kept("scale 5", "w-1", "w-2", "w-3", "lb")
	if code, _, errs := ctl(t, sock, "scale", "w", "2"); code != 0 {
		t.Fatalf("scale w 2: exit %d %s", code, errs)
	}
	st := status(t, sock)
	for _, n := range []string{"w-3", "w-4", "w-5"} {
		if _, ok := st[n]; ok {
			t.Errorf("%s still listed after scale 2", n)
		}
	}
	kept("scale 2", "w-1", "w-2", "lb")
	if code, _, errs := ctl(t, sock, "scale", "lb", "2"); code != 1 || !strings.Contains(errs, "no instances") {
		t.Errorf("scale of a service without instances: exit %d %q", code, errs)
	}

	// A reload with another N: the config wins over the scale.
	os.Remove(filepath.Join(dir, "rec-3"))
	config(t, dir, doc(4))
	if code, _, errs := ctl(t, sock, "reload"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, errs)
	}
	waitReady(t, filepath.Join(dir, "rec-3"))
	waitFor(t, 30*time.Second, "w-4 ready", func() bool { return state("w-4") == "ready" })
	kept("reload to 4", "w-1", "w-2", "lb")
	if got := lines(filepath.Join(dir, "env-3")); !slices.Equal(got, []string{"VIGIL_INSTANCE=3", "VIGIL_INSTANCES=4"}) {
		t.Errorf("w-3's env after the reload %q", got)
	}

	// stop and start by the template's name and by a copy's.
	if code, _, errs := ctl(t, sock, "stop", "w"); code != 0 {
		t.Fatalf("stop w: exit %d %s", code, errs)
	}
	for k := 1; k <= 4; k++ {
		if s := state("w-" + strconv.Itoa(k)); s != "stopped" {
			t.Errorf("w-%d is %s after stop w", k, s)
		}
	}
	if code, _, errs := ctl(t, sock, "start", "w-2"); code != 0 {
		t.Fatalf("start w-2: exit %d %s", code, errs)
	}
	if s1, s2 := state("w-1"), state("w-2"); s1 != "stopped" || s2 != "ready" {
		t.Errorf("after start w-2: w-1 %s, w-2 %s", s1, s2)
	}

	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestMissedTickCaughtUp: the last run's time goes to the state file; the
// next vigil on that volume runs a tick missed while it was down once, at
// start, when starting_deadline allows, and not otherwise.
func TestMissedTickCaughtUp(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	cfg := config(t, dir, `{"services": [
		{"name": "catch", "command": "echo run >> $D/catch", "schedule": "@every 1s", "starting_deadline": "1h"},
		{"name": "nodeadline", "command": "echo run >> $D/nodeadline", "schedule": "@every 1s"}
	], "state_dir": "$D/state"}`)
	env := []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}
	v := start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 30*time.Second, "a run of each", func() bool {
		return len(lines(filepath.Join(dir, "catch"))) > 0 && len(lines(filepath.Join(dir, "nodeadline"))) > 0
	})
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	last := readState(t, sdir).Services["catch"].LastRun
	if last.IsZero() {
		t.Fatalf("no last_run in the state file: %+v", readState(t, sdir).Services["catch"])
	}
	// vigil is down over a tick.
	waitFor(t, 30*time.Second, "a tick missed", func() bool { return time.Since(last) > 2*time.Second })

	v = start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 30*time.Second, "the missed tick run", func() bool {
		return strings.Contains(v.stderr.String(), "a tick was missed while vigil was down: running it once now service=catch")
	})
	if strings.Contains(v.stderr.String(), "running it once now service=nodeadline") {
		t.Error("a missed tick ran without starting_deadline")
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestReexecKeepsSchedule: a re-exec keeps a job's next tick, its last run
// and its failed runs, and the ticks go on in the new image.
func TestReexecKeepsSchedule(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "hourly", "command": "exit 4", "schedule": "@hourly", "restart": "never"},
		{"name": "tick", "command": "echo run >> $D/tick", "schedule": "@every 1s"}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	if code, _, _ := ctl(t, sock, "start", "hourly"); code != 1 {
		t.Fatalf("start of a job that fails: exit %d", code)
	}
	before := jobs(t, sock)["hourly"]
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: exit %d %s", code, errs)
	}
	waitFor(t, 15*time.Second, "the new image", func() bool {
		return strings.Contains(v.stderr.String(), "adopted services after re-exec generation=1")
	})
	after := jobs(t, sock)["hourly"]
	if after.State != "scheduled" || !after.NextRun.Equal(before.NextRun) || !after.LastRun.Equal(before.LastRun) ||
		after.FailedRuns != 1 || after.LastExit == nil || *after.LastExit != 4 {
		t.Errorf("after the re-exec %+v, before %+v", after, before)
	}
	n := len(lines(filepath.Join(dir, "tick")))
	waitFor(t, 30*time.Second, "ticks in the new image", func() bool { return len(lines(filepath.Join(dir, "tick"))) >= n+2 })
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
