package supervise

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/state"
	"golang.org/x/sys/unix"
)

// The tests in this file drive the state machine by hand: a fake clock, fake
// processes, exits delivered by the test. No process starts, nothing sleeps.

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// advance moves the clock on by d, firing every timer that comes due, in
// the order of their times.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// step moves the wall clock by d without any time elapsing, as a clock
// step does: each pending timer still fires after the same elapsed time.
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		t.at = t.at.Add(d)
	}
}

type sent struct {
	pgid int
	sig  syscall.Signal
}

type fakeProcs struct {
	next    int
	alive   map[int]bool // process groups with anyone in them
	started []string     // argv[0] of each spawn, in order
	signals []sent       // every signal but the probes
	fail    map[string]error
}

func (p *fakeProcs) Start(c proc.Command) (int, error) {
	if err := p.fail[c.Argv[0]]; err != nil {
		return 0, err
	}
	p.next++
	pid := 100 + p.next
	p.alive[pid] = true
	p.started = append(p.started, c.Argv[0])
	return pid, nil
}

func (p *fakeProcs) Signal(pgid int, sig syscall.Signal) error {
	if sig != 0 {
		p.signals = append(p.signals, sent{pgid, sig})
	}
	if !p.alive[pgid] {
		return unix.ESRCH
	}
	return nil
}

func (p *fakeProcs) SignalAll(syscall.Signal) bool { return false }

func (p *fakeProcs) NoChildren() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func (p *fakeProcs) StartTime(int) uint64 { return 1 }

func (p *fakeProcs) Escaped(int, int) []proc.Proc { return nil }

func (p *fakeProcs) SignalProc(proc.Proc, syscall.Signal) error { return unix.ESRCH }

type fakeSaver struct {
	loaded state.File
	saves  []state.File
}

func (f *fakeSaver) Load() state.File                { return f.loaded }
func (f *fakeSaver) Save(s state.File)               { f.saves = append(f.saves, s) }
func (f *fakeSaver) Flush(ctx context.Context) error { return nil }

// machine is a supervisor on fakes, with its log kept.
type machine struct {
	t      *testing.T
	s      *Supervisor
	clock  *fakeClock
	procs  *fakeProcs
	checks *fakeChecker
	log    *bytes.Buffer
}

func newMachine(t *testing.T, o Options, services ...config.Service) *machine {
	t.Helper()
	m := &machine{t: t, clock: &fakeClock{now: time.Unix(1_000_000, 0)},
		procs: &fakeProcs{alive: map[int]bool{}, fail: map[string]error{}}, log: new(bytes.Buffer)}
	o.Log = slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m.checks = &fakeChecker{}
	o.Clock, o.Procs, o.Checker, o.Services, o.Terminal = m.clock, m.procs, m.checks, services, -1
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 9 * time.Second
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.devnull != nil {
			s.devnull.Close()
		}
		close(s.quit)
	})
	m.s = s
	return m
}

// start does what Run does before its loop.
func (m *machine) start() {
	m.s.startAll()
	m.settle()
}

// settle handles every event waiting, as the loop would.
func (m *machine) settle() {
	for {
		select {
		case ev := <-m.s.events:
			m.s.handle(ev)
		default:
			return
		}
	}
}

// advance moves time on and handles what it set off.
func (m *machine) advance(d time.Duration) {
	m.clock.advance(d)
	m.settle()
}

// exit ends the run of name's leader (and its group) with code.
func (m *machine) exit(name string, code int) {
	m.t.Helper()
	svc := m.s.byName[name]
	if svc == nil || svc.pid == 0 {
		m.t.Fatalf("%s has no process to end", name)
	}
	pid := svc.pid
	m.procs.alive[pid] = false
	ws := unix.WaitStatus(code << 8)
	if code > 128 {
		ws = unix.WaitStatus(code - 128)
	}
	m.s.onExits([]reaper.Exit{{Pid: pid, Status: ws}})
	m.settle()
}

func (m *machine) state(name string) State { return m.s.byName[name].state }

func (m *machine) expect(name string, want State) {
	m.t.Helper()
	if got := m.state(name); got != want {
		m.t.Fatalf("%s is %s, want %s\nlog:\n%s", name, got, want, m.log)
	}
}

// svc is a service with a plain policy: restart always, 3 retries, a
// backoff of 1s doubling to 8s without jitter, stable after 10s.
func svc(name string, edit ...func(*config.Service)) config.Service {
	c := config.Service{Name: name, Argv: []string{name}, Restart: config.RestartAlways, MaxRetries: 3,
		Backoff:     config.Backoff{Initial: time.Second, Max: 8 * time.Second, Factor: 2},
		StableAfter: 10 * time.Second, StopSignal: unix.SIGTERM, StopTimeout: 5 * time.Second, Log: config.LogInherit}
	for _, e := range edit {
		e(&c)
	}
	return c
}

