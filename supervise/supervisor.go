package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/signals"
	"github.com/vigil-init/vigil/state"
	"golang.org/x/sys/unix"
)

// State is where a service is in its life; the words are the interface of
// `vigil status` (SPEC section 7).
type State string

const (
	Starting State = "starting" // waiting for dependencies, a respawn token or the spawn
	Running  State = "running"  // started, readiness check pending
	Ready    State = "ready"    // ready (no check: once spawned)
	Backoff  State = "backoff"  // waiting to restart
	Stopping State = "stopping"
	Stopped  State = "stopped" // by request
	Exited   State = "exited"  // finished for good without failure
	GivenUp  State = "given-up"
	Blocked  State = "blocked" // a dependency failed for good
)

// Options configure a Supervisor.
type Options struct {
	Log      *slog.Logger
	Reaper   *reaper.Reaper
	Services []config.Service
	// Main is the argv of `-- CMD`, run as the critical service "main" that
	// keeps the terminal (Terminal >= 0) and vigil's stdin; nil if none.
	Main     []string
	Terminal int
	ExitZero []int // main statuses that count as success (-e)
	// Env is the environment every service starts from.
	Env             []string
	Signals         <-chan os.Signal
	Rewrite         signals.Rewrite
	RespawnLimit    config.RespawnLimit
	ShutdownTimeout time.Duration
	Stdout, Stderr  *proc.Output // where prefixed services' lines go
	Root            string       // where /etc/passwd and /etc/group are looked up; "/" if empty
	// Handoff, when this vigil replaced an earlier one in place, holds the
	// services to adopt; Services is then applied to them like a reload.
	Handoff    *reexec.Handoff
	Generation int // how many re-execs led to this image
	// Reexec replaces vigil in place (vigil reexec, the interval, a panic);
	// nil: not available.
	Reexec         Reexecer
	ReexecInterval time.Duration
	// State persists the services' records; nil: in memory only. Its
	// contents are applied at start (not after a re-exec: the handoff is
	// newer).
	State *state.Store
}

// Supervisor runs services. Every field below is owned by the goroutine in
// Run; other goroutines (exit watchers, timers, readiness checks) hand work
// to it as closures on events.
type Supervisor struct {
	o        Options
	log      *slog.Logger
	order    []*service // config order; main first
	byName   map[string]*service
	main     *service
	events   chan func()
	orphaned chan struct{} // an orphan was reaped: a group may now be empty
	limiter  *bucket
	devnull  *os.File

	shuttingDown bool
	deadline     *time.Timer
	gone         <-chan struct{} // set once every service is down
	done         bool
	quit         chan struct{} // closed when Run returns
	pumps        sync.WaitGroup
	panics       []time.Time // recent recovered panics
	saved        map[string]persisted
	watchers     []*watcher
	exitCode     int
	exitFixed    bool
}

// service is one service's runtime record.
type service struct {
	config.Service
	isMain bool
	deps   []*service // what it depends on
	users  []*service // what depends on it

	state State
	pid   int // the running leader, 0 if none
	// startTime is the leader's start time, read once at spawn: a re-exec
	// and the state file use it to recognise the process.
	startTime uint64
	pgid      int // the last group it led; may outlive the leader
	run       int // counts spawns; stale events carry an old value
	started   time.Time
	retries   int // consecutive failed runs
	restarts  int // within this start of vigil
	lastExit  *int
	want      bool // should be running (false after `stop`)
	stopping  bool // vigil signalled it to stop; its exit is not judged
	failRun   bool // this run failed its readiness timeout
	removed   bool // dropped by a reload; deleted once down
	// restartAfterStop: changed by a reload; started again once down.
	restartAfterStop bool
	blockLog         bool // "blocked" was logged

	timer    *time.Timer // pending start, backoff, readiness timeout or kill
	timerGen int
	// due is when the timer fires if it is a restart's (zero otherwise), and
	// reserved says that restart already took its respawn token: a re-exec
	// hands both over, so the new image neither restarts early nor takes a
	// second token.
	due      time.Time
	reserved bool
	// killAt is when the timer SIGKILLs the group of a stopping service
	// (zero otherwise); a re-exec hands it over with stopping.
	killAt time.Time
	cancel context.CancelFunc // readiness check of this run
	notify *os.File           // read end of the notify_fd pipe until the check takes it
	pumps  []*pump            // prefixed output being copied
	// reaped is the leader's exit, stored by its watcher before the loop
	// handles it, so a re-exec can hand over an exit still in flight.
	reaped atomic.Pointer[reaper.Exit]
}

