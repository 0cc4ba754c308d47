// Package supervise runs vigil's processes: the main process of `-- CMD`
// and the services of a config, through one state machine per service
// (service.go) driven by one goroutine. Wrapper mode is this supervisor
// with no services.
//
// Events reach that goroutine on two paths: exits through the reaper's
// queue, and everything else (timers, readiness results, the operator's
// verbs, re-exec) as typed events on one channel. Every effect on the world
// goes through Clock and Procs, so the policy's unit tests run without a
// process or a sleep.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/signals"
	"github.com/vigil-init/vigil/state"
	"github.com/vigil-init/vigil/supervise/svclog"
	"golang.org/x/sys/unix"
)

// Options configure a Supervisor.
type Options struct {
	Log    *slog.Logger
	Reaper *reaper.Reaper
	// Exits is the queue the reaper delivers to: the exits of the
	// supervisor's children and the orphans (reaper.New(Exits.Deliver)).
	Exits    *reaper.Queue
	Services []config.Service
	// Main is the argv of `-- CMD`, run as the critical service "main" that
	// keeps the terminal (Terminal >= 0) and vigil's stdin; nil if none.
	Main     []string
	Terminal int
	// MainFiles are the descriptors vigil inherited, passed on to main
	// only (proc.TakeInherited).
	MainFiles []int
	ExitZero  []int // main statuses that count as success (-e)
	// Wrapper is tini's mode: main and nothing else, every signal
	// forwarded to it (the wrapper column of docs/signals.md).
	Wrapper bool
	// Env is the environment every service starts from.
	Env             []string
	Signals         <-chan os.Signal
	Rewrite         signals.Rewrite
	RespawnLimit    config.RespawnLimit
	ShutdownTimeout time.Duration
	WarnOrphans     bool         // log each reaped orphan at warn (-w), else debug
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
	State Saver
	// Started, if set, is called when the supervisor is ready to answer
	// (it opens the control socket): before the first spawn, so a service
	// can use the socket at once; in wrapper mode after it, since nothing
	// may delay the main process.
	Started func()

	// RingSize is the most each service's ring of recent lines holds
	// (`vigil logs`); 0: svclog.DefaultRingSize, 1 MiB.
	RingSize int
	// LogMemory, if set, is told (on the supervisor's goroutine) the most
	// the rings may take together whenever their number changes, so that
	// vigil's memory limit can make room for them.
	LogMemory func(bytes int64)

	// Clock, Procs and Checker replace the real time, processes and
	// check attempts (tests).
	Clock   Clock
	Procs   Procs
	Checker Checker
}

// Saver is where the state goes (state.Store).
type Saver interface {
	Load() state.File
	Save(state.File)
	Flush(ctx context.Context) error
}

// Supervisor runs services. Every field below is owned by the goroutine in
// Run; other goroutines hand it events.
type Supervisor struct {
	o       Options
	log     *slog.Logger
	clock   Clock
	procs   Procs
	checker Checker
	order   []*service // config order; main first
	byName  map[string]*service
	byPid   map[int]*service // running leaders
	main    *service
	events  chan event
	limiter *bucket
	devnull *os.File
	// ringSize is Options.RingSize, defaulted.
	ringSize int

	shuttingDown bool
	deadline     func() bool
	gone         <-chan struct{} // set once every service is down
	done         bool
	quit         chan struct{} // closed when Run returns
	pumps        pumpGroup
	panics       []time.Time // recent recovered panics
	dirty        bool        // a persisted field changed since the last save
	watchers     []*watcher
	exitCode     int
	exitFixed    bool
	forwarded    uint64 // signals forwarded to a group (the metrics)
	orphanBase   uint64 // orphans reaped by the images before this one
}

// event is what reaches the loop besides signals and exits.
type event interface{ isEvent() }

