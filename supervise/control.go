package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
)

// The methods in this file are the operator's verbs (`vigil status`, `start`,
// ...). They may be called from any goroutine: each hands its work to the
// supervisor's goroutine and, where the verb promises it, waits there for
// the state it asked for.

// ErrUnknown is wrapped by errors about a service name that does not exist.
var ErrUnknown = errors.New("unknown service")

// ErrStopped means the supervisor has finished and takes no more requests.
var ErrStopped = errors.New("vigil is shutting down")

// ErrWrapper answers the verbs that make no sense in wrapper mode.
var ErrWrapper = errors.New("wrapper mode runs only the main process, which is not started or stopped on request")

// changeable refuses a verb that would start services (start, reload,
// scale) once the shutdown began, or in wrapper mode, which has none.
func (s *Supervisor) changeable() error {
	if s.shuttingDown {
		return ErrStopped
	}
	if s.o.Wrapper {
		return ErrWrapper
	}
	return nil
}

// watcher is a verb waiting for a condition; check runs on the supervisor's
// goroutine after every event until it reports done or an error.
type watcher struct {
	ctx   context.Context
	check func() (bool, error)
	done  chan error
}

// call runs f on the supervisor's goroutine and waits until it has run.
func (s *Supervisor) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	select {
	case s.events <- callEvent{func() { f(); close(ran) }}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrStopped
	}
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrStopped
	}
}

// await runs act, then waits until check says done (nil) or failed.
func (s *Supervisor) await(ctx context.Context, act func() error, check func() (bool, error)) error {
	done := make(chan error, 1)
	err := s.call(ctx, func() {
		if err := act(); err != nil {
			done <- err
			return
		}
		if ok, err := check(); ok || err != nil {
			done <- err
			return
		}
		s.watchers = append(s.watchers, &watcher{ctx: ctx, check: check, done: done})
	})
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out: %w", ctx.Err())
	case <-s.quit:
		return ErrStopped
	}
}

// checkWatchers runs after every event on the supervisor's goroutine.
func (s *Supervisor) checkWatchers() {
	if len(s.watchers) == 0 {
		return
	}
	kept := s.watchers[:0]
	for _, w := range s.watchers {
		if w.ctx.Err() != nil {
			continue
		}
		ok, err := w.check()
		if ok || err != nil {
			w.done <- err
			continue
		}
		kept = append(kept, w)
	}
	clear(s.watchers[len(kept):])
	s.watchers = kept
}

// lookup finds the named services; no names means all of them.
func (s *Supervisor) lookup(names []string) ([]*service, error) {
	if len(names) == 0 {
		return slices.Clone(s.order), nil
	}
	var out []*service
	for _, n := range names {
		svc := s.byName[n]
		if svc == nil {
			// A template's name stands for every copy.
			copies := s.copiesOf(n)
			if len(copies) == 0 {
				return nil, fmt.Errorf("%w %q", ErrUnknown, n)
			}
			out = append(out, copies...)
			continue
		}
		out = append(out, svc)
	}
	return out, nil
}

// copiesOf lists the copies of the service with instances called template,
// in config order (by number).
func (s *Supervisor) copiesOf(template string) []*service {
	var out []*service
	for _, svc := range s.order {
		if svc.Template == template && !svc.isMain {
			out = append(out, svc)
		}
	}
	return out
}

// Scale runs n copies of the service with instances called name, as a
// reload with another instances would (docs/schedules.md): the
// highest-numbered copies start or stop, the others keep running. Not
// persisted: the config wins at the next reload or start.
func (s *Supervisor) Scale(ctx context.Context, name string, n int) error {
	var touched []*service
	return s.await(ctx, func() error {
		if err := s.changeable(); err != nil {
			return err
		}
		copies := s.copiesOf(name)
		switch {
		case len(copies) == 0 && s.byName[name] != nil:
			return fmt.Errorf("%s has no instances: only a service with instances in the config can be scaled", name)
		case len(copies) == 0:
			return fmt.Errorf("%w %q", ErrUnknown, name)
		case n < 1 || n > config.MaxInstances:
			return fmt.Errorf("%d copies: want 1..%d", n, config.MaxInstances)
		}
		var next []config.Service
		for _, svc := range s.order {
			switch {
			case svc.isMain:
			case svc == copies[0]:
				for k := 1; k <= n; k++ {
					c := svc.Service.CopyAs(k, n)
					if o := s.byName[c.Name]; o != nil && o.Template != name {
						return fmt.Errorf("copy %d would be named %q, and another service has that name", k, c.Name)
					}
					next = append(next, c)
				}
			case svc.Template == name:
			default:
				next = append(next, svc.Service)
			}
		}
		s.log.Info("scale", "service", name, "from", len(copies), "to", n)
		touched = s.applyReload(next)
		return nil
	}, func() (bool, error) { return s.reloaded(touched), nil })
}