// New prepares a supervisor; nothing starts before Run.
func New(o Options) (*Supervisor, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("open %s for services' stdin: %w", os.DevNull, err)
	}
	n := len(o.Services)
	if o.Handoff != nil {
		n = max(n, len(o.Handoff.Services))
	}
	s := &Supervisor{
		o:        o,
		log:      o.Log,
		byName:   make(map[string]*service, n),
		events:   make(chan func(), 64),
		orphaned: make(chan struct{}, 1),
		limiter:  newBucket(o.RespawnLimit, time.Now()),
		devnull:  devnull,
		quit:     make(chan struct{}),
		saved:    make(map[string]persisted),
	}
	if o.Main != nil {
		s.main = &service{isMain: true, Service: config.Service{
			Name: config.MainName, Argv: o.Main, Restart: config.RestartNever,
			Critical: true, StopSignal: unix.SIGTERM, StopTimeout: o.ShutdownTimeout,
			Log: config.LogInherit, MaxRetries: 0,
		}}
		s.add(s.main)
	}
	if o.Handoff != nil {
		s.o.Generation = o.Handoff.Generation
		s.panics = o.Handoff.Panics
		s.adopt(*o.Handoff)
		return s, nil
	}
	for _, c := range o.Services {
		s.add(&service{Service: c})
	}
	s.link()
	if o.State != nil {
		s.restore(o.State.Load())
	}
	return s, nil
}

func (s *Supervisor) add(svc *service) {
	svc.state = Starting
	svc.want = true
	s.order = append(s.order, svc)
	s.byName[svc.Name] = svc
}

// OrphanReaped tells the supervisor an orphan was reaped, so a process group
// it waits on may be empty now. Safe from any goroutine; never blocks.
func (s *Supervisor) OrphanReaped() {
	select {
	case s.orphaned <- struct{}{}:
	default:
	}
}

// Run starts every service and supervises them until shutdown is complete,
// then returns vigil's exit status.
func (s *Supervisor) Run() int {
	defer s.devnull.Close()
	defer close(s.quit)
	if h := s.o.Handoff; h != nil {
		s.log.Info("adopted services after re-exec", "generation", h.Generation, "services", len(s.order))
		s.resume()
		s.applyReload(s.o.Services)
		for _, sig := range h.Signals {
			s.onSignal(syscall.Signal(sig))
		}
	} else {
		for _, svc := range s.order {
			if svc.state != GivenUp {
				s.tryStart(svc)
			}
		}
	}
	if d := s.o.ReexecInterval; d > 0 && s.o.Reexec != nil {
		time.AfterFunc(d, func() { s.post(func() { s.reexecNow("interval") }) })
	}
	for !s.done {
		s.safely(func() {
			select {
			case sig := <-s.o.Signals:
				s.onSignal(sig.(syscall.Signal))
			case f := <-s.events:
				f()
			case <-s.orphaned:
				s.checkGroups()
			case <-s.gone:
				s.done = true
			}
			s.checkWatchers()
			s.persist()
		})
	}
	s.flushState()
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.drainOutput()
	return s.exitCode
}

// drainOutput waits for the prefixed output still in the pipes to be
// written out: every writer is gone, so each pump is at most a read from its
// EOF. The bound covers a descriptor passed to a process outside vigil.
func (s *Supervisor) drainOutput() {
	drained := make(chan struct{})
	go func() {
		s.pumps.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		s.log.Warn("service output still open after every process ended; not waiting for it")
	}
}