// TestRestartPolicy: one service, a sequence of runs (how long each lasted
// and how it ended), and the state and pending restart after each.
func TestRestartPolicy(t *testing.T) {
	type run struct {
		lasts time.Duration
		code  int
		state State
		delay time.Duration // of the restart now pending; -1: none
	}
	tests := []struct {
		name string
		svc  config.Service
		runs []run
	}{
		{"a crash loop backs off 1s, 2s, 4s, then is given up after max_retries", svc("a"), []run{
			{time.Second, 1, Backoff, time.Second},
			{time.Second, 1, Backoff, 2 * time.Second},
			{time.Second, 1, Backoff, 4 * time.Second},
			{time.Second, 1, GivenUp, -1},
		}},
		{"the backoff is capped at max", svc("a", func(c *config.Service) { c.MaxRetries = -1 }), []run{
			{0, 1, Backoff, time.Second}, {0, 1, Backoff, 2 * time.Second}, {0, 1, Backoff, 4 * time.Second},
			{0, 1, Backoff, 8 * time.Second}, {0, 1, Backoff, 8 * time.Second},
		}},
		{"a stable run resets the count and restarts at once", svc("a"), []run{
			{time.Second, 1, Backoff, time.Second},
			{time.Minute, 1, Backoff, 0},
			{time.Second, 1, Backoff, time.Second},
		}},
		{"under always, an exit 0 before stable_after is a failed run", svc("a"), []run{
			{time.Second, 0, Backoff, time.Second},
		}},
		{"killed by a signal is a failed run", svc("a"), []run{
			{time.Second, 137, Backoff, time.Second},
		}},
		{"on-failure: an exit 0 is exited", svc("a", func(c *config.Service) { c.Restart = config.RestartOnFailure }), []run{
			{time.Second, 1, Backoff, time.Second},
			{time.Second, 0, Exited, -1},
		}},
		{"never: a failure is given up at once", svc("a", func(c *config.Service) { c.Restart = config.RestartNever }), []run{
			{time.Minute, 3, GivenUp, -1},
		}},
		{"a oneshot's success is exited", svc("a", func(c *config.Service) { c.Oneshot, c.Restart = true, config.RestartOnFailure }), []run{
			{0, 0, Exited, -1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, Options{}, tc.svc)
			m.start()
			for i, r := range tc.runs {
				if r := m.s.byName["a"]; r.pid == 0 {
					t.Fatalf("run %d: not running (%s)", i+1, r.state)
				}
				m.advance(r.lasts)
				m.exit("a", r.code)
				m.expect("a", r.state)
				a := m.s.byName["a"]
				if r.delay < 0 {
					if a.timer.kind != noTimer {
						t.Fatalf("run %d: a timer is pending (%d)", i+1, a.timer.kind)
					}
					continue
				}
				if a.timer.kind != restartDue || a.timer.at.Sub(m.clock.Now()) != r.delay {
					t.Fatalf("run %d: timer %d in %s, want a restart in %s", i+1, a.timer.kind, a.timer.at.Sub(m.clock.Now()), r.delay)
				}
				m.advance(r.delay)
				m.expect("a", Ready)
			}
			if want := 1 + len(slices.DeleteFunc(slices.Clone(tc.runs), func(r run) bool { return r.delay < 0 })); len(m.procs.started) != want {
				t.Errorf("%d spawns, want %d", len(m.procs.started), want)
			}
		})
	}
}

// TestRespawnLimit: restarts beyond the bucket wait for a token, none is
// dropped; first starts take none.
func TestRespawnLimit(t *testing.T) {
	limit := config.RespawnLimit{N: 1, Window: time.Minute}
	quick := func(c *config.Service) { c.Backoff.Initial, c.MaxRetries = 0, -1 }
	m := newMachine(t, Options{RespawnLimit: limit}, svc("a", quick), svc("b", quick))
	m.start()
	m.exit("a", 1)
	m.advance(0)
	m.expect("a", Ready) // the one token
	m.exit("b", 1)
	m.advance(0)
	m.expect("b", Starting) // waits for the next token, a minute away
	if b := m.s.byName["b"]; b.timer.kind != tokenDue || b.timer.at.Sub(m.clock.Now()) != time.Minute {
		t.Fatalf("b: timer %d in %s, want a token wait of 1m", b.timer.kind, b.timer.at.Sub(m.clock.Now()))
	}
	m.advance(59 * time.Second)
	m.expect("b", Starting)
	m.advance(time.Second)
	m.expect("b", Ready)
	if got := m.s.byName["b"].restarts; got != 1 {
		t.Errorf("b restarts %d, want 1", got)
	}
}

