package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"exit 0 passes through", nil, []string{"--", testProg, "exit", "0"}, 0},
		{"exit 3 passes through", nil, []string{"--", testProg, "exit", "3"}, 3},
		{"exit 255 passes through", nil, []string{"--", testProg, "exit", "255"}, 255},
		{"first non-flag argument is the command", nil, []string{testProg, "exit", "4"}, 4},
		{"killed by SIGKILL exits 137", nil, []string{"--", "sh", "-c", "kill -KILL $$"}, 137},
		{"killed by SIGTERM exits 143", nil, []string{"--", "sh", "-c", "kill -TERM $$"}, 143},
		{"-e 143 makes death by SIGTERM a success", nil, []string{"-e", "143", "--", "sh", "-c", "kill -TERM $$"}, 0},
		{"-e 3 maps 3 to 0", nil, []string{"-e", "3", "--", testProg, "exit", "3"}, 0},
		{"-e3 -e 5 maps 5 to 0", nil, []string{"-e3", "-e", "5", "--", testProg, "exit", "5"}, 0},
		{"-e 3 leaves 4 alone", nil, []string{"-e", "3", "--", testProg, "exit", "4"}, 4},
		{"missing command exits 127", nil, []string{"--", "no-such-command-vigil"}, 127},
		{"missing path exits 127", nil, []string{"--", "/no/such/file"}, 127},
		{"not executable exits 126", nil, []string{"--", notExec}, 126},
		{"a directory exits 126", nil, []string{"--", dir}, 126},
		{"no command and no config is a usage error", nil, nil, 2},
		{"unknown flag is a usage error", nil, []string{"-Z", "--", "true"}, 2},
		{"-e without a number is a usage error", nil, []string{"-e", "x", "--", "true"}, 2},
		{"bad -r is a usage error", nil, []string{"-r", "NOPE:1", "--", "true"}, 2},
		{"bad VIGIL_ variable is a config error", []string{"VIGIL_SHUTDOWN_TIMEOUT=soon"}, []string{"--", "true"}, 78},
		{"empty VIGIL_ variable counts as unset", []string{"VIGIL_LOG_LEVEL="}, []string{"--", "true"}, 0},
		{"tini's flags are accepted", []string{"TINI_SUBREAPER=1", "TINI_KILL_PROCESS_GROUP="}, []string{"-s", "-g", "-w", "-v", "--", "true"}, 0},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				got, stderr := run(t, m, opts{env: tc.env}, tc.args...)
				if got != tc.want {
					t.Errorf("exit status %d, want %d; stderr:\n%s", got, tc.want, stderr)
				}
			})
		}
	}
}

func TestUsageAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		code, _ := run(t, modes[1], opts{}, args...)
		if code != 0 {
			t.Errorf("vigil %v exit %d", args, code)
		}
	}
	out, err := cmdOutput(vigilBin, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VIGIL_SHUTDOWN_TIMEOUT", "VIGIL_LOG_FORMAT", "VIGIL_RESPAWN_LIMIT", "TINI_SUBREAPER", "-r FROM:TO", "-e CODE", "-p SIG"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	out, _ = cmdOutput(vigilBin, "version", "--handoff")
	// 2: the binary handoff (1 was JSON); a number, which an older vigil
	// compares with its own before it re-execs into this binary.
	if strings.TrimSpace(out) != "2" {
		t.Errorf("version --handoff = %q, want 2", out)
	}
}

// forwarded lists the signals that must reach the main process's group in
// wrapper mode, sent one at a time.
func forwarded() []syscall.Signal {
	list := []syscall.Signal{
		unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM,
		unix.SIGCONT, unix.SIGWINCH, unix.SIGTSTP, unix.SIGABRT, unix.SIGSYS, unix.SIGTRAP,
		unix.SIGPWR, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGIO, unix.SIGSTKFLT,
		unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
	}
	for s := signals.FirstCatchableRT; s <= signals.RTMax; s++ {
		list = append(list, syscall.Signal(s))
	}
	return list
}

func TestEverySignalIsForwarded(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			rec := filepath.Join(t.TempDir(), "rec")
			v := start(t, m, opts{}, "--", testProg, "record", rec)
			waitReady(t, rec)
			for _, sig := range forwarded() {
				v.signal(sig)
				waitForLine(t, rec, signals.Name(sig), 1)
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d after TERM, want 0", code)
			}
			if got := count(lines(rec), "SIGTERM"); got != 1 {
				t.Errorf("SIGTERM arrived %d times", got)
			}
		})
	}
}