// maxPanics is how many panic re-execs a minute vigil tries before it
// gives up, shuts down gracefully and exits 70.
const maxPanics = 3

// safely runs one turn of the loop. A panic in vigil's own code is
// recovered: vigil re-executes itself (a fresh image adopting the services,
// which never notice), unless that has happened too often already.
func (s *Supervisor) safely(f func()) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		s.log.Error("internal error", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		now := time.Now()
		s.panics = slices.DeleteFunc(s.panics, func(t time.Time) bool { return now.Sub(t) > time.Minute })
		s.panics = append(s.panics, now)
		if len(s.panics) > maxPanics || s.o.Reexec == nil || s.shuttingDown {
			if !s.exitFixed {
				s.exitCode, s.exitFixed = 70, true
			}
			s.shutdown("repeated internal errors")
			return
		}
		s.reexecNow("panic")
	}()
	f()
}

// post runs f on the supervisor's goroutine. Never call it from there.
func (s *Supervisor) post(f func()) { s.events <- f }

// after runs f on the supervisor's goroutine after d, unless the service's
// timer is replaced or cancelled first.
func (s *Supervisor) after(svc *service, d time.Duration, f func()) {
	s.cancelTimer(svc)
	gen := svc.timerGen
	svc.timer = time.AfterFunc(d, func() {
		s.post(func() {
			if svc.timerGen == gen {
				svc.timer = nil
				svc.due, svc.reserved, svc.killAt = time.Time{}, false, time.Time{}
				f()
			}
		})
	})
}

// schedule is after for a restart; reserved: it has taken its respawn
// token already.
func (s *Supervisor) schedule(svc *service, d time.Duration, reserved bool, f func()) {
	s.after(svc, d, f)
	svc.due, svc.reserved = time.Now().Add(d), reserved
}

func (s *Supervisor) cancelTimer(svc *service) {
	svc.timerGen++
	svc.due, svc.reserved, svc.killAt = time.Time{}, false, time.Time{}
	if svc.timer != nil {
		svc.timer.Stop()
		svc.timer = nil
	}
}

// onSignal applies SPEC section 5's supervisor column.
func (s *Supervisor) onSignal(sig syscall.Signal) {
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGPWR:
		if s.shuttingDown {
			if sig == unix.SIGTERM || sig == unix.SIGINT {
				s.log.Warn("second stop signal: killing everything now", "signal", signals.Name(sig))
				s.killEverything()
			}
			return
		}
		s.shutdown("received " + signals.Name(sig))
		return
	}
	if !signals.Forwardable(sig) {
		return
	}
	to, ok := s.o.Rewrite.Apply(sig)
	if !ok {
		return
	}
	if s.main != nil {
		s.signalGroup(s.main, to)
		return
	}
	if sig == unix.SIGWINCH || sig == unix.SIGTSTP {
		return // the terminal's business, and only main has one
	}
	for _, svc := range s.order {
		s.signalGroup(svc, to)
	}
}

func (s *Supervisor) signalGroup(svc *service, sig syscall.Signal) {
	if svc.pgid == 0 {
		return
	}
	if err := unix.Kill(-svc.pgid, sig); err == nil {
		s.log.Debug("forwarded signal", "service", svc.Name, "signal", signals.Name(sig))
	}
}

// ready reports whether dependents of svc may start.
func (svc *service) ready() bool {
	return svc.state == Ready || (svc.Oneshot && svc.state == Exited)
}

// failedForGood reports whether svc will not run again by itself.
func (svc *service) failedForGood() bool {
	return svc.state == GivenUp || svc.state == Blocked
}

// alive reports whether the service's leader or any of its group still runs.
// A group found empty is forgotten (pgid 0): it never fills again, and
// shutdown asks about every service each time one stops, which with a
// thousand services was a million kill(2) calls.
func (svc *service) alive() bool {
	if svc.pid != 0 {
		return true
	}
	if svc.pgid == 0 {
		return false
	}
	err := unix.Kill(-svc.pgid, 0)
	if errors.Is(err, unix.ESRCH) {
		svc.pgid = 0
	}
	return err == nil || errors.Is(err, unix.EPERM)
}

