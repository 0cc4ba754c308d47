package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

// TestRewriteJobControl: -r applies to every signal a user can send, TTIN
// and TTOU included (dumb-init's job-control rewrites), before forwarding.
func TestRewriteJobControl(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			rec := filepath.Join(t.TempDir(), "rec")
			v := start(t, m, opts{}, "-r", "TTOU:USR1", "-r", "TTIN:TERM", "--", testProg, "record", rec)
			waitReady(t, rec)
			v.signal(unix.SIGTTOU)
			waitForLine(t, rec, "SIGUSR1", 1)
			v.signal(unix.SIGTTIN)
			// testprog exits 0 on the TERM the TTIN became.
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d after TTIN rewritten to TERM, want 0", code)
			}
			got := lines(rec)
			if count(got, "SIGTERM") != 1 || count(got, "SIGTTIN")+count(got, "SIGTTOU") != 0 {
				t.Errorf("main recorded %q, want SIGUSR1 and SIGTERM only", got)
			}
		})
	}
}

// TestRewriteOfVigilsOwnSignalIsAUsageError: CHLD, URG, PIPE and PROF never
// come from a user; a rule for one could never apply.
func TestRewriteOfVigilsOwnSignalIsAUsageError(t *testing.T) {
	for _, spec := range []string{"CHLD:TERM", "URG:0", "PIPE:USR1", "PROF:TERM"} {
		t.Run(spec, func(t *testing.T) {
			t.Parallel()
			code, stderr := run(t, modes[1], opts{}, "-r", spec, "--", "true")
			if code != 2 {
				t.Errorf("exit %d, want 2 (usage error)", code)
			}
			if want := "cannot be rewritten"; !strings.Contains(stderr, want) {
				t.Errorf("stderr %q does not say %q", stderr, want)
			}
		})
	}
}

// launchedBy starts vigil through a launcher that execs it (a shell with
// traps, nohup, testprog sigexec): vigil keeps the launcher's PID and
// inherits the dispositions and the signal mask it set.
func launchedBy(launcher ...string) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		i := slices.Index(cmd.Args, vigilBin)
		if i == 0 {
			path, err := exec.LookPath(launcher[0])
			if err != nil {
				panic(err)
			}
			cmd.Path = path
		}
		cmd.Args = slices.Concat(cmd.Args[:i], launcher, cmd.Args[i:])
	}
}

// sigBits is the mask of /proc/PID/status for sigs.
func sigBits(sigs ...syscall.Signal) uint64 {
	var m uint64
	for _, s := range sigs {
		m |= 1 << (s - 1)
	}
	return m
}

// TestIgnoredSignalsStayIgnored: a signal vigil's parent ignored stays
// ignored in the main process, as under tini (which prints 3 for the trap).
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	tests := []struct {
		name     string
		launcher []string
		want     uint64
	}{
		{"trap '' INT HUP", []string{"sh", "-c", `trap '' INT HUP; exec "$@"`, "sh"}, sigBits(unix.SIGINT, unix.SIGHUP)},
		{"job control ignored", []string{testProg, "sigexec", "-", "TSTP,TTIN,TTOU"}, sigBits(unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				out := filepath.Join(t.TempDir(), "status")
				code, stderr := run(t, m, opts{setup: launchedBy(tc.launcher...)}, "--", "sh", "-c", "exec grep SigIgn /proc/self/status > "+out)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if got := sigField(lines(out), "SigIgn"); got&tc.want != tc.want {
					t.Errorf("main's SigIgn = %x, want %x set", got, tc.want)
				}
			})
		}
	}
}

// TestNohupKeepsMainAliveOnHangup: under nohup, a hangup sent to vigil is
// not forwarded, and one sent to the main's group (a terminal going away)
// finds HUP ignored there.
func TestNohupKeepsMainAliveOnHangup(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			rec := filepath.Join(t.TempDir(), "rec")
			v := start(t, m, opts{setup: launchedBy("nohup")}, "--", testProg, "record", rec)
			waitReady(t, rec)
			var main int
			waitFor(t, 10*time.Second, "the main process", func() bool {
				kids := children(v.pid())
				if len(kids) == 1 {
					main = kids[0]
				}
				return main != 0
			})
			if ign := sigField(lines(fmt.Sprintf("/proc/%d/status", main)), "SigIgn"); ign&sigBits(unix.SIGHUP) == 0 {
				t.Errorf("main's SigIgn = %x: HUP not ignored", ign)
			}
			v.signal(unix.SIGHUP)
			if err := unix.Kill(-main, unix.SIGHUP); err != nil {
				t.Fatalf("kill -HUP -%d: %v", main, err)
			}
			// A real-time marker sent after the hangups: once it is in,
			// the main process has outlived them.
			v.signal(syscall.Signal(signals.RTMax))
			waitForLine(t, rec, signals.Name(signals.RTMax), 1)
			if n := count(lines(rec), "SIGHUP"); n != 0 {
				t.Errorf("the main process got SIGHUP %d times", n)
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d after TERM, want 0", code)
			}
		})
	}
}