// TestDependencies: a dependent starts once its dependency is ready, and is
// blocked when the dependency fails for good before it started.
func TestDependencies(t *testing.T) {
	setup := func(c *config.Service) { c.Oneshot, c.Restart, c.MaxRetries = true, config.RestartOnFailure, 1 }
	web := svc("web", func(c *config.Service) { c.DependsOn = []string{"setup"} })
	api := svc("api", func(c *config.Service) { c.DependsOn = []string{"web"} })

	t.Run("a dependent waits for a oneshot to succeed", func(t *testing.T) {
		m := newMachine(t, Options{}, svc("setup", setup), web, api)
		m.start()
		m.expect("setup", Running)
		m.expect("web", Starting)
		m.expect("api", Starting)
		m.exit("setup", 0)
		m.expect("setup", Exited)
		m.expect("web", Ready)
		m.expect("api", Ready)
		if want := []string{"setup", "web", "api"}; !slices.Equal(m.procs.started, want) {
			t.Errorf("spawned %v, want %v", m.procs.started, want)
		}
	})
	t.Run("a dependency given up blocks its dependents, once logged", func(t *testing.T) {
		m := newMachine(t, Options{}, svc("setup", setup), web, api)
		m.start()
		m.exit("setup", 1)
		m.expect("setup", Backoff)
		m.expect("web", Starting)
		m.advance(time.Second)
		m.exit("setup", 1)
		m.expect("setup", GivenUp)
		m.expect("web", Blocked)
		m.expect("api", Blocked)
		if n := strings.Count(m.log.String(), `msg="blocked: a dependency failed for good" service=web`); n != 1 {
			t.Errorf("web's block logged %d times, want 1", n)
		}
		// vigil start on the dependency: the blocked dependents start
		// once it is ready.
		m.s.startNow(m.s.byName["setup"])
		m.exit("setup", 0)
		m.expect("web", Ready)
		m.expect("api", Ready)
	})
}

// TestShutdownOrder: dependents stop before what they depend on, main
// before everything, each with its stop signal; SIGKILL after stop_timeout.
func TestShutdownOrder(t *testing.T) {
	db := svc("db", func(c *config.Service) { c.StopSignal = unix.SIGINT })
	web := svc("web", func(c *config.Service) { c.DependsOn = []string{"db"} })
	m := newMachine(t, Options{Main: []string{"main"}}, db, web)
	m.start()
	pid := func(n string) int { return m.s.byName[n].pid }
	mainPid, dbPid, webPid := pid("main"), pid("db"), pid("web")
	m.s.shutdown("test")
	m.settle()
	want := []sent{{mainPid, unix.SIGTERM}, {mainPid, unix.SIGCONT}}
	if !slices.Equal(m.procs.signals, want) {
		t.Fatalf("signals %v, want %v (main first, alone)", m.procs.signals, want)
	}
	m.exit("main", 143)
	want = append(want, sent{webPid, unix.SIGTERM}, sent{webPid, unix.SIGCONT})
	if !slices.Equal(m.procs.signals, want) {
		t.Fatalf("signals %v, want %v (then web)", m.procs.signals, want)
	}
	m.expect("db", Ready)
	// web ignores its stop signal: SIGKILL after its stop_timeout.
	m.advance(5 * time.Second)
	want = append(want, sent{webPid, unix.SIGKILL})
	if !slices.Equal(m.procs.signals, want) {
		t.Fatalf("signals %v, want %v (web killed)", m.procs.signals, want)
	}
	m.exit("web", 137)
	m.expect("web", Stopped)
	want = append(want, sent{dbPid, unix.SIGINT}, sent{dbPid, unix.SIGCONT})
	if !slices.Equal(m.procs.signals, want) {
		t.Fatalf("signals %v, want %v (then db, with its own signal)", m.procs.signals, want)
	}
	m.exit("db", 0)
	m.expect("db", Stopped)
	if m.s.gone == nil {
		t.Error("everything is down but the final phase did not begin")
	}
	if m.s.exitCode != 143 {
		t.Errorf("exit status %d, want main's 143", m.s.exitCode)
	}
}

// TestStopAndStart: stop keeps a service down whatever its policy; start
// brings it back with a fresh run; a stop during a backoff cancels it.
func TestStopAndStart(t *testing.T) {
	m := newMachine(t, Options{}, svc("a"))
	m.start()
	a := m.s.byName["a"]
	first := a.pid
	m.s.stopNow(a)
	m.expect("a", Stopping)
	m.exit("a", 143)
	m.expect("a", Stopped)
	m.advance(time.Hour)
	m.expect("a", Stopped)
	m.s.startNow(a)
	m.expect("a", Ready)
	if a.pid == first || a.restarts != 0 || a.retries != 0 {
		t.Errorf("after start: pid %d (was %d), restarts %d, retries %d", a.pid, first, a.restarts, a.retries)
	}
	m.exit("a", 1)
	m.expect("a", Backoff)
	m.s.stopNow(a)
	m.expect("a", Stopped)
	m.advance(time.Hour)
	if a.pid != 0 {
		t.Error("a restart pending at the stop went ahead")
	}
}