// tryStart starts svc if it is wanted, not running, and its dependencies are
// ready. A dependency that failed for good blocks it.
func (s *Supervisor) tryStart(svc *service) {
	if s.shuttingDown || !svc.want || svc.pid != 0 || svc.state == Backoff || svc.timer != nil {
		return
	}
	for _, d := range svc.deps {
		if d.failedForGood() {
			s.block(svc, d)
			return
		}
	}
	for _, d := range svc.deps {
		if !d.ready() {
			svc.state = Starting
			return
		}
	}
	s.spawn(svc)
}

// block marks svc (not running) and its waiting dependents blocked.
func (s *Supervisor) block(svc *service, by *service) {
	if svc.pid != 0 || svc.state == Blocked {
		return
	}
	svc.state = Blocked
	if !svc.blockLog {
		svc.blockLog = true
		s.log.Error("blocked: a dependency failed for good", "service", svc.Name, "dependency", by.Name, "dependency_state", string(by.state))
	}
	for _, u := range svc.users {
		s.block(u, svc)
	}
	s.maybeAllDone()
}

// spawn starts one run of svc.
func (s *Supervisor) spawn(svc *service) {
	svc.run++
	svc.failRun = false
	cmd, closeAfter, pumps, err := s.command(svc)
	var pid int
	var exits <-chan reaper.Exit
	if err == nil {
		pid, exits, err = proc.Start(s.o.Reaper, cmd)
	}
	for _, f := range closeAfter {
		f.Close()
	}
	svc.started = time.Now()
	if err != nil {
		for _, p := range pumps {
			p.r.Close()
		}
		if svc.notify != nil {
			svc.notify.Close()
			svc.notify = nil
		}
		code := proc.ExitCode(err)
		s.log.Error("cannot start", "service", svc.Name, "status", code, "err", err)
		svc.lastExit = &code
		s.judge(svc, code, 0)
		return
	}
	// Pumps of an earlier run that reached EOF are done with; others may
	// still drain a leftover process's output.
	svc.pumps = slices.DeleteFunc(svc.pumps, func(p *pump) bool { return p.eof.Load() })
	for _, p := range pumps {
		svc.pumps = append(svc.pumps, p)
		s.runPump(svc.Name, p)
	}
	svc.pid, svc.pgid = pid, pid
	// Read once now, off the re-exec path; 0 if it is already gone.
	svc.startTime, _ = reexec.StartTime(pid)
	svc.state = Running
	s.log.Info("started", "service", svc.Name, "pid", pid)
	s.watchExit(svc, exits)
	switch {
	case svc.Ready != nil:
		s.watchReady(svc, cmd.Env)
	case !svc.Oneshot:
		s.becomeReady(svc)
	}
}

// watchExit hands the current run's exit to the loop.
func (s *Supervisor) watchExit(svc *service, exits <-chan reaper.Exit) {
	run := svc.run
	svc.reaped.Store(nil)
	go func() {
		e := <-exits
		svc.reaped.Store(&e)
		s.post(func() { s.exited(svc, run, e) })
	}()
}

// pump is one prefixed output pipe of a service.
type pump struct {
	r       *os.File
	out     *proc.Output
	carry   []byte          // output to start with (after a re-exec): a partial line, or what an interrupted pump did not write
	stopped chan pumpResult // one result per runPump
	eof     atomic.Bool
}

type pumpResult struct {
	left []byte // partial line held when interrupted
	eof  bool
}

// runPump copies p's pipe until EOF (then closes it) or until stopPumps
// interrupts it at a line boundary.
func (s *Supervisor) runPump(name string, p *pump) {
	p.stopped = make(chan pumpResult, 1)
	carry := p.carry
	p.carry = nil
	s.pumps.Go(func() {
		left, err := p.out.PumpCarry(name, p.r, carry)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, proc.ErrInterrupted) || left != nil {
			p.stopped <- pumpResult{left: left}
			return
		}
		p.eof.Store(true)
		p.r.Close()
		p.stopped <- pumpResult{eof: true}
	})
}

