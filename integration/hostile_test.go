package integration

import (
	"os"
	"path/filepath"
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
