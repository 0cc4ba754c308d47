package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSecurityChecksRunAsTheService: a service's readiness check runs as the
// service's user, in its dir, with its environment: never as root (an app
// that can rewrite its own check script must not get root from it).
func TestSecurityChecksRunAsTheService(t *testing.T) {
	dir := nobodysDir(t)
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o777)
	cfg := config(t, dir, `{"services": [
		{"name": "app", "command": ["sleep", "1000"], "user": "nobody", "dir": "$D/work",
		 "env": {"MARK": "app's"},
		 "ready": {"exec": ["sh", "-c", "echo \"$(id -u) $(id -g) $(pwd) $MARK\" > $D/check"], "timeout": "20s"}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}}, "-c", cfg)
	waitFor(t, 20*time.Second, "the check ran", func() bool { return len(lines(filepath.Join(dir, "check"))) > 0 })
	got := lines(filepath.Join(dir, "check"))[0]
	if want := "65534 65534 " + work + " app's"; got != want {
		t.Errorf("the check ran as %q, want %q (uid gid dir env)", got, want)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestSecurityServiceEnvWins: a name in a service's env overrides vigil's
// own, once: glibc, Go, Python and Perl take the first of two, which was the
// container-wide credential and root's HOME.
func TestSecurityServiceEnvWins(t *testing.T) {
	dir := nobodysDir(t)
	cfg := config(t, dir, `{"services": [
		{"name": "app", "command": "tr '\\0' '\\n' < /proc/$$/environ > $D/env; exec sleep 1000", "user": "nobody",
		 "env": {"DB_URL": "readonly"}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock"), "DB_URL=admin", "HOME=/root"}}, "-c", cfg)
	waitFor(t, 20*time.Second, "the env listed", func() bool { return len(lines(filepath.Join(dir, "env"))) > 0 })
	var urls, homes []string
	for _, l := range lines(filepath.Join(dir, "env")) {
		if v, ok := strings.CutPrefix(l, "DB_URL="); ok {
			urls = append(urls, v)
		}
		if v, ok := strings.CutPrefix(l, "HOME="); ok {
			homes = append(homes, v)
		}
	}
	if len(urls) != 1 || urls[0] != "readonly" {
		t.Errorf("DB_URL in the service's environ: %q, want only \"readonly\"", urls)
	}
	if len(homes) != 1 || homes[0] == "/root" {
		t.Errorf("HOME in the service's environ: %q, want only nobody's", homes)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestSecurityNotifyWithoutNewline: a service that writes to its notify fd
// and never ends a line must not grow PID 1: past a page it is a failed
// readiness, logged, and the run is stopped.
func TestSecurityNotifyWithoutNewline(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `{"services": [
		{"name": "chatty", "command": "head -c 50000000 /dev/zero >&3; exec sleep 1000",
		 "ready": {"notify_fd": 3}, "max_retries": 0}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}}, "-c", cfg)
	waitFor(t, 30*time.Second, "the failed readiness", func() bool {
		return strings.Contains(v.stderr.String(), "readiness failed: the run counts as failed service=chatty")
	})
	waitFor(t, 30*time.Second, "chatty given up", func() bool { return strings.Contains(v.stderr.String(), "given up service=chatty") })
	if hwm := peakRSS(t, v.pid()); hwm > 64<<10 {
		t.Errorf("vigil's peak RSS %d KiB after a newline-less notify flood of 50 MB", hwm)
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// peakRSS is a process's VmHWM in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	for _, l := range lines("/proc/" + strconv.Itoa(pid) + "/status") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no VmHWM for pid %d", pid)
	return 0
}

// nobodysDir is a temporary directory the user nobody can write.
func nobodysDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	return dir
}
