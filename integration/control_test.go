package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ctl runs a client verb against the socket and returns its exit code,
// stdout and stderr.
func ctl(t *testing.T, sock string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(vigilBin, args...)
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

type statusJSON struct {
	Services []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Pid      int    `json:"pid"`
		Restarts int    `json:"restarts"`
		Retries  int    `json:"retries"`
		LastExit *int   `json:"last_exit"`
		Ready    bool   `json:"ready"`
	} `json:"services"`
}

func status(t *testing.T, sock string) map[string]statusJSON {
	t.Helper()
	code, out, errs := ctl(t, sock, "status", "--json")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json %q: %v", out, err)
	}
	m := map[string]statusJSON{}
	for _, s := range st.Services {
		one := statusJSON{}
		one.Services = append(one.Services, s)
		m[s.Name] = one
	}
	return m
}

// svc is one service's entry of status --json.
func svc(t *testing.T, sock, name string) (state string, pid int, ready bool) {
	t.Helper()
	st, ok := status(t, sock)[name]
	if !ok {
		return "", 0, false
	}
	s := st.Services[0]
	return s.State, s.Pid, s.Ready
}

func TestControlVerbs(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": ["$T", "record", "$D/a"]},
		{"name": "b", "command": ["sleep", "100"], "ready": {"file": "$D/b-ready"}},
		{"name": "c", "command": ["sleep", "100"], "ready": {"file": "$D/never", "timeout": "100ms"}, "max_retries": 0}
	]}`)
	// As a plain child, the PIDs status shows are the test's PIDs too.
	v := start(t, modes[1], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "a"))
	waitFor(t, 15*time.Second, "c given up", func() bool { s, _, _ := svc(t, sock, "c"); return s == "given-up" })

	if code, _, _ := ctl(t, sock, "ready", "b"); code != 3 {
		t.Errorf("ready b before its file: exit %d, want 3", code)
	}
	if code, _, _ := ctl(t, sock, "ready"); code != 3 {
		t.Errorf("ready (all) with c given up: exit %d, want 3", code)
	}
	os.WriteFile(filepath.Join(dir, "b-ready"), nil, 0o644)
	waitFor(t, 15*time.Second, "ready b", func() bool { code, _, _ := ctl(t, sock, "ready", "b"); return code == 0 })

	code, out, _ := ctl(t, sock, "status")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "given-up") {
		t.Errorf("status exit %d:\n%s", code, out)
	}

	code, _, errs := ctl(t, sock, "start", "c")
	if code != 1 || !strings.Contains(errs, "given-up") {
		t.Errorf("start of a service that cannot become ready: exit %d %q", code, errs)
	}

	_, pidA, _ := svc(t, sock, "a")
	if code, _, errs := ctl(t, sock, "stop", "a"); code != 0 {
		t.Fatalf("stop a: exit %d %s", code, errs)
	}
	if state, _, _ := svc(t, sock, "a"); state != "stopped" {
		t.Errorf("a is %s after stop", state)
	}
	if st, alive := readStat(pidA); alive && st.state != 'Z' {
		t.Errorf("a's process %d survived stop", pidA)
	}
	if code, _, errs := ctl(t, sock, "start", "a"); code != 0 {
		t.Fatalf("start a: exit %d %s", code, errs)
	}
	_, pid2, _ := svc(t, sock, "a")
	readies := func() int { return strings.Count(strings.Join(lines(filepath.Join(dir, "a")), "\n"), "ready") }
	// Before restarting, let the new run set up its signal handling.
	waitFor(t, 10*time.Second, "a recording after start", func() bool { return readies() >= 2 })
	if code, _, errs := ctl(t, sock, "restart", "a"); code != 0 {
		t.Fatalf("restart a: exit %d %s", code, errs)
	}
	if _, pid3, _ := svc(t, sock, "a"); pid3 == pid2 || pid3 == 0 {
		t.Errorf("restart kept pid %d", pid2)
	}
	waitFor(t, 10*time.Second, "a recording after restart", func() bool { return readies() >= 3 })
	if code, _, errs := ctl(t, sock, "signal", "USR1", "a"); code != 0 {
		t.Fatalf("signal: exit %d %s", code, errs)
	}
	waitForLine(t, filepath.Join(dir, "a"), "SIGUSR1", 1)

	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"status", "nope"}, 1},
		{[]string{"stop", "nope"}, 1},
		{[]string{"start"}, 2},
		{[]string{"signal", "NOSIG", "a"}, 2},
	} {
		if code, _, _ := ctl(t, sock, tc.args...); code != tc.want {
			t.Errorf("vigil %v: exit %d, want %d", tc.args, code, tc.want)
		}
	}

	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if code, _, _ := ctl(t, sock, "status"); code != 69 {
		t.Errorf("status with no vigil: exit %d, want 69", code)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "keep", "command": ["sleep", "100"]},
		{"name": "change", "command": ["sleep", "100"]},
		{"name": "remove", "command": ["sleep", "100"]}
	]}`)
	v := start(t, modes[1], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "three running", func() bool { return ctlOK(t, sock, "ready") && len(status(t, sock)) == 3 })
	_, keepPid, _ := svc(t, sock, "keep")
	_, changePid, _ := svc(t, sock, "change")
	_, removePid, _ := svc(t, sock, "remove")

	config(t, dir, `{"services": [
		{"name": "keep", "command": ["sleep", "100"], "max_retries": 7},
		{"name": "change", "command": ["sleep", "200"]},
		{"name": "add", "command": ["sleep", "100"]}
	]}`)
	if code, _, errs := ctl(t, sock, "reload"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, errs)
	}
	waitFor(t, 15*time.Second, "reload applied", func() bool { return ctlOK(t, sock, "ready") })
	st := status(t, sock)
	if _, ok := st["remove"]; ok {
		t.Errorf("removed service still listed")
	}
	if _, pid, _ := svc(t, sock, "keep"); pid != keepPid {
		t.Errorf("unchanged service got a new pid %d (was %d)", pid, keepPid)
	}
	if _, pid, _ := svc(t, sock, "change"); pid == changePid || pid == 0 {
		t.Errorf("changed service kept pid %d", pid)
	}
	if state, _, _ := svc(t, sock, "add"); state != "ready" {
		t.Errorf("added service is %q", state)
	}
	if st, alive := readStat(removePid); alive && st.state != 'Z' {
		t.Errorf("removed service's process still runs")
	}

	// A broken config changes nothing and says why.
	config(t, dir, `{"services": [{"name": "keep", "command": ["sleep", "100"], "bogus": true}]}`)
	code, _, errs := ctl(t, sock, "reload")
	if code != 1 || !strings.Contains(errs, "bogus") {
		t.Errorf("reload of a bad config: exit %d %q", code, errs)
	}
	if len(status(t, sock)) != 3 {
		t.Errorf("a failed reload changed the services")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func ctlOK(t *testing.T, sock string, args ...string) bool {
	code, _, _ := ctl(t, sock, args...)
	return code == 0
}

func TestControlUnderLoadAndAbuse(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "100"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket up", func() bool { return ctlOK(t, sock, "ready") })

	// Garbage, and a half-written request left open, must not stop service.
	g, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("this is not json\n"))
	g.Close()
	half, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte(`{"v":1,"verb":"sta`))

	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(vigilBin, "status")
			cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
			if err := cmd.Run(); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of 50 concurrent status calls failed", failed)
	}

	// Other users: TestSecurityControlSocketRefusesOtherUsers (a binary
	// they can run, so that vigil's own refusal is what is checked).
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v", fi.Mode(), err)
	}
	if !ctlOK(t, sock, "status") {
		t.Errorf("vigil stopped serving")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestWrapperModeStatus(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "--", "sleep", "100")
	waitFor(t, 15*time.Second, "socket up", func() bool { return ctlOK(t, sock, "ready") })
	state, pid, _ := svc(t, sock, "main")
	if state != "ready" || pid == 0 {
		t.Errorf("main is %q pid %d", state, pid)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
}

// TestClientVerbEndsOnSignal: a client verb is no init. It must not keep the
// signals vigil catches from its first instant (package early): a Ctrl-C or a
// probe's TERM ends `vigil status` like any command, even while it waits for
// a reply that never comes.
func TestClientVerbEndsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "mute.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := l.Accept(); err == nil {
					accepted <- c // read nothing, answer nothing
				}
			}()
			cmd := exec.Command(vigilBin, "status")
			cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case c := <-accepted:
				defer c.Close()
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("vigil status never connected")
			}
			cmd.Process.Signal(sig)
			err = cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("vigil status after %v: %v (%v), want killed by the signal", sig, err, ws)
			}
		})
	}
}

