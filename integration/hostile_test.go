package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-init/vigil/state"
	"golang.org/x/sys/unix"
)

// Hostile neighbours (issue 13): other users on a shared state volume.

// sharedStateDir is a state directory anyone may write, as a Kubernetes
// emptyDir (0777).
func sharedStateDir(t *testing.T, dir string) string {
	t.Helper()
	sdir := filepath.Join(dir, "state")
	if err := os.Mkdir(sdir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sdir, 0o777)
	return sdir
}

func TestSecurityHostileStateVolume(t *testing.T) {
	t.Run("FIFO, link and flock of a neighbour, across a re-exec", func(t *testing.T) {
		dir := t.TempDir()
		sdir := sharedStateDir(t, dir)
		sock := filepath.Join(dir, "sock")
		if err := unix.Mkfifo(filepath.Join(sdir, state.FileName), 0o666); err != nil {
			t.Fatal(err)
		}
		os.Lchown(filepath.Join(sdir, state.FileName), 65534, 65534)
		// The neighbour holds a flock on the directory, as anyone who can
		// read it can, all through vigil's start and re-exec.
		lk, err := unix.Open(sdir, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(lk)
		if err := unix.Flock(lk, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}], "state_dir": "$D/state"}`)
		v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
		waitFor(t, 30*time.Second, "status answers despite the FIFO", func() bool { return ctlOK(t, sock, "status") })
		// Between the images, the name becomes a link to /dev/zero.
		os.Remove(filepath.Join(sdir, state.FileName))
		os.Symlink("/dev/zero", filepath.Join(sdir, state.FileName))
		reexecAndWait(t, v, sock, 1)
		priv := filepath.Join(sdir, state.PrivateDir)
		waitFor(t, 30*time.Second, "the state of generation 1 in the private directory", func() bool {
			b, err := os.ReadFile(filepath.Join(priv, state.FileName))
			if err != nil {
				return false
			}
			f, err := state.Decode(b)
			return err == nil && f.Generation >= 1 && f.Services["a"].Status != ""
		})
		if fi, err := os.Lstat(priv); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("private directory: %v %v", fi, err)
		}
		errs := v.stderr.String()
		if strings.Contains(errs, "without persistence") {
			t.Errorf("persistence turned off:\n%s", errs)
		}
		if n := strings.Count(errs, "writable by other users"); n != 2 {
			t.Errorf("%d warnings about the shared directory, want one per image (2)", n)
		}
		v.signal(unix.SIGTERM)
		if code := v.wait(30 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
	})
	t.Run("a forged given-up mark does not keep a service down", func(t *testing.T) {
		dir := t.TempDir()
		sdir := sharedStateDir(t, dir)
		sock := filepath.Join(dir, "sock")
		forged := state.File{Version: state.Version, Services: map[string]state.Service{
			"a": {Status: "given-up", Retries: 9, GivenUp: true}}}
		path := filepath.Join(sdir, state.FileName)
		if err := os.WriteFile(path, state.Encode(forged), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Skipf("cannot chown: %v", err)
		}
		cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}], "state_dir": "$D/state"}`)
		v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
		waitFor(t, 30*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
		waitFor(t, 30*time.Second, "a ready", func() bool { s, _, _ := svc(t, sock, "a"); return s == "ready" })
		v.signal(unix.SIGTERM)
		v.wait(30 * time.Second)
	})
}

// Hostile neighbours of the control socket.

// wrapShell runs vigil as `sh -c SCRIPT vigil ARGS...` inside the same
// namespaces: SCRIPT ends with `exec "$0" "$@"`, so vigil is still PID 1.
func wrapShell(script string) func(*exec.Cmd) {
	return func(c *exec.Cmd) {
		i := slicesIndex(c.Args, vigilBin)
		c.Args = append(append(append([]string{}, c.Args[:i]...), "/bin/sh", "-c", script), c.Args[i:]...)
	}
}

// nobodySquatter starts chaosprog squat as uid 65534 (outside vigil).
func nobodySquatter(t *testing.T, cp, sock, file string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cp, "squat", sock, file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, 15*time.Second, "the squatter", func() bool { return len(lines(file)) > 0 })
}

