package supervise

import (
	"context"

	"github.com/vigil-init/vigil/control/metrics"
)

// What the HTTP endpoint reads: like the verbs, each call runs on the
// supervisor's goroutine, so every value is the one `vigil status` shows at
// that moment.

// Live reports whether the supervisor's loop answered within ctx.
func (s *Supervisor) Live(ctx context.Context) bool {
	return s.call(ctx, func() {}) == nil
}

// Metrics is the supervisor's share of a metrics snapshot: the services,
// in status order, and vigil's counters. Version and Start are the
// caller's.
func (s *Supervisor) Metrics(ctx context.Context) (metrics.Snapshot, error) {
	var snap metrics.Snapshot
	err := s.call(ctx, func() {
		states := States()
		snap.Services = make([]metrics.Service, 0, len(s.order))
		for _, svc := range s.order {
			st := svc.status()
			snap.Services = append(snap.Services, metrics.Service{
				Name: st.Name, Up: st.Pid != 0, Ready: st.Ready, State: st.State, States: states,
				Restarts: uint64(st.Restarts), FailedRuns: st.Retries, LastExit: st.LastExit,
				HealthFailures: svc.healthFailures,
			})
		}
		snap.SignalsForwarded = s.forwarded
		snap.Reexecs = uint64(s.o.Generation)
		snap.OrphansReaped = s.orphans()
	})
	return snap, err
}

// orphans counts the orphans reaped since vigil started, re-execs
// included.
func (s *Supervisor) orphans() uint64 {
	if s.o.Reaper == nil {
		return s.orphanBase
	}
	return s.orphanBase + s.o.Reaper.Orphans()
}
