package integration

// Chaos: vigil as PID 1 under abuse (docs/configuration.md to
// docs/state-and-reexec.md under load; figures in docs/RELIABILITY.md). Each
// test has a short form that runs in `make test` (seconds) and a long one,
// with the figures of issue 8, behind VIGIL_CHAOS=1 (`make chaos`). Every
// figure is logged as a "FIGURE" line (go test -v shows them);
// docs/RELIABILITY.md collects them.

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/state"
	"golang.org/x/sys/unix"
)

// chaosLong selects the long forms (VIGIL_CHAOS=1, `make chaos`).
var chaosLong = os.Getenv("VIGIL_CHAOS") != ""

// pick returns short in `make test`, long under VIGIL_CHAOS=1.
func pick[T any](short, long T) T {
	if chaosLong {
		return long
	}
	return short
}

var (
	chaosOnce sync.Once
	chaosProg string // integration/chaosprog, built next to testprog
)

func chaosBin() string {
	chaosOnce.Do(func() {
		chaosProg = filepath.Join(filepath.Dir(testProg), "chaosprog")
		build(chaosProg, "./chaosprog")
	})
	return chaosProg
}

// chaosConfig is config with $C for chaosprog's path as well.
func chaosConfig(t *testing.T, dir, doc string) string {
	t.Helper()
	return config(t, dir, strings.ReplaceAll(doc, "$C", chaosBin()))
}

func figure(t *testing.T, format string, a ...any) {
	t.Helper()
	t.Logf("FIGURE %s: %s", t.Name(), fmt.Sprintf(format, a...))
}

// procInfo is what the tests read of a process: /proc/PID/status (VmRSS,
// VmHWM, Threads), its descriptors, and utime+stime from /proc/PID/stat.
type procInfo struct {
	rss, hwm int // KiB
	threads  int
	fds      int
	ticks    int64 // utime+stime, clock ticks (1/100 s)
}

func readProc(pid int) (procInfo, bool) {
	var p procInfo
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return p, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		switch k {
		case "VmRSS":
			p.rss = n
		case "VmHWM":
			p.hwm = n
		case "Threads":
			p.threads = n
		}
	}
	p.fds = fdCount(pid)
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 {
			f := strings.Fields(string(st[i+1:]))
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				s, _ := strconv.ParseInt(f[12], 10, 64)
				p.ticks = u + s
			}
		}
	}
	return p, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z'
}

// descendants lists every process below pid, from one pass over /proc.
func descendants(pid int) []int {
	kids := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(p); ok {
			kids[st.ppid] = append(kids[st.ppid], p)
		}
	}
	var out []int
	for queue := kids[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, kids[queue[0]]...)
	}
	return out
}

// nsPids maps the PIDs inside vigil's namespace (what services and status
// see) to the test's, for every descendant of vigil.
func nsPids(v *vigil) map[int]int {
	m := map[int]int{}
	for _, p := range descendants(v.pid()) {
		if !v.pid1 {
			m[p] = p
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f, ok := strings.CutPrefix(l, "NSpid:"); ok {
				ids := strings.Fields(f)
				if n, err := strconv.Atoi(ids[len(ids)-1]); err == nil {
					m[n] = p
				}
			}
		}
	}
	return m
}

// hostPid maps one PID inside vigil's namespace to the test's.
func hostPid(t *testing.T, v *vigil, nsPid int) int {
	t.Helper()
	if p, ok := nsPids(v)[nsPid]; ok {
		return p
	}
	t.Fatalf("no process with namespace PID %d under vigil", nsPid)
	return 0
}

// strays counts vigil's children that are chaosprog's orphans (or still
// its storm driver), and its zombies.
func strays(pid int) (orphans, zombie int) {
	for _, c := range children(pid) {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/comm")
		if strings.TrimSpace(string(comm)) == "chaosprog" {
			orphans++
		}
		if st, ok := readStat(c); ok && st.state == 'Z' {
			zombie++
		}
	}
	return orphans, zombie
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// reexecAsync asks vigil to re-exec without failing the test from another
// goroutine; the error, if any, is returned on the channel.
func reexecAsync(sock string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		cmd := exec.Command(vigilBin, "reexec")
		cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("vigil reexec: %v: %s", err, out)
		}
		ch <- err
	}()
	return ch
}

var adoptedRe = regexp.MustCompile(`adopted services after re-exec(?: generation=|","generation":)(\d+)`)