func TestSecurityShmSquatterReadOnlyRun(t *testing.T) {
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("no nsenter")
	}
	dir := openDir(t)
	cp := copyExe(t, chaosBin(), dir)
	squatFile := filepath.Join(dir, "squat")
	// In vigil's mount namespace: /run read-only, and uid 65534 listening
	// at the /dev/shm name of that namespace before vigil starts.
	script := fmt.Sprintf(`mount -t tmpfs -o ro tmpfs /run || exit 99
setpriv --reuid=65534 --regid=65534 --clear-groups %s squat shm %s &
while [ ! -s %s ]; do sleep 0.01; done
exec "$0" "$@"`, cp, squatFile, squatFile)
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	env := []string{"VIGIL_SOCKET="}
	v := start(t, modes[0], opts{env: env, setup: wrapShell(script)}, "-c", cfg)
	waitFor(t, 30*time.Second, "the squatter", func() bool { return len(lines(squatFile)) > 0 })
	squatted := strings.TrimPrefix(lines(squatFile)[0], "listening ")
	t.Cleanup(func() { os.Remove(squatted) })
	// A client in vigil's mount namespace, as `docker exec` would run it.
	status := func() (int, string) {
		cmd := exec.Command("nsenter", "-t", strconv.Itoa(v.pid()), "-m", "-p", vigilBin, "status")
		cmd.Env = append(os.Environ(), "VIGIL_SOCKET=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return code, string(out)
	}
	var code int
	var out string
	defer func() {
		if t.Failed() {
			t.Logf("last status: exit %d %q", code, out)
		}
	}()
	waitFor(t, 30*time.Second, "status through the real socket", func() bool {
		code, out = status()
		return code == 0
	})
	if !strings.Contains(out, "a\t") || strings.Contains(out, "impostor") {
		t.Errorf("status: %q", out)
	}
	if strings.Contains(v.stderr.String(), "no control socket") {
		t.Errorf("vigil went without a control socket:\n%s", v.stderr.String())
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestSecurityIdleConnectionsAndRefusedFlood(t *testing.T) {
	dir := openDir(t)
	vig := copyExe(t, vigilBin, dir)
	sock := filepath.Join(dir, "run", "vigil.sock")
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "ready") })
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	failed := 0
	for range 48 {
		if code, _, errs := ctl(t, sock, "ready"); code != 0 {
			failed++
			t.Logf("probe: %q", errs)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 48 probes failed beside 300 idle connections", failed)
	}
	// A careless chmod: uid 65534 may connect, and is refused each time.
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(sock, 0o666)
	const refused = 30
	startFlood := time.Now()
	for range refused {
		if code, _ := asNobody(t, []string{"VIGIL_SOCKET=" + sock}, vig, "status"); code != 1 {
			t.Fatalf("uid 65534: exit %d", code)
		}
	}
	took := time.Since(startFlood)
	n := strings.Count(v.stderr.String(), "refused a connection from another user")
	if n == 0 || n > int(took/time.Second)+2 {
		t.Errorf("%d warnings for %d refused connections in %v", n, refused, took)
	}
	figure(t, "%d of 48 probes answered beside 300 idle connections; %d refused connections in %v logged %d lines", 48-failed, refused, took, n)
	v.signal(unix.SIGTERM)
	v.wait(30 * time.Second)
}

func TestSecurityOverflowUIDIsNobody(t *testing.T) {
	dir := openDir(t)
	vig := copyExe(t, vigilBin, dir)
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	// vigil runs as uid 65534 of a user namespace that maps only that uid:
	// every other user shows there as the overflow uid, 65534 too.
	inUserNS := func(c *exec.Cmd) {
		c.Args = append([]string{c.Args[0], "--user", "--map-user=65534", "--map-group=65534"}, c.Args[1:]...)
	}
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: inUserNS}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { _, err := os.Stat(sock); return err == nil })
	waitFor(t, 15*time.Second, "a started", func() bool { return strings.Contains(v.stderr.String(), "started service=a") })
	os.Chmod(sock, 0o666) // a careless chmod: only the peer check is left
	cmd := exec.Command("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", vig, "stop", "a")
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "permission denied") {
		t.Errorf("uid 1000, unmapped, as the overflow uid: %q", out)
	}
	// vigil's log is written by its own goroutine: wait for the line.
	waitFor(t, 15*time.Second, "the warning for the refused connection", func() bool {
		return strings.Contains(v.stderr.String(), "refused a connection from another user")
	})
	if strings.Contains(v.stderr.String(), "stopped service=a") || strings.Contains(v.stderr.String(), "stopping service=a") {
		t.Errorf("an unmapped user stopped a:\n%s", v.stderr.String())
	}
	v.signal(unix.SIGTERM)
	v.wait(30 * time.Second)
}

func TestSecuritySocketReplacedInSharedDirectory(t *testing.T) {
	dir := openDir(t) // 0777, no sticky bit: the shared-PID pod example
	cp := copyExe(t, chaosBin(), dir)
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	if !strings.Contains(v.stderr.String(), "writable by other users") {
		t.Errorf("no warning about the shared directory:\n%s", v.stderr.String())
	}
	nobodySquatter(t, cp, sock, filepath.Join(dir, "squat"))
	waitFor(t, 15*time.Second, "vigil noticing", func() bool {
		return strings.Contains(v.stderr.String(), "someone removed or replaced it")
	})
	v.signal(unix.SIGTERM)
	v.wait(30 * time.Second)
}