// TestReload: a changed service restarts, a removed one stops and goes, an
// added one starts, and a policy change keeps the process.
func TestReload(t *testing.T) {
	m := newMachine(t, Options{}, svc("same"), svc("policy"), svc("changed"), svc("removed"))
	m.start()
	pids := map[string]int{}
	for _, n := range []string{"same", "policy", "changed", "removed"} {
		pids[n] = m.s.byName[n].pid
	}
	next := []config.Service{
		svc("same"),
		svc("policy", func(c *config.Service) { c.MaxRetries = 9 }),
		svc("changed", func(c *config.Service) { c.Argv = []string{"changed", "--new"} }),
		svc("added"),
	}
	m.s.applyReload(next)
	m.expect("changed", Stopping)
	m.expect("removed", Stopping)
	m.expect("added", Ready)
	m.exit("changed", 143)
	m.exit("removed", 143)
	m.expect("changed", Ready)
	if m.s.byName["removed"] != nil {
		t.Error("removed is still listed once down")
	}
	for _, n := range []string{"same", "policy"} {
		if m.s.byName[n].pid != pids[n] {
			t.Errorf("%s: pid %d -> %d", n, pids[n], m.s.byName[n].pid)
		}
	}
	if m.s.byName["policy"].MaxRetries != 9 {
		t.Error("the policy change did not apply")
	}
	if got := m.s.byName["changed"]; got.pid == pids["changed"] || !slices.Equal(got.Argv, []string{"changed", "--new"}) {
		t.Errorf("changed: pid %d argv %v", got.pid, got.Argv)
	}
}

// TestRestore: given-up marks and retry counts from the state file.
func TestRestore(t *testing.T) {
	saved := state.File{Services: map[string]state.Service{
		"plain":    {Retries: 4, GivenUp: true},
		"critical": {Retries: 4, GivenUp: true},
		"retrying": {Retries: 2},
	}}
	store := &fakeSaver{loaded: saved}
	m := newMachine(t, Options{State: store}, svc("plain"), svc("critical", func(c *config.Service) { c.Critical = true }), svc("retrying"))
	m.start()
	m.expect("plain", GivenUp)
	if r := m.s.byName["retrying"]; r.state != Ready || r.retries != 2 {
		t.Errorf("retrying: %s with %d retries, want ready with 2", r.state, r.retries)
	}
	m.expect("critical", Ready) // one run per start of vigil...
	m.exit("critical", 1)
	m.expect("critical", GivenUp) // ...which a failure ends at once
	if !m.s.shuttingDown || m.s.exitCode != 1 {
		t.Errorf("the critical service's end did not end the run with its status (%v, %d)", m.s.shuttingDown, m.s.exitCode)
	}
}

// TestSpawnFailure: a command that cannot start is a failed run, with the
// shell's status.
func TestSpawnFailure(t *testing.T) {
	m := newMachine(t, Options{}, svc("missing", func(c *config.Service) { c.MaxRetries = 0 }))
	m.procs.fail["missing"] = &proc.StartError{Argv0: "missing", Code: 127, Err: unix.ENOENT}
	m.start()
	m.expect("missing", GivenUp)
	if l := m.s.byName["missing"].lastExit; l == nil || *l != 127 {
		t.Errorf("last exit %v, want 127", l)
	}
}

// TestTransitionTable: become refuses what the table does not allow.
func TestTransitionTable(t *testing.T) {
	m := newMachine(t, Options{}, svc("a"))
	a := m.s.byName["a"]
	tests := []struct {
		from, to State
		ok       bool
	}{
		{Starting, Running, true},
		{Running, Ready, true},
		{Ready, Backoff, true},
		{Stopping, Stopped, true},
		{Stopped, Ready, false},
		{Stopping, Running, false},
		{GivenUp, Ready, false},
		{Blocked, Running, false},
	}
	for _, tc := range tests {
		a.state = tc.from
		m.s.dirty = false
		if got := m.s.become(a, tc.to, slog.LevelInfo, ""); got != tc.ok {
			t.Errorf("%s -> %s: allowed %v, want %v", tc.from, tc.to, got, tc.ok)
		}
		if want := tc.to; !tc.ok {
			want = tc.from
			if a.state != want {
				t.Errorf("%s -> %s refused, but the state is %s", tc.from, tc.to, a.state)
			}
		} else if a.state != want || !m.s.dirty {
			t.Errorf("%s -> %s: state %s, dirty %v", tc.from, tc.to, a.state, m.s.dirty)
		}
	}
	if !strings.Contains(m.log.String(), "state change refused") {
		t.Error("a refused change was not logged")
	}
	for from, tos := range transitions {
		for _, to := range tos {
			if from == to {
				t.Errorf("%s -> %s: a state does not change into itself", from, to)
			}
		}
	}
}

