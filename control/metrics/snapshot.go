package metrics

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Snapshot is what vigil exposes, copied out of the supervisor at scrape
// time. It is plain data: the supervisor fills it, Write formats it.
type Snapshot struct {
	Version          string    // build version, the label of vigil_build_info
	Start            time.Time // when this vigil started (re-execs keep it)
	Services         []Service // in the order they are to be listed
	OrphansReaped    uint64
	SignalsForwarded uint64
	Reexecs          uint64
}

// Service is one service's share of a Snapshot.
type Service struct {
	Name  string
	Up    bool   // a process of it runs
	Ready bool   // its readiness holds
	State string // its current state word
	// States is every state word there is: each gets a series of
	// vigil_service_state, 1 for State and 0 for the rest, so a query can
	// count services per state without knowing them in advance.
	States         []string
	Restarts       uint64 // within this start of vigil
	FailedRuns     int    // the persisted consecutive count
	LastExit       *int   // nil: no run has ended yet, and no series is written
	HealthFailures uint64 // health check failures, all time (this start of vigil)
}

// Write writes s in the exposition format. Every family is written even
// when it has no sample (no services), so a scraper sees the same names.
func Write(w io.Writer, s Snapshot) error {
	e := NewEncoder(w)
	e.Family("vigil_build_info", "vigil's build; the value is always 1.", Gauge)
	e.Sample("vigil_build_info", 1, Label{"version", s.Version})
	e.Family("vigil_start_time_seconds", "When vigil started, in seconds since the Unix epoch.", Gauge)
	e.Sample("vigil_start_time_seconds", float64(s.Start.Unix())+float64(s.Start.Nanosecond())/1e9)

	perService := []struct {
		name, help, typ string
		value           func(Service) (float64, bool)
	}{
		{"vigil_service_up", "1 while a process of the service runs.", Gauge,
			func(v Service) (float64, bool) { return b2f(v.Up), true }},
		{"vigil_service_ready", "1 while the service is ready.", Gauge,
			func(v Service) (float64, bool) { return b2f(v.Ready), true }},
		{"vigil_service_restarts_total", "Restarts of the service since vigil started.", Counter,
			func(v Service) (float64, bool) { return float64(v.Restarts), true }},
		{"vigil_service_failed_runs", "Consecutive failed runs of the service (persisted).", Gauge,
			func(v Service) (float64, bool) { return float64(v.FailedRuns), true }},
		{"vigil_service_last_exit_code", "Exit status of the service's last run, 128+N if killed by signal N.", Gauge,
			func(v Service) (float64, bool) {
				if v.LastExit == nil {
					return 0, false
				}
				return float64(*v.LastExit), true
			}},
		{"vigil_service_health_failures_total", "Failed health checks of the service since vigil started.", Counter,
			func(v Service) (float64, bool) { return float64(v.HealthFailures), true }},
	}
	for _, f := range perService {
		e.Family(f.name, f.help, f.typ)
		for _, v := range s.Services {
			if x, ok := f.value(v); ok {
				e.Sample(f.name, x, Label{"service", v.Name})
			}
		}
	}
	e.Family("vigil_service_state", "1 for the service's current state, 0 for the others.", Gauge)
	for _, v := range s.Services {
		current := false
		for i, st := range v.States {
			if slices.Contains(v.States[:i], st) {
				continue // a repeated series would make the scrape fail
			}
			current = current || st == v.State
			e.Sample("vigil_service_state", b2f(st == v.State), Label{"service", v.Name}, Label{"state", st})
		}
		if !current && v.State != "" {
			// A state missing from the list still shows, rather than the
			// service seeming to be in none.
			e.Sample("vigil_service_state", 1, Label{"service", v.Name}, Label{"state", v.State})
		}
	}
	for _, c := range []struct {
		name, help string
		v          uint64
	}{
		{"vigil_orphans_reaped_total", "Orphaned processes reaped by vigil.", s.OrphansReaped},
		{"vigil_signals_forwarded_total", "Signals forwarded by vigil.", s.SignalsForwarded},
		{"vigil_reexecs_total", "Times vigil re-executed itself in place.", s.Reexecs},
	} {
		e.Family(c.name, c.help, Counter)
		e.Sample(c.name, float64(c.v))
	}
	if err := e.Flush(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
