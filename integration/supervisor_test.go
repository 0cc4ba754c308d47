package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// config writes a config file into dir; $T in it becomes testprog's path and
// $D the directory.
func config(t *testing.T, dir, doc string) string {
	t.Helper()
	doc = strings.ReplaceAll(doc, "$T", testProg)
	doc = strings.ReplaceAll(doc, "$D", dir)
	p := filepath.Join(dir, "vigil.json")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tagged returns the lines of file whose tag (first word) is tag, without it.
func tagged(file, tag string) []string {
	var out []string
	for _, l := range lines(file) {
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

func TestSupervisorStartsAllAndStopsOnTerm(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "rec")
			cfg := config(t, dir, `{"services": [
				{"name": "a", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "a"}},
				{"name": "b", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "b"}},
				{"name": "c", "command": "exec $T record $D/rec", "env": {"TAG": "c"}}
			]}`)
			v := start(t, m, opts{}, "-c", cfg)
			for _, tag := range []string{"a", "b", "c"} {
				waitFor(t, 15*time.Second, tag+" started", func() bool { return len(tagged(rec, tag)) > 0 })
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d after TERM, want 0", code)
			}
			for _, tag := range []string{"a", "b", "c"} {
				if !slices.Contains(tagged(rec, tag), "SIGTERM") {
					t.Errorf("%s did not get SIGTERM: %q", tag, tagged(rec, tag))
				}
			}
		})
	}
}

