package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/control/httpd"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

// A probe is a check that repeats while a run lasts: the health check, and
// the readiness check once it has an interval. Each has a tick of its own,
// beside the service's one timer slot: the interval of a check runs
// alongside whatever that slot is doing for the service's life, and the two
// checks of one service have intervals of their own. Ticks are armed only
// while the run lasts, so a service that is not running costs nothing.
type probe struct {
	health bool // the health check, else the continuous readiness check
	run    int  // the run it watches
	tick   slot // kind unused: a probe's tick is always "the next attempt"
	// cancel ends the attempt in flight (nil: none); seq tells its result
	// from one of an attempt that was cancelled. pid is the leader of an
	// exec attempt in flight (0: none, or not yet spawned).
	cancel   func()
	pid      func() int
	seq      int
	failures int           // consecutive
	id       *proc.Command // how the check runs: the run's identity, read once
}

// Check is one attempt's target: exactly one field is set.
type Check struct {
	TCP  string
	HTTP string
	File string
	Exec []string
}

// Checker runs one attempt of a check as the service's identity, bounded
// by timeout, and calls done with its result (nil: passed) from another
// goroutine; cancel abandons it (done is still called); pid is the leader
// of an exec attempt's process group while it runs, 0 otherwise. vigil's
// runs exec attempts through the reaper; the policy's unit tests resolve
// attempts by hand.
type Checker interface {
	Attempt(c Check, id proc.Command, timeout time.Duration, done func(error)) (cancel func(), pid func() int)
}

// probeTickEvent: time for a probe's next attempt (stale unless gen is
// its tick's); probeEvent: attempt seq of a probe ended with err.
type (
	probeTickEvent struct {
		svc *service
		p   *probe
		gen int
	}
	probeEvent struct {
		svc *service
		p   *probe
		seq int
		err error
	}
)

func (probeTickEvent) isEvent() {}
func (probeEvent) isEvent()     {}

// readyInterval is the continuous readiness check's interval, 0 if none.
func (svc *service) readyInterval() time.Duration {
	if svc.Ready == nil || svc.Ready.NotifyFD > 0 {
		return 0
	}
	return svc.Ready.Interval
}

// startProbes starts the repeating checks of svc's current run, once it is
// ready for the first time in the run: the health check after its
// start_period, the readiness check after its interval.
func (s *Supervisor) startProbes(svc *service) {
	if svc.pid == 0 || s.shuttingDown {
		return
	}
	if h := svc.Health; h != nil && (svc.health == nil || svc.health.run != svc.run) {
		s.stopProbe(svc.health)
		svc.health = &probe{health: true, run: svc.run}
		svc.healthy = true
		s.armProbe(svc, svc.health, h.StartPeriod)
	}
	if d := svc.readyInterval(); d > 0 && (svc.readiness == nil || svc.readiness.run != svc.run) {
		s.stopProbe(svc.readiness)
		svc.readiness = &probe{run: svc.run}
		s.armProbe(svc, svc.readiness, d)
	}
}

// restartHealth applies a health check changed by a reload to the
// current run: the old one ends, the new one starts over after its
// start_period.
func (s *Supervisor) restartHealth(svc *service) {
	s.stopProbe(svc.health)
	svc.health = nil
	if svc.wasReady && (svc.state == Ready || svc.state == Running) {
		s.startProbes(svc)
	}
}

// stopProbes ends svc's repeating checks: the run ended or is being stopped.
func (s *Supervisor) stopProbes(svc *service) {
	s.stopProbe(svc.health)
	s.stopProbe(svc.readiness)
	svc.health, svc.readiness = nil, nil
}

func (s *Supervisor) stopProbe(p *probe) {
	if p == nil {
		return
	}
	p.tick.gen++
	if p.tick.stop != nil {
		p.tick.stop()
		p.tick.stop = nil
	}
	if p.cancel != nil {
		p.cancel()
		p.cancel, p.pid = nil, nil
	}
	p.seq++
}