// TestSignalsInTheFirstMilliseconds: the main process, a shell that starts
// in well under a millisecond, sends vigil every forwarded signal in one
// burst as the first thing it does. vigil must act on each one (its debug
// log names every signal it forwards): it catches every signal before its
// main process exists, so none sent once that process runs is lost. The
// shell ignores them, so that the forwarded copies do not end it.
func TestSignalsInTheFirstMilliseconds(t *testing.T) {
	var nums, names []string
	for _, sig := range forwarded() {
		// The kernel discards a pending CONT when a stop signal (TSTP)
		// is sent, and the other way round: one burst cannot carry both.
		if sig != unix.SIGCONT {
			nums = append(nums, strconv.Itoa(int(sig)))
			names = append(names, signals.Name(sig))
		}
	}
	script := "trap '' " + strings.Join(nums, " ") + "\n"
	for _, n := range nums {
		script += "kill -s " + n + " $PPID\n"
	}
	script += "exec sleep 100\n"
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			v := start(t, m, opts{}, "-v", "--", "/bin/sh", "-c", script)
			for _, name := range names {
				want := "forwarded signal service=main signal=" + name + "\n"
				waitFor(t, 30*time.Second, name+" forwarded", func() bool {
					return strings.Contains(v.stderr.String(), want)
				})
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 128+int(unix.SIGTERM) {
				t.Errorf("exit %d after TERM, want %d", code, 128+int(unix.SIGTERM))
			}
		})
	}
}

func TestNeverForwarded(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	v := start(t, modes[0], opts{}, "--", testProg, "record", rec)
	waitReady(t, rec)
	for _, sig := range []syscall.Signal{unix.SIGURG, unix.SIGCHLD, unix.SIGPIPE, unix.SIGTTIN, unix.SIGTTOU} {
		v.signal(sig)
	}
	// A real-time marker is delivered after any standard signal pending
	// with it, so once it is in, none of those can still be on its way.
	v.signal(syscall.Signal(signals.RTMax))
	waitForLine(t, rec, signals.Name(signals.RTMax), 1)
	for _, l := range lines(rec) {
		switch l {
		case "SIGURG", "SIGCHLD", "SIGPIPE", "SIGTTIN", "SIGTTOU":
			t.Errorf("%s was forwarded", l)
		}
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestGrandchildInGroupGetsSignals(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	v := start(t, modes[0], opts{}, "--", testProg, "group", rec)
	waitReady(t, rec)
	waitReady(t, rec+".child")
	for _, sig := range []syscall.Signal{unix.SIGUSR1, unix.SIGHUP} {
		v.signal(sig)
		waitForLine(t, rec, signals.Name(sig), 1)
		waitForLine(t, rec+".child", signals.Name(sig), 1)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	waitForLine(t, rec+".child", "SIGTERM", 1)
}

func TestRewrite(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	v := start(t, modes[0], opts{}, "-r", "USR1:USR2", "-r", "SIGHUP:0", "--", testProg, "record", rec)
	waitReady(t, rec)
	v.signal(unix.SIGUSR1)
	waitForLine(t, rec, "SIGUSR2", 1)
	v.signal(unix.SIGHUP)
	v.signal(syscall.Signal(signals.RTMax))
	waitForLine(t, rec, signals.Name(signals.RTMax), 1)
	if n := count(lines(rec), "SIGUSR1") + count(lines(rec), "SIGHUP"); n != 0 {
		t.Errorf("rewritten or dropped signals arrived: %q", lines(rec))
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestOrphanStormLeavesNoZombie(t *testing.T) {
	const n = 2000
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			v := start(t, m, opts{}, "-w", "--", testProg, "orphans", "2000", rec)
			// 2000 forks take seconds on a loaded 2-core machine.
			waitFor(t, 120*time.Second, "the orphans made", func() bool { return count(lines(rec), "done") == 1 })
			// Every orphan must have been reaped by vigil: one warn line each.
			waitFor(t, 120*time.Second, "2000 orphans reaped", func() bool {
				return strings.Count(v.stderr.String(), "reaped orphan") >= n
			})
			if z := zombies(v.pid()); z != 0 {
				t.Errorf("%d zombies left under vigil", z)
			}
			if got := strings.Count(v.stderr.String(), "reaped orphan"); got != n {
				t.Errorf("reaped %d orphans, want %d", got, n)
			}
			v.signal(unix.SIGTERM)
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

func TestLeftoversGetTermThenKill(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			polite, stubborn := filepath.Join(dir, "polite"), filepath.Join(dir, "stubborn")
			script := testProg + " record " + polite + " & " + testProg + " ignore-term " + stubborn + " & " +
				"while ! grep -q ready " + polite + " 2>/dev/null || ! grep -q ready " + stubborn + " 2>/dev/null; do sleep 0.01; done; exit 7"
			began := time.Now()
			v := start(t, m, opts{env: []string{"VIGIL_SHUTDOWN_TIMEOUT=1s"}}, "--", "sh", "-c", script)
			code := v.wait(20 * time.Second)
			took := time.Since(began)
			if code != 7 {
				t.Errorf("exit %d, want the main's 7", code)
			}
			if count(lines(polite), "SIGTERM") != 1 {
				t.Errorf("background process did not get SIGTERM: %q", lines(polite))
			}
			if count(lines(stubborn), "SIGTERM") != 0 {
				t.Errorf("ignored SIGTERM was recorded")
			}
			if took < time.Second {
				t.Errorf("vigil exited after %s, before the 1s shutdown budget: the stubborn process was not given its time", took)
			}
			pid := waitReady(t, stubborn)
			if _, alive := readStat(pid); alive && !m.pid1 {
				t.Errorf("stubborn process %d still alive after vigil exited", pid)
			}
		})
	}
}

func TestExitsAsSoonAsLeftoversAreGone(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	script := testProg + " record " + rec + " & while ! grep -q ready " + rec + " 2>/dev/null; do sleep 0.01; done; exit 0"
	began := time.Now()
	v := start(t, modes[0], opts{env: []string{"VIGIL_SHUTDOWN_TIMEOUT=60s"}}, "--", "sh", "-c", script)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("vigil took %s: it waited for the budget instead of the last exit", took)
	}
	waitForLine(t, rec, "SIGTERM", 1)
}

func TestChildStartsWithCleanSignalState(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "status")
			code, stderr := run(t, m, opts{}, "--", "sh", "-c", "exec cat /proc/self/status > "+out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			// Ignored signals that vigil itself inherited (make, a shell) are
			// not vigil's making; it must add none and block none.
			mine := sigField(lines("/proc/self/status"), "SigIgn")
			got := lines(out)
			if blk := sigField(got, "SigBlk"); blk != 0 {
				t.Errorf("SigBlk = %x, want none", blk)
			}
			if ign := sigField(got, "SigIgn"); ign != mine {
				t.Errorf("SigIgn = %x, want what vigil inherited: %x", ign, mine)
			}
		})
	}
}

