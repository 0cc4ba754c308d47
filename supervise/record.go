package supervise

import (
	"context"
	"log/slog"
	"time"

	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/state"
)

// A service's runtime record is its service value; this file projects it,
// one function each, into what the operator sees (status), what the volume
// keeps (the state file) and what a re-exec carries (the handoff), and back
// from the last two. A new field is one edit to service plus the
// projections that need it.

// status is svc as `vigil status` shows it.
func (svc *service) status() control.ServiceStatus {
	st := control.ServiceStatus{
		Name: svc.Name, State: string(svc.state), Pid: svc.pid, Started: svc.started,
		Restarts: svc.restarts, Retries: svc.retries, LastExit: svc.lastExit,
		Ready:          svc.ready() || svc.state == Exited,
		HealthFailures: svc.consecutiveHealthFailures(), LastCheckFailure: svc.lastCheckError,
	}
	if h := svc.healthWord(); h != "" {
		st.Health = &h
	}
	if svc.scheduled() {
		// A job's runs, failed or not, do not make the container unready:
		// only a job stopped on request is down.
		st.Ready = svc.state != Stopped && svc.state != Stopping
		st.Schedule, st.LastRun, st.FailedRuns = svc.Schedule, svc.lastRun, svc.failedRuns
		if svc.tick.kind == tickDue {
			st.NextRun = svc.tick.at
		}
	}
	if svc.log != nil {
		st.LogFileDropped = svc.log.fileDropped()
	}
	return st
}

// record is svc as the state file keeps it.
func (svc *service) record() state.Service {
	rec := state.Service{
		Status: string(svc.state), Pid: svc.pid, Restarts: svc.restarts, Retries: svc.retries,
		GivenUp: svc.state == GivenUp, LastExit: svc.lastExit, Started: svc.started,
		LastRun: svc.lastRun,
	}
	if svc.pid != 0 {
		rec.StartTime = svc.startTime
	}
	return rec
}

// handoff is svc as a re-exec carries it; times are translated to
// CLOCK_MONOTONIC by clock (nil when it could not be read: pending restarts
// are then waited again, a pending SIGKILL is sent at once).
func (svc *service) handoff(clock *reexec.Clock) reexec.HandoffService {
	hs := reexec.HandoffService{
		Config: svc.Service, Main: svc.isMain, State: string(svc.state), Pid: svc.pid, Pgid: svc.pgid,
		Started: svc.started, Retries: svc.retries, Restarts: svc.restarts, LastExit: svc.lastExit,
		Want: svc.desired == wantUp, Notify: -1,
		Stopping:         svc.state == Stopping,
		RestartAfterStop: svc.state == Stopping && svc.desired == wantUp,
		LastRun:          svc.lastRun, FailedRuns: svc.failedRuns, RunDue: svc.due,
		HealthFailures: svc.healthFailures, WasReady: svc.wasReady,
	}
	if svc.tick.kind == tickDue {
		hs.NextRun = svc.tick.at
	}
	switch svc.timer.kind {
	case restartDue, tokenDue:
		if clock != nil {
			hs.Due, hs.Reserved = clock.ToMono(svc.timer.at), svc.timer.kind == tokenDue
		}
	case killDue:
		hs.KillAt = 1 // without a clock, at once: late rather than never
		if clock != nil {
			hs.KillAt = clock.ToMono(svc.timer.at)
		}
	}
	return hs
}

// fromHandoff fills svc from its handoff record: the record itself; the
// processes, pipes and timers are the adoption's business.
func (svc *service) fromHandoff(hs *reexec.HandoffService) {
	svc.state, svc.pgid, svc.started = State(hs.State), hs.Pgid, hs.Started
	svc.retries, svc.restarts, svc.lastExit = hs.Retries, hs.Restarts, hs.LastExit
	svc.lastRun, svc.failedRuns, svc.due = hs.LastRun, hs.FailedRuns, hs.RunDue
	if !hs.NextRun.IsZero() {
		// Armed by resume, at the tick's wall-clock time.
		svc.tick = slot{kind: tickDue, at: hs.NextRun}
	}
	svc.healthFailures, svc.wasReady = hs.HealthFailures, hs.WasReady
	// An unhealthy service was being stopped for its health: its exit is
	// still a failed run.
	svc.runFailed = svc.state == Unhealthy
	svc.desired = wantDown
	if hs.Want {
		svc.desired = wantUp
	}
}

// restore applies what the state file remembers of each service: its
// consecutive failed runs and its given-up mark carry over a restart of the
// container. A given-up mark keeps a non-critical service down; a critical
// one still gets one run per start of vigil, and the orchestrator's own
// backoff applies between them (docs/state-and-reexec.md).
func (s *Supervisor) restore(f state.File) {
	for _, svc := range s.order {
		rec, ok := f.Services[svc.Name]
		if !ok || svc.isMain {
			continue
		}
		svc.retries = rec.Retries
		if svc.scheduled() {
			s.restoreSchedule(svc, rec)
			continue
		}
		if rec.GivenUp {
			if svc.Critical {
				// One run: a failure gives it up again at once.
				svc.retries = max(svc.retries, svc.MaxRetries)
				continue
			}
			svc.lastExit = rec.LastExit
			s.become(svc, GivenUp, slog.LevelWarn, "given up in an earlier run; kept down until vigil start or vigil reset", "retries", rec.Retries)
		}
	}
}

// snapshot is the state file's view of the services now.
func (s *Supervisor) snapshot() state.File {
	f := state.File{Version: state.Version, Generation: s.o.Generation, Services: make(map[string]state.Service, len(s.order))}
	for _, svc := range s.order {
		f.Services[svc.Name] = svc.record()
	}
	return f
}

// persist hands the state to the store when a persisted field changed. The
// store writes in its own goroutine: a slow volume never stalls the loop.
func (s *Supervisor) persist() {
	if s.o.State == nil || !s.dirty {
		return
	}
	s.dirty = false
	s.o.State.Save(s.snapshot())
}

// flushState writes the latest state before vigil exits or re-executes.
func (s *Supervisor) flushState() {
	if s.o.State == nil {
		return
	}
	s.persist()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.o.State.Flush(ctx); err != nil {
		s.log.Debug("state not flushed", "err", err)
	}
}