// Status reports the named services (all when none is named).
func (s *Supervisor) Status(ctx context.Context, names []string) ([]control.ServiceStatus, error) {
	var out []control.ServiceStatus
	var lerr error
	err := s.call(ctx, func() {
		var list []*service
		list, lerr = s.lookup(names)
		for _, svc := range list {
			out = append(out, svc.status())
		}
	})
	if err != nil {
		return nil, err
	}
	return out, lerr
}

// Ready reports whether every named service (all when none is named) is
// ready, or has finished for good without failure.
func (s *Supervisor) Ready(ctx context.Context, names []string) (bool, error) {
	list, err := s.Status(ctx, names)
	if err != nil {
		return false, err
	}
	for _, st := range list {
		if !st.Ready {
			return false, nil
		}
	}
	return true, nil
}

// Start starts the named services and waits until each is ready or has
// exited; a service that goes to backoff, gives up or is blocked fails it.
func (s *Supervisor) Start(ctx context.Context, names []string) error {
	var list []*service
	return s.await(ctx, func() error {
		var err error
		if list, err = s.lookup(names); err != nil {
			return err
		}
		if err := s.changeable(); err != nil {
			return err
		}
		for _, svc := range list {
			s.startNow(svc)
		}
		return nil
	}, func() (bool, error) { return started(list) })
}

// startNow makes svc wanted and starts it if it is not running: a given-up,
// stopped, exited or blocked service gets a fresh run, a service in backoff
// skips the rest of its wait. A stopping one starts again once down.
func (s *Supervisor) startNow(svc *service) {
	svc.desired = wantUp
	if svc.scheduled() {
		// One run now, and the schedule goes on.
		svc.due = true
		s.ensureTick(svc)
	}
	if svc.pid != 0 || svc.state == Stopping {
		return
	}
	if svc.state == GivenUp {
		svc.retries = 0
	}
	s.disarm(svc)
	s.become(svc, Starting, slog.LevelDebug, "")
	s.tryStart(svc)
}

func started(list []*service) (bool, error) {
	for _, svc := range list {
		switch svc.state {
		case Ready, Exited:
		case Scheduled:
			// The run asked for has ended: a failure is the verb's too.
			if svc.lastExit != nil && *svc.lastExit != 0 {
				return false, fmt.Errorf("%s: run failed%s", svc.Name, lastExitText(svc))
			}
		case Backoff, GivenUp, Blocked:
			return false, fmt.Errorf("%s: %s%s", svc.Name, svc.state, lastExitText(svc))
		default:
			return false, nil
		}
	}
	return true, nil
}

func lastExitText(svc *service) string {
	if svc.lastExit == nil {
		return ""
	}
	return fmt.Sprintf(" (last exit %d)", *svc.lastExit)
}

// Stop stops the named services and keeps them down until Start; it returns
// once each one's whole process group is gone.
func (s *Supervisor) Stop(ctx context.Context, names []string) error {
	var list []*service
	return s.await(ctx, func() error {
		var err error
		if list, err = s.lookup(names); err != nil {
			return err
		}
		if s.o.Wrapper {
			return ErrWrapper
		}
		for _, svc := range list {
			s.stopNow(svc)
		}
		return nil
	}, func() (bool, error) { return s.stopped(list), nil })
}

func (s *Supervisor) stopNow(svc *service) {
	if svc.desired == wantUp {
		svc.desired = wantDown
	}
	// A stopped job gets no ticks, and a run made due (replace) is off.
	s.disarmTick(svc)
	svc.due = false
	if svc.state == Stopping {
		// Stopping already: its timer is the SIGKILL, which a second
		// vigil stop (or a client asking again after a re-exec) must not
		// cancel, or a service deaf to its stop signal would never die.
		return
	}
	s.disarm(svc)
	s.stopReadyCheck(svc)
	if s.alive(svc) {
		s.stop(svc)
		return
	}
	s.become(svc, Stopped, slog.LevelDebug, "")
}

func (s *Supervisor) stopped(list []*service) bool {
	for _, svc := range list {
		if s.alive(svc) || svc.state == Stopping {
			return false
		}
	}
	return true
}

// Restart stops the named services, then starts them: each gets a new PID.
func (s *Supervisor) Restart(ctx context.Context, names []string) error {
	if s.o.Wrapper {
		return ErrWrapper
	}
	if err := s.Stop(ctx, names); err != nil {
		return err
	}
	return s.Start(ctx, names)
}