// TestInheritedMaskReachesMain: signals blocked when vigil starts are
// blocked in the main process too, as under tini. Not for the signals the Go
// runtime unblocks on every thread before vigil's first instruction (HUP,
// INT, QUIT, ABRT, TERM, SYS, TRAP, ...): that part of the mask is lost.
func TestInheritedMaskReachesMain(t *testing.T) {
	blocked := []syscall.Signal{unix.SIGUSR1, unix.SIGWINCH, unix.SIGTSTP, signals.RTMin + 6}
	names := make([]string, 0, len(blocked)+1)
	for _, s := range blocked {
		names = append(names, signals.Name(s))
	}
	names = append(names, "TERM") // lost, see above
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "status")
			launcher := launchedBy(testProg, "sigexec", strings.Join(names, ","), "-")
			code, stderr := run(t, m, opts{setup: launcher}, "--", "sh", "-c", "exec grep SigBlk /proc/self/status > "+out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got := sigField(lines(out), "SigBlk")
			if want := sigBits(blocked...); got&want != want {
				t.Errorf("main's SigBlk = %x, want %x set", got, want)
			}
			if extra := got &^ sigBits(append(blocked, unix.SIGTERM)...); extra != 0 {
				t.Errorf("main's SigBlk = %x: vigil blocked %x itself", got, extra)
			}
		})
	}
}

// TestSupervisorSignalColumn: the supervisor's column of the signal table,
// rewrites included, with and without a main process.
func TestSupervisorSignalColumn(t *testing.T) {
	services := `{"services": [
		{"name": "a", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "a"}},
		{"name": "b", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "b"}}
	]}`
	marker := signals.Name(signals.RTMax)
	t.Run("without main", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		rec := filepath.Join(dir, "rec")
		cfg := config(t, dir, services)
		v := start(t, modes[0], opts{}, "-r", "TTIN:USR2", "-r", "HUP:TERM", "-c", cfg)
		for _, tag := range []string{"a", "b"} {
			waitFor(t, 15*time.Second, tag+" started", func() bool { return len(tagged(rec, tag)) > 0 })
		}
		// WINCH and TSTP are the terminal's, and only a main has one.
		for _, sig := range []syscall.Signal{unix.SIGWINCH, unix.SIGTSTP, unix.SIGUSR1, unix.SIGTTIN, signals.RTMax} {
			v.signal(sig)
		}
		for _, tag := range []string{"a", "b"} {
			waitFor(t, 15*time.Second, tag+" got the marker", func() bool { return slices.Contains(tagged(rec, tag), marker) })
			got := tagged(rec, tag)
			if !slices.Contains(got, "SIGUSR1") || !slices.Contains(got, "SIGUSR2") {
				t.Errorf("%s got %q, want SIGUSR1 and SIGUSR2 (TTIN rewritten)", tag, got)
			}
			if slices.Contains(got, "SIGWINCH") || slices.Contains(got, "SIGTSTP") || slices.Contains(got, "SIGTTIN") {
				t.Errorf("%s got %q: WINCH, TSTP or TTIN passed on", tag, got)
			}
		}
		// HUP rewritten to TERM is TERM's row: a graceful shutdown.
		v.signal(unix.SIGHUP)
		if code := v.wait(15 * time.Second); code != 0 {
			t.Errorf("exit %d after HUP rewritten to TERM, want 0", code)
		}
		for _, tag := range []string{"a", "b"} {
			if got := tagged(rec, tag); count(got, "SIGTERM") != 1 || slices.Contains(got, "SIGHUP") {
				t.Errorf("%s got %q, want one SIGTERM and no SIGHUP", tag, got)
			}
		}
	})
	t.Run("with main", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		rec, mainRec := filepath.Join(dir, "rec"), filepath.Join(dir, "main")
		cfg := config(t, dir, services)
		v := start(t, modes[0], opts{}, "-c", cfg, "--", testProg, "record", mainRec)
		waitReady(t, mainRec)
		for _, tag := range []string{"a", "b"} {
			waitFor(t, 15*time.Second, tag+" started", func() bool { return len(tagged(rec, tag)) > 0 })
		}
		for _, sig := range []syscall.Signal{unix.SIGWINCH, unix.SIGUSR1, signals.RTMax} {
			v.signal(sig)
		}
		waitForLine(t, mainRec, marker, 1)
		if got := lines(mainRec); !slices.Contains(got, "SIGWINCH") || !slices.Contains(got, "SIGUSR1") {
			t.Errorf("main got %q, want SIGWINCH and SIGUSR1", got)
		}
		v.signal(unix.SIGTERM)
		if code := v.wait(15 * time.Second); code != 0 {
			t.Errorf("exit %d after TERM, want the main's 0", code)
		}
		for _, tag := range []string{"a", "b"} {
			// The SIGCONT that follows every stop signal (so a stopped
			// service can act on it) may be read before the TERM.
			got := slices.DeleteFunc(tagged(rec, tag), func(s string) bool { return s == "SIGCONT" })
			if len(got) != 2 || got[1] != "SIGTERM" {
				t.Errorf("%s got %q, want its ready line and SIGTERM only", tag, got)
			}
		}
	})
}
