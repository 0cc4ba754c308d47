package supervise

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/proc"
	"golang.org/x/sys/unix"
)

// fakeChecker records each attempt; the test ends it with pass or fail.
type fakeChecker struct {
	attempts []*fakeAttempt
}

type fakeAttempt struct {
	service   string // the argv[0] of the identity it runs as
	check     Check
	timeout   time.Duration
	done      func(error)
	ended     bool
	cancelled bool
}

func (f *fakeChecker) Attempt(c Check, id proc.Command, timeout time.Duration, done func(error)) (func(), func() int) {
	a := &fakeAttempt{service: id.Argv[0], check: c, timeout: timeout, done: done}
	f.attempts = append(f.attempts, a)
	return func() { a.cancelled = true }, func() int { return 0 }
}

// pending is the attempts of name not ended yet.
func (f *fakeChecker) pending(name string) []*fakeAttempt {
	var out []*fakeAttempt
	for _, a := range f.attempts {
		if a.service == name && !a.ended {
			out = append(out, a)
		}
	}
	return out
}

// end ends name's one attempt in flight with err, as its goroutine would.
func (m *machine) end(name string, err error) {
	m.t.Helper()
	p := m.checks.pending(name)
	if len(p) != 1 {
		m.t.Fatalf("%s has %d attempts in flight, want 1\nlog:\n%s", name, len(p), m.log)
	}
	p[0].ended = true
	p[0].done(err)
	m.settle()
}

func (m *machine) inFlight(name string) int { return len(m.checks.pending(name)) }

func healthy(h config.Health) func(*config.Service) {
	return func(c *config.Service) { c.Health = &h }
}

var errRefused = errors.New("connect: connection refused")

// TestHealthThreshold: consecutive failures are counted from the end of
// start_period, a success resets the count, and the threshold makes the
// service unhealthy: stopped with its stop signal, its run failed.
func TestHealthThreshold(t *testing.T) {
	h := config.Health{TCP: "127.0.0.1:80", Interval: 5 * time.Second, Timeout: time.Second,
		StartPeriod: 10 * time.Second, FailureThreshold: 3}
	m := newMachine(t, Options{}, svc("a", healthy(h), func(c *config.Service) { c.StopSignal = unix.SIGINT }))
	m.start()
	m.expect("a", Ready)
	a := m.s.byName["a"]
	pid := a.pid
	m.advance(9 * time.Second)
	if n := len(m.checks.attempts); n != 0 {
		t.Fatalf("%d attempts within start_period", n)
	}
	m.advance(time.Second)
	if m.inFlight("a") != 1 {
		t.Fatalf("no attempt at the end of start_period")
	}
	if got := m.checks.attempts[0]; got.timeout != time.Second || got.check.TCP != h.TCP {
		t.Errorf("attempt %+v, want the tcp check bounded by 1s", got)
	}
	steps := []struct {
		err      error
		state    State
		failures int
		health   string
	}{
		{errRefused, Ready, 1, control.HealthHealthy},
		{nil, Ready, 0, control.HealthHealthy},
		{errRefused, Ready, 1, control.HealthHealthy},
		{errRefused, Ready, 2, control.HealthHealthy},
		{errRefused, Unhealthy, 3, control.HealthUnhealthy},
	}
	for i, st := range steps {
		if i > 0 {
			m.advance(5 * time.Second)
		}
		m.end("a", st.err)
		m.expect("a", st.state)
		status := a.status()
		if status.HealthFailures != st.failures || status.Health == nil || *status.Health != st.health {
			t.Fatalf("step %d: health %v with %d failures, want %s with %d", i, status.Health, status.HealthFailures, st.health, st.failures)
		}
	}
	if status := a.status(); !strings.Contains(status.LastCheckFailure, "connection refused") {
		t.Errorf("last check failure %q", status.LastCheckFailure)
	}
	if a.healthFailures != 4 {
		t.Errorf("%d health failures counted, want 4", a.healthFailures)
	}
	if want := []sent{{pid, unix.SIGINT}, {pid, unix.SIGCONT}}; !slices.Equal(m.procs.signals, want) {
		t.Fatalf("signals %v, want %v", m.procs.signals, want)
	}
	if !strings.Contains(m.log.String(), `msg="unhealthy: stopping it, the run counts as failed" service=a failures=3 err="connect: connection refused"`) {
		t.Errorf("unhealthy not logged with its reason:\n%s", m.log)
	}
	// No attempt while it is being stopped; SIGKILL after stop_timeout.
	m.advance(5 * time.Second)
	if m.inFlight("a") != 0 || len(m.checks.attempts) != 5 {
		t.Fatalf("checks went on while stopping (%d attempts)", len(m.checks.attempts))
	}
	if last := m.procs.signals[len(m.procs.signals)-1]; last != (sent{pid, unix.SIGKILL}) {
		t.Fatalf("last signal %v, want SIGKILL after stop_timeout", last)
	}
	m.exit("a", 137)
	m.expect("a", Backoff)
	if a.retries != 1 {
		t.Errorf("retries %d, want 1: an unhealthy run is a failed run", a.retries)
	}
	m.advance(time.Second)
	m.expect("a", Ready)
	if a.restarts != 1 || a.status().HealthFailures != 0 {
		t.Errorf("after the restart: restarts %d, health failures %d", a.restarts, a.status().HealthFailures)
	}
	// The new run's check starts after its own start_period.
	m.advance(9 * time.Second)
	if m.inFlight("a") != 0 {
		t.Fatal("the new run was checked within its start_period")
	}
	m.advance(time.Second)
	if m.inFlight("a") != 1 {
		t.Fatal("the new run is not checked")
	}
}