// job is a scheduled service as the config makes it: a oneshot, restart
// on-failure with 3 retries (backoff 1s doubling to 8s), forbid, in UTC.
func job(name, expr string, edit ...func(*config.Service)) config.Service {
	return svc(name, append([]func(*config.Service){func(c *config.Service) {
		c.Schedule, c.Timezone, c.Concurrency = expr, "UTC", config.ConcurrencyForbid
		c.Oneshot, c.Restart = true, config.RestartOnFailure
	}}, edit...)...)
}

// The fake clock starts at 1970-01-12 13:46:40 UTC (time.Unix(1_000_000, 0)).

// TestScheduleTicks: not started at start-up; each tick starts one run; a
// run's end, failed or not, waits for the next tick, and never ends vigil.
func TestScheduleTicks(t *testing.T) {
	m := newMachine(t, Options{}, job("j", "@every 10s"))
	m.start()
	m.expect("j", Scheduled)
	j := m.s.byName["j"]
	if len(m.procs.started) != 0 {
		t.Fatalf("spawned %v at start-up", m.procs.started)
	}
	if j.tick.kind != tickDue || !j.tick.at.Equal(m.clock.Now().Add(10*time.Second)) {
		t.Fatalf("tick %d at %s, want one in 10s", j.tick.kind, j.tick.at)
	}
	m.advance(9 * time.Second)
	m.expect("j", Scheduled)
	m.advance(time.Second)
	m.expect("j", Running)
	m.exit("j", 0)
	m.expect("j", Scheduled)
	m.advance(10 * time.Second)
	m.expect("j", Running)
	m.exit("j", 2)
	// restart on-failure: a retry in 1s, before the next tick.
	m.expect("j", Backoff)
	m.advance(time.Second)
	m.exit("j", 0)
	m.expect("j", Scheduled)
	if len(m.procs.started) != 3 || m.s.shuttingDown {
		t.Errorf("%d spawns, shutting down %v; want 3 and no", len(m.procs.started), m.s.shuttingDown)
	}
	st := j.status()
	if st.State != "scheduled" || !st.Ready || st.FailedRuns != 1 || st.NextRun.IsZero() || !st.LastRun.Equal(m.clock.Now()) {
		t.Errorf("status %+v", st)
	}
	if !slices.Contains(transitions[Scheduled], Starting) {
		t.Error("the table has no way out of scheduled")
	}
}

// TestScheduleConcurrency: a tick while a run is in flight is skipped under
// forbid, and stops the run to start a new one under replace.
func TestScheduleConcurrency(t *testing.T) {
	t.Run("forbid skips the tick, logged", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "@every 10s"))
		m.start()
		m.advance(10 * time.Second)
		first := m.s.byName["j"].pid
		m.advance(10 * time.Second)
		m.expect("j", Running)
		if m.s.byName["j"].pid != first || len(m.procs.started) != 1 || len(m.procs.signals) != 0 {
			t.Errorf("pid %d (was %d), %d spawns, signals %v", m.s.byName["j"].pid, first, len(m.procs.started), m.procs.signals)
		}
		if !strings.Contains(m.log.String(), "tick skipped: the previous run is still going") {
			t.Errorf("the skip was not logged:\n%s", m.log)
		}
		m.exit("j", 0)
		m.expect("j", Scheduled)
		m.advance(10 * time.Second)
		m.expect("j", Running)
	})
	t.Run("replace stops the run, then starts", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "@every 10s", func(c *config.Service) { c.Concurrency = config.ConcurrencyReplace }))
		m.start()
		m.advance(10 * time.Second)
		first := m.s.byName["j"].pid
		m.advance(10 * time.Second)
		m.expect("j", Stopping)
		if want := []sent{{first, unix.SIGTERM}, {first, unix.SIGCONT}}; !slices.Equal(m.procs.signals, want) {
			t.Fatalf("signals %v, want %v", m.procs.signals, want)
		}
		m.exit("j", 143)
		m.expect("j", Running)
		if j := m.s.byName["j"]; j.pid == first || len(m.procs.started) != 2 || j.failedRuns != 0 {
			t.Errorf("pid %d (was %d), %d spawns, %d failed runs", j.pid, first, len(m.procs.started), j.failedRuns)
		}
	})
}

