package integration

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/state"
	"golang.org/x/sys/unix"
)

func readState(t *testing.T, dir string) state.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	f, err := state.Decode(b)
	if err != nil {
		t.Fatalf("state file does not parse: %v\n%s", err, b)
	}
	return f
}

func TestStateCarriesRetriesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	cfg := config(t, dir, `{"services": [
		{"name": "flaky", "command": "echo run >> $D/runs; exit 3", "max_retries": 1, "backoff": {"initial": "10ms"}},
		{"name": "steady", "command": ["sleep", "100"]}
	], "state_dir": "$D/state"}`)
	env := []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}

	v := start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 15*time.Second, "flaky given up", func() bool { return strings.Contains(v.stderr.String(), "given up service=flaky") })
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	f := readState(t, sdir)
	if rec := f.Services["flaky"]; !rec.GivenUp || rec.Retries != 2 || rec.LastExit == nil || *rec.LastExit != 3 {
		t.Errorf("flaky's record %+v", rec)
	}
	if fi, _ := os.Stat(filepath.Join(sdir, state.FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode())
	}

	// A new vigil on the same volume keeps the given-up service down.
	v = start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 15*time.Second, "steady started", func() bool { return strings.Contains(v.stderr.String(), "started service=steady") })
	if !strings.Contains(v.stderr.String(), "given up in an earlier run") {
		t.Errorf("no log line about the carried-over mark")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	if n := len(lines(filepath.Join(dir, "runs"))); n != 2 {
		t.Errorf("flaky ran %d times in all, want 2: the mark did not carry over", n)
	}

	// vigil reset with no vigil running clears the mark in the file.
	code, _, errs := ctl(t, filepath.Join(dir, "sock"), "reset", "flaky")
	cmd := exec.Command(vigilBin, "reset", "flaky")
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+filepath.Join(dir, "sock"), "VIGIL_STATE_DIR="+sdir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("offline reset: %v %s (first try without the dir: %d %s)", err, out, code, errs)
	}
	if rec := readState(t, sdir).Services["flaky"]; rec.GivenUp || rec.Retries != 0 {
		t.Errorf("after reset: %+v", rec)
	}
	v = start(t, modes[0], opts{env: env}, "-c", cfg)
	waitFor(t, 15*time.Second, "flaky runs again", func() bool { return len(lines(filepath.Join(dir, "runs"))) > 2 })
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestCorruptStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	os.WriteFile(filepath.Join(sdir, state.FileName), []byte(`{"version": 1, "services": {"a": {"retries": `), 0o600)
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "100"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_STATE_DIR=" + sdir}}, "-c", cfg)
	waitFor(t, 15*time.Second, "a started", func() bool { return strings.Contains(v.stderr.String(), "started service=a") })
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	aside, _ := filepath.Glob(filepath.Join(sdir, state.FileName+".corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("corrupt file not moved aside: %v", aside)
	}
	if !strings.Contains(v.stderr.String(), "ERROR") {
		t.Errorf("no error log line for the corrupt file")
	}
	readState(t, sdir) // a fresh, valid one was written
}

func TestReadOnlyStateVolume(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "ro")
	os.Mkdir(sdir, 0o755)
	if err := unix.Mount("tmpfs", sdir, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
		t.Skipf("cannot mount a read-only tmpfs: %v", err)
	}
	defer unix.Unmount(sdir, unix.MNT_DETACH)
	cfg := config(t, dir, `{"services": [
		{"name": "a", "command": ["sleep", "100"]},
		{"name": "crash", "command": "exit 1", "max_retries": 3, "backoff": {"initial": "10ms"}}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_STATE_DIR=" + sdir}}, "-c", cfg)
	waitFor(t, 15*time.Second, "crash given up", func() bool { return strings.Contains(v.stderr.String(), "given up service=crash") })
	if !strings.Contains(v.stderr.String(), "started service=a") {
		t.Errorf("a read-only volume stopped the services")
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if n := strings.Count(v.stderr.String(), "WARN"); n > 2 {
		t.Errorf("%d warnings: the volume problem must be logged once", n)
	}
}

func TestKillNineLeavesParsableState(t *testing.T) {
	const kills = 200
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	cfg := config(t, dir, `{"services": [
		{"name": "crash", "command": "exit 1", "max_retries": -1, "backoff": {"initial": "1ms", "max": "5ms"}},
		{"name": "steady", "command": ["sleep", "100"]}
	], "respawn_limit": "0", "state_dir": "$D/state"}`)
	for i := 0; i < kills; i++ {
		cmd := exec.Command(vigilBin, "-c", cfg)
		mark := "KILL9_MARK=" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
		cmd.Env = append(os.Environ(), "VIGIL_LOG_LEVEL=error", "VIGIL_SOCKET="+filepath.Join(dir, "sock"), mark)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i == kills-1 {
			// The last one is killed only once it has written, so the
			// test always ends with a file to check, however slow the machine.
			waitFor(t, 60*time.Second, "a state file", func() bool {
				_, err := os.Stat(filepath.Join(sdir, state.FileName))
				return err == nil
			})
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // a random moment, by design
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// vigil's services outlive it, re-parented: clean them up.
		for _, p := range marked(mark) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		b, err := os.ReadFile(filepath.Join(sdir, state.FileName))
		if os.IsNotExist(err) {
			continue // killed before the first write
		}
		if _, err := state.Decode(b); err != nil {
			t.Fatalf("after kill %d the state file does not parse: %v\n%s", i, err, b)
		}
	}
	readState(t, sdir)
}

// marked lists the processes whose environment holds mark: the services
// of a vigil killed with -9 are re-parented away, but keep their
// environment.
func marked(mark string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && strings.Contains(string(b), mark) {
			out = append(out, pid)
		}
	}
	return out
}

// TestStateWrittenAtStart: a container killed with SIGKILL (OOM, node loss)
// right after its services started still leaves their state on the volume:
// the start of every service is written, not only the first later event.
func TestStateWrittenAtStart(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	cfg := config(t, dir, `{"services": [
		{"name": "steady", "command": ["sleep", "100"]},
		{"name": "other", "command": ["sleep", "100"]}
	], "state_dir": "$D/state"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + filepath.Join(dir, "sock")}}, "-c", cfg)
	path := filepath.Join(sdir, state.FileName)
	waitFor(t, 15*time.Second, "state.json with both services running", func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		f, err := state.Decode(b)
		return err == nil && f.Services["steady"].Pid != 0 && f.Services["other"].Pid != 0
	})
	v.signal(unix.SIGKILL)
	v.wait(15 * time.Second)
	f := readState(t, sdir)
	for _, name := range []string{"steady", "other"} {
		if rec := f.Services[name]; rec.Status != "ready" || rec.Started.IsZero() {
			t.Errorf("%s after SIGKILL: %+v", name, rec)
		}
	}
}