// TestUnhealthyPolicy: an unhealthy run is judged as any failed run:
// max_retries gives it up, critical ends vigil, never gives up at once.
func TestUnhealthyPolicy(t *testing.T) {
	h := config.Health{Exec: []string{"check"}, Interval: time.Second, Timeout: 500 * time.Millisecond, FailureThreshold: 1}
	tests := []struct {
		name  string
		edit  func(*config.Service)
		runs  int // unhealthy runs
		final State
		exit  int // vigil's status once it is over; -1: still running
	}{
		{"given up after max_retries", func(c *config.Service) { c.MaxRetries = 2 }, 3, GivenUp, -1},
		{"never restarts: given up at once", func(c *config.Service) { c.Restart = config.RestartNever }, 1, GivenUp, -1},
		{"critical: vigil ends with its last status", func(c *config.Service) { c.MaxRetries, c.Critical = 0, true }, 1, GivenUp, 143},
		{"unlimited retries: backoff again", func(c *config.Service) { c.MaxRetries = -1 }, 5, Backoff, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, Options{}, svc("a", healthy(h), tc.edit))
			m.start()
			for i := 0; i < tc.runs; i++ {
				m.expect("a", Ready)
				m.advance(0) // start_period 0: the first attempt at once
				m.end("a", errors.New("check exited with status 1"))
				m.expect("a", Unhealthy)
				m.exit("a", 143)
				if i < tc.runs-1 {
					m.expect("a", Backoff)
					m.advance(m.s.byName["a"].timer.at.Sub(m.clock.Now()))
				}
			}
			m.expect("a", tc.final)
			if tc.exit >= 0 && (!m.s.shuttingDown || m.s.exitCode != tc.exit) {
				t.Errorf("shutting down %v with %d, want status %d", m.s.shuttingDown, m.s.exitCode, tc.exit)
			}
			if tc.exit < 0 && m.s.shuttingDown {
				t.Error("vigil is shutting down")
			}
			if got := len(m.procs.started); got != tc.runs {
				t.Errorf("%d spawns, want %d", got, tc.runs)
			}
		})
	}
}