// TestSocketOff: VIGIL_SOCKET=none, the leanest wrapper, opens no socket
// at all and still forwards signals and passes the exit status on; a client
// with the same setting says why it cannot ask, without searching. The
// "on" case proves the check sees a socket when there is one.
func TestSocketOff(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "v.sock")
	for _, tc := range []struct {
		name, socket string
		want         bool
	}{{"on", sock, true}, {"off", "none", false}} {
		t.Run(tc.name, func(t *testing.T) {
			v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + tc.socket, "VIGIL_LOG_LEVEL=debug"}}, "--", "sleep", "60")
			// Wrapper mode opens the socket beside main and logs what it
			// did either way.
			waitFor(t, 10*time.Second, "vigil's word on the control socket", func() bool {
				return strings.Contains(v.stderr.String(), "control socket")
			})
			if got := socketFDs(t, v.pid()); (got > 0) != tc.want {
				t.Errorf("VIGIL_SOCKET=%s: %d socket descriptors open in vigil", tc.socket, got)
			}
			v.signal(syscall.SIGTERM)
			if code := v.wait(10 * time.Second); code != 143 {
				t.Errorf("exit %d after SIGTERM, want 143", code)
			}
		})
	}
	code, _, errs := ctl(t, "none", "status")
	if code != 69 || !strings.Contains(errs, "VIGIL_SOCKET=none") {
		t.Errorf("status with VIGIL_SOCKET=none: exit %d, %q; want 69 and the reason", code, errs)
	}
}

// socketFDs counts the sockets among pid's open descriptors.
func socketFDs(t *testing.T, pid int) int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
