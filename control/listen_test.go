package control

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process: TestMain runs `vigil status` against a socket and
// exits with Main's code when asked to (see TestPeerCredRefused).
const helperEnv = "VIGIL_CONTROL_TEST_HELPER_SOCKET"

func TestMain(m *testing.M) {
	if p := os.Getenv(floodEnv); p != "" {
		os.Exit(flood(p))
	}
	if p := os.Getenv(serveEnv); p != "" {
		os.Exit(serveHelper(p))
	}
	if p := os.Getenv(helperEnv); p != "" {
		fmt.Fprintf(os.Stdout, "uid=%d\n", os.Geteuid())
		os.Exit(Main("status", nil, p, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestSocketPaths(t *testing.T) {
	if got := SocketPaths("/x/y.sock"); len(got) != 1 || got[0] != "/x/y.sock" {
		t.Errorf("explicit: %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &st); err != nil {
		t.Skip("no /proc/self/ns/mnt:", err)
	}
	want := []string{"/run/vigil/vigil.sock", fmt.Sprintf("/dev/shm/vigil-%d.sock", st.Ino)}
	got := SocketPaths("")
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("default: %q, want %q", got, want)
	}
}

func TestSocketPathsNoProc(t *testing.T) {
	old := mntNS
	mntNS = t.TempDir() + "/nope"
	defer func() { mntNS = old }()
	if got := SocketPaths(""); len(got) != 1 || got[0] != "/run/vigil/vigil.sock" {
		t.Errorf("got %q", got)
	}
}

func TestListenModes(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	old := syscall.Umask(0) // the worst umask: the socket must still be 0600
	srv, err := Listen(dir + "/v.sock")
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if m := mode(t, srv.Path()); m.Type() != fs.ModeSocket || m.Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", m)
	}

	// A missing parent directory is made 0700.
	sub := dir + "/a/b"
	srv2, err := Listen(sub + "/v.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if m := mode(t, sub); !m.IsDir() || m.Perm() != 0o700 {
		t.Errorf("made dir mode %v, want 0700", m)
	}
	if m := mode(t, srv2.Path()); m.Perm() != 0o600 {
		t.Errorf("socket mode %v", m)
	}
}

func TestListenStale(t *testing.T) {
	path := t.TempDir() + "/v.sock"
	makeStale(t, path)
	srv, _ := serveAt(t, newFake(), path)
	if code, _, errs := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status on a server that replaced a stale socket: exit %d %q", code, errs)
	}
}

func TestListenInUse(t *testing.T) {
	srv, _ := serve(t, newFake())
	if s, err := Listen(srv.Path()); err == nil || !errors.Is(err, errInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if code, _, _ := run(srv.Path(), "status"); code != 0 {
		t.Errorf("the first server lost its socket: exit %d", code)
	}
}

func TestListenNotSocket(t *testing.T) {
	path := t.TempDir() + "/v.sock"
	os.WriteFile(path, []byte("data"), 0o644)
	if s, err := Listen(path); err == nil {
		s.Close()
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("regular file touched: %q %v", b, err)
	}
	long := t.TempDir() + "/" + strings.Repeat("x", 120) + ".sock"
	if s, err := Listen(long); err == nil || !strings.Contains(err.Error(), "too long") {
		if s != nil {
			s.Close()
		}
		t.Errorf("long path: %v", err)
	}
}

// withDefaults points the default locations at dir/run and dir/shm.
func withDefaults(t *testing.T) (rd, shm string) {
	dir := t.TempDir()
	oldRun, oldShm := runDir, shmDir
	runDir, shmDir = dir+"/run", dir+"/shm"
	os.Mkdir(shmDir, 0o1777)
	t.Cleanup(func() { runDir, shmDir = oldRun, oldShm })
	return runDir, shmDir
}

func TestListenDefaultMakesRunDir(t *testing.T) {
	rd, _ := withDefaults(t)
	srv, _ := serveAt(t, newFake(), "")
	if want := rd + "/vigil/vigil.sock"; srv.Path() != want {
		t.Fatalf("path %s, want %s", srv.Path(), want)
	}
	if m := mode(t, rd+"/vigil"); !m.IsDir() || m.Perm() != 0o700 {
		t.Errorf("run/vigil mode %v", m)
	}
	if m := mode(t, srv.Path()); m.Perm() != 0o600 {
		t.Errorf("socket mode %v", m)
	}
	// The client finds it through the same list.
	if code, _, errs := run("", "status"); code != 0 {
		t.Errorf("default client: exit %d %q", code, errs)
	}
}

func TestListenDefaultTightensRunDir(t *testing.T) {
	rd, _ := withDefaults(t)
	os.MkdirAll(rd+"/vigil", 0o755)
	os.Chmod(rd+"/vigil", 0o777)
	srv, _ := serveAt(t, newFake(), "")
	if m := mode(t, rd+"/vigil"); m.Perm() != 0o700 {
		t.Errorf("existing run/vigil left %v", m)
	}
	if !strings.HasPrefix(srv.Path(), rd) {
		t.Errorf("path %s", srv.Path())
	}
}

func TestListenDefaultFallsBack(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &st); err != nil {
		t.Skip("no /proc/self/ns/mnt:", err)
	}
	for name, setup := range map[string]func(r string){
		"run is a file": func(r string) { os.WriteFile(r, nil, 0o644) },
		"run/vigil is a file": func(r string) {
			os.Mkdir(r, 0o755)
			os.WriteFile(r+"/vigil", nil, 0o644)
		},
		"run/vigil is someone else's": func(r string) {
			os.MkdirAll(r+"/vigil", 0o700)
			os.Chown(r+"/vigil", 65534, 65534)
		},
		"run/vigil is a symlink": func(r string) {
			os.Mkdir(r, 0o755)
			os.Symlink(filepath.Dir(r), r+"/vigil")
		},
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			if strings.Contains(name, "someone") && os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			rd, shm := withDefaults(t)
			setup(rd)
			srv, _ := serveAt(t, newFake(), "")
			if want := fmt.Sprintf("%s/vigil-%d.sock", shm, st.Ino); srv.Path() != want {
				t.Fatalf("path %s, want %s", srv.Path(), want)
			}
			if m := mode(t, srv.Path()); m.Perm() != 0o600 {
				t.Errorf("socket mode %v", m)
			}
			// The client tries /run first (nothing there), then finds this one.
			if code, _, errs := run("", "status"); code != 0 {
				t.Errorf("default client: exit %d %q", code, errs)
			}
		})
	}
}