// TestScheduleRetries: retries with backoff up to max_retries, never past
// the next tick, and never given up.
func TestScheduleRetries(t *testing.T) {
	t.Run("up to max_retries, then the next tick", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "@every 1m"))
		m.start()
		m.advance(time.Minute)
		for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			m.exit("j", 1)
			m.expect("j", Backoff)
			if j := m.s.byName["j"]; j.timer.kind != restartDue || j.timer.at.Sub(m.clock.Now()) != delay {
				t.Fatalf("retry %d: timer %d in %s, want %s", i+1, j.timer.kind, j.timer.at.Sub(m.clock.Now()), delay)
			}
			m.advance(delay)
			m.expect("j", Running)
		}
		m.exit("j", 1)
		m.expect("j", Scheduled) // not given up
		if n := len(m.procs.started); n != 4 {
			t.Errorf("%d runs, want 4", n)
		}
		m.advance(time.Minute - 7*time.Second)
		m.expect("j", Running)
		m.exit("j", 0)
		if j := m.s.byName["j"]; j.retries != 0 || j.failedRuns != 4 {
			t.Errorf("retries %d, failed runs %d; want 0 and 4", j.retries, j.failedRuns)
		}
	})
	t.Run("no retry past the next tick", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "@every 10s", func(c *config.Service) {
			c.Backoff.Initial, c.MaxRetries = 8*time.Second, -1
		}))
		m.start()
		m.advance(10 * time.Second)
		m.exit("j", 1) // at 10s: a retry at 18s, before the tick at 20s
		m.expect("j", Backoff)
		m.advance(8 * time.Second)
		m.advance(time.Second)
		m.exit("j", 1) // at 19s: a retry at 27s would pass the tick
		m.expect("j", Scheduled)
		if !strings.Contains(m.log.String(), "no retry before the next tick") {
			t.Errorf("not logged:\n%s", m.log)
		}
		m.advance(time.Second)
		m.expect("j", Running)
		if n := len(m.procs.started); n != 3 {
			t.Errorf("%d runs, want 3", n)
		}
	})
	t.Run("restart never: a failure waits for the next tick", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "@every 10s", func(c *config.Service) { c.Restart = config.RestartNever }))
		m.start()
		m.advance(10 * time.Second)
		m.exit("j", 1)
		m.expect("j", Scheduled)
		m.advance(10 * time.Second)
		m.expect("j", Running)
	})
}

// TestScheduleStart: vigil start runs a scheduled service once now and
// keeps its schedule; vigil stop holds its ticks until the next start.
func TestScheduleStart(t *testing.T) {
	m := newMachine(t, Options{}, job("j", "@every 10s"))
	m.start()
	j := m.s.byName["j"]
	next := j.tick.at
	m.s.startNow(j)
	m.expect("j", Running)
	if ok, err := started([]*service{j}); ok || err != nil {
		t.Fatalf("started before the run ended: %v %v", ok, err)
	}
	m.exit("j", 3)
	m.advance(time.Second)
	m.exit("j", 3)
	m.advance(2 * time.Second)
	m.exit("j", 3)
	m.advance(4 * time.Second)
	m.exit("j", 3)
	m.expect("j", Scheduled)
	if ok, err := started([]*service{j}); ok || err == nil || !strings.Contains(err.Error(), "run failed (last exit 3)") {
		t.Errorf("vigil start of a failed run: %v %v", ok, err)
	}
	if !j.tick.at.Equal(next) {
		t.Errorf("the schedule moved: next %s, was %s", j.tick.at, next)
	}
	m.s.stopNow(j)
	m.expect("j", Stopped)
	m.advance(time.Minute)
	m.expect("j", Stopped)
	if j.status().Ready || !j.status().NextRun.IsZero() {
		t.Errorf("a stopped job: %+v", j.status())
	}
	m.s.startNow(j)
	m.expect("j", Running)
	m.exit("j", 0)
	m.expect("j", Scheduled)
	if j.tick.kind != tickDue {
		t.Error("no tick armed after start")
	}
}

