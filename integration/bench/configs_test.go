package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vconfig "github.com/vigil-init/vigil/config"
)

// The configs the reexec and statewrites tables give vigil must be valid and
// mean what the tables say they mean.
func TestBenchConfigs(t *testing.T) {
	s := vconfig.Default()
	raw, probs := vconfig.Decode(sleepConfig(3), "sleep.json", &s)
	if len(probs) > 0 {
		t.Fatalf("sleepConfig: %v", probs)
	}
	svcs, probs := vconfig.Resolve(raw, s)
	if len(probs) > 0 || len(svcs) != 3 || s.RespawnLimit.N != 0 {
		t.Fatalf("sleepConfig: %v, %d services, respawn limit %v", probs, len(svcs), s.RespawnLimit)
	}
	if a := svcs[2].Argv; len(a) != 2 || a[0] != "sleep" || svcs[2].Name != "s0002" {
		t.Errorf("sleepConfig: %+v", svcs[2])
	}

	s = vconfig.Default()
	raw, probs = vconfig.Decode(crashConfig(2), "crash.json", &s)
	if len(probs) > 0 {
		t.Fatalf("crashConfig: %v", probs)
	}
	svcs, probs = vconfig.Resolve(raw, s)
	if len(probs) > 0 || len(svcs) != 2 || s.RespawnLimit.N != 0 {
		t.Fatalf("crashConfig: %v, %d services, respawn limit %v", probs, len(svcs), s.RespawnLimit)
	}
	c := svcs[1]
	if !c.Shell || c.MaxRetries != -1 || c.Backoff.Initial != time.Millisecond || c.Backoff.Max != time.Millisecond || c.Backoff.Jitter != 0 {
		t.Errorf("crashConfig: %+v", c)
	}
}

// The vigil configs of the supervisors table, and what it tells supervisord.
func TestSupervisorsConfigs(t *testing.T) {
	s := vconfig.Default()
	raw, probs := vconfig.Decode(vigilSupConfig(sleepTree(3)), "sleep.json", &s)
	if len(probs) > 0 {
		t.Fatalf("sleepTree: %v", probs)
	}
	svcs, probs := vconfig.Resolve(raw, s)
	if len(probs) > 0 || len(svcs) != 3 || svcs[2].Name != "s0002" || svcs[2].Shell || svcs[2].Argv[0] != "/usr/bin/sleep" {
		t.Fatalf("sleepTree: %v, %+v", probs, svcs)
	}

	for _, static := range []bool{false, true} {
		s = vconfig.Default()
		raw, probs = vconfig.Decode(vigilSupConfig(restartTree("vigil", static, "/tmp/x", "/bin/child", false)), "restart.json", &s)
		if len(probs) > 0 {
			t.Fatalf("restartTree: %v", probs)
		}
		svcs, probs = vconfig.Resolve(raw, s)
		if len(probs) > 0 || len(svcs) != 1 || s.RespawnLimit.N != 0 {
			t.Fatalf("restartTree: %v, %d services, respawn limit %v", probs, len(svcs), s.RespawnLimit)
		}
		r := svcs[0]
		if r.MaxRetries != -1 || r.Backoff.Initial != 0 || r.Backoff.Jitter != 0 || r.Shell == static {
			t.Errorf("restartTree (static %v): %+v", static, r)
		}
		if !static && r.Argv[2] != "date +%s%N >> /tmp/x; exit 0" {
			t.Errorf("restartTree: %q", r.Argv)
		}
	}

	for _, mode := range []string{vconfig.LogInherit, vconfig.LogPrefix} {
		s = vconfig.Default()
		raw, probs = vconfig.Decode(vigilSupConfig(logTree(mode, 1000, "/tmp/t")), "log.json", &s)
		if len(probs) > 0 {
			t.Fatalf("logTree: %v", probs)
		}
		svcs, probs = vconfig.Resolve(raw, s)
		if len(probs) > 0 || len(svcs) != 1 || !svcs[0].Oneshot || svcs[0].Log != mode || !strings.Contains(svcs[0].Argv[2], "| head -c 1000;") {
			t.Fatalf("logTree: %v, %+v", probs, svcs)
		}
	}
	if len(logLine99) != 99 {
		t.Errorf("logLine99 is %d bytes", len(logLine99))
	}

	conf := string(supervisordSupConfig("/d", restartTree("supervisord", false, "/tmp/x", "/bin/child", true)))
	for _, want := range []string{"[program:r]\ncommand=/bin/sh -c \"date +%%s%%N >> /tmp/x; exit 0\"\n", "autorestart=true\n", "startretries=1000000\n", "startsecs=0\n", "childlogdir=/d/logs\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("supervisord config lacks %q:\n%s", want, conf)
		}
	}
}

// The service directories of runit and s6: ./run is the bench child (its
// arguments in ./run.args) or a shell script.
func TestServiceDir(t *testing.T) {
	dir := t.TempDir()
	child := "/x/child"
	for _, c := range []struct {
		svc  svcSpec
		args string
	}{
		{svcSpec{name: "a", argv: []string{"/usr/bin/sleep", "100000"}}, "exec\n/usr/bin/sleep\n100000\n"},
		{svcSpec{name: "b", argv: []string{child, "stamp", "/f"}}, "stamp\n/f\n"},
	} {
		sd := filepath.Join(dir, c.svc.name)
		if err := writeServiceDir(sd, c.svc, child); err != nil {
			t.Fatal(err)
		}
		if l, err := os.Readlink(filepath.Join(sd, "run")); err != nil || l != child {
			t.Errorf("%s: run -> %q, %v", c.svc.name, l, err)
		}
		if b, err := os.ReadFile(filepath.Join(sd, "run.args")); err != nil || string(b) != c.args {
			t.Errorf("%s: run.args %q, %v", c.svc.name, b, err)
		}
	}
	sd := filepath.Join(dir, "c")
	if err := writeServiceDir(sd, svcSpec{name: "c", shell: "exit 0"}, child); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(sd, "run")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("c: run not executable: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(sd, "run")); string(b) != "#!/bin/sh\nexit 0\n" {
		t.Errorf("c: run is %q", b)
	}
}