func TestShutdownInReverseDependencyOrder(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	// web depends on db; db must get its stop signal only after web is gone.
	cfg := config(t, dir, `{"services": [
		{"name": "db", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "db"}},
		{"name": "web", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "web"}, "depends_on": ["db"]}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	for _, tag := range []string{"db", "web"} {
		waitFor(t, 15*time.Second, tag+" started", func() bool { return len(tagged(rec, tag)) > 0 })
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	var order []string
	for _, l := range lines(rec) {
		if strings.HasSuffix(l, " SIGTERM") {
			order = append(order, l)
		}
	}
	if !slices.Equal(order, []string{"web SIGTERM", "db SIGTERM"}) {
		t.Errorf("stop order %q, want web then db", order)
	}
	if !strings.Contains(v.stderr.String(), "shutting down") {
		t.Errorf("no shutdown log line")
	}
}

func TestDependencyWaitsForReadiness(t *testing.T) {
	dir := t.TempDir()
	// db becomes ready when it creates $D/db.ready, some time after it starts;
	// web records whether that file existed when web started.
	cfg := config(t, dir, `{"services": [
		{"name": "db", "command": "sleep 0.3; touch $D/db.ready; exec sleep 100", "ready": {"file": "$D/db.ready", "timeout": "20s"}},
		{"name": "web", "command": "test -e $D/db.ready && echo yes > $D/web || echo no > $D/web; exec sleep 100", "depends_on": ["db"]}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 15*time.Second, "web started", func() bool { return len(lines(filepath.Join(dir, "web"))) > 0 })
	if got := lines(filepath.Join(dir, "web")); got[0] != "yes" {
		t.Errorf("web started before db was ready")
	}
	if !regexp.MustCompile(`INFO ready service=db`).MatchString(v.stderr.String()) {
		t.Errorf("no readiness log line for db")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestRestartBackoffAndGiveUp(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "flaky", "command": "echo run >> $D/runs; exit 3", "max_retries": 2,
		 "backoff": {"initial": "50ms", "factor": 2, "max": "1s", "jitter": 0}},
		{"name": "steady", "command": ["sleep", "100"]}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 15*time.Second, "flaky given up", func() bool { return strings.Contains(v.stderr.String(), "given up service=flaky") })
	if n := len(lines(filepath.Join(dir, "runs"))); n != 3 {
		t.Errorf("flaky ran %d times, want 1 + max_retries = 3", n)
	}
	log := v.stderr.String()
	for _, want := range []string{`restart scheduled service=flaky delay=50ms attempt="1 of 2"`, `restart scheduled service=flaky delay=100ms attempt="2 of 2"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// Not critical: vigil and the other service carry on until asked to stop.
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestCriticalServiceEndsTheRun(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	cfg := config(t, dir, `{"services": [
		{"name": "vital", "command": "exit 4", "critical": true, "max_retries": 1, "backoff": {"initial": "10ms"}, "depends_on": ["other"]},
		{"name": "other", "command": ["$T", "record", "$D/rec"], "ready": {"file": "$D/rec"}}
	]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	if code := v.wait(20 * time.Second); code != 4 {
		t.Errorf("exit %d, want the critical service's 4", code)
	}
	if !slices.Contains(lines(rec), "SIGTERM") {
		t.Errorf("the other service was not stopped gracefully: %q", lines(rec))
	}
}

func TestOneshots(t *testing.T) {
	t.Run("a oneshot that succeeds lets its dependents start", func(t *testing.T) {
		dir := t.TempDir()
		cfg := config(t, dir, `{"services": [
			{"name": "migrate", "command": "echo done > $D/migrated", "oneshot": true},
			{"name": "app", "command": "cat $D/migrated > $D/app; exec sleep 100", "depends_on": ["migrate"]}
		]}`)
		v := start(t, modes[0], opts{}, "-c", cfg)
		waitFor(t, 15*time.Second, "app started", func() bool { return len(lines(filepath.Join(dir, "app"))) > 0 })
		if got := lines(filepath.Join(dir, "app")); got[0] != "done" {
			t.Errorf("app saw %q", got)
		}
		v.signal(unix.SIGTERM)
		if code := v.wait(15 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
	})
	t.Run("a oneshot that fails for good blocks its dependents", func(t *testing.T) {
		dir := t.TempDir()
		cfg := config(t, dir, `{"services": [
			{"name": "migrate", "command": "exit 1", "oneshot": true, "restart": "never"},
			{"name": "app", "command": "touch $D/app-ran; exec sleep 100", "depends_on": ["migrate"]},
			{"name": "other", "command": ["sleep", "100"]}
		]}`)
		v := start(t, modes[0], opts{}, "-c", cfg)
		waitFor(t, 15*time.Second, "app blocked", func() bool {
			return strings.Contains(v.stderr.String(), "blocked: a dependency failed for good service=app dependency=migrate")
		})
		if _, err := os.Stat(filepath.Join(dir, "app-ran")); err == nil {
			t.Errorf("app ran although its dependency failed")
		}
		v.signal(unix.SIGTERM)
		v.wait(15 * time.Second)
	})
	t.Run("only oneshots: vigil exits 0 once all succeeded", func(t *testing.T) {
		dir := t.TempDir()
		cfg := config(t, dir, `{"services": [{"name": "one", "command": "true", "oneshot": true}, {"name": "two", "command": ["true"], "oneshot": true}]}`)
		code, stderr := run(t, modes[0], opts{}, "-c", cfg)
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
}

func TestStopTimeoutKillsStubbornService(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "stubborn", "command": ["$T", "ignore-term", "$D/rec"], "stop_timeout": "300ms"}
	], "shutdown_timeout": "30s"}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	began := time.Now()
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("shutdown took %s: stop_timeout was not applied", took)
	}
	if !strings.Contains(v.stderr.String(), "stop timeout: killing the group service=stubborn") {
		t.Errorf("no SIGKILL log line")
	}
}

func TestSecondTermSkipsToKill(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "stubborn", "command": ["$T", "ignore-term", "$D/rec"], "stop_timeout": "60s"}
	], "shutdown_timeout": "60s"}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	v.signal(unix.SIGTERM)
	waitFor(t, 10*time.Second, "stopping", func() bool { return strings.Contains(v.stderr.String(), "stopping service=stubborn") })
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestPrefixedOutput(t *testing.T) {
	const n, width = 20000, 200
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "p1", "command": ["$T", "lines", "20000", "one", "200"], "log": "prefix", "oneshot": true},
		{"name": "p2", "command": ["$T", "lines", "20000", "two", "200"], "log": "prefix", "oneshot": true}
	]}`)
	var stdout syncBuffer
	v := start(t, modes[0], opts{setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
	if code := v.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Every line whole, prefixed by its own service, in order per service.
	check := func(stream, text, kind string) {
		line := regexp.MustCompile(`^(p1|p2) \| (one|two) ` + kind + ` (\d+) x+$`)
		next := map[string]int{}
		count := 0
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if strings.Contains(l, " vigil ") {
				continue // vigil's own log lines on stderr
			}
			m := line.FindStringSubmatch(l)
			if m == nil || len(l) != len(m[1])+3+width-1 || (m[1] == "p1") != (m[2] == "one") {
				t.Fatalf("%s: torn, foreign or unprefixed line %.80q", stream, l)
			}
			k, _ := strconv.Atoi(m[3])
			if k != next[m[1]] {
				t.Fatalf("%s: %s line %d follows %d", stream, m[1], k, next[m[1]]-1)
			}
			next[m[1]]++
			count++
		}
		if count != 2*n {
			t.Errorf("%s: %d lines, want %d", stream, count, 2*n)
		}
	}
	check("stdout", stdout.String(), "out")
	check("stderr", v.stderr.String(), "err")
}

func TestMainProcessWithServices(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	cfg := config(t, dir, `{"services": [{"name": "side", "command": ["$T", "record", "$D/rec"]}]}`)
	v := start(t, modes[0], opts{}, "-c", cfg, "--", "sh", "-c", "while ! grep -q ready "+rec+"; do sleep 0.01; done; exit 3")
	if code := v.wait(20 * time.Second); code != 3 {
		t.Errorf("exit %d, want main's 3", code)
	}
	if !slices.Contains(lines(rec), "SIGTERM") {
		t.Errorf("side service not stopped: %q", lines(rec))
	}
}

func TestServiceEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [{"name": "e", "command": ["$T", "env", "$D/env"], "oneshot": true, "env": {"PORT": "8080"}}]}`)
	code, stderr := run(t, modes[0], opts{env: []string{"VIGIL_LOG_LEVEL=debug", "TINI_SUBREAPER=1", "KEEP_ME=1"}}, "-c", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	env := lines(filepath.Join(dir, "env"))
	for _, kv := range env {
		if strings.HasPrefix(kv, "VIGIL_") || strings.HasPrefix(kv, "TINI_") {
			t.Errorf("service got vigil's setting %s", kv)
		}
	}
	for _, want := range []string{"PORT=8080", "KEEP_ME=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("service lacks %s", want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
  {"name": "a", "command": ["x"], "bogus": 1},
  {"name": "b", "command": [], "depends_on": ["nope"]}
]}`)
	for _, args := range [][]string{{"-c", cfg}, {"check", "-c", cfg}} {
		code, stderr := run(t, modes[1], opts{}, args...)
		if code != 78 {
			t.Errorf("vigil %v: exit %d, want 78", args[0], code)
		}
		for _, want := range []string{"2:", "bogus", "3:", "nope", `"b"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("vigil %v: stderr lacks %q:\n%s", args[0], want, stderr)
			}
		}
	}
	good := config(t, t.TempDir(), `{"services": [{"name": "a", "command": ["true"]}], "shutdown_timeout": "3s"}`)
	code, _ := run(t, modes[1], opts{}, "check", "-c", good)
	if code != 0 {
		t.Errorf("check of a good config: exit %d", code)
	}
}