type (
	// timerEvent: a service's timer fired; stale unless gen is current.
	timerEvent struct {
		svc  *service
		gen  int
		tick bool // the tick slot's, not the timer slot's
	}
	// readyEvent: run number run of svc passed its readiness check (err
	// nil), or the check can no longer pass.
	readyEvent struct {
		svc *service
		run int
		err error
	}
	// callEvent: an operator's verb, run on the loop.
	callEvent struct{ f func() }
	// reexecEvent: time to replace vigil in place.
	reexecEvent struct{ reason string }
	// deadlineEvent: the shutdown deadline; graceEvent: the wait after
	// the final SIGKILL is over.
	deadlineEvent struct{}
	graceEvent    struct{}
)

func (timerEvent) isEvent()    {}
func (readyEvent) isEvent()    {}
func (callEvent) isEvent()     {}
func (reexecEvent) isEvent()   {}
func (deadlineEvent) isEvent() {}
func (graceEvent) isEvent()    {}

// New prepares a supervisor; nothing starts before Run.
func New(o Options) (*Supervisor, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Exits == nil {
		o.Exits = reaper.NewQueue()
	}
	if o.Procs == nil {
		o.Procs = reaperProcs{r: o.Reaper, q: o.Exits}
	}
	n := len(o.Services)
	if o.Handoff != nil {
		n = max(n, len(o.Handoff.Services))
	}
	s := &Supervisor{
		o:       o,
		log:     o.Log,
		clock:   o.Clock,
		procs:   o.Procs,
		byName:  make(map[string]*service, n),
		byPid:   make(map[int]*service, n),
		events:  make(chan event, 64),
		limiter: newBucket(o.RespawnLimit, o.Clock.Now()),
		quit:    make(chan struct{}),

		ringSize: o.RingSize,
	}
	if s.ringSize <= 0 {
		s.ringSize = svclog.DefaultRingSize
	}
	s.checker = o.Checker
	if s.checker == nil {
		s.checker = reaperChecker{r: o.Reaper, stdin: func() uintptr { return s.devnull.Fd() }}
	}
	if len(o.Services) > 0 || o.Handoff != nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return nil, fmt.Errorf("open %s for services' stdin: %w", os.DevNull, err)
		}
		s.devnull = devnull
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
		s.orphanBase, s.forwarded = o.Handoff.Orphans, o.Handoff.Forwarded
		s.adopt(o.Handoff)
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
	svc.desired = wantUp
	s.order = append(s.order, svc)
	s.byName[svc.Name] = svc
}

// Run starts every service and supervises them until shutdown is complete,
// then returns vigil's exit status.
func (s *Supervisor) Run() int {
	defer func() {
		if s.devnull != nil {
			s.devnull.Close()
		}
	}()
	defer close(s.quit)
	started := func() {
		if s.o.Started != nil {
			s.o.Started()
		}
	}
	if !s.o.Wrapper {
		started()
	}
	if h := s.o.Handoff; h != nil {
		s.log.Info("adopted services after re-exec", "generation", h.Generation, "services", len(s.order))
		s.resume()
		s.applyReload(s.o.Services)
		for _, sig := range h.Signals {
			s.onSignal(syscall.Signal(sig))
		}
	} else {
		s.startAll()
	}
	// Every service's first state is on the volume before anything else
	// happens: a container killed now still leaves its state behind.
	s.dirty = true
	s.persist()
	if s.o.Wrapper {
		started()
	}
	if d := s.o.ReexecInterval; d > 0 && s.o.Reexec != nil {
		s.clock.AfterFunc(d, func() { s.post(reexecEvent{"interval"}) })
	}
	for !s.done {
		s.safely(func() {
			select {
			case sig := <-s.o.Signals:
				s.onSignal(sig.(syscall.Signal))
			case <-s.o.Exits.Ready():
				s.onExits(s.o.Exits.Take())
			case ev := <-s.events:
				s.handle(ev)
			case <-s.gone:
				s.done = true
			}
			s.checkWatchers()
			s.persist()
		})
	}
	s.flushState()
	if s.deadline != nil {
		s.deadline()
	}
	s.drainOutput()
	s.closeLogs()
	return s.exitCode
}