// command builds how svc is started. closeAfter are vigil's copies of the
// child's pipe ends, closed once the child has them.
func (s *Supervisor) command(svc *service) (proc.Command, []*os.File, []*pump, error) {
	c := proc.Command{Argv: svc.Argv, Dir: svc.Dir, Terminal: -1}
	env := slices.Clone(s.o.Env)
	if svc.User != "" {
		cred, home, err := proc.Credential(s.o.Root, svc.User)
		if err != nil {
			return c, nil, nil, &proc.StartError{Argv0: svc.Argv[0], Code: 126, Err: err}
		}
		c.Credential = cred
		env = append(env, "HOME="+home)
	}
	c.Env = append(env, svc.Env...)
	if svc.isMain {
		c.Terminal = s.o.Terminal
		return c, nil, nil, nil // vigil's own stdin, stdout and stderr
	}
	c.Session = true
	c.Files = []uintptr{s.devnull.Fd(), 1, 2}
	var closeAfter []*os.File
	var pumps []*pump
	if svc.Log == config.LogPrefix {
		for i, out := range []*proc.Output{s.o.Stdout, s.o.Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				for _, f := range closeAfter {
					f.Close()
				}
				for _, p := range pumps {
					p.r.Close()
				}
				return c, nil, nil, fmt.Errorf("output pipe: %w", err)
			}
			c.Files[1+i] = w.Fd()
			closeAfter = append(closeAfter, w)
			pumps = append(pumps, &pump{r: r, out: out})
		}
	}
	if svc.Ready != nil && svc.Ready.NotifyFD > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return c, closeAfter, pumps, fmt.Errorf("notify pipe: %w", err)
		}
		for len(c.Files) <= svc.Ready.NotifyFD {
			c.Files = append(c.Files, ^uintptr(0)) // closed in the child
		}
		c.Files[svc.Ready.NotifyFD] = w.Fd()
		closeAfter = append(closeAfter, w)
		svc.notify = r
	}
	return c, closeAfter, pumps, nil
}

// becomeReady marks svc ready and starts what waited for it.
func (s *Supervisor) becomeReady(svc *service) {
	svc.state = Ready
	if svc.Ready != nil {
		s.log.Info("ready", "service", svc.Name, "pid", svc.pid)
	}
	s.startUsers(svc)
}

func (s *Supervisor) startUsers(svc *service) {
	for _, u := range svc.users {
		s.tryStart(u)
	}
}

// exited handles the end of a run.
func (s *Supervisor) exited(svc *service, run int, e reaper.Exit) {
	if run != svc.run {
		return
	}
	code := e.Code()
	ran := time.Since(svc.started)
	svc.pid = 0
	svc.lastExit = &code
	s.stopReadyCheck(svc)
	s.log.Info("exited", "service", svc.Name, "pid", e.Pid, "status", code, "ran", ran.Round(time.Millisecond))
	if svc.isMain {
		s.mainExited(code)
	}
	if svc.stopping || s.shuttingDown {
		s.checkGroups()
		return
	}
	s.judge(svc, code, ran)
}

// mainExited ends the run with the main process's status.
func (s *Supervisor) mainExited(code int) {
	if slices.Contains(s.o.ExitZero, code) {
		code = 0
	}
	if !s.exitFixed {
		s.exitCode, s.exitFixed = code, true
	}
	if s.o.Terminal >= 0 {
		if err := proc.ReclaimTerminal(s.o.Terminal); err != nil {
			s.log.Debug("cannot take the terminal back", "err", err)
		}
	}
	s.shutdown("main exited")
}