// Signal sends sig to the process group of each named service.
func (s *Supervisor) Signal(ctx context.Context, sig syscall.Signal, names []string) error {
	var serr error
	err := s.call(ctx, func() {
		list, err := s.lookup(names)
		if err != nil {
			serr = err
			return
		}
		for _, svc := range list {
			if svc.pid == 0 {
				serr = errors.Join(serr, fmt.Errorf("%s is not running (%s)", svc.Name, svc.state))
				continue
			}
			if err := s.procs.Signal(svc.pgid, sig); err != nil {
				serr = errors.Join(serr, fmt.Errorf("%s: %w", svc.Name, err))
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Reset forgets the retry counts and given-up marks of the named services
// (all when none is named); a given-up service is started again.
func (s *Supervisor) Reset(ctx context.Context, names []string) error {
	var lerr error
	err := s.call(ctx, func() {
		var list []*service
		if list, lerr = s.lookup(names); lerr != nil {
			return
		}
		for _, svc := range list {
			svc.retries = 0
			s.dirty = true
			if svc.state == GivenUp && !s.shuttingDown {
				s.startNow(svc)
			}
		}
	})
	if err != nil {
		return err
	}
	return lerr
}

// Reload applies a new service list like `vigil reload` (docs/control.md):
// added services start, removed ones stop, changed ones (command, dir, env,
// user, log or ready) restart, and the rest keep running with their policy
// fields updated. It returns once the removed and changed ones are down and
// every start is under way.
func (s *Supervisor) Reload(ctx context.Context, services []config.Service) error {
	var touched []*service
	return s.await(ctx, func() error {
		if err := s.changeable(); err != nil {
			return err
		}
		touched = s.applyReload(services)
		return nil
	}, func() (bool, error) { return s.reloaded(touched), nil })
}

// reloaded reports whether the services a reload stopped or restarted are
// down or gone.
func (s *Supervisor) reloaded(touched []*service) bool {
	for _, svc := range touched {
		if svc.state == Stopping || svc.desired == wantGone && s.byName[svc.Name] == svc {
			return false
		}
	}
	return true
}

// applyReload updates the service table, starts what was added and stops
// what was removed or changed; a changed one starts again once its group is
// gone (see checkGroups). It returns the removed and changed services.
func (s *Supervisor) applyReload(services []config.Service) []*service {
	next := make(map[string]config.Service, len(services))
	for _, c := range services {
		next[c.Name] = c
	}
	var down []*service
	for _, svc := range slices.Clone(s.order) {
		if svc.isMain {
			continue
		}
		c, ok := next[svc.Name]
		switch {
		case !ok:
			s.log.Info("reload: removing", "service", svc.Name)
			s.stopNow(svc)
			svc.desired = wantGone
			if svc.state != Stopping {
				s.remove(svc)
			}
			down = append(down, svc)
		case needsRestart(svc.Service, c):
			s.log.Info("reload: changed, restarting", "service", svc.Name)
			svc.Service = c
			s.openFile(svc)
			wanted := svc.desired == wantUp
			s.stopNow(svc)
			if wanted {
				// Started again at once, or once its group is gone.
				svc.desired = wantUp
				if svc.state != Stopping {
					s.resumeWanted(svc)
				}
			}
			down = append(down, svc)
		default:
			changed := !reflect.DeepEqual(svc.Health, c.Health)
			svc.Service = c
			if changed {
				s.restartHealth(svc)
			}
			// A log_file changed, added or removed on output that
			// passes through vigil either way: the file is reopened,
			// the service keeps running.
			s.openFile(svc)
		}
	}
	for _, svc := range s.order {
		if !svc.isMain {
			s.reschedule(svc)
		}
	}
	for _, c := range services {
		if s.byName[c.Name] == nil {
			s.log.Info("reload: adding", "service", c.Name)
			s.add(&service{Service: c})
		}
	}
	// Config order again (a copy added by scale sits with its siblings):
	// status lists in it, and starts go in it. Services on their way out
	// go last, main stays first.
	rank := make(map[string]int, len(services))
	for i, c := range services {
		rank[c.Name] = i + 1
	}
	slices.SortStableFunc(s.order, func(a, b *service) int {
		ra, rb := rank[a.Name], rank[b.Name]
		if a.isMain {
			ra = 0
		} else if ra == 0 {
			ra = len(services) + 1
		}
		if b.isMain {
			rb = 0
		} else if rb == 0 {
			rb = len(services) + 1
		}
		return ra - rb
	})
	s.link()
	for _, svc := range s.order {
		if svc.state == Starting && svc.pid == 0 && svc.timer.kind == noTimer {
			s.tryStart(svc)
		}
	}
	return down
}

// needsRestart reports whether a change between two versions of a service
// needs a new process: anything about how it runs, not the policy.
// A copy of a service with instances whose N alone changed keeps running:
// its VIGIL_INSTANCES stays the old N until its next run (the environment
// of a running process cannot change).
func needsRestart(a, b config.Service) bool {
	ea, eb := a.Env, b.Env
	if a.Template != "" && b.Template != "" {
		ea, eb = withoutVar(ea, config.InstancesVar), withoutVar(eb, config.InstancesVar)
	}
	// A log_file added to or removed from `log: inherit` output changes
	// where the output goes: through vigil's pipes or straight out.
	through := func(c config.Service) bool { return c.Log == config.LogPrefix || c.LogFile != nil }
	return !slices.Equal(a.Argv, b.Argv) || a.Dir != b.Dir || !slices.Equal(ea, eb) ||
		a.User != b.User || a.Log != b.Log || !reflect.DeepEqual(a.Ready, b.Ready) || through(a) != through(b)
}

// withoutVar is env less the variable name.
func withoutVar(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}