// TestScheduleMissed: at start, the newest tick missed while vigil was down
// runs once if younger than starting_deadline.
func TestScheduleMissed(t *testing.T) {
	now := time.Unix(1_000_000, 0) // 13:46:40; the hourly tick at 13:00 is 46m40s old
	tests := []struct {
		name     string
		deadline time.Duration
		lastRun  time.Time
		runs     bool
	}{
		{"younger than the deadline: runs at once", time.Hour, now.Add(-2 * time.Hour), true},
		{"older than the deadline: skipped", 30 * time.Minute, now.Add(-2 * time.Hour), false},
		{"no deadline: nothing", 0, now.Add(-2 * time.Hour), false},
		{"no recorded run: nothing", time.Hour, time.Time{}, false},
		{"no tick since the last run: nothing", time.Hour, now.Add(-10 * time.Minute), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeSaver{loaded: state.File{Services: map[string]state.Service{"j": {Status: "scheduled", LastRun: tc.lastRun}}}}
			m := newMachine(t, Options{State: store}, job("j", "@hourly", func(c *config.Service) { c.StartingDeadline = tc.deadline }))
			m.start()
			want := Scheduled
			if tc.runs {
				want = Running
			}
			m.expect("j", want)
			if j := m.s.byName["j"]; j.tick.kind != tickDue || !j.tick.at.Equal(time.Unix(1_000_000+13*60+20, 0)) {
				t.Errorf("tick %d at %s, want 14:00", j.tick.kind, j.tick.at.UTC())
			}
			if tc.runs {
				m.exit("j", 0)
				m.s.persist()
				if got := store.saves[len(store.saves)-1].Services["j"].LastRun; !got.Equal(now) {
					t.Errorf("last_run saved %s, want %s", got, now)
				}
			}
		})
	}
}

// TestScheduleClockSteps: a forward step runs the ticks it jumped over
// once, logged; a backward step does not run a tick twice.
func TestScheduleClockSteps(t *testing.T) {
	t.Run("forward", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "*/10 * * * *"))
		m.start() // 13:46:40, next tick 13:50
		m.clock.step(30 * time.Minute)
		m.advance(3*time.Minute + 20*time.Second) // the timer fires at 14:20 on the wall clock
		m.expect("j", Running)
		if len(m.procs.started) != 1 || !strings.Contains(m.log.String(), "skipped=3") {
			t.Errorf("%d runs; log:\n%s", len(m.procs.started), m.log)
		}
		m.exit("j", 0)
		if j := m.s.byName["j"]; j.tick.at.Sub(m.clock.Now()) != 10*time.Minute {
			t.Errorf("next tick in %s, want 10m (14:30)", j.tick.at.Sub(m.clock.Now()))
		}
	})
	t.Run("backward", func(t *testing.T) {
		m := newMachine(t, Options{}, job("j", "*/10 * * * *"))
		m.start()
		m.clock.step(-time.Hour)
		m.advance(3*time.Minute + 20*time.Second) // fires at 12:50 on the wall clock, for 13:50
		m.expect("j", Running)
		m.exit("j", 0)
		if !strings.Contains(m.log.String(), "clock stepped back") {
			t.Errorf("not logged:\n%s", m.log)
		}
		m.advance(time.Hour) // 13:50 again: not run a second time
		if n := len(m.procs.started); n != 1 {
			t.Fatalf("%d runs at the second 13:50, want 1", n)
		}
		m.advance(10 * time.Minute)
		if n := len(m.procs.started); n != 2 {
			t.Errorf("%d runs at 14:00, want 2", n)
		}
	})
}

// TestScheduleShutdownAndReload: shutdown leaves nothing armed; a reload
// that changes the expression arms the new one, one that drops it starts
// the service as an ordinary one.
func TestScheduleShutdownAndReload(t *testing.T) {
	m := newMachine(t, Options{}, job("j", "@every 10s"), job("k", "@every 10s"))
	m.start()
	m.s.applyReload([]config.Service{job("j", "@every 1m"), svc("k")})
	m.settle()
	if j := m.s.byName["j"]; j.state != Scheduled || j.tick.at.Sub(m.clock.Now()) != time.Minute {
		t.Errorf("j: %s, next in %s; want scheduled in 1m", j.state, j.tick.at.Sub(m.clock.Now()))
	}
	m.expect("k", Ready)
	if k := m.s.byName["k"]; k.tick.kind != noTimer {
		t.Error("k keeps a tick without a schedule")
	}
	m.s.shutdown("test")
	m.expect("j", Stopped)
	if j := m.s.byName["j"]; j.tick.kind != noTimer {
		t.Error("a tick is armed after shutdown")
	}
}

// copies are the services of a template with instances, as the config
// makes them.
func copies(template string, n int, edit ...func(*config.Service)) []config.Service {
	base := svc(template, edit...)
	base.Template = template
	var out []config.Service
	for k := 1; k <= n; k++ {
		out = append(out, base.CopyAs(k, n))
	}
	return out
}