// judge applies the restart policy to a run that ended by itself
// (SPEC section 4: failed runs, max_retries, backoff, stable_after).
func (s *Supervisor) judge(svc *service, code int, ran time.Duration) {
	success := code == 0 && !svc.failRun
	stable := ran >= svc.StableAfter && !svc.failRun && svc.StableAfter > 0
	if svc.Oneshot && success {
		svc.retries = 0
		svc.state = Exited
		s.startUsers(svc)
		s.maybeAllDone()
		return
	}
	if svc.Restart == config.RestartNever || (svc.Restart == config.RestartOnFailure && success) {
		if success {
			svc.retries = 0
			svc.state = Exited
		} else {
			svc.state = GivenUp
			s.log.Warn("will not restart", "service", svc.Name, "restart", svc.Restart, "status", code)
		}
		s.endedForGood(svc, code)
		return
	}
	var delay time.Duration
	if stable {
		svc.retries = 0
	} else {
		svc.retries++
		if svc.MaxRetries >= 0 && svc.retries > svc.MaxRetries {
			svc.state = GivenUp
			s.log.Error("given up", "service", svc.Name, "runs", svc.retries, "status", code)
			s.endedForGood(svc, code)
			return
		}
		delay = restartDelay(svc.Backoff, svc.retries, jitter())
	}
	svc.state = Backoff
	attempt := fmt.Sprintf("%d of %d", svc.retries, svc.MaxRetries)
	if svc.MaxRetries < 0 {
		attempt = fmt.Sprintf("%d of unlimited", svc.retries)
	}
	s.log.Info("restart scheduled", "service", svc.Name, "delay", delay.Round(time.Millisecond), "attempt", attempt)
	s.schedule(svc, delay, false, func() { s.restart(svc) })
}

// restart spawns svc again once the global respawn limit allows.
func (s *Supervisor) restart(svc *service) {
	if wait := s.limiter.Reserve(time.Now()); wait > 0 {
		svc.state = Starting
		s.log.Info("respawn limit reached: restart delayed", "service", svc.Name, "wait", wait.Round(time.Millisecond))
		s.schedule(svc, wait, true, func() { s.respawn(svc) })
		return
	}
	s.respawn(svc)
}

func (s *Supervisor) respawn(svc *service) {
	if s.shuttingDown || !svc.want {
		return
	}
	svc.restarts++
	s.spawn(svc)
}

// endedForGood handles a service that will not run again by itself: its
// waiting dependents are blocked, and a critical one ends the run.
func (s *Supervisor) endedForGood(svc *service, code int) {
	if svc.state == GivenUp {
		for _, u := range svc.users {
			s.block(u, svc)
		}
	}
	if svc.Critical && !svc.isMain {
		status := code
		if status == 0 && svc.state == GivenUp {
			status = 1
		}
		if !s.exitFixed {
			s.exitCode, s.exitFixed = status, true
		}
		s.shutdown("critical service " + svc.Name + " ended")
		return
	}
	s.maybeAllDone()
}

// maybeAllDone ends a run without main once every service has finished for
// good without failure. Given-up services keep vigil up for `vigil start`.
func (s *Supervisor) maybeAllDone() {
	if s.main != nil || s.shuttingDown {
		return
	}
	for _, svc := range s.order {
		if svc.state != Exited {
			return
		}
	}
	s.shutdown("every service has finished")
}

// shutdown starts the graceful stop (SPEC section 5): pending starts are
// cancelled, services stop in reverse dependency order, independent ones in
// parallel, all inside the shutdown deadline.
//
// vigil's status is fixed by whoever ended the run first (a critical
// service, or main's exit); a requested shutdown leaves it at 0, or at
// main's status once main has exited.
func (s *Supervisor) shutdown(reason string) {
	if s.shuttingDown {
		return
	}
	s.shuttingDown = true
	s.log.Info("shutting down", "reason", reason, "timeout", s.o.ShutdownTimeout)
	s.deadline = time.AfterFunc(s.o.ShutdownTimeout, func() {
		s.post(func() {
			if !s.done {
				s.log.Warn("shutdown deadline reached: killing everything", "timeout", s.o.ShutdownTimeout)
				s.killEverything()
			}
		})
	})
	for _, svc := range s.order {
		s.cancelTimer(svc)
		s.stopReadyCheck(svc)
		if svc.pid == 0 && (svc.state == Starting || svc.state == Backoff) {
			svc.state = Stopped
		}
	}
	s.stopNext()
}