func TestNoVigilDefaultPaths(t *testing.T) {
	rd, shm := withDefaults(t)
	code, _, errs := run("", "ready")
	if code != ExitNoVigil || !strings.Contains(errs, rd+"/vigil/vigil.sock") || !strings.Contains(errs, shm+"/vigil-") {
		t.Errorf("exit %d, stderr %q: want 69 naming both paths", code, errs)
	}
}

// TestListenRealDefault is the one test on the real /run/vigil: as root,
// when no vigil uses it; it cleans up what it made.
func TestListenRealDefault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for /run/vigil")
	}
	const path = "/run/vigil/vigil.sock"
	if _, err := os.Lstat(path); err == nil {
		t.Skip(path + " exists: a vigil may be running")
	}
	_, dirErr := os.Lstat("/run/vigil")
	srv, err := Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Close()
		if dirErr != nil {
			os.Remove("/run/vigil")
		}
	}()
	if srv.Path() != path {
		t.Fatalf("path %s, want %s", srv.Path(), path)
	}
	if m := mode(t, "/run/vigil"); m.Perm() != 0o700 {
		t.Errorf("/run/vigil mode %v", m)
	}
	if m := mode(t, path); m.Type() != fs.ModeSocket || m.Perm() != 0o600 {
		t.Errorf("socket mode %v", m)
	}
	srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule peerRule
		peer uint32
		ok   bool
	}{
		{"root by root", peerRule{self: 0, overflow: 65534, mapped: true}, 0, true},
		{"root by a user", peerRule{self: 1000, overflow: 65534, mapped: true}, 0, true},
		{"own uid", peerRule{self: 1000, overflow: 65534, mapped: true}, 1000, true},
		{"another uid", peerRule{self: 1000, overflow: 65534, mapped: true}, 1001, false},
		{"nobody by root", peerRule{self: 0, overflow: 65534, mapped: true}, 65534, false},
		{"nobody by nobody, every uid mapped", peerRule{self: 65534, overflow: 65534, mapped: true}, 65534, true},
		{"overflow uid by nobody in a user namespace", peerRule{self: 65534, overflow: 65534}, 65534, false},
		{"another overflow uid", peerRule{self: 200, overflow: 200}, 200, false},
		{"root in a user namespace", peerRule{self: 65534, overflow: 65534}, 0, true},
	} {
		if tc.rule.allowed(tc.peer) != tc.ok {
			t.Errorf("%s: allowed(%d) = %v", tc.name, tc.peer, !tc.ok)
		}
	}
}