// killChecks kills, at a re-exec's freeze, the exec attempts in flight:
// the new image does not know them, and a hung one would outlive it. owns
// says the PID is still the attempt's (the reaper is held: no exit of it
// can have been reaped, so the PID cannot be reused). Each attempt is
// abandoned; the probes' ticks go on if the exec fails.
func (s *Supervisor) killChecks(owns func(pid int) bool) {
	for _, svc := range s.order {
		for _, p := range []*probe{svc.health, svc.readiness} {
			if p == nil || p.cancel == nil {
				continue
			}
			if pid := p.pid(); pid > 0 && owns(pid) {
				s.procs.Signal(pid, unix.SIGKILL)
			}
			p.cancel()
			p.cancel, p.pid = nil, nil
			p.seq++
		}
	}
}

func (s *Supervisor) armProbe(svc *service, p *probe, after time.Duration) {
	p.tick.gen++
	gen := p.tick.gen
	p.tick.at = s.clock.Now().Add(after)
	p.tick.stop = s.clock.AfterFunc(after, func() { s.post(probeTickEvent{svc, p, gen}) })
}

// probeTick starts an attempt, unless the last one is still in flight (one
// attempt per check at most: a hung check must not pile up), and arms the
// next tick.
func (s *Supervisor) probeTick(svc *service, p *probe, gen int) {
	if p.tick.gen != gen || !s.probing(svc, p) {
		return
	}
	p.tick.stop = nil
	var (
		c         Check
		interval  time.Duration
		timeout   time.Duration
		checkName = "readiness"
	)
	if p.health {
		h := svc.Health
		c = Check{TCP: h.TCP, HTTP: h.HTTP, Exec: h.Exec}
		interval, timeout, checkName = h.Interval, h.Timeout, "health"
	} else {
		r := svc.Ready
		c = Check{TCP: r.TCP, HTTP: r.HTTP, File: r.File, Exec: r.Exec}
		interval = r.Interval
		timeout = readyAttemptTimeout(interval)
	}
	s.armProbe(svc, p, interval)
	if p.cancel != nil {
		s.log.Warn("check still running: attempt skipped", "service", svc.Name, "check", checkName)
		return
	}
	if p.id == nil {
		id, err := s.identity(svc)
		if err != nil {
			s.probeDone(svc, p, p.seq, fmt.Errorf("cannot run the check: %w", err))
			return
		}
		p.id = &id
	}
	p.seq++
	seq := p.seq
	p.cancel, p.pid = s.checker.Attempt(c, *p.id, timeout, func(err error) { s.post(probeEvent{svc, p, seq, err}) })
}

// readyAttemptTimeout bounds an attempt of a continuous readiness check:
// within its interval, and no longer than a health check's default.
func readyAttemptTimeout(interval time.Duration) time.Duration {
	return min(config.DefaultHealthTimeout, interval*3/4)
}

// probing reports whether p still watches svc's current run.
func (s *Supervisor) probing(svc *service, p *probe) bool {
	if s.shuttingDown || svc.pid == 0 || p.run != svc.run {
		return false
	}
	if p.health {
		return svc.health == p && svc.Health != nil && (svc.state == Ready || svc.state == Running)
	}
	return svc.readiness == p && svc.readyInterval() > 0 && (svc.state == Ready || svc.state == Running)
}

// probeDone counts an attempt's result: the health check's threshold makes
// the service unhealthy (its run fails and it is stopped); the readiness
// check's makes it not ready, and a success ready again.
func (s *Supervisor) probeDone(svc *service, p *probe, seq int, err error) {
	if p.seq != seq {
		return // cancelled, or a result of an attempt overtaken
	}
	p.cancel, p.pid = nil, nil
	if !s.probing(svc, p) {
		return
	}
	if err == nil {
		p.failures = 0
		if p.health {
			svc.healthy = true
		} else if svc.state == Running {
			s.become(svc, Ready, slog.LevelInfo, "ready again", "pid", svc.pid)
			s.startUsers(svc)
		}
		return
	}
	p.failures++
	svc.lastCheckError = err.Error()
	s.dirty = true
	if p.health {
		svc.healthFailures++
		threshold := svc.Health.FailureThreshold
		s.log.Warn("health check failed", "service", svc.Name, "failures", fmt.Sprintf("%d of %d", p.failures, threshold), "err", err)
		if p.failures < threshold {
			return
		}
		svc.healthy = false
		s.become(svc, Unhealthy, slog.LevelError, "unhealthy: stopping it, the run counts as failed",
			"failures", p.failures, "err", err, "signal", signals.Name(svc.StopSignal))
		svc.runFailed = true
		s.stopProbes(svc)
		s.signalStop(svc)
		return
	}
	threshold := svc.Ready.Threshold()
	s.log.Warn("readiness check failed", "service", svc.Name, "failures", fmt.Sprintf("%d of %d", p.failures, threshold), "err", err)
	if p.failures >= threshold && svc.state == Ready {
		s.become(svc, Running, slog.LevelWarn, "not ready any more", "pid", svc.pid, "err", err)
	}
}

