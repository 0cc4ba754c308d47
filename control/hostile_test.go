package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Hostile neighbours (issue 13): connection floods, refused users, unmapped
// peers in a user namespace.

// Helper modes of the test binary (see TestMain).
const (
	floodEnv = "VIGIL_CONTROL_TEST_FLOOD" // connect to the socket floodConns times
	serveEnv = "VIGIL_CONTROL_TEST_SERVE" // serve a fake handler at the path
)

const floodConns = 3000

// flood connects floodConns times, reading each reply, as a refused user
// hammering a socket a careless chmod opened; it prints how many got one.
func flood(path string) int {
	replies := 0
	for range floodConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(c).ReadBytes('\n'); err == nil {
			replies++
		}
		c.Close()
	}
	fmt.Printf("replies=%d\n", replies)
	return 0
}

// serveHelper serves a fake handler at path until killed.
func serveHelper(path string) int {
	srv, err := Listen(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening uid=%d\n", os.Geteuid())
	srv.Serve(newFake(), nil)
	return 0
}

// helperDir is a directory other uids can use, holding a copy of this test
// binary (go test's own build directory is private).
func helperDir(t *testing.T) (dir, bin string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another uid")
	}
	dir, err := os.MkdirTemp("", "vigil-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin = dir + "/control.test"
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

func TestIdleConnectionsDoNotStarveProbes(t *testing.T) {
	srv, _ := serve(t, newFake())
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	failed := 0
	for range 48 {
		if code, _, errs := run(srv.Path(), "ready"); code != 0 {
			failed++
			t.Logf("probe: exit %d %q", code, errs)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 48 probes failed beside 300 idle connections", failed)
	}
}

func TestRefusedFloodNeitherStarvesProbesNorFloodsTheLog(t *testing.T) {
	dir, bin := helperDir(t)
	srv, logs := serveAt(t, newFake(), dir+"/v.sock")
	os.Chmod(srv.Path(), 0o666) // as if the file mode had failed us

	cmd := exec.Command(bin)
	cmd.Env = []string{floodEnv + "=" + srv.Path()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var probes, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond): // a probe's pace, not a wait
				}
				probes.Add(1)
				if code, _, errs := run(srv.Path(), "ready"); code != 0 {
					failed.Add(1)
					t.Logf("probe: exit %d %q", code, errs)
				}
			}
		})
	}
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("flood: %v", err)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("flood still running after 2 minutes")
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d probes failed during the flood", failed.Load(), probes.Load())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("replies=%d", floodConns)) {
		t.Errorf("the refused user did not get a reply each time: %q", out.String())
	}
	lines := strings.Count(logs.String(), "refused a connection from another user")
	if max := int(took/warnEvery) + 2; lines > max || lines == 0 {
		t.Errorf("%d log lines for %d refused connections in %v, want 1..%d", lines, floodConns, took, max)
	}
	if lines > 1 && !strings.Contains(logs.String(), "held_back=") {
		t.Errorf("no count of the lines held back: %q", logs.String())
	}
	t.Logf("%d refused connections in %v: %d log lines; %d probes, %d failed", floodConns, took, lines, probes.Load(), failed.Load())
}

// TestUnmappedPeerIsNobody runs a server as uid 65534 of a user namespace
// where only that uid is mapped: root outside, unmapped there, shows as the
// overflow uid 65534, the server's own, and must still be refused.
func TestUnmappedPeerIsNobody(t *testing.T) {
	dir, bin := helperDir(t)
	path := dir + "/v.sock"
	cmd := exec.Command(bin)
	cmd.Env = []string{serveEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 65534, HostID: 1000, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 65534, HostID: 1000, Size: 1}},
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
	}
	stdout, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a process in a user namespace: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening uid=65534") {
		t.Fatalf("helper: %q %v; stderr %q", line, err, errb.String())
	}
	rep := raw(t, path, `{"v":1,"verb":"stop","names":["web"]}`+"\n")
	if rep.OK || !strings.Contains(rep.Error, "permission denied: uid 65534") {
		t.Errorf("an unmapped peer was obeyed by a vigil of the overflow uid: %+v", rep)
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := limiter{every: time.Second}
	for i, step := range []struct {
		at   time.Duration
		ok   bool
		held int
	}{
		{0, true, 0},
		{10 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{7 * time.Second, true, 0},
	} {
		ok, held := l.allow(t0.Add(step.at))
		if ok != step.ok || held != step.held {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, step.at, ok, held, step.ok, step.held)
		}
	}
}

