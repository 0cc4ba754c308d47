package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
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