// handle dispatches one event on the loop.
func (s *Supervisor) handle(ev event) {
	switch ev := ev.(type) {
	case timerEvent:
		if ev.tick {
			s.tickFired(ev.svc, ev.gen)
		} else {
			s.timerFired(ev.svc, ev.gen)
		}
	case readyEvent:
		s.readyDone(ev.svc, ev.run, ev.err)
	case probeTickEvent:
		s.probeTick(ev.svc, ev.p, ev.gen)
	case probeEvent:
		s.probeDone(ev.svc, ev.p, ev.seq, ev.err)
	case callEvent:
		ev.f()
	case reexecEvent:
		s.reexecNow(ev.reason)
	case deadlineEvent:
		if !s.done {
			s.log.Warn("shutdown deadline reached: killing everything", "timeout", s.o.ShutdownTimeout)
			s.killEverything()
		}
	case graceEvent:
		if !s.done {
			s.log.Error("processes survived SIGKILL; exiting anyway", "waited", killGrace)
			s.done = true
		}
	}
}

// onExits handles the exits the reaper queued: each service's leader, and
// the orphans (after which a group waited on may be empty).
func (s *Supervisor) onExits(exits []reaper.Exit) {
	orphans := false
	for _, e := range exits {
		svc := s.byPid[e.Pid]
		if e.Orphan || svc == nil {
			orphans = true
			lvl := slog.LevelDebug
			if s.o.WarnOrphans {
				lvl = slog.LevelWarn
			}
			// Asked first: the arguments cost two allocations per orphan
			// even when the line is not logged, in a storm of thousands.
			if s.log.Enabled(context.Background(), lvl) {
				s.log.Log(context.Background(), lvl, "reaped orphan", "pid", e.Pid, "status", e.Code())
			}
			continue
		}
		delete(s.byPid, e.Pid)
		s.exited(svc, e)
	}
	if orphans {
		s.checkGroups()
	}
}

// drainOutput waits for the prefixed output still in the pipes to be
// written out: every writer is gone, so each pump is at most a read from its
// EOF. The bound covers a descriptor passed to a process outside vigil.
func (s *Supervisor) drainOutput() {
	if !s.pumps.waitFor(2 * time.Second) {
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
		now := s.clock.Now()
		s.panics = slices.DeleteFunc(s.panics, func(t time.Time) bool { return now.Sub(t) > time.Minute })
		s.panics = append(s.panics, now)
		if len(s.panics) > maxPanics || s.o.Reexec == nil || s.shuttingDown {
			s.fixExit(70)
			s.shutdown("repeated internal errors")
			return
		}
		s.reexecNow("panic")
	}()
	f()
}

// post hands ev to the loop; once Run has returned it is dropped, so no
// timer or check goroutine waits for ever. Never call it from the loop.
func (s *Supervisor) post(ev event) {
	select {
	case s.events <- ev:
	case <-s.quit:
	}
}

// arm sets svc's one timer: what it is for, and when.
func (s *Supervisor) arm(svc *service, kind timerKind, at time.Time) {
	s.disarm(svc)
	gen := svc.timer.gen
	svc.timer.kind, svc.timer.at = kind, at
	svc.timer.stop = s.clock.AfterFunc(at.Sub(s.clock.Now()), func() { s.post(timerEvent{svc: svc, gen: gen}) })
}

// armTick sets svc's tick slot for the tick at (a wall-clock time); the
// timer runs on elapsed time, so tickFired reads the wall clock again.
func (s *Supervisor) armTick(svc *service, at time.Time) {
	s.disarmTick(svc)
	gen := svc.tick.gen
	svc.tick.kind, svc.tick.at = tickDue, at
	svc.tick.stop = s.clock.AfterFunc(at.Sub(s.clock.Now()), func() { s.post(timerEvent{svc: svc, gen: gen, tick: true}) })
}

// disarmTick cancels svc's next tick.
func (s *Supervisor) disarmTick(svc *service) {
	svc.tick.gen++
	if svc.tick.stop != nil {
		svc.tick.stop()
	}
	svc.tick = slot{gen: svc.tick.gen}
}

// disarm cancels svc's timer; a firing already on its way is stale.
func (s *Supervisor) disarm(svc *service) {
	svc.timer.gen++
	if svc.timer.stop != nil {
		svc.timer.stop()
	}
	svc.timer = slot{gen: svc.timer.gen}
}

