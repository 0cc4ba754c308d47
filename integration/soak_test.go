package integration

// Soak (issue 8): vigil as PID 1 under a mixed workload for SOAK_TIME
// (`make soak`, default 30m; CI: SOAK_TIME=2m make soak), printing one row
// every SOAK_EVERY (default 10s) of what it costs: CPU, RSS, descriptors,
// threads, zombies. Not run without SOAK_TIME.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// soakRow is one line of the table.
type soakRow struct {
	at                        time.Duration
	cpu                       float64 // % of one core over the interval
	rss, fds, threads, zombie int
	restarts, gen             int
	statusMs                  float64
}

func soakDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err == nil && d > 0 {
			return d
		}
	}
	return def
}

func TestSoak(t *testing.T) {
	if os.Getenv("SOAK_TIME") == "" {
		t.Skip("set SOAK_TIME (make soak; SOAK_TIME=2m make soak in CI)")
	}
	total := soakDuration("SOAK_TIME", 30*time.Minute)
	every := soakDuration("SOAK_EVERY", 10*time.Second)
	reexecEvery := soakDuration("SOAK_REEXEC", max(total/6, 20*time.Second))
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "crash1", "command": ["$T", "exit", "1"], "max_retries": -1, "backoff": {"initial": "200ms", "max": "5s"}},
		{"name": "crash2", "command": ["$T", "exit", "2"], "max_retries": -1, "backoff": {"initial": "200ms", "max": "5s"}},
		{"name": "crash3", "command": "exit 3", "max_retries": -1, "backoff": {"initial": "100ms", "max": "2s"}},
		{"name": "flapper", "command": "sleep 2; exit 1", "max_retries": -1, "stable_after": "1s"},
		{"name": "print1", "command": ["$C", "trickle", "200", "print1"], "log": "prefix"},
		{"name": "print2", "command": ["$C", "trickle", "50", "print2"], "log": "prefix"},
		{"name": "orphaner", "command": "while :; do $C orphans 20; sleep 1; done"},
		{"name": "rec", "command": ["$T", "record", "$D/rec"]},
		{"name": "steady1", "command": ["sleep", "1000000"]},
		{"name": "steady2", "command": ["sleep", "1000000"]},
		{"name": "steady3", "command": ["sleep", "1000000"], "ready": {"file": "$D/rec"}},
		{"name": "steady4", "command": ["sleep", "1000000"], "depends_on": ["steady3"]},
		{"name": "steady5", "command": ["sleep", "1000000"], "stop_signal": "INT"}
	], "respawn_limit": "30/1m"}`)
	check := &lineChecker{next: map[string]int64{}}
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = check }}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	steady := map[string]int{}
	for _, n := range []string{"steady1", "steady2", "steady3", "steady4", "steady5", "rec"} {
		waitFor(t, 15*time.Second, n+" running", func() bool { _, pid, _ := svc(t, sock, n); return pid != 0 })
		_, steady[n], _ = svc(t, sock, n)
	}

	began := time.Now()
	var rows []soakRow
	prev, _ := readProc(v.pid())
	prevAt := began
	nextRow, nextExec, nextSig := began.Add(every), began.Add(reexecEvery), began.Add(5*time.Second)
	gen, lingering := 0, 0
	lastZombies := map[int]bool{}
	var statusMs []float64
	t.Logf("soak for %s, a row every %s, re-exec every %s", total, every, reexecEvery)
	t.Logf("%8s %6s %8s %5s %7s %7s %8s %4s %9s", "t", "cpu%", "rss KiB", "fds", "threads", "zombies", "restarts", "gen", "status ms")
	for time.Since(began) < total {
		time.Sleep(time.Second)
		select {
		case <-v.done:
			t.Fatalf("vigil exited %d during the soak", v.code)
		default:
		}
		if _, _, err := check.state(); err != nil {
			t.Fatalf("prefixed output: %v", err)
		}
		s := time.Now()
		code, out, errs := ctl(t, sock, "status", "--json")
		if code != 0 {
			t.Fatalf("status: exit %d %s", code, errs)
		}
		statusMs = append(statusMs, float64(time.Since(s).Microseconds())/1000)
		if time.Now().After(nextSig) {
			ctl(t, sock, "signal", "USR1", "rec")
			nextSig = time.Now().Add(5 * time.Second)
		}
		if time.Now().After(nextExec) {
			gen++
			reexecAndWait(t, v, sock, gen)
			nextExec = time.Now().Add(reexecEvery)
		}
		if time.Now().Before(nextRow) {
			continue
		}
		nextRow = nextRow.Add(every)
		var st statusJSON
		json.Unmarshal([]byte(out), &st)
		restarts := 0
		for _, s := range st.Services {
			restarts += s.Restarts
		}
		p, _ := readProc(v.pid())
		now := time.Now()
		zs := map[int]bool{}
		for _, c := range children(v.pid()) {
			if st, ok := readStat(c); ok && st.state == 'Z' {
				zs[c] = true
				if lastZombies[c] {
					lingering++
				}
			}
		}
		lastZombies = zs
		worst := 0.0
		for _, ms := range statusMs {
			worst = max(worst, ms)
		}
		statusMs = statusMs[:0]
		r := soakRow{at: now.Sub(began).Round(time.Second), cpu: float64(p.ticks-prev.ticks) / now.Sub(prevAt).Seconds(),
			rss: p.rss, fds: p.fds, threads: p.threads, zombie: len(zs), restarts: restarts, gen: gen, statusMs: worst}
		prev, prevAt = p, now
		rows = append(rows, r)
		t.Logf("%8s %6.2f %8d %5d %7d %7d %8d %4d %9.1f", r.at, r.cpu, r.rss, r.fds, r.threads, r.zombie, r.restarts, r.gen, r.statusMs)
	}
	for n, pid := range steady {
		if _, now, _ := svc(t, sock, n); now != pid {
			t.Errorf("%s was restarted: pid %d -> %d", n, pid, now)
		}
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
	_, lines, err := check.state()
	if err != nil {
		t.Error(err)
	}
	if len(rows) < 2 {
		return
	}
	// Summary: slopes over the rows after the first third (warm-up).
	k := len(rows) / 3
	var xs, rss, fds []float64
	cpu, worst := 0.0, 0.0
	for _, r := range rows[k:] {
		xs = append(xs, r.at.Minutes())
		rss = append(rss, float64(r.rss))
		fds = append(fds, float64(r.fds))
		cpu += r.cpu
		worst = max(worst, r.statusMs)
	}
	var table strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&table, "| %s | %.2f | %d | %d | %d | %d | %d | %d | %.1f |\n", r.at, r.cpu, r.rss, r.fds, r.threads, r.zombie, r.restarts, r.gen, r.statusMs)
	}
	figure(t, "soak %s: mean CPU %.2f%% of a core, RSS %0.f..%0.f KiB (slope %+.1f KiB/min), fds %0.f..%0.f (slope %+.3f/min), %d re-execs, %d restarts, zombies lingering across a row: %d, prefixed lines %d+%d all whole, status worst %.1f ms",
		total, cpu/float64(len(rows)-k), minOf(rss), maxOf(rss), slope(xs, rss), minOf(fds), maxOf(fds), slope(xs, fds),
		gen, rows[len(rows)-1].restarts, lingering, lines["print1"], lines["print2"], worst)
	if f := os.Getenv("SOAK_REPORT"); f != "" {
		os.WriteFile(f, []byte("| t | cpu % | rss KiB | fds | threads | zombies | restarts | re-execs | status ms (worst) |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"+table.String()), 0o644)
	}
	if lingering > 0 {
		t.Errorf("%d zombies outlived a whole row", lingering)
	}
	if maxOf(fds) > fds[0]+4 {
		t.Errorf("vigil's descriptors grew from %0.f to %0.f", fds[0], maxOf(fds))
	}
}