// verb runs an operator's verb on a goroutine and plays the loop until it
// returns, ending each stopping service's process as it would on its stop
// signal.
func (m *machine) verb(f func(context.Context) error) error {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	for {
		select {
		case err := <-done:
			m.settle()
			return err
		case ev := <-m.s.events:
			m.s.handle(ev)
			for _, svc := range slices.Clone(m.s.order) {
				if svc.state == Stopping && svc.pid != 0 {
					m.exit(svc.Name, 143)
				}
			}
			m.s.checkWatchers()
		case <-ctx.Done():
			m.t.Fatal("the verb did not return")
		}
	}
}

// TestInstancesAtRunTime: a template's name stands for every copy; a reload
// or vigil scale that changes N starts or stops the highest-numbered copies
// only, the others keep their processes; depends_on every copy waits for
// all of them.
func TestInstancesAtRunTime(t *testing.T) {
	oneshot := func(c *config.Service) { c.Oneshot, c.Restart = true, config.RestartOnFailure }
	lb := svc("lb", func(c *config.Service) { c.DependsOn = []string{"w-1", "w-2", "w-3"} })
	m := newMachine(t, Options{}, append(copies("w", 3), svc("other"), lb)...)
	m.start()
	names := func(list []*service) (out []string) {
		for _, s := range list {
			out = append(out, s.Name)
		}
		return out
	}
	for _, tc := range []struct {
		ask  []string
		want []string
	}{
		{[]string{"w"}, []string{"w-1", "w-2", "w-3"}},
		{[]string{"w-2"}, []string{"w-2"}},
		{[]string{"other", "w"}, []string{"other", "w-1", "w-2", "w-3"}},
	} {
		got, err := m.s.lookup(tc.ask)
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("lookup %v: %v %v, want %v", tc.ask, names(got), err, tc.want)
		}
	}
	if _, err := m.s.lookup([]string{"w-4"}); err == nil {
		t.Error("lookup of a copy that does not exist succeeded")
	}
	pids := map[string]int{}
	for _, n := range []string{"w-1", "w-2", "w-3", "other"} {
		pids[n] = m.s.byName[n].pid
	}
	kept := func(names ...string) {
		t.Helper()
		for _, n := range names {
			if got := m.s.byName[n]; got == nil || got.pid != pids[n] {
				t.Errorf("%s lost its process %d: %+v", n, pids[n], got)
			}
		}
	}

	// A reload to 2: w-3 stops and goes; the others keep running, with
	// the new N for their next run.
	m.s.applyReload(append(copies("w", 2), svc("other"), lb))
	m.expect("w-3", Stopping)
	m.exit("w-3", 143)
	if m.s.byName["w-3"] != nil {
		t.Error("w-3 is still listed")
	}
	kept("w-1", "w-2", "other")
	if w := m.s.byName["w-1"]; w.Instances != 2 || !slices.Contains(w.Env, "VIGIL_INSTANCES=2") {
		t.Errorf("w-1 keeps the old N: %d %v", w.Instances, w.Env)
	}

	// vigil scale 4, then 1.
	if err := m.verb(func(ctx context.Context) error { return m.s.Scale(ctx, "w", 4) }); err != nil {
		t.Fatal(err)
	}
	m.expect("w-3", Ready)
	m.expect("w-4", Ready)
	kept("w-1", "w-2", "other")
	if got, want := names(m.s.order), []string{"w-1", "w-2", "w-3", "w-4", "other", "lb"}; !slices.Equal(got, want) {
		t.Errorf("order after scale %v, want %v", got, want)
	}
	if w := m.s.byName["w-4"]; !slices.Contains(w.Env, "VIGIL_INSTANCE=4") || !slices.Contains(w.Env, "VIGIL_INSTANCES=4") {
		t.Errorf("w-4's env %v", w.Env)
	}
	if err := m.verb(func(ctx context.Context) error { return m.s.Scale(ctx, "w", 1) }); err != nil {
		t.Fatal(err)
	}
	kept("w-1", "other")
	if got := names(m.s.copiesOf("w")); !slices.Equal(got, []string{"w-1"}) {
		t.Errorf("copies after scale 1: %v", got)
	}
	for _, tc := range []struct {
		name string
		n    int
		want string
	}{
		{"other", 2, "has no instances"},
		{"nope", 2, "unknown service"},
		{"w", 0, "want 1..1000"},
		{"w", 1001, "want 1..1000"},
	} {
		err := m.verb(func(ctx context.Context) error { return m.s.Scale(ctx, tc.name, tc.n) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scale %s %d: %v, want %q", tc.name, tc.n, err, tc.want)
		}
	}

	t.Run("a dependent waits for every copy", func(t *testing.T) {
		m := newMachine(t, Options{}, append(copies("w", 3, oneshot), lb)...)
		m.start()
		m.exit("w-1", 0)
		m.exit("w-3", 0)
		m.expect("lb", Starting)
		m.exit("w-2", 0)
		m.expect("lb", Ready)
	})
}