// TestHealthOneInFlight: a hung attempt is never joined by another; its
// late result does not count for a run that ended.
func TestHealthOneInFlight(t *testing.T) {
	h := config.Health{Exec: []string{"check"}, Interval: time.Second, Timeout: 500 * time.Millisecond, FailureThreshold: 2}
	m := newMachine(t, Options{}, svc("a", healthy(h)))
	m.start()
	m.advance(0)
	if m.inFlight("a") != 1 {
		t.Fatal("no first attempt with a start_period of 0")
	}
	m.advance(time.Second)
	m.advance(time.Second)
	if n := len(m.checks.attempts); n != 1 {
		t.Fatalf("%d attempts with one still in flight, want 1", n)
	}
	if !strings.Contains(m.log.String(), "check still running: attempt skipped") {
		t.Error("the skipped attempt was not logged")
	}
	old := m.checks.pending("a")[0]
	m.exit("a", 1)
	if !old.cancelled {
		t.Error("the attempt in flight was not cancelled at the end of the run")
	}
	m.end("a", errors.New("late"))
	if a := m.s.byName["a"]; a.healthFailures != 0 {
		t.Errorf("a late result of an ended run counted (%d)", a.healthFailures)
	}
	m.advance(time.Hour)
	m.expect("a", Ready)
	m.advance(0)
	if m.inFlight("a") != 1 {
		t.Errorf("%d attempts in flight on the new run, want 1", m.inFlight("a"))
	}
}

// TestReadinessFlip: with an interval, the readiness check goes on after
// ready: failure_threshold failures make it running (not ready) without a
// restart, a success ready again.
func TestReadinessFlip(t *testing.T) {
	r := config.Ready{File: "/nonexistent/vigil-test", Interval: 2 * time.Second, FailureThreshold: 2}
	m := newMachine(t, Options{}, svc("a", func(c *config.Service) { c.Ready = &r }),
		svc("b", func(c *config.Service) { c.DependsOn = []string{"a"} }))
	m.start()
	m.expect("a", Running)
	a := m.s.byName["a"]
	pid := a.pid
	m.s.handle(readyEvent{a, a.run, nil})
	m.settle()
	m.expect("a", Ready)
	m.expect("b", Ready)
	if m.inFlight("a") != 0 {
		t.Fatal("checked again before the interval")
	}
	steps := []struct {
		err   error
		state State
	}{
		{errRefused, Ready}, {errRefused, Running}, {errRefused, Running}, {nil, Ready}, {errRefused, Ready}, {nil, Ready},
	}
	for i, st := range steps {
		m.advance(2 * time.Second)
		if got := m.checks.pending("a"); len(got) != 1 || got[0].check.File != r.File || got[0].timeout > 2*time.Second {
			t.Fatalf("step %d: attempts %+v", i, got)
		}
		m.end("a", st.err)
		m.expect("a", st.state)
		if ready := a.status().Ready; ready != (st.state == Ready) {
			t.Fatalf("step %d: status ready %v in state %s", i, ready, st.state)
		}
	}
	if a.pid != pid || a.restarts != 0 || len(m.procs.signals) != 0 {
		t.Errorf("the flip restarted or signalled it: pid %d (was %d), restarts %d, signals %v", a.pid, pid, a.restarts, m.procs.signals)
	}
	m.expect("b", Ready)
	if a.status().Health != nil {
		t.Error("a health word without a health check")
	}
}

