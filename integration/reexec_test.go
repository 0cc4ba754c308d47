package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func fdCount(pid int) int {
	entries, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(entries)
}

func TestReexecKeepsServicesRunning(t *testing.T) {
	const execs = 100
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [
		{"name": "steady1", "command": ["sleep", "1000"]},
		{"name": "steady2", "command": ["$T", "record", "$D/rec"]},
		{"name": "steady3", "command": ["sleep", "1000"], "log": "prefix"},
		{"name": "chatty", "command": "i=0; while :; do echo line $i; i=$((i+1)); [ $((i % 200)) = 0 ] && sleep 0.01; done", "log": "prefix"},
		{"name": "crash", "command": "echo run >> $D/runs; sleep 0.05; exit 1", "max_retries": -1,
		 "backoff": {"initial": "10ms", "max": "20ms", "jitter": 0}}
	], "respawn_limit": "0"}`)
	var stdout syncBuffer
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	before := map[string]int{}
	for _, n := range []string{"steady1", "steady2", "steady3", "chatty"} {
		_, before[n], _ = svc(t, sock, n)
	}
	fds := fdCount(v.pid())
	adopted := regexp.MustCompile(`adopted services after re-exec generation=(\d+)`)
	for i := 1; i <= execs; i++ {
		if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
			t.Fatalf("reexec %d: exit %d %s", i, code, errs)
		}
		// The listening socket is kept across the exec: a client during
		// the exec waits in its backlog and is answered, never refused.
		// (A reply that is merely slow on an overloaded machine is no
		// refusal; a refused or dropped connection is.)
		if code, _, errs := ctl(t, sock, "ready", "steady1", "chatty"); code != 0 && !strings.Contains(errs, "deadline exceeded") {
			t.Errorf("vigil ready during re-exec %d: exit %d %s", i, code, errs)
		}
		waitFor(t, 15*time.Second, "generation "+strconv.Itoa(i), func() bool {
			m := adopted.FindAllStringSubmatch(v.stderr.String(), -1)
			return len(m) > 0 && m[len(m)-1][1] == strconv.Itoa(i)
		})
		// Control connections come and go; a leak would stay.
		waitFor(t, 10*time.Second, "vigil's fd count back to "+strconv.Itoa(fds)+" after re-exec "+strconv.Itoa(i), func() bool {
			return fdCount(v.pid()) == fds
		})
	}
	for n, pid := range before {
		if _, now, _ := svc(t, sock, n); now != pid {
			t.Errorf("%s was restarted: pid %d -> %d", n, pid, now)
		}
	}
	if strings.Contains(v.stderr.String(), "cannot adopt") {
		t.Errorf("a service was not adopted")
	}
	// Let the crash-looper settle between runs, then compare its counts.
	ctl(t, sock, "stop", "crash")
	st := status(t, sock)["crash"].Services[0]
	runs := len(lines(filepath.Join(dir, "runs")))
	// Every spawn is logged once, by whichever image made it; the count
	// carried across the re-execs must match.
	spawns := strings.Count(v.stderr.String(), "started service=crash ")
	if st.Restarts != spawns-1 {
		t.Errorf("crash was started %d times but status counts %d restarts", spawns, st.Restarts)
	}
	if runs > spawns || runs < spawns-1 {
		t.Errorf("crash ran %d times, started %d", runs, spawns)
	}
	if z := zombies(v.pid()); z != 0 {
		t.Errorf("%d zombies under vigil", z)
	}
	if !strings.Contains(v.stderr.String(), "generation=100") {
		t.Errorf("did not reach generation 100")
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	// Every prefixed line arrived whole, in order, none lost or doubled.
	next := 0
	for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		n, ok := strings.CutPrefix(l, "chatty | line ")
		k, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("torn or foreign line %q after line %d", l, next-1)
		}
		if k != next {
			t.Fatalf("line %d follows line %d", k, next-1)
		}
		next++
	}
	t.Logf("%d re-execs, %d prefixed lines, %d crash runs, %d fds", execs, next, runs, fds)
}

// TestReexecExitInTheExecWindow: a service that exits while vigil is in the
// middle of replacing itself is restarted like any other. The service holds
// a control connection with half a request; that descriptor of vigil's is
// close-on-exec, so the service sees it close exactly at execve and exits 1
// then, before the new image has adopted anything. Each round, the exit must
// be taken up by the new image: logged, counted, restarted, reaped.
func TestReexecExitInTheExecWindow(t *testing.T) {
	const rounds = 5
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "dier", "command": ["$C", "die-at-exec", "$D/vigil.sock", "$D/dier"],
		 "max_retries": -1, "backoff": {"initial": "10ms", "max": "10ms", "jitter": 0}},
		{"name": "steady", "command": ["sleep", "1000"]}
	], "respawn_limit": "0"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	held := func() []string {
		var out []string
		for _, l := range lines(filepath.Join(dir, "dier")) {
			if pid, ok := strings.CutPrefix(l, "held "); ok {
				out = append(out, pid)
			}
		}
		return out
	}
	waitFor(t, 15*time.Second, "dier holding its connection", func() bool { return len(held()) == 1 })
	_, steady, _ := svc(t, sock, "steady")
	exitLine := regexp.MustCompile(`exited service=dier pid=(\d+) status=1`)
	for i := 1; i <= rounds; i++ {
		pid := held()[i-1]
		began := time.Now()
		if err := <-reexecAsync(sock); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		waitFor(t, 30*time.Second, "generation "+strconv.Itoa(i), func() bool { return generation(v) == i })
		waitFor(t, 30*time.Second, "dier restarted after re-exec "+strconv.Itoa(i), func() bool { return len(held()) == i+1 })
		if took := time.Since(began); took > 4*time.Second {
			// vigil drops a half-written request after 5 s: past that, the
			// exit may not have come from the exec.
			t.Fatalf("round %d took %v: too slow to tell the exec from vigil's request limit", i, took)
		}
		if !slices.Contains(lines(filepath.Join(dir, "dier")), "eof "+pid) {
			t.Fatalf("round %d: dier %s did not see its connection close", i, pid)
		}
		// The exit was logged by the new image (after its adoption line) and
		// counted as a restart.
		log := v.stderr.String()
		adoptAt := strings.LastIndex(log, "adopted services after re-exec generation="+strconv.Itoa(i))
		exitAt := -1
		for _, m := range exitLine.FindAllStringSubmatchIndex(log, -1) {
			if log[m[2]:m[3]] == pid {
				exitAt = m[0]
			}
		}
		if exitAt < 0 || exitAt < adoptAt {
			t.Errorf("round %d: the exit of dier %s is not logged after the adoption (at %d, adoption at %d)", i, pid, exitAt, adoptAt)
		}
		st, newPid, _ := svc(t, sock, "dier")
		if strconv.Itoa(newPid) != held()[i] || st == "" {
			t.Errorf("round %d: dier is %s pid %d, want running as %s", i, st, newPid, held()[i])
		}
	}
	if s := status(t, sock)["dier"].Services[0]; s.Restarts != rounds {
		t.Errorf("dier restarts %d, want %d (one per re-exec)", s.Restarts, rounds)
	}
	if _, pid, _ := svc(t, sock, "steady"); pid != steady {
		t.Errorf("steady: pid %d -> %d", steady, pid)
	}
	waitFor(t, 10*time.Second, "no zombie", func() bool { return zombies(v.pid()) == 0 })
	figure(t, "%d re-execs, each with a service exiting at execve: each exit logged by the new image, restarted (%d restarts), 0 zombies", rounds, rounds)
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
}

// TestRefusedHandoffFailsSafe: an image that cannot take the handoff it was
// given (here: garbage at VIGIL_HANDOFF_FD) must not start a second copy of
// the services the old image still runs, nor leak the descriptors the old
// image left open: the old processes are stopped first, and the new
// services see none of the inherited descriptors.
func TestRefusedHandoffFailsSafe(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "handoff")
	leak := filepath.Join(dir, "leak")
	for _, f := range []string{garbage, leak} {
		if err := os.WriteFile(f, []byte("\x02not a handoff"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config(t, dir, `{"services": [
		{"name": "svc", "command": "ls -l /proc/$$/fd > $D/fds; exec sleep 1000"}
	]}`)
	// The shell's sleep becomes vigil's child at the exec: the old image's
	// service, as far as the new one can tell.
	script := `sleep 1000 & echo $! > "$1/leftover"; exec "$2" -c "$3" 3<"$1/handoff" 4<"$1/leak"`
	v := start(t, modes[1], opts{
		env: []string{"VIGIL_HANDOFF_FD=3", "VIGIL_SOCKET=" + filepath.Join(dir, "sock"), "VIGIL_SHUTDOWN_TIMEOUT=5s"},
		setup: func(c *exec.Cmd) {
			c.Path = "/bin/sh"
			c.Args = []string{"sh", "-c", script, "sh", dir, vigilBin, cfg}
		},
	})
	waitFor(t, 20*time.Second, "svc started", func() bool { return len(lines(filepath.Join(dir, "fds"))) > 0 })
	left := lines(filepath.Join(dir, "leftover"))
	if len(left) != 1 {
		t.Fatalf("leftover pid file: %v", left)
	}
	if _, err := os.Stat("/proc/" + left[0]); err == nil {
		t.Errorf("the old image's process %s still runs beside the new services", left[0])
	}
	for _, l := range lines(filepath.Join(dir, "fds")) {
		if strings.Contains(l, garbage) || strings.Contains(l, leak) {
			t.Errorf("a service inherited the old image's descriptor: %s", l)
		}
	}
	if n := strings.Count(v.stderr.String(), "started service=svc"); n != 1 {
		t.Errorf("svc started %d times, want 1", n)
	}
	if !strings.Contains(v.stderr.String(), "cannot take the re-exec handoff") {
		t.Error("the refused handoff is not logged")
	}
	v.signal(unix.SIGTERM)
	v.wait(20 * time.Second)
}

// TestParentDeathSignalSurvivesReexec: the parent-death signal vigil's parent
// set (unshare --kill-child) still fires after a re-exec: the kernel keeps it
// per thread, and Go may exec from any thread. Killing unshare must take
// vigil, and with it the PID namespace, down.
func TestParentDeathSignalSurvivesReexec(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [{"name": "steady", "command": ["sleep", "1000"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	pid := v.pid()
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "ready") })
	for gen := 1; gen <= 3; gen++ {
		reexecAndWait(t, v, sock, gen)
	}
	v.cmd.Process.Kill() // unshare: vigil's parent
	waitFor(t, 20*time.Second, "vigil gone with its parent", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return err != nil
	})
}
