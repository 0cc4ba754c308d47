package supervise

import (
	"context"
	"time"

	"github.com/vigil-init/vigil/state"
)

// restore applies what the state file remembers of each service: its
// consecutive failed runs and its given-up mark carry over a restart of the
// container. A given-up mark keeps a non-critical service down; a critical
// one still gets one run per start of vigil, and the orchestrator's own
// backoff applies between them (SPEC section 4).
func (s *Supervisor) restore(f state.File) {
	for _, svc := range s.order {
		rec, ok := f.Services[svc.Name]
		if !ok || svc.isMain {
			continue
		}
		svc.retries = rec.Retries
		if rec.GivenUp {
			if svc.Critical {
				// One run: a failure gives it up again at once.
				svc.retries = max(svc.retries, svc.MaxRetries)
				continue
			}
			svc.state = GivenUp
			svc.lastExit = rec.LastExit
			s.log.Warn("given up in an earlier run; kept down until vigil start or vigil reset", "service", svc.Name, "retries", rec.Retries)
		}
	}
}

// snapshot is the state file's view of the services now.
func (s *Supervisor) snapshot() state.File {
	f := state.File{Version: state.Version, Generation: s.o.Generation, Services: make(map[string]state.Service, len(s.order))}
	for _, svc := range s.order {
		rec := state.Service{
			Status: string(svc.state), Pid: svc.pid, Restarts: svc.restarts, Retries: svc.retries,
			GivenUp: svc.state == GivenUp, LastExit: svc.lastExit, Started: svc.started,
		}
		if svc.pid != 0 {
			rec.StartTime = svc.startTime
		}
		f.Services[svc.Name] = rec
	}
	return f
}

// persist hands the state to the store when a persisted field changed. The
// store writes in its own goroutine: a slow volume never stalls the loop.
func (s *Supervisor) persist() {
	if s.o.State == nil {
		return
	}
	changed := len(s.saved) != len(s.order)
	for _, svc := range s.order {
		k := persisted{svc.state, svc.pid, svc.restarts, svc.retries, svc.started, -1}
		if svc.lastExit != nil {
			k.lastExit = *svc.lastExit
		}
		if s.saved[svc.Name] != k {
			changed = true
			s.saved[svc.Name] = k
		}
	}
	if !changed {
		return
	}
	for name := range s.saved {
		if s.byName[name] == nil {
			delete(s.saved, name)
		}
	}
	s.o.State.Save(s.snapshot())
}

// persisted is what persist compares to see whether a save is due.
type persisted struct {
	state    State
	pid      int
	restarts int
	retries  int
	started  time.Time
	lastExit int
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