// stopNext sends the stop signal to every live service none of whose users
// is still alive (main counts as a user of every service), and enters the
// final phase once all are down.
func (s *Supervisor) stopNext() {
	anyAlive := false
	for _, svc := range s.order {
		if !svc.alive() {
			continue
		}
		anyAlive = true
		if svc.stopping {
			continue
		}
		if s.usersAlive(svc) {
			continue
		}
		s.stop(svc)
	}
	if !anyAlive && s.gone == nil {
		s.finalPhase()
	}
}

func (s *Supervisor) usersAlive(svc *service) bool {
	if !svc.isMain && s.main != nil && s.main.alive() {
		return true
	}
	for _, u := range svc.users {
		if u.alive() {
			return true
		}
	}
	return false
}

// stop signals svc's group with its stop signal (and SIGCONT, so a stopped
// service can act on it), then SIGKILL after stop_timeout.
func (s *Supervisor) stop(svc *service) {
	svc.stopping = true
	svc.state = Stopping
	s.log.Info("stopping", "service", svc.Name, "pid", svc.pid, "signal", signals.Name(svc.StopSignal))
	s.signalStop(svc)
}

// signalStop sends the stop signal and SIGCONT to svc's group, then SIGKILL
// after stop_timeout if any of it is still alive.
func (s *Supervisor) signalStop(svc *service) {
	unix.Kill(-svc.pgid, svc.StopSignal)
	unix.Kill(-svc.pgid, unix.SIGCONT)
	s.armKill(svc, time.Now().Add(svc.StopTimeout))
}

// armKill SIGKILLs svc's group at the given time if any of it is alive then.
func (s *Supervisor) armKill(svc *service, at time.Time) {
	s.after(svc, time.Until(at), func() {
		if svc.alive() {
			s.log.Warn("stop timeout: killing the group", "service", svc.Name, "timeout", svc.StopTimeout)
			unix.Kill(-svc.pgid, unix.SIGKILL)
		}
	})
	svc.killAt = at
}

// checkGroups notices stopping services whose whole group is gone.
func (s *Supervisor) checkGroups() {
	var down []*service
	for _, svc := range s.order {
		if svc.stopping && !svc.alive() {
			svc.stopping = false
			s.cancelTimer(svc)
			svc.state = Stopped
			s.log.Info("stopped", "service", svc.Name)
			down = append(down, svc)
		}
	}
	for _, svc := range down {
		switch {
		case svc.removed:
			s.remove(svc)
			s.link()
		case svc.restartAfterStop && !s.shuttingDown:
			svc.restartAfterStop = false
			s.startNow(svc)
		}
	}
	if s.shuttingDown {
		s.stopNext()
	}
}

// finalPhase runs once every service is down: processes that escaped their
// group (setsid) get SIGTERM; vigil exits when no child is left.
func (s *Supervisor) finalPhase() {
	s.gone = s.o.Reaper.NoChildren()
	if proc.SignalAll(unix.SIGTERM) {
		proc.SignalAll(unix.SIGCONT)
		s.log.Info("sent SIGTERM to processes outside the services' groups")
	}
}

// killEverything is the deadline: SIGKILL to every group and process left.
func (s *Supervisor) killEverything() {
	for _, svc := range s.order {
		if svc.alive() {
			unix.Kill(-svc.pgid, unix.SIGKILL)
		}
	}
	proc.SignalAll(unix.SIGKILL)
	if s.gone == nil {
		s.gone = s.o.Reaper.NoChildren()
	}
	// A process in uninterruptible sleep must not hold the container for ever.
	time.AfterFunc(killGrace, func() {
		s.post(func() {
			if !s.done {
				s.log.Error("processes survived SIGKILL; exiting anyway", "waited", killGrace)
				s.done = true
			}
		})
	})
}

// killGrace bounds the wait after SIGKILL.
const killGrace = 5 * time.Second