// healthWord is what `vigil status` says of svc's health: "" when it has no
// health check or no process to judge.
func (svc *service) healthWord() string {
	switch {
	case svc.Health == nil:
		return ""
	case svc.state == Unhealthy || (svc.health != nil && !svc.healthy):
		return control.HealthUnhealthy
	case svc.pid != 0:
		return control.HealthHealthy
	}
	return ""
}

// consecutiveHealthFailures is the health check's current count.
func (svc *service) consecutiveHealthFailures() int {
	if svc.health == nil {
		if svc.state == Unhealthy && svc.Health != nil {
			return svc.Health.FailureThreshold
		}
		return 0
	}
	return svc.health.failures
}

// reaperChecker is Checker for real: exec attempts go through the reaper
// (never os/exec's Wait, which would race it for the exit), with the
// services' stdin (/dev/null) and vigil's stdout and stderr.
type reaperChecker struct {
	r     *reaper.Reaper
	stdin func() uintptr
}

func (c reaperChecker) Attempt(ck Check, id proc.Command, timeout time.Duration, done func(error)) (func(), func() int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	stdin := c.stdin() // on the loop: devnull is closed when Run ends
	var pid atomic.Int64
	go func() {
		defer cancel()
		done(attempt(ctx, ck, c.r, id, stdin, &pid))
	}()
	return cancel, func() int { return int(pid.Load()) }
}

// attempt runs one attempt of c, within ctx; the error says why it failed.
func attempt(ctx context.Context, c Check, r *reaper.Reaper, id proc.Command, stdin uintptr, pid *atomic.Int64) error {
	switch {
	case c.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return timedOut(ctx, c.TCP, err)
		}
		conn.Close()
		return nil
	case c.HTTP != "":
		return httpd.Check(ctx, c.HTTP) // its error names a timeout
	case c.File != "":
		_, err := os.Stat(c.File)
		return err
	case len(c.Exec) > 0:
		return execCheck(ctx, c.Exec, r, id, stdin, pid)
	}
	return errors.New("no check")
}

// timedOut names a deadline as such: "context deadline exceeded" says
// less to the operator.
func timedOut(ctx context.Context, addr string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("connect %s: timed out", addr)
	}
	return err
}

// execCheck runs argv as the service runs, through the reaper; one that
// outlives ctx is killed with its whole group, and reaped before the
// attempt ends, so a hung check leaves neither a process nor a zombie.
//
// running is the leader's PID while it runs, for a re-exec's freeze.
func execCheck(ctx context.Context, argv []string, r *reaper.Reaper, id proc.Command, stdin uintptr, running *atomic.Int64) error {
	pid, exits, err := proc.Start(r, proc.Command{Argv: argv, Dir: id.Dir, Env: id.Env, Credential: id.Credential,
		Session: true, Terminal: -1, Files: []uintptr{stdin, 1, 2}})
	if err != nil {
		return err
	}
	running.Store(int64(pid))
	defer running.Store(0)
	select {
	case e := <-exits:
		if code := e.Code(); code != 0 {
			return fmt.Errorf("%s exited with status %d", argv[0], code)
		}
		return nil
	case <-ctx.Done():
		proc.KillGroup(pid)
		<-exits
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s timed out: killed", argv[0])
		}
		return ctx.Err()
	}
}