// squat runs, as uid 65534, an impostor listening at path; it answers
// every request as a vigil with a service "impostor" would.
func squat(t *testing.T, bin, path string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{serveEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdout, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.HasPrefix(line, "listening uid=65534") {
		t.Fatalf("squatter: %q %v; stderr %q", line, err, errb.String())
	}
}

func shmName(t *testing.T, shm string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &st); err != nil {
		t.Skip("no /proc/self/ns/mnt:", err)
	}
	return fmt.Sprintf("%s/vigil-%d.sock", shm, st.Ino)
}

func TestShmSquatter(t *testing.T) {
	_, bin := helperDir(t)
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, name string)
	}{
		{"a live socket of another user", func(t *testing.T, name string) { squat(t, bin, name) }},
		{"a dead socket of another user", func(t *testing.T, name string) {
			makeStale(t, name)
			os.Lchown(name, 65534, 65534)
		}},
		{"a file that is no socket", func(t *testing.T, name string) { os.WriteFile(name, nil, 0o644) }},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			rd, shm := withDefaults(t)
			os.Chmod(filepath.Dir(filepath.Dir(shm)), 0o755) // t.TempDir's own
			os.Chmod(filepath.Dir(shm), 0o755)
			os.Chmod(shm, os.ModeSticky|0o777)
			os.WriteFile(rd, nil, 0o644) // no /run: as read-only
			name := shmName(t, shm)
			tc.plant(t, name)
			before, _ := os.Lstat(name)

			h := newFake()
			h.services = []ServiceStatus{{Name: "ours", State: "ready"}}
			srv, _ := serveAt(t, h, "")
			if !strings.HasPrefix(srv.Path(), strings.TrimSuffix(name, ".sock")+"-") || filepath.Base(srv.Path()) != "vigil.sock" {
				t.Fatalf("path %s", srv.Path())
			}
			if m := mode(t, filepath.Dir(srv.Path())); !m.IsDir() || m.Perm() != 0o700 {
				t.Errorf("private directory mode %v", m)
			}
			if after, err := os.Lstat(name); err != nil || !os.SameFile(before, after) {
				t.Errorf("the squatter's file was touched: %v", err)
			}
			// The client passes the impostor by and finds the real one.
			code, out, errs := run("", "status")
			if code != 0 || !strings.Contains(out, "ours") || strings.Contains(out, "web") {
				t.Errorf("default client: exit %d %q %q", code, out, errs)
			}
			srv.Close()
			if _, err := os.Lstat(filepath.Dir(srv.Path())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("private directory left after Close: %v", err)
			}
		})
	}
}

func TestSharedSocketDirectory(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	srv, logs := serveAt(t, newFake(), dir+"/v.sock")
	waitFor(t, func() bool { return strings.Contains(logs.String(), "writable by other users") })

	// Another user unlinks the socket and puts their own in its place.
	if err := os.Remove(srv.Path()); err != nil {
		t.Fatal(err)
	}
	imp, err := net.Listen("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "someone removed or replaced it") })
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("not an error line: %q", logs.String())
	}
}

func TestPrivateSocketDirectoryIsNotWatched(t *testing.T) {
	for _, mode := range []os.FileMode{0o700, 0o755, os.ModeSticky | 0o777} {
		dir := t.TempDir()
		os.Chmod(dir, mode)
		srv, logs := serveAt(t, newFake(), dir+"/v.sock")
		if code, _, errs := run(srv.Path(), "status"); code != 0 {
			t.Fatalf("status: %d %q", code, errs)
		}
		srv.Close()
		if strings.Contains(logs.String(), "writable by other users") || strings.Contains(logs.String(), "replaced") {
			t.Errorf("mode %v: %q", mode, logs.String())
		}
	}
}