// generation is the last re-exec generation vigil logged.
func generation(v *vigil) int {
	m := adoptedRe.FindAllStringSubmatch(v.stderr.String(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// reexecAndWait re-execs vigil and waits until generation gen is adopted
// and the socket answers.
func reexecAndWait(t *testing.T, v *vigil, sock string, gen int) {
	t.Helper()
	if err := <-reexecAsync(sock); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "re-exec generation "+strconv.Itoa(gen), func() bool { return generation(v) >= gen })
	waitFor(t, 30*time.Second, "socket after re-exec", func() bool { return ctlOK(t, sock, "status") })
}

// settleRSS waits up to d for vigil's RSS to come back under goal and
// returns the last reading.
func settleRSS(pid, goal int, d time.Duration) int {
	end := time.Now().Add(d)
	for {
		p, _ := readProc(pid)
		if p.rss <= goal || time.Now().After(end) {
			return p.rss
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastLine(file string) string {
	l := lines(file)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

func TestChaosOrphanStorm(t *testing.T) {
	n1, n2 := pick(500, 100000), pick(200, 20000)
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, fmt.Sprintf(`{"services": [
		{"name": "storm1", "command": "while [ ! -e $D/go1 ]; do sleep 0.05; done; exec $C storm %d 1000 $D/storm1", "oneshot": true},
		{"name": "storm2", "command": "while [ ! -e $D/go2 ]; do sleep 0.05; done; exec $C storm %d 500 $D/storm2", "oneshot": true},
		{"name": "steady", "command": ["$T", "record", "$D/rec"]}
	]}`, n1, n2))
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	_, steadyPid, _ := svc(t, sock, "steady")
	time.Sleep(time.Second)
	idle, _ := readProc(v.pid())

	// Storm 1: n1 orphans, 1000 at a time.
	peak, maxZombies := idle.rss, 0
	began := time.Now()
	os.WriteFile(filepath.Join(dir, "go1"), nil, 0o644)
	tick := 0
	waitFor(t, pick(5*time.Minute, 30*time.Minute), "storm 1 done", func() bool {
		if p, ok := readProc(v.pid()); ok && p.rss > peak {
			peak = p.rss
		}
		if tick++; tick%40 == 0 {
			maxZombies = max(maxZombies, zombies(v.pid()))
		}
		return strings.HasPrefix(lastLine(filepath.Join(dir, "storm1")), "done")
	})
	made := time.Since(began)
	waitFor(t, 60*time.Second, "every orphan reaped", func() bool {
		o, z := strays(v.pid())
		return o == 0 && z == 0
	})
	drained := time.Since(began)
	p, _ := readProc(v.pid())
	peak = max(peak, p.hwm)
	goal := idle.rss + max(idle.rss/2, 4096)
	after := settleRSS(v.pid(), goal, pick(10*time.Second, 60*time.Second))
	figure(t, "%d orphans in %s (%.0f/s), all reaped %s after the start; zombies seen at once <= %d; vigil RSS KiB idle %d, peak %d, after %d",
		n1, made.Round(time.Millisecond), float64(n1)/made.Seconds(), drained.Round(time.Millisecond), maxZombies, idle.rss, peak, after)
	if after > goal {
		t.Errorf("vigil's RSS %d KiB after the storm, idle was %d KiB", after, idle.rss)
	}

	// Storm 2, re-exec in the middle: orphans that exit while vigil execs
	// are reaped by the new image.
	os.WriteFile(filepath.Join(dir, "go2"), nil, 0o644)
	waitFor(t, pick(5*time.Minute, 30*time.Minute), "storm 2 half way", func() bool {
		l := lastLine(filepath.Join(dir, "storm2"))
		k, _ := strconv.Atoi(strings.TrimPrefix(l, "made "))
		return strings.HasPrefix(l, "done") || k >= n2/2
	})
	reexecAndWait(t, v, sock, 1)
	waitFor(t, pick(5*time.Minute, 30*time.Minute), "storm 2 done", func() bool {
		return strings.HasPrefix(lastLine(filepath.Join(dir, "storm2")), "done")
	})
	waitFor(t, 60*time.Second, "every orphan of storm 2 reaped", func() bool {
		o, z := strays(v.pid())
		return o == 0 && z == 0
	})
	if _, pid, _ := svc(t, sock, "steady"); pid != steadyPid {
		t.Errorf("steady restarted: pid %d -> %d", steadyPid, pid)
	}
	figure(t, "%d more orphans with a re-exec half way: none left", n2)
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
}

// stormSignals are the signals of the storms: every kind vigil forwards,
// drops or keeps, but none that shuts it down (TERM, INT, QUIT, PWR) and
// none that cannot be caught.
var stormSignals = func() []syscall.Signal {
	list := []syscall.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT, unix.SIGWINCH,
		unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPIPE, unix.SIGURG, unix.SIGCHLD, unix.SIGVTALRM,
		unix.SIGXCPU, unix.SIGXFSZ, unix.SIGIO, unix.SIGSYS, unix.SIGTRAP, unix.SIGABRT, unix.SIGSTKFLT,
		unix.SIGBUS, unix.SIGSEGV, unix.SIGFPE, unix.SIGILL, unix.SIGPROF}
	for s := 35; s <= 64; s++ {
		list = append(list, syscall.Signal(s))
	}
	return list
}()

// burst sends n signals of stormSignals to pid, round robin, and returns
// how many the kernel refused (EAGAIN: the real-time queue is full).
func burst(pid, n int) (refused int) {
	for i := 0; i < n; i++ {
		if err := unix.Kill(pid, stormSignals[i%len(stormSignals)]); err == unix.EAGAIN {
			refused++
		}
	}
	return refused
}

// recordLines counts the lines of the services' record files.
func recordLines(dir string, tags []string) []int {
	var out []int
	for _, tag := range tags {
		out = append(out, len(tagged(filepath.Join(dir, "rec"), tag)))
	}
	return out
}

const recorders = `{"services": [
	{"name": "r1", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "r1"}},
	{"name": "r2", "command": ["$T", "record", "$D/rec"], "env": {"TAG": "r2"}},
	{"name": "r3", "command": "exec $T record $D/rec", "env": {"TAG": "r3"}}
]}`

var recorderTags = []string{"r1", "r2", "r3"}

// startRecorders starts vigil (PID 1) with the three recorders and waits
// until each records and the socket answers; it returns their PIDs by tag.
func startRecorders(t *testing.T) (v *vigil, dir, sock string, pids map[string]int) {
	t.Helper()
	dir = t.TempDir()
	sock = filepath.Join(dir, "sock")
	v = start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", config(t, dir, recorders))
	for _, tag := range recorderTags {
		waitFor(t, 15*time.Second, tag+" ready", func() bool { return len(tagged(filepath.Join(dir, "rec"), tag)) > 0 })
	}
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	pids = map[string]int{}
	for _, tag := range recorderTags {
		_, pids[tag], _ = svc(t, sock, tag)
	}
	return v, dir, sock, pids
}

func TestChaosSignalStorm(t *testing.T) {
	n := pick(2000, 50000)

	v, dir, sock, before := startRecorders(t)
	idle, _ := readProc(v.pid())

	began := time.Now()
	refused := burst(v.pid(), n)
	sent := time.Since(began)
	// Wait until the services stop recording: vigil has forwarded all.
	last, stable := recordLines(dir, recorderTags), 0
	waitFor(t, 60*time.Second, "forwarding to settle", func() bool {
		now := recordLines(dir, recorderTags)
		if fmt.Sprint(now) == fmt.Sprint(last) {
			stable++
		} else {
			last, stable = now, 0
		}
		return stable >= 100 // 0.5 s without a new line
	})
	select {
	case <-v.done:
		t.Fatalf("vigil died in the signal storm: exit %d", v.code)
	default:
	}
	if !alive(v.pid()) {
		t.Fatal("vigil is gone")
	}
	for _, tag := range recorderTags {
		if _, pid, _ := svc(t, sock, tag); pid != before[tag] {
			t.Errorf("%s restarted in the storm: pid %d -> %d", tag, before[tag], pid)
		}
	}
	got := recordLines(dir, recorderTags)
	for i, tag := range recorderTags {
		if got[i] < 2 {
			t.Errorf("%s got no forwarded signal", tag)
		}
	}
	p, _ := readProc(v.pid())
	figure(t, "%d signals (%d kinds) sent in %s, %d refused by the kernel (RT queue full); vigil alive, services kept their PIDs; lines recorded per service %v; vigil RSS KiB %d before, %d after, peak %d",
		n, len(stormSignals), sent.Round(time.Millisecond), refused, got, idle.rss, p.rss, p.hwm)
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after the final TERM, want 0", code)
	}
	for _, tag := range recorderTags {
		if tl := tagged(filepath.Join(dir, "rec"), tag); len(tl) == 0 || tl[len(tl)-1] != "SIGTERM" {
			t.Errorf("%s did not end on SIGTERM", tag)
		}
	}
}

// execSafeSignals are the storm's signals that a PID 1 vigil survives at
// every instant of a re-exec. The Go runtime ends a process that gets TERM,
// INT, HUP (exit 2) or QUIT, ABRT, SYS, TRAP, STKFLT, ILL and a kill(2)'d
// SEGV, BUS, FPE (a crash) between
// installing its handlers and the first signal.Notify for them; vigil
// notifies in the first package init (cmd/vigil/internal/early), TERM first,
// which narrows that window but cannot close it (docs/RELIABILITY.md has the
// figures). Every other signal in that window is dropped by the kernel
// (SIG_DFL at an init) or ignored by the runtime: at worst lost, never fatal.
var execSafeSignals = func() []syscall.Signal {
	var list []syscall.Signal
	for _, s := range stormSignals {
		switch s {
		case unix.SIGHUP, unix.SIGABRT, unix.SIGSYS, unix.SIGTRAP, unix.SIGSTKFLT, unix.SIGILL,
			unix.SIGBUS, unix.SIGSEGV, unix.SIGFPE:
			continue
		}
		list = append(list, s)
	}
	return list
}()

// TestChaosSignalStormDuringReexec keeps signals coming while vigil, PID 1,
// re-execs itself: it stays up, its services keep their PIDs, and the TERM
// afterwards still shuts everything down cleanly.
func TestChaosSignalStormDuringReexec(t *testing.T) {
	execs := pick(3, 20)

	v, _, sock, before := startRecorders(t)
	vpid := v.pid()
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			if unix.Kill(vpid, execSafeSignals[i%len(execSafeSignals)]) == unix.ESRCH {
				return
			}
			sent.Add(1)
			if i%64 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	died := false
	for i := 1; i <= execs && !died; i++ {
		if err := <-reexecAsync(sock); err != nil {
			t.Logf("reexec %d: %v", i, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for generation(v) < i && time.Now().Before(deadline) && !died {
			select {
			case <-v.done:
				died = true
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	stop.Store(true)
	<-done
	if died {
		tail := v.stderr.String()
		if len(tail) > 1500 {
			tail = tail[len(tail)-1500:]
		}
		t.Fatalf("vigil died during re-exec %d of %d under a storm of %d signals: exit %d; the end of its log:\n%s",
			generation(v)+1, execs, sent.Load(), v.code, tail)
	}
	if g := generation(v); g != execs {
		t.Fatalf("%d re-execs adopted, want %d", g, execs)
	}
	for _, tag := range recorderTags {
		if _, pid, _ := svc(t, sock, tag); pid != before[tag] {
			t.Errorf("%s: pid %d before the re-execs, %d after", tag, before[tag], pid)
		}
	}
	figure(t, "%d re-execs of PID 1 under a storm of %d signals (%d kinds): vigil alive, services kept their PIDs",
		execs, sent.Load(), len(execSafeSignals))
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
}

// rtCounter counts one real-time signal one for one (blocked, then
// sigwaitinfo: no coalescing in the receiver, as there would be in a Go or
// shell handler) and appends its running count to a file after each.
const rtCounter = `import signal, sys
sig, out = int(sys.argv[2]), sys.argv[1]
signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
f = open(out, "a", buffering=1)
open(out + ".ready", "w").close()
n = 0
while True:
    signal.sigwaitinfo([sig])
    n += 1
    f.write("%d\n" % n)
`

// TestChaosRealtimeSignals measures how far "real-time signals are forwarded
// one for one" holds (docs/signals.md, What Go can and cannot promise): one
// at a time, every one must arrive; in a burst and paced, the figures are
// reported. Go's runtime keeps one pending bit per
// signal number between its handler and os/signal's queue, so signals that
// arrive faster than its signal goroutine runs collapse into one before vigil
// sees them, and nothing tells vigil how many there were: neither one for one
// in a burst nor "any drop is logged" can be built on os/signal
// (docs/RELIABILITY.md).
func TestChaosRealtimeSignals(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 for a receiver that does not coalesce signals")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rt.py"), []byte(rtCounter), 0o644)
	cfg := config(t, dir, `{"services": [{"name": "rt", "command": ["`+py+`", "$D/rt.py", "$D/count", "40"]}]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 30*time.Second, "receiver ready", func() bool { _, err := os.Stat(filepath.Join(dir, "count.ready")); return err == nil })
	got := func() int {
		l := lines(filepath.Join(dir, "count"))
		if len(l) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(l[len(l)-1])
		return n
	}
	// settle waits until the count has not moved for a second: the signals
	// vigil passed on have all arrived.
	settle := func() int {
		last, since := got(), time.Now()
		waitFor(t, 60*time.Second, "the count to settle", func() bool {
			if n := got(); n != last {
				last, since = n, time.Now()
			}
			return time.Since(since) > time.Second
		})
		return last
	}
	// One at a time: each must arrive before the next is sent.
	nl := pick(100, 1000)
	for i := 1; i <= nl; i++ {
		unix.Kill(v.pid(), syscall.Signal(40))
		waitFor(t, 10*time.Second, fmt.Sprintf("real-time signal %d of %d", i, nl), func() bool { return got() >= i })
	}
	if n := settle(); n != nl {
		t.Errorf("one at a time: %d of %d arrived", n, nl)
	}
	// A burst, as fast as kill(2) goes.
	n := pick(1000, 10000)
	for i := 0; i < n; i++ {
		unix.Kill(v.pid(), syscall.Signal(40))
	}
	burst := settle() - nl
	// Paced: one every 200 µs.
	np := pick(200, 2000)
	for i := 0; i < np; i++ {
		unix.Kill(v.pid(), syscall.Signal(40))
		time.Sleep(200 * time.Microsecond)
	}
	paced := settle() - nl - burst
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	figure(t, "SIGRTMIN+6 at vigil: %d of %d one at a time, %d of %d in a burst, %d of %d paced (one per 200 µs)", nl, nl, burst, n, paced, np)
	if burst < 1 || paced < 1 {
		t.Errorf("a burst or a paced run forwarded nothing")
	}
}

// crashLoop runs n crash-looping services under a respawn limit of
// limitN per window for d, re-exec'ing every reexecEvery (0: never), and
// returns the restarts counted and the allowance of the token bucket.
func crashLoop(t *testing.T, n, limitN int, window, d, reexecEvery, every time.Duration) (restarts, allowance int) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	var svcs []string
	for i := 0; i < n; i++ {
		svcs = append(svcs, fmt.Sprintf(`{"name": "crash%02d", "command": ["$T", "exit", "1"], "max_retries": -1,
			"backoff": {"initial": "1ms", "max": "1ms", "jitter": 0}}`, i))
	}
	svcs = append(svcs, `{"name": "steady", "command": ["$T", "record", "$D/rec"]}`)
	cfg := config(t, dir, fmt.Sprintf(`{"services": [%s], "respawn_limit": "%d/%s"}`, strings.Join(svcs, ",\n"), limitN, window))
	began := time.Now()
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	_, steadyPid, _ := svc(t, sock, "steady")

	var xs, rss, fds, thr []float64
	end := began.Add(d)
	nextExec, gen := began.Add(reexecEvery), 0
	for time.Now().Before(end) {
		time.Sleep(every)
		if p, ok := readProc(v.pid()); ok {
			xs = append(xs, time.Since(began).Minutes())
			rss = append(rss, float64(p.rss))
			fds = append(fds, float64(p.fds))
			thr = append(thr, float64(p.threads))
		}
		if reexecEvery > 0 && time.Now().After(nextExec) {
			gen++
			reexecAndWait(t, v, sock, gen)
			nextExec = time.Now().Add(reexecEvery)
		}
	}
	if _, pid, _ := svc(t, sock, "steady"); pid != steadyPid {
		t.Errorf("steady restarted: pid %d -> %d", steadyPid, pid)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(60 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
	elapsed := time.Since(began)
	starts := 0
	for i := 0; i < n; i++ {
		starts += strings.Count(v.stderr.String(), fmt.Sprintf("started service=crash%02d ", i))
	}
	restarts = starts - n
	per := window / time.Duration(limitN)
	allowance = limitN + int(elapsed/per) + 1
	// Slopes over the part after the first 30% (warm-up).
	k := len(xs) * 3 / 10
	first, lastFd := fds[k], fds[len(fds)-1]
	figure(t, "%d services crash-looping %s under respawn_limit %d/%s (re-exec every %s, %d re-execs): %d restarts, bucket allows %d (%.0f%%); vigil RSS KiB %0.f..%0.f, slope %+.1f KiB/min; fds %0.f..%0.f, slope %+.2f/min; threads %0.f..%0.f",
		n, d, limitN, window, reexecEvery, gen, restarts, allowance, 100*float64(restarts)/float64(allowance),
		minOf(rss[k:]), maxOf(rss[k:]), slope(xs[k:], rss[k:]), minOf(fds[k:]), maxOf(fds[k:]), slope(xs[k:], fds[k:]), minOf(thr), maxOf(thr))
	if lastFd > first+2 {
		t.Errorf("vigil's fds grew from %0.f to %0.f", first, lastFd)
	}
	if restarts < allowance/3 {
		t.Logf("only %d restarts of %d allowed: the machine is too slow to reach the limit", restarts, allowance)
	}
	return restarts, allowance
}

func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

func TestChaosCrashLoop(t *testing.T) {
	restarts, allowance := crashLoop(t, 20, 20, time.Second, pick(8*time.Second, 5*time.Minute), 0, pick(500*time.Millisecond, 5*time.Second))
	if restarts > allowance {
		t.Errorf("%d restarts, the respawn limit allows %d", restarts, allowance)
	}
}

func TestChaosCrashLoopDuringReexec(t *testing.T) {
	// 5/5s: one token a second, so 20 crash loops always wait for one.
	restarts, allowance := crashLoop(t, 20, 5, 5*time.Second, pick(6*time.Second, time.Minute), pick(2*time.Second, 10*time.Second), 500*time.Millisecond)
	// The bucket and each pending restart's time and token are in the
	// handoff: a re-exec neither refills the bucket nor starts early a
	// restart waiting for its token (bug 2 of docs/RELIABILITY.md, fixed).
	if restarts > allowance {
		t.Errorf("the respawn limit does not hold across re-exec: %d restarts, the bucket allows %d", restarts, allowance)
	}
}

func TestChaosForkThousand(t *testing.T) {
	n := pick(100, 1000)
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, fmt.Sprintf(`{"services": [
		{"name": "forkexit", "command": ["$C", "forkexit", "%d", "$D/exit-pids"], "restart": "never"},
		{"name": "forkstay", "command": ["$C", "forkstay", "%d", "$D/stay-pids"], "stop_timeout": "20s"}
	], "shutdown_timeout": "20s"}`, n, n))
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	pidsOf := func(file string) []int {
		var out []int
		for _, l := range lines(file) {
			if p, err := strconv.Atoi(l); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	for _, f := range []string{"exit-pids", "stay-pids"} {
		waitFor(t, 60*time.Second, f, func() bool { return lastLine(filepath.Join(dir, f)) == "end" })
	}
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	waitFor(t, 15*time.Second, "forkexit exited", func() bool { s, _, _ := svc(t, sock, "forkexit"); return s == "exited" })
	// The sleepers of forkexit are vigil's now; kill half of them: vigil
	// reaps them.
	ns := nsPids(v)
	var host []int
	for _, p := range pidsOf(filepath.Join(dir, "exit-pids")) {
		host = append(host, ns[p])
	}
	for _, p := range host {
		if st, ok := readStat(p); !ok || st.ppid != v.pid() {
			t.Fatalf("sleeper %d is not vigil's child: %+v", p, st)
		}
	}
	// A re-exec with the sleepers re-parented: the new image reaps them, and
	// stops forkstay's adopted group.
	reexecAndWait(t, v, sock, 1)
	for _, p := range host[:n/2] {
		unix.Kill(p, unix.SIGKILL)
	}
	waitFor(t, 30*time.Second, "the killed half reaped", func() bool {
		for _, p := range host[:n/2] {
			if _, ok := readStat(p); ok {
				return false
			}
		}
		return true
	})
	if z := zombies(v.pid()); z != 0 {
		t.Errorf("%d zombies", z)
	}

	// stop of forkstay returns once its whole group is gone: the leader
	// and its 1000 sleepers.
	stayHost := []int{}
	for _, p := range pidsOf(filepath.Join(dir, "stay-pids")) {
		stayHost = append(stayHost, ns[p])
	}
	began := time.Now()
	if code, _, errs := ctl(t, sock, "stop", "forkstay"); code != 0 {
		t.Fatalf("stop forkstay: exit %d %s", code, errs)
	}
	took := time.Since(began)
	left := 0
	for _, p := range stayHost {
		if alive(p) {
			left++
		}
	}
	if left != 0 {
		t.Errorf("%d of forkstay's %d children alive after stop returned", left, n)
	}
	// stop of forkexit (exited, its group still holds 500 sleepers).
	if code, _, errs := ctl(t, sock, "stop", "forkexit"); code != 0 {
		t.Errorf("stop forkexit: exit %d %s", code, errs)
	}
	leftExit := 0
	for _, p := range host[n/2:] {
		if alive(p) {
			leftExit++
		}
	}
	figure(t, "a service forked %d children and exited; a re-exec; then: %d killed children reaped, 0 zombies; stop of a service with %d children in its group took %s, %d left; stop of the exited service left %d of its group's %d sleepers alive",
		n, n/2, n, took.Round(time.Millisecond), left, leftExit, n/2)
	began = time.Now()
	v.signal(unix.SIGTERM)
	if code := v.wait(60 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
	for _, p := range host[n/2:] {
		if alive(p) {
			t.Errorf("sleeper %d survived vigil", p)
			break
		}
	}
	figure(t, "shutdown with %d leftover sleepers of an exited service: %s", leftExit, time.Since(began).Round(time.Millisecond))
}

// TestChaosStopDeafServiceTwiceAndAcrossReexec: the SIGKILL that ends a
// service deaf to its stop signal comes stop_timeout after the stop, even
// when the stop is asked for again meanwhile, or vigil re-execs in the middle
// of it (the stop client, cut off by the exec, asks the new image again).
func TestChaosStopDeafServiceTwiceAndAcrossReexec(t *testing.T) {
	const timeout = 2 * time.Second
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "deaf", "command": ["$C", "ignore-all", "3", "$D/deaf"], "stop_timeout": "2s"},
		{"name": "steady", "command": ["sleep", "1000"]}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	stopAsync := func() <-chan error {
		ch := make(chan error, 1)
		go func() {
			cmd := exec.Command(vigilBin, "stop", "deaf")
			cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("vigil stop deaf: %v: %s", err, out)
			}
			ch <- err
		}()
		return ch
	}
	stoppings := func() int { return strings.Count(v.stderr.String(), "stopping service=deaf ") }
	for round, between := range []string{"a second stop", "a re-exec"} {
		if round > 0 {
			if code, _, errs := ctl(t, sock, "start", "deaf"); code != 0 {
				t.Fatalf("start deaf: exit %d %s", code, errs)
			}
		}
		_, pid, _ := svc(t, sock, "deaf")
		// Its signal handlers are set once it says so: "ready pid=PID".
		waitFor(t, 30*time.Second, "deaf ready", func() bool {
			return lastLine(filepath.Join(dir, "deaf")) == fmt.Sprintf("ready pid=%d", pid)
		})
		began := time.Now()
		first := stopAsync()
		waitFor(t, 15*time.Second, "deaf stopping", func() bool { return stoppings() == round+1 })
		switch round {
		case 0:
			if err := <-stopAsync(); err != nil {
				t.Errorf("the second stop: %v", err)
			}
		case 1:
			reexecAndWait(t, v, sock, 1)
		}
		if err := <-first; err != nil {
			t.Errorf("stop with %s in the middle: %v", between, err)
		}
		took := time.Since(began)
		if st, p, _ := svc(t, sock, "deaf"); st != "stopped" || p != 0 {
			t.Errorf("after stop with %s in the middle: deaf %s pid %d (was %d)", between, st, p, pid)
		}
		if took < timeout || took > timeout+10*time.Second {
			t.Errorf("stop with %s in the middle took %v, stop_timeout %v", between, took, timeout)
		}
		if !t.Failed() {
			figure(t, "stop of a service deaf to every signal (stop_timeout %v) with %s in the middle: SIGKILLed, stop returned after %v",
				timeout, between, took.Round(time.Millisecond))
		}
	}
	if n := strings.Count(v.stderr.String(), "stop timeout: killing the group service=deaf"); n != 2 {
		t.Errorf("%d SIGKILLs logged for deaf, want 2", n)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
}

func TestChaosIgnoresEveryStopSignal(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	k := pick(5, 20) // children of each, ignoring every signal as well
	cfg := chaosConfig(t, dir, fmt.Sprintf(`{"services": [
		{"name": "deaf", "command": ["$C", "ignore-all", "%d", "$D/deaf"], "stop_timeout": "500ms"},
		{"name": "deafquit", "command": ["$C", "ignore-all", "%d", "$D/deafquit"], "stop_signal": "QUIT", "stop_timeout": "700ms"},
		{"name": "deaflong", "command": ["$C", "ignore-all", "%d", "$D/deaflong"], "stop_timeout": "60s"}
	], "shutdown_timeout": "1500ms"}`, k, k, k))
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	group := func(name string) []int {
		var out []int
		waitFor(t, 30*time.Second, name+" ready", func() bool { return strings.HasPrefix(lastLine(filepath.Join(dir, name)), "ready") })
		ns := nsPids(v)
		for _, l := range lines(filepath.Join(dir, name)) {
			f := strings.Fields(l)
			p, _ := strconv.Atoi(strings.TrimPrefix(f[1], "pid="))
			if ns[p] == 0 {
				t.Fatalf("%s: no process %d under vigil", name, p)
			}
			out = append(out, ns[p])
		}
		return out
	}
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{{"deaf", 500 * time.Millisecond}, {"deafquit", 700 * time.Millisecond}} {
		pids := group(tc.name)
		began := time.Now()
		if code, _, errs := ctl(t, sock, "stop", tc.name); code != 0 {
			t.Fatalf("stop %s: exit %d %s", tc.name, code, errs)
		}
		took := time.Since(began)
		for _, p := range pids {
			if alive(p) {
				t.Errorf("%s: process %d survived stop", tc.name, p)
			}
		}
		if took < tc.timeout || took > tc.timeout+5*time.Second {
			t.Errorf("%s: stop took %s, stop_timeout %s", tc.name, took, tc.timeout)
		}
		figure(t, "%s (ignores every signal, %d processes): stop took %s with stop_timeout %s", tc.name, len(pids), took.Round(time.Millisecond), tc.timeout)
	}
	// Shutdown: deaflong's stop_timeout (60s) is beyond the shutdown
	// deadline (1.5s): SIGKILL at the deadline.
	pids := group("deaflong")
	began := time.Now()
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	took := time.Since(began)
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d survived vigil", p)
		}
	}
	if took < 1500*time.Millisecond || took > 6*time.Second {
		t.Errorf("shutdown took %s with a 1.5s deadline", took)
	}
	if !strings.Contains(v.stderr.String(), "shutdown deadline reached") {
		t.Errorf("no log line for the deadline")
	}
	figure(t, "shutdown with a deaf service (stop_timeout 60s) and shutdown_timeout 1.5s: vigil exited 0 after %s", took.Round(time.Millisecond))
}

// floodWidth is chaosprog's: the width of line seq, newline included.
func floodWidth(seq int64) int { return 24 + int((seq*7919)%4096) }

// lineChecker reads vigil's stdout as it comes and checks every line of
// `chaosprog flood` whole, prefixed by its own service, in order.
type lineChecker struct {
	mu      sync.Mutex
	partial []byte
	next    map[string]int64
	bytes   int64
	err     error
}

func (c *lineChecker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes += int64(len(p))
	data := p
	if len(c.partial) > 0 {
		c.partial = append(c.partial, p...)
		data = c.partial
	}
	for c.err == nil {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.line(data[:i])
		data = data[i+1:]
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

func (c *lineChecker) line(l []byte) {
	name, rest, ok := bytes.Cut(l, []byte(" | "))
	tag, rest2, ok2 := bytes.Cut(rest, []byte(" "))
	num, xs, ok3 := bytes.Cut(rest2, []byte(" "))
	seq, err := strconv.ParseInt(string(num), 10, 64)
	if !ok || !ok2 || !ok3 || err != nil || string(name) != string(tag) {
		c.err = fmt.Errorf("torn, foreign or unprefixed line %.100q", l)
		return
	}
	want := c.next[string(name)]
	if seq != want {
		c.err = fmt.Errorf("%s: line %d follows line %d", name, seq, want-1)
		return
	}
	if len(rest)+1 != floodWidth(seq) || bytes.Count(xs, []byte("x")) != len(xs) {
		c.err = fmt.Errorf("%s: line %d torn: %d bytes, want %d", name, seq, len(rest)+1, floodWidth(seq))
		return
	}
	c.next[string(name)] = seq + 1
}

func (c *lineChecker) state() (int64, map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int64{}
	for k, v := range c.next {
		m[k] = v
	}
	return c.bytes, m, c.err
}

func TestChaosLogFlood(t *testing.T) {
	total := pick(int64(50<<20), int64(1<<30))
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	// steady keeps vigil up once the floods are done, so a re-exec asked
	// at the very end still happens and is checked.
	cfg := chaosConfig(t, dir, fmt.Sprintf(`{"services": [
		{"name": "f1", "command": "while [ ! -e $D/go ]; do sleep 0.05; done; exec $C flood %d f1", "log": "prefix", "oneshot": true},
		{"name": "f2", "command": "while [ ! -e $D/go ]; do sleep 0.05; done; exec $C flood %d f2", "log": "prefix", "oneshot": true},
		{"name": "steady", "command": ["sleep", "1000"], "log": "prefix"}
	]}`, total/2, total/2))
	check := &lineChecker{next: map[string]int64{}}
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: func(c *exec.Cmd) { c.Stdout = check }}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	time.Sleep(500 * time.Millisecond)
	idle, _ := readProc(v.pid())
	vpid := v.pid()

	// written is what each flood says it wrote, once it is done.
	written := func() map[string]int64 {
		m := map[string]int64{}
		for _, tag := range []string{"f1", "f2"} {
			if sm := regexp.MustCompile(tag + ` \| flood done ` + tag + ` (\d+) lines`).FindStringSubmatch(v.stderr.String()); sm != nil {
				m[tag], _ = strconv.ParseInt(sm[1], 10, 64)
			}
		}
		return m
	}
	began := time.Now()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	peak := idle.rss
	gen := 0
	var reexecErr <-chan error
	var took time.Duration
	deadline := time.Now().Add(pick(5*time.Minute, 30*time.Minute))
	for {
		select {
		case <-v.done:
			t.Fatalf("vigil exited %d during the flood", v.code)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood did not finish")
		}
		if p, ok := readProc(vpid); ok && p.rss > peak {
			peak = p.rss
		}
		n, next, err := check.state()
		if err != nil {
			t.Fatal(err)
		}
		// Re-exec at 25%, 50% and 75% of the bytes, one at a time.
		if reexecErr == nil && gen < 3 && n > int64(gen+1)*total/4 && n < total*9/10 {
			gen++
			reexecErr = reexecAsync(sock)
		}
		if reexecErr != nil && generation(v) >= gen {
			if err := <-reexecErr; err != nil {
				t.Errorf("re-exec %d: %v", gen, err)
			}
			reexecErr = nil
		}
		if w := written(); reexecErr == nil && len(w) == 2 && next["f1"] == w["f1"] && next["f2"] == w["f2"] {
			took = time.Since(began)
			break
		}
	}
	n, next, _ := check.state()
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after TERM", code)
	}
	if _, _, err := check.state(); err != nil {
		t.Error(err)
	}
	figure(t, "%d MiB through log: prefix (2 services, %d+%d lines of 24..4119 bytes) in %s (%.0f MiB/s) with %d re-execs: no line torn, lost or reordered; vigil RSS KiB idle %d, peak %d",
		n>>20, next["f1"], next["f2"], took.Round(time.Millisecond), float64(n)/(1<<20)/took.Seconds(), gen, idle.rss, peak)
	if peak > idle.rss+64<<10 {
		t.Errorf("vigil's RSS peaked at %d KiB (idle %d KiB)", peak, idle.rss)
	}
}

func TestChaosStoppedServices(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "a", "command": ["$T", "record", "$D/a"], "stop_timeout": "30s"},
		{"name": "b", "command": ["$T", "record", "$D/b"], "stop_timeout": "30s"},
		{"name": "g", "command": ["$C", "forkstay", "10", "$D/g"], "stop_timeout": "30s"}
	], "shutdown_timeout": "30s"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	a := hostPid(t, v, waitReady(t, filepath.Join(dir, "a")))
	b := hostPid(t, v, waitReady(t, filepath.Join(dir, "b")))
	waitFor(t, 30*time.Second, "g's children", func() bool { return lastLine(filepath.Join(dir, "g")) == "end" })
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	_, gPid, _ := svc(t, sock, "g")
	g := hostPid(t, v, gPid)
	stopped := func(p int) bool { st, ok := readStat(p); return ok && st.state == 'T' }
	unix.Kill(a, unix.SIGSTOP)
	unix.Kill(-g, unix.SIGSTOP) // the whole group
	waitFor(t, 10*time.Second, "a and g stopped", func() bool { return stopped(a) && stopped(g) })
	// The new image adopts stopped processes like any others.
	reexecAndWait(t, v, sock, 1)
	if _, p, _ := svc(t, sock, "a"); hostPid(t, v, p) != a || !stopped(a) {
		t.Fatalf("a after the re-exec: pid %d, stopped %v", p, stopped(a))
	}

	began := time.Now()
	if code, _, errs := ctl(t, sock, "stop", "a"); code != 0 {
		t.Fatalf("stop a: exit %d %s", code, errs)
	}
	tookA := time.Since(began)
	if !strings.Contains(strings.Join(lines(filepath.Join(dir, "a")), " "), "SIGTERM") {
		t.Errorf("a never saw its SIGTERM: %q", lines(filepath.Join(dir, "a")))
	}
	began = time.Now()
	if code, _, errs := ctl(t, sock, "stop", "g"); code != 0 {
		t.Fatalf("stop g: exit %d %s", code, errs)
	}
	tookG := time.Since(began)
	for _, took := range []time.Duration{tookA, tookG} {
		if took > 10*time.Second {
			t.Errorf("stop of a SIGSTOPped service took %s: SIGCONT missing, it waited for SIGKILL", took)
		}
	}
	// Shutdown with b stopped.
	unix.Kill(b, unix.SIGSTOP)
	waitFor(t, 10*time.Second, "b stopped", func() bool { return stopped(b) })
	reexecAndWait(t, v, sock, 2)
	began = time.Now()
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	tookB := time.Since(began)
	if !strings.Contains(strings.Join(lines(filepath.Join(dir, "b")), " "), "SIGTERM") {
		t.Errorf("b never saw its SIGTERM")
	}
	if tookB > 10*time.Second {
		t.Errorf("shutdown with a stopped service took %s", tookB)
	}
	figure(t, "SIGSTOPped services, stop_timeout 30s, a re-exec with them stopped: stop of a stopped service %s, of a stopped group of 11 %s, shutdown with a stopped service %s (TERM then CONT: no SIGKILL needed)",
		tookA.Round(time.Millisecond), tookG.Round(time.Millisecond), tookB.Round(time.Millisecond))
}

func TestChaosFullStateVolume(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o755)
	// mode: a tmpfs root is 1777, a volume others could write.
	if err := unix.Mount("tmpfs", sdir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sdir, unix.MNT_DETACH) })
	sock := filepath.Join(dir, "sock")
	cfg := config(t, dir, `{"services": [
		{"name": "steady", "command": ["$T", "record", "$D/rec"]},
		{"name": "crash", "command": "while [ ! -e $D/go ]; do sleep 0.05; done; echo run >> $D/runs; exit 1",
		 "max_retries": 3, "backoff": {"initial": "10ms", "jitter": 0}},
		{"name": "crash2", "command": "while [ ! -e $D/go2 ]; do sleep 0.05; done; echo run >> $D/runs2; exit 1",
		 "max_retries": 2, "backoff": {"initial": "10ms", "jitter": 0}}
	], "state_dir": "$D/state"}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "rec"))
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	waitFor(t, 15*time.Second, "state file", func() bool { _, err := os.Stat(filepath.Join(sdir, "state.json")); return err == nil })
	_, steadyPid, _ := svc(t, sock, "steady")

	// Fill the volume.
	f, err := os.Create(filepath.Join(sdir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	filled := 0
	for {
		n, err := f.Write(chunk)
		filled += n
		if err != nil {
			break
		}
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	waitFor(t, 30*time.Second, "crash given up", func() bool { s, _, _ := svc(t, sock, "crash"); return s == "given-up" })
	if n := len(lines(filepath.Join(dir, "runs"))); n != 4 {
		t.Errorf("crash ran %d times on a full volume, want 1 + max_retries = 4", n)
	}
	reexecAndWait(t, v, sock, 1)
	if _, pid, _ := svc(t, sock, "steady"); pid != steadyPid {
		t.Errorf("steady restarted: %d -> %d", steadyPid, pid)
	}
	if s, _, _ := svc(t, sock, "crash"); s != "given-up" {
		t.Errorf("crash is %s after re-exec", s)
	}
	b, _ := os.ReadFile(filepath.Join(sdir, "state.json"))
	stale := !strings.Contains(string(b), `"given_up": true`) && !strings.Contains(string(b), `"given_up":true`)
	readState(t, sdir) // still a whole, parsable file
	// Free the space: later changes reach the file again.
	os.Remove(filepath.Join(sdir, "filler"))
	os.WriteFile(filepath.Join(dir, "go2"), nil, 0o644)
	waitFor(t, 30*time.Second, "crash2 given up", func() bool { s, _, _ := svc(t, sock, "crash2"); return s == "given-up" })
	recovered := false
	deadline := time.Now().Add(5 * time.Second)
	for !recovered && time.Now().Before(deadline) {
		recovered = readState(t, sdir).Services["crash2"].GivenUp
		time.Sleep(100 * time.Millisecond)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	warns := strings.Count(v.stderr.String(), "level=WARN") + strings.Count(v.stderr.String(), " WARN ")
	figure(t, "state volume (tmpfs 64k) filled (%d KiB of filler): a crash loop kept its policy (4 runs, given up), a steady service kept its PID across a re-exec, the state file stayed parsable (stale while full: %v), %d warnings; after freeing space the file caught up: %v",
		filled>>10, stale, warns, recovered)
	if !recovered {
		t.Errorf("the state file was not written again once the volume had space")
	}
}

// Security (docs/control.md, issue 8): the control socket, users, secrets,
// file modes, shells.

// copyExe copies an executable into dir (mode 0755), for processes that do
// not run as root: the test binaries live in a root-only directory.
func copyExe(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// asNobody runs argv as uid/gid 65534 and returns its exit code and output.
func asNobody(t *testing.T, env []string, argv ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestSecurityControlSocketRefusesOtherUsers(t *testing.T) {
	dir := openDir(t) // 0777: only the socket's own mode protects it
	vig := copyExe(t, vigilBin, dir)
	sock := filepath.Join(dir, "vigil.sock")
	cfg := config(t, dir, `{"services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	// The file mode refuses uid 65534 (connect: EACCES).
	code, out := asNobody(t, []string{"VIGIL_SOCKET=" + sock}, vig, "status")
	if code != 1 || !strings.Contains(out, "permission denied") {
		t.Errorf("uid 65534 against a 0600 socket: exit %d %q", code, out)
	}
	// With the mode opened (a careless chmod), SO_PEERCRED still refuses.
	os.Chmod(sock, 0o666)
	code, out = asNobody(t, []string{"VIGIL_SOCKET=" + sock}, vig, "status")
	if code != 1 || !strings.Contains(out, "permission denied: uid 65534 may not use vigil's control socket") {
		t.Errorf("uid 65534 against a 0666 socket: exit %d %q", code, out)
	}
	code, out = asNobody(t, []string{"VIGIL_SOCKET=" + sock}, vig, "stop", "a")
	if code != 1 {
		t.Errorf("uid 65534 stopped a service: exit %d %q", code, out)
	}
	if state, _, _ := svc(t, sock, "a"); state != "ready" {
		t.Errorf("a is %s", state)
	}
	if !strings.Contains(v.stderr.String(), "refused a connection from another user") || !strings.Contains(v.stderr.String(), "uid=65534") {
		t.Errorf("no warning for the refused connection")
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

func TestSecurityServiceAsUserCannotReachSocket(t *testing.T) {
	dir := openDir(t)
	cp := copyExe(t, chaosBin(), dir)
	vig := copyExe(t, vigilBin, dir)
	sock := filepath.Join(dir, "vigil.sock")
	doc := `{"services": [
		{"name": "spy", "command": ["CP", "connect", "$D/vigil.sock", "$D/spy"], "user": "nobody"},
		{"name": "spy2", "command": "VIGIL_SOCKET=$D/vigil.sock @VIG@ status > $D/spy2.out 2>&1; echo exit=$? >> $D/spy2.out; exec sleep 1000",
		 "user": "65534:65534"},
		{"name": "rootsvc", "command": ["CP", "connect", "$D/vigil.sock", "$D/root"]}
	]}`
	doc = strings.NewReplacer("CP", cp, "@VIG@", vig).Replace(doc)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", config(t, dir, doc))
	for _, f := range []string{"spy", "root"} {
		waitFor(t, 30*time.Second, f+" tried", func() bool { return lastLine(filepath.Join(dir, f)) == "end" })
	}
	waitFor(t, 30*time.Second, "spy2 tried", func() bool {
		return strings.Contains(strings.Join(lines(filepath.Join(dir, "spy2.out")), "\n"), "exit=")
	})
	spy := strings.Join(lines(filepath.Join(dir, "spy")), "\n")
	if !strings.Contains(spy, "uid=65534 connect-failed") || !strings.Contains(spy, "permission denied") {
		t.Errorf("a service running as nobody reached the socket: %q", spy)
	}
	spy2 := strings.Join(lines(filepath.Join(dir, "spy2.out")), "\n")
	if !strings.Contains(spy2, "exit=1") || !strings.Contains(spy2, "permission denied") {
		t.Errorf("vigil status from a service running as nobody: %q", spy2)
	}
	// A service left as root can (root is trusted: docs/control.md, Who may use it).
	if root := strings.Join(lines(filepath.Join(dir, "root")), "\n"); !strings.Contains(root, `"ok":true`) {
		t.Errorf("a root service: %q", root)
	}
	figure(t, "service as nobody: %s; `vigil status` as 65534:65534: %s", strings.SplitN(spy, "\n", 2)[0], strings.ReplaceAll(spy2, "\n", " "))
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
}

// fdList reads the descriptors chaosprog fds listed: "N target" lines.
func fdList(file string) []string {
	var out []string
	for _, l := range lines(file) {
		if l != "end" {
			out = append(out, l)
		}
	}
	return out
}

func TestSecurityNoDescriptorLeaksToServices(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "pre", "command": "echo hello; exec sleep 1000", "log": "prefix"},
		{"name": "note", "command": "echo ready >&3; exec sleep 1000", "ready": {"notify_fd": 3}},
		{"name": "lister", "command": ["$C", "fds", "$D/fds"]}
	]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 30*time.Second, "lister", func() bool { return lastLine(filepath.Join(dir, "fds")) == "end" })
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "ready") })
	// What the service holds beyond 0-2 before any re-exec: the Go
	// runtime's own cgroup files, and whatever vigil itself inherited.
	baseline := map[string]bool{}
	for _, l := range fdList(filepath.Join(dir, "fds")) {
		baseline[l] = true
	}
	vigilFds := func() map[string]bool {
		m := map[string]bool{}
		entries, _ := os.ReadDir("/proc/" + strconv.Itoa(v.pid()) + "/fd")
		for _, e := range entries {
			if target, err := os.Readlink("/proc/" + strconv.Itoa(v.pid()) + "/fd/" + e.Name()); err == nil {
				m[target] = true
			}
		}
		return m
	}
	// Before a re-exec, no descriptor of vigil's own reaches a service
	// (but those vigil inherited itself, as the test did: no init closes
	// what its parent left open).
	ambient := map[string]bool{}
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			ambient[e.Name()+" "+target] = true
		}
	}
	own := vigilFds()
	var before []string
	for l := range baseline {
		f := strings.Fields(l)
		if n, _ := strconv.Atoi(f[0]); n > 2 && own[f[1]] && !ambient[l] {
			before = append(before, l)
		}
	}
	reexecAndWait(t, v, sock, 1)
	os.Remove(filepath.Join(dir, "fds"))
	if code, _, errs := ctl(t, sock, "restart", "lister"); code != 0 {
		t.Fatalf("restart lister: %d %s", code, errs)
	}
	waitFor(t, 30*time.Second, "lister after re-exec", func() bool { return lastLine(filepath.Join(dir, "fds")) == "end" })
	own = vigilFds()
	var leaked []string
	for _, l := range fdList(filepath.Join(dir, "fds")) {
		if f := strings.Fields(l); !baseline[l] && own[f[1]] {
			leaked = append(leaked, l)
		}
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	if len(before) != 0 {
		t.Errorf("before any re-exec a service held vigil's pipes: %q", before)
	}
	figure(t, "descriptors of vigil's own held by a service started after a re-exec: %q (before the re-exec: %q)", leaked, before)
	if len(leaked) != 0 {
		t.Errorf("after a re-exec, a service started by the new image holds vigil's descriptors %q", leaked)
	}
}

func TestSecuritySecretsStayOutOfLogsAndState(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			secret := fmt.Sprintf("s3cr3t-%d-%x", os.Getpid(), time.Now().UnixNano())
			secret2 := "other-" + secret
			dir := t.TempDir()
			sdir := filepath.Join(dir, "state")
			os.Mkdir(sdir, 0o700)
			sock := filepath.Join(dir, "sock")
			doc := `{"services": [
				{"name": "app", "command": ["$T", "record", "$D/rec"], "env": {"DB_PASSWORD": "SECRET"}, "log": "prefix"},
				{"name": "crash", "command": "exit 3", "env": {"DB_PASSWORD": "SECRET"}, "max_retries": 1, "backoff": {"initial": "10ms"}},
				{"name": "checked", "command": ["sleep", "1000"], "env": {"DB_PASSWORD": "SECRET"},
				 "ready": {"exec": ["sh", "-c", "test -n \"$DB_PASSWORD\""], "timeout": "20s"}},
				{"name": "missing", "command": ["/nonexistent/prog"], "env": {"DB_PASSWORD": "SECRET"}, "restart": "never"}
			], "state_dir": "$D/state"}`
			cfg := config(t, dir, strings.ReplaceAll(doc, "SECRET", secret))
			var stdout syncBuffer
			env := []string{"VIGIL_SOCKET=" + sock, "VIGIL_LOG_LEVEL=debug", "VIGIL_LOG_FORMAT=" + format, "VIGIL_LOG_FILE=" + filepath.Join(dir, "vigil.log")}
			v := start(t, modes[0], opts{env: env, setup: func(c *exec.Cmd) { c.Stdout = &stdout }}, "-c", cfg)
			waitReady(t, filepath.Join(dir, "rec"))
			waitFor(t, 30*time.Second, "crash given up", func() bool { s, _, _ := svc(t, sock, "crash"); return s == "given-up" })
			waitFor(t, 30*time.Second, "checked ready", func() bool { _, _, r := svc(t, sock, "checked"); return r })
			var outputs []string
			for _, args := range [][]string{{"status"}, {"status", "--json"}, {"signal", "USR1", "app"}, {"ready"}} {
				_, out, errs := ctl(t, sock, args...)
				outputs = append(outputs, out, errs)
			}
			// A reload that changes the secret restarts app with the new one.
			config(t, dir, strings.ReplaceAll(doc, "SECRET", secret2))
			_, out, errs := ctl(t, sock, "reload")
			outputs = append(outputs, out, errs)
			reexecAndWait(t, v, sock, 1)
			_, out, errs = ctl(t, sock, "stop", "app")
			outputs = append(outputs, out, errs)
			check := exec.Command(vigilBin, "check", "-c", cfg)
			check.Env = append(os.Environ(), env...)
			b, _ := check.CombinedOutput()
			outputs = append(outputs, string(b))
			v.signal(unix.SIGTERM)
			if code := v.wait(30 * time.Second); code != 0 {
				t.Errorf("exit %d", code)
			}
			places := map[string]string{"vigil's stderr": v.stderr.String(), "vigil's stdout": stdout.String(),
				"client and check output": strings.Join(outputs, "\n")}
			if b, err := os.ReadFile(filepath.Join(dir, "vigil.log")); err == nil {
				places["VIGIL_LOG_FILE"] = string(b)
			} else {
				t.Errorf("no log file: %v", err)
			}
			files, _ := os.ReadDir(sdir)
			for _, f := range files {
				b, _ := os.ReadFile(filepath.Join(sdir, f.Name()))
				places["state dir "+f.Name()] = string(b)
			}
			if _, ok := places["state dir state.json"]; !ok {
				t.Errorf("no state file")
			}
			for where, text := range places {
				for _, s := range []string{secret, secret2} {
					if strings.Contains(text, s) {
						i := strings.Index(text, s)
						t.Errorf("the secret is in %s: %q", where, text[max(0, i-200):min(len(text), i+50)])
					}
				}
			}
			if !strings.Contains(v.stderr.String(), "DEBUG") && !strings.Contains(v.stderr.String(), `"level":"DEBUG"`) {
				t.Errorf("no debug lines: the test did not look at debug level")
			}
			figure(t, "%s log at debug, %d bytes of vigil's log, %d files in the state dir, status/check output: the env secret appears nowhere", format, len(v.stderr.String()), len(files))
		})
	}
}

func TestSecurityFileModes(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "state")
	os.Mkdir(sdir, 0o777)
	os.Chmod(sdir, 0o777)
	sock := filepath.Join(dir, "run", "vigil.sock") // vigil makes the directory
	cfg := config(t, dir, `{"services": [
		{"name": "crash", "command": "exit 1", "max_retries": 1, "backoff": {"initial": "10ms"}},
		{"name": "a", "command": ["sleep", "1000"]}
	], "state_dir": "$D/state"}`)
	// umask 0: whatever vigil creates is only as private as vigil makes it.
	wrap := func(c *exec.Cmd) {
		i := slicesIndex(c.Args, vigilBin)
		c.Args = append(append(append([]string{}, c.Args[:i]...), "/bin/sh", "-c", `umask 0; exec "$0" "$@"`), c.Args[i:]...)
		c.Path = c.Args[0]
		if p, err := exec.LookPath(c.Args[0]); err == nil {
			c.Path = p
		}
	}
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}, setup: wrap}, "-c", cfg)
	waitFor(t, 15*time.Second, "socket", func() bool { return ctlOK(t, sock, "status") })
	waitFor(t, 30*time.Second, "crash given up", func() bool { s, _, _ := svc(t, sock, "crash"); return s == "given-up" })
	// sdir is 0777: vigil keeps its files in its own private directory there.
	priv := filepath.Join(sdir, state.PrivateDir)
	waitFor(t, 15*time.Second, "state file", func() bool { _, err := os.Stat(filepath.Join(priv, "state.json")); return err == nil })
	modesSeen := map[string]os.FileMode{}
	for _, p := range []string{sock, filepath.Dir(sock), priv, filepath.Join(priv, "state.json")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		modesSeen[p] = fi.Mode().Perm()
	}
	files, _ := os.ReadDir(priv)
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(priv, f.Name())); err == nil {
			modesSeen[filepath.Join(priv, f.Name())] = fi.Mode().Perm()
		}
	}
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	for p, m := range modesSeen {
		want := os.FileMode(0o600)
		if p == filepath.Dir(sock) || p == priv {
			want = 0o700
		}
		if m&0o077 != 0 {
			t.Errorf("%s: mode %v, want %v", p, m, want)
		}
	}
	var list []string
	for p, m := range modesSeen {
		list = append(list, fmt.Sprintf("%s %v", strings.TrimPrefix(p, dir+"/"), m))
	}
	figure(t, "under umask 0: %s", strings.Join(list, ", "))
}

func slicesIndex(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestSecurityArgvNeverGoesThroughAShell(t *testing.T) {
	dir := t.TempDir()
	cfg := chaosConfig(t, dir, `{"services": [
		{"name": "argv", "command": ["$C", "args", "$D/args", "a; touch $D/pwned1", "$(touch $D/pwned2)", "`+"`touch $D/pwned3`"+`", "$HOME", "*", "x > $D/pwned4"], "oneshot": true},
		{"name": "checked", "command": ["sleep", "1000"], "ready": {"exec": ["$C", "args", "$D/rargs", "; touch $D/pwned5", "$(touch $D/pwned6)"], "timeout": "20s"}},
		{"name": "shell", "command": "echo $0 > $D/shell", "oneshot": true}
	]}`)
	sock := filepath.Join(dir, "sock")
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 30*time.Second, "argv ran", func() bool { return strings.HasPrefix(lastLine(filepath.Join(dir, "args")), "exe ") })
	waitFor(t, 30*time.Second, "checked ready", func() bool { return ctlOK(t, sock, "ready", "checked") })
	waitFor(t, 30*time.Second, "shell ran", func() bool { return len(lines(filepath.Join(dir, "shell"))) > 0 })
	v.signal(unix.SIGTERM)
	v.wait(15 * time.Second)
	want := []string{"arg " + chaosBin(), "arg args", "arg " + dir + "/args", "arg a; touch " + dir + "/pwned1", "arg $(touch " + dir + "/pwned2)",
		"arg `touch " + dir + "/pwned3`", "arg $HOME", "arg *", "arg x > " + dir + "/pwned4", "exe " + chaosBin()}
	if got := lines(filepath.Join(dir, "args")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("argv arrived as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := lines(filepath.Join(dir, "rargs")); len(got) < 5 || got[3] != "arg ; touch "+dir+"/pwned5" {
		t.Errorf("readiness argv arrived as %q", got)
	}
	for i := 1; i <= 6; i++ {
		if _, err := os.Stat(filepath.Join(dir, "pwned"+strconv.Itoa(i))); err == nil {
			t.Errorf("a shell ran an argv element (pwned%d)", i)
		}
	}
	if got := lines(filepath.Join(dir, "shell")); len(got) != 1 || got[0] != "/bin/sh" {
		t.Errorf("a string command ran as %q, want /bin/sh", got)
	}
}