// sigField reads a hex signal mask such as SigIgn from /proc/PID/status lines.
func sigField(status []string, key string) uint64 {
	for _, l := range status {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 1 << 63
}

// TestCPUAffinityKept: vigil moves its threads onto one CPU while it
// catches its signals at start (internal/early), and must give them back
// every CPU they had: the main process, forked by one of them, and every
// thread of vigil end with the affinity vigil was started with, the whole
// machine or a taskset.
func TestCPUAffinityKept(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		t.Skip("fewer than 2 CPUs: vigil pins nothing")
	}
	last := -1
	for cpu := 0; cpu < 1024; cpu++ {
		if all.IsSet(cpu) {
			last = cpu
		}
	}
	for _, tc := range []struct {
		name    string
		taskset string // "" for none
	}{{"inherited", ""}, {"taskset", strconv.Itoa(last)}} {
		t.Run(tc.name, func(t *testing.T) {
			want := cpusAllowed(t, "/proc/self/status")
			var setup func(*exec.Cmd)
			if tc.taskset != "" {
				taskset, err := exec.LookPath("taskset")
				if err != nil {
					t.Skip("no taskset (util-linux)")
				}
				want = tc.taskset
				setup = func(c *exec.Cmd) {
					c.Args = append([]string{"taskset", "-c", tc.taskset}, c.Args...)
					c.Path = taskset
				}
			}
			v := start(t, modes[0], opts{setup: setup}, "--", "sh", "-c", "grep Cpus_allowed_list: /proc/self/status >&2; exec sleep 60")
			waitFor(t, 10*time.Second, "the main process's affinity on stderr", func() bool {
				return strings.Contains(v.stderr.String(), "Cpus_allowed_list:")
			})
			if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v.stderr.String()), "Cpus_allowed_list:")); got != want {
				t.Errorf("main process runs on CPUs %q, want %q", got, want)
			}
			tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(v.pid()) + "/task/*/status")
			for _, f := range tasks {
				if got := cpusAllowed(t, f); got != want {
					t.Errorf("vigil's thread %s runs on CPUs %q, want %q", f, got, want)
				}
			}
			v.signal(syscall.SIGTERM)
			if code := v.wait(10 * time.Second); code != 143 {
				t.Errorf("exit %d after SIGTERM, want 143", code)
			}
		})
	}
}

// cpusAllowed is the Cpus_allowed_list of a /proc/.../status file.
func cpusAllowed(t *testing.T, status string) string {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list in %s", status)
	return ""
}