// timerFired runs what svc's timer was armed for, unless it is stale.
func (s *Supervisor) timerFired(svc *service, gen int) {
	if svc.timer.gen != gen || svc.timer.kind == noTimer {
		return
	}
	kind := svc.timer.kind
	svc.timer = slot{gen: gen}
	switch kind {
	case restartDue:
		s.restart(svc)
	case tokenDue:
		s.respawn(svc)
	case readyTimeout:
		s.readyTimedOut(svc)
	case killDue:
		if s.alive(svc) {
			s.log.Warn("stop timeout: killing the group", "service", svc.Name, "timeout", svc.StopTimeout)
			s.procs.Signal(svc.pgid, unix.SIGKILL)
			for _, p := range svc.escaped {
				s.procs.SignalProc(p, unix.SIGKILL)
			}
		}
	}
}

// fixExit sets vigil's exit status unless an earlier event fixed it.
func (s *Supervisor) fixExit(code int) {
	if !s.exitFixed {
		s.exitCode, s.exitFixed = code, true
	}
}

// onSignal does what the signal table says (signals.Decide, and
// docs/signals.md): the wrapper column in wrapper mode, the supervisor
// column otherwise. In wrapper mode, once main is gone, a TERM or INT kills
// what is left at once; nothing is forwarded any more.
func (s *Supervisor) onSignal(sig syscall.Signal) {
	mode := signals.Supervisor
	if s.o.Wrapper {
		mode = signals.Wrapper
	}
	act := signals.Decide(sig, mode, s.main != nil, s.o.Rewrite)
	if s.o.Wrapper && s.shuttingDown {
		if act.Verb == signals.ForwardMain && (sig == unix.SIGTERM || sig == unix.SIGINT) {
			s.log.Warn("stop signal after main exited: killing the remaining processes", "signal", signals.Name(sig))
			s.killEverything()
		}
		return
	}
	switch act.Verb {
	case signals.Shutdown, signals.ShutdownOrKill:
		if !s.shuttingDown {
			s.shutdown("received " + signals.Name(act.Signal))
		} else if act.Verb == signals.ShutdownOrKill {
			s.log.Warn("second stop signal: killing everything now", "signal", signals.Name(act.Signal))
			s.killEverything()
		}
	case signals.ForwardMain:
		if s.main != nil {
			s.signalGroup(s.main, act.Signal)
		}
	case signals.ForwardAll:
		for _, svc := range s.order {
			s.signalGroup(svc, act.Signal)
		}
	default:
		s.log.Debug("dropped signal", "signal", signals.Name(sig), "why", act.Why)
	}
}

func (s *Supervisor) signalGroup(svc *service, sig syscall.Signal) {
	if svc.pgid == 0 {
		return
	}
	if err := s.procs.Signal(svc.pgid, sig); err != nil {
		s.log.Debug("cannot forward signal", "service", svc.Name, "signal", signals.Name(sig), "err", err)
		return
	}
	s.forwarded++
	s.log.Debug("forwarded signal", "service", svc.Name, "signal", signals.Name(sig))
}

// alive reports whether the service's leader, any of its group, or a
// descendant that escaped the group during a stop still runs.
// A group found empty is forgotten (pgid 0): it never fills again, and
// shutdown asks about every service each time one stops, which with a
// thousand services was a million kill(2) calls.
func (s *Supervisor) alive(svc *service) bool {
	if svc.pid != 0 {
		return true
	}
	// Descendants that left the group count while a stop waits for them.
	svc.escaped = slices.DeleteFunc(svc.escaped, func(p proc.Proc) bool {
		return !groupAlive(s.procs.SignalProc(p, 0))
	})
	if len(svc.escaped) > 0 {
		return true
	}
	if svc.pgid == 0 {
		return false
	}
	if !groupAlive(s.procs.Signal(svc.pgid, 0)) {
		svc.pgid = 0
		return false
	}
	return true
}

// killGrace bounds the wait after SIGKILL: a process in uninterruptible
// sleep must not keep vigil (and the container) alive for ever.
const killGrace = 5 * time.Second
