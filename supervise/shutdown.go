package supervise

import (
	"log/slog"
	"slices"

	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

// shutdown starts the graceful stop (docs/signals.md): pending starts are
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
	s.deadline = s.clock.AfterFunc(s.o.ShutdownTimeout, func() { s.post(deadlineEvent{}) })
	for _, svc := range s.order {
		s.disarm(svc)
		s.disarmTick(svc)
		s.stopReadyCheck(svc)
		if svc.pid == 0 && (svc.state == Starting || svc.state == Backoff || svc.state == Scheduled) {
			s.become(svc, Stopped, slog.LevelDebug, "")
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
		if !s.alive(svc) {
			continue
		}
		anyAlive = true
		if svc.state == Stopping || s.usersAlive(svc) {
			continue
		}
		s.stop(svc)
	}
	if !anyAlive && s.gone == nil {
		s.finalPhase()
	}
}

func (s *Supervisor) usersAlive(svc *service) bool {
	if !svc.isMain && s.main != nil && s.alive(s.main) {
		return true
	}
	for _, u := range svc.users {
		if s.alive(u) {
			return true
		}
	}
	return false
}

// stop signals svc's group with its stop signal (and SIGCONT, so a stopped
// service can act on it), then SIGKILL after stop_timeout.
func (s *Supervisor) stop(svc *service) {
	if svc.pid != 0 {
		svc.escaped = s.procs.Escaped(svc.pid, svc.pgid)
	}
	s.become(svc, Stopping, slog.LevelInfo, "stopping", "pid", svc.pid, "signal", signals.Name(svc.StopSignal))
	if len(svc.escaped) > 0 {
		s.log.Info("stopping its descendants outside the services' groups too", "service", svc.Name, "processes", len(svc.escaped))
	}
	s.signalStop(svc)
}

// signalStop sends the stop signal and SIGCONT to svc's group, then SIGKILL
// after stop_timeout if any of it is still alive.
func (s *Supervisor) signalStop(svc *service) {
	s.procs.Signal(svc.pgid, svc.StopSignal)
	s.procs.Signal(svc.pgid, unix.SIGCONT)
	for _, p := range svc.escaped {
		s.procs.SignalProc(p, svc.StopSignal)
		s.procs.SignalProc(p, unix.SIGCONT)
	}
	s.arm(svc, killDue, s.clock.Now().Add(svc.StopTimeout))
}

// checkGroups notices stopping services whose whole group is gone: each is
// stopped, then removed, started again, or left down as it is wanted.
func (s *Supervisor) checkGroups() {
	var down []*service
	for _, svc := range s.order {
		if svc.state == Stopping && !s.alive(svc) {
			svc.escaped = nil
			s.disarm(svc)
			s.become(svc, Stopped, slog.LevelInfo, "stopped")
			down = append(down, svc)
		}
	}
	for _, svc := range down {
		switch {
		case svc.desired == wantGone:
			s.remove(svc)
			s.link()
		case svc.desired == wantUp && !s.shuttingDown:
			s.resumeWanted(svc)
		}
	}
	if s.shuttingDown {
		s.stopNext()
	}
}

// finalPhase runs once every service is down: processes that escaped their
// group (setsid) get SIGTERM; vigil exits when no child is left.
func (s *Supervisor) finalPhase() {
	s.gone = s.procs.NoChildren()
	if s.procs.SignalAll(unix.SIGTERM) {
		s.procs.SignalAll(unix.SIGCONT)
		s.log.Info("sent SIGTERM to processes outside the services' groups")
	}
}

// killEverything is the deadline: SIGKILL to every group and process left.
func (s *Supervisor) killEverything() {
	for _, svc := range s.order {
		if s.alive(svc) {
			s.procs.Signal(svc.pgid, unix.SIGKILL)
		}
	}
	s.procs.SignalAll(unix.SIGKILL)
	if s.gone == nil {
		s.gone = s.procs.NoChildren()
	}
	// A process in uninterruptible sleep must not hold the container for ever.
	s.clock.AfterFunc(killGrace, func() { s.post(graceEvent{}) })
}

func (s *Supervisor) remove(svc *service) {
	s.disarm(svc)
	s.disarmTick(svc)
	s.order = slices.DeleteFunc(s.order, func(x *service) bool { return x == svc })
	delete(s.byName, svc.Name)
	s.dropLog(svc)
	s.dirty = true
}

// link rebuilds the dependency edges from the services' DependsOn.
func (s *Supervisor) link() {
	for _, svc := range s.order {
		svc.deps, svc.users = nil, nil
	}
	for _, svc := range s.order {
		for _, name := range svc.DependsOn {
			if d := s.byName[name]; d != nil {
				svc.deps = append(svc.deps, d)
				d.users = append(d.users, svc)
			}
		}
	}
}