// TestChecksStop: nothing is checked once a service is stopped or vigil
// shuts down, and the attempt in flight is cancelled (an exec one killed).
func TestChecksStop(t *testing.T) {
	h := config.Health{Exec: []string{"check"}, Interval: time.Second, Timeout: 500 * time.Millisecond, FailureThreshold: 1}
	m := newMachine(t, Options{}, svc("a", healthy(h)), svc("b", healthy(h)))
	m.start()
	m.advance(0)
	if m.inFlight("a") != 1 || m.inFlight("b") != 1 {
		t.Fatal("no attempts")
	}
	m.s.stopNow(m.s.byName["a"])
	m.exit("a", 143)
	m.expect("a", Stopped)
	m.s.shutdown("test")
	m.settle()
	for _, at := range m.checks.attempts {
		if !at.cancelled {
			t.Errorf("%s: attempt in flight not cancelled", at.service)
		}
	}
	n := len(m.checks.attempts)
	m.advance(time.Minute)
	if len(m.checks.attempts) != n {
		t.Errorf("%d attempts after the stop", len(m.checks.attempts)-n)
	}
	// A late failure after the stop does not make b unhealthy.
	m.end("b", errors.New("late"))
	if st := m.state("b"); st == Unhealthy {
		t.Error("b unhealthy after shutdown began")
	}
}

// TestReloadHealth: a health check added, changed or removed by a reload
// applies to the running process without a restart.
func TestReloadHealth(t *testing.T) {
	h := config.Health{TCP: "127.0.0.1:80", Interval: time.Second, Timeout: 500 * time.Millisecond, FailureThreshold: 2}
	m := newMachine(t, Options{}, svc("a"))
	m.start()
	pid := m.s.byName["a"].pid
	m.advance(time.Minute)
	if len(m.checks.attempts) != 0 {
		t.Fatal("checked without a check")
	}
	m.s.applyReload([]config.Service{svc("a", healthy(h))})
	m.advance(0)
	m.end("a", errRefused)
	h2 := h
	h2.FailureThreshold = 5
	m.s.applyReload([]config.Service{svc("a", healthy(h2))})
	m.advance(0)
	if st := m.s.byName["a"].status(); st.HealthFailures != 0 {
		t.Errorf("a changed check kept %d failures", st.HealthFailures)
	}
	m.end("a", errRefused)
	m.advance(time.Second)
	m.end("a", errRefused)
	m.expect("a", Ready) // 2 of 5
	m.s.applyReload([]config.Service{svc("a")})
	n := len(m.checks.attempts)
	m.advance(time.Minute)
	if len(m.checks.attempts) != n {
		t.Error("checked after the check was removed")
	}
	if a := m.s.byName["a"]; a.pid != pid || a.restarts != 0 || a.status().Health != nil {
		t.Errorf("pid %d (was %d), restarts %d, health %v", a.pid, pid, a.restarts, a.status().Health)
	}
}

// TestReadinessDeadlineAfterReexec: a run adopted in state running keeps
// its readiness deadline at the time it had (at once if that passed), but
// one that was ready before (a continuous readiness check made it not
// ready) has none.
func TestReadinessDeadlineAfterReexec(t *testing.T) {
	tests := []struct {
		name     string
		wasReady bool
		ago      time.Duration
		want     time.Duration // from now; -1: no deadline
	}{
		{"within the deadline: kept at its time", false, 10 * time.Second, 20 * time.Second},
		{"past it: at once", false, time.Hour, 0},
		{"ready before: none", true, 10 * time.Second, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := config.Ready{File: "/nonexistent/vigil-test", Timeout: 30 * time.Second, Interval: 2 * time.Second}
			m := newMachine(t, Options{}, svc("a", func(c *config.Service) { c.Ready = &r }))
			m.start()
			a := m.s.byName["a"]
			m.s.stopReadyCheck(a)
			m.s.disarm(a)
			a.started, a.wasReady = m.clock.Now().Add(-tc.ago), tc.wasReady
			m.s.watchReady(a, proc.Command{})
			defer m.s.stopReadyCheck(a)
			switch {
			case tc.want < 0 && a.timer.kind != noTimer:
				t.Errorf("timer %d in %s, want none", a.timer.kind, a.timer.at.Sub(m.clock.Now()))
			case tc.want >= 0 && (a.timer.kind != readyTimeout || a.timer.at.Sub(m.clock.Now()) != tc.want):
				t.Errorf("timer %d in %s, want the deadline in %s", a.timer.kind, a.timer.at.Sub(m.clock.Now()), tc.want)
			}
		})
	}
}