func TestCurrentPeerRule(t *testing.T) {
	dir := t.TempDir()
	oldO, oldM := overflowUIDFile, uidMapFile
	defer func() { overflowUIDFile, uidMapFile = oldO, oldM }()
	overflowUIDFile, uidMapFile = dir+"/overflowuid", dir+"/uid_map"
	os.WriteFile(overflowUIDFile, []byte("4242\n"), 0o644)
	os.WriteFile(uidMapFile, []byte("         0     100000      65536\n"), 0o644)
	if r := currentPeerRule(); r.overflow != 4242 || r.mapped {
		t.Errorf("in a user namespace: %+v", r)
	}
	os.WriteFile(uidMapFile, []byte("         0          0 4294967295\n"), 0o644)
	if r := currentPeerRule(); r.overflow != 4242 || !r.mapped {
		t.Errorf("in the initial namespace: %+v", r)
	}
	os.Remove(overflowUIDFile)
	if r := currentPeerRule(); r.overflow != 65534 {
		t.Errorf("no overflowuid file: %+v", r)
	}
}

// TestPeerCredRefused runs a client as uid 65534 against a socket that file
// permissions would let it use: SO_PEERCRED must refuse it.
func TestPeerCredRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another uid")
	}
	// A directory uid 65534 can reach, holding the socket and a copy of this
	// test binary (go test's own build directory is private).
	dir, err := os.MkdirTemp("", "vigil-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/control.test"
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}

	srv, logs := serveAt(t, newFake(), dir+"/v.sock")
	os.Chmod(srv.Path(), 0o666) // as if the file mode had failed us

	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + srv.Path()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitFailed {
		t.Fatalf("helper: %v, output %q; want exit 1", err, out)
	}
	if !strings.Contains(string(out), "uid=65534") || !strings.Contains(string(out), "permission denied: uid 65534") {
		t.Errorf("helper output %q", out)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "uid=65534") {
		t.Errorf("no warn line: %q", logs.String())
	}
	// The same binary as root is served.
	cmd = exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + srv.Path()}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "web\tready") {
		t.Errorf("helper as root: %v %q", err, out)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestFormatUptime(t *testing.T) {
	for d, want := range map[string]string{
		"0s": "0s", "-5s": "0s", "45s": "45s", "192s": "3m12s", "1h": "1h0m",
		"2h5m59s": "2h5m", "76h30m": "3d4h", "1500ms": "1s",
	} {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatUptime(dur); got != want {
			t.Errorf("formatUptime(%s) = %q, want %q", d, got, want)
		}
	}
}
