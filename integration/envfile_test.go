package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// environOf reads the NAME=value lines a service wrote from its
// /proc/PID/environ: each name with every value it has, in order.
func environOf(t *testing.T, file string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range lines(file) {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestEnvFilesSecretsAndReload: vigil's environment < top-level env_file <
// the service's env_file < secrets < env, each name once; a reload after an
// env file changed restarts the services that use it, and only those.
func TestEnvFilesSecretsAndReload(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("top.env", "A=top\nB=top\nC=top\n")
	write("a.env", "# the service's own\nexport B=own\nC='own'\n")
	write("secret", "s3cr3t\n")
	cfg := config(t, dir, `{"env_file": "$D/top.env", "services": [
		{"name": "a", "command": "tr '\\0' '\\n' < /proc/$$/environ > $D/a.$$; ln -sf $D/a.$$ $D/a.cur; exec sleep 1000",
		 "env_file": ["$D/a.env", "$D/missing.env?"], "env": {"C": "env"}, "secrets": {"S": "$D/secret"}},
		{"name": "b", "command": "tr '\\0' '\\n' < /proc/$$/environ > $D/b; exec sleep 1000"}
	]}`)
	sock := filepath.Join(dir, "sock")
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock, "A=vigil", "D=vigil"}}, "-c", cfg)
	waitFor(t, 20*time.Second, "both started", func() bool {
		return len(lines(filepath.Join(dir, "a.cur"))) > 0 && len(lines(filepath.Join(dir, "b"))) > 0
	})
	a := environOf(t, filepath.Join(dir, "a.cur"))
	for name, want := range map[string]string{"A": "top", "B": "own", "C": "env", "D": "vigil", "S": "s3cr3t"} {
		if got := a[name]; len(got) != 1 || got[0] != want {
			t.Errorf("a's %s = %q, want only %q", name, got, want)
		}
	}
	if b := environOf(t, filepath.Join(dir, "b")); len(b["A"]) != 1 || b["A"][0] != "top" || len(b["S"]) != 0 {
		t.Errorf("b's A = %q, S = %q: want top and none", b["A"], b["S"])
	}
	if strings.Contains(v.stderr.String(), "s3cr3t") {
		t.Error("the secret's value is in vigil's log")
	}
	_, aPid, _ := svc(t, sock, "a")
	_, bPid, _ := svc(t, sock, "b")

	write("a.env", "B=changed\n")
	if code, _, errs := ctl(t, sock, "reload"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, errs)
	}
	waitFor(t, 20*time.Second, "a restarted with the new file", func() bool {
		got := environOf(t, filepath.Join(dir, "a.cur"))["B"]
		return len(got) == 1 && got[0] == "changed"
	})
	if _, pid, _ := svc(t, sock, "a"); pid == aPid {
		t.Errorf("a kept pid %d after its env file changed", pid)
	}
	if _, pid, _ := svc(t, sock, "b"); pid != bPid {
		t.Errorf("b: pid %d -> %d, but nothing of its env changed", bPid, pid)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}
