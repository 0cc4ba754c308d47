package supervise

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/state"
	"github.com/vigil-init/vigil/supervise/schedule"
)

// A scheduled service (docs/schedules.md) waits in state scheduled with its
// next tick armed in its tick slot; each tick makes a run due, and the run
// goes through the same start, readiness and exit as any oneshot. What is
// different is the judgement of its end: a failed run is retried only
// before the next tick, and never given up for good.

// tickSlack is how far a tick's timer may fire from the tick's wall-clock
// time before it counts as a clock step (logged): a loaded machine fires
// timers late by milliseconds, a step is seconds or more.
const tickSlack = 2 * time.Second

// startAll is the start of a run of vigil without a handoff: every service
// that is not given up starts, or waits for its dependencies or its first
// tick.
func (s *Supervisor) startAll() {
	for _, svc := range s.order {
		if svc.state == GivenUp {
			continue
		}
		if svc.catchUp {
			svc.catchUp, svc.due = false, true
			s.ensureTick(svc)
		}
		s.tryStart(svc)
	}
}

// cronOf is svc's parsed schedule, parsed again when the config changed it;
// nil (logged) if it cannot be: the config checked it, but the zone
// database can change under a running vigil.
func (s *Supervisor) cronOf(svc *service) *schedule.Schedule {
	if !svc.scheduled() {
		return nil
	}
	key := svc.Schedule + "\x00" + svc.Timezone
	if svc.cron != nil && svc.cronKey == key {
		return svc.cron
	}
	c, err := schedule.Parse(svc.Schedule, svc.Timezone)
	if err != nil {
		s.log.Error("cannot schedule: no ticks until the config is fixed", "service", svc.Name,
			"schedule", svc.Schedule, "timezone", svc.Timezone, "err", err)
		svc.cron, svc.cronKey = nil, ""
		return nil
	}
	svc.cron, svc.cronKey = c, key
	return c
}

// ensureTick arms svc's next tick unless one is armed.
func (s *Supervisor) ensureTick(svc *service) {
	if svc.tick.kind == tickDue {
		return
	}
	if c := s.cronOf(svc); c != nil {
		s.armTick(svc, c.Next(s.clock.Now()))
	}
}

// toScheduled puts svc between runs: no run due, its next tick armed, and
// what waits for it free to start.
func (s *Supervisor) toScheduled(svc *service, level slog.Level, msg string, args ...any) {
	svc.due, svc.attempts = false, 0
	s.disarm(svc)
	s.become(svc, Scheduled, level, msg, args...)
	s.ensureTick(svc)
	s.startUsers(svc)
}

// resumeWanted brings back a wanted service that is down: a scheduled one
// waits for its next tick unless a run is due, any other starts.
func (s *Supervisor) resumeWanted(svc *service) {
	if svc.scheduled() && !svc.due {
		s.toScheduled(svc, slog.LevelDebug, "")
		return
	}
	s.startNow(svc)
}

// tickFired handles svc's tick: the next one is armed from the wall clock
// read now (schedule.Fired: a clock step neither runs a tick twice nor
// loses one without a log line), then this one makes a run due.
func (s *Supervisor) tickFired(svc *service, gen int) {
	if svc.tick.gen != gen || svc.tick.kind != tickDue {
		return
	}
	expected := svc.tick.at
	svc.tick = slot{gen: gen}
	c := s.cronOf(svc)
	if c == nil {
		return
	}
	now := s.clock.Now()
	f := c.Fired(expected, now, tickSlack)
	switch {
	case f.SkippedCount > 0:
		s.log.Warn("clock stepped forward: one run covers the ticks it jumped over", "service", svc.Name,
			"step", f.Step.Round(time.Second), "skipped", f.SkippedCount,
			"first_skipped", f.Skipped[0].Format(time.RFC3339), "tick", f.Run.Format(time.RFC3339))
	case f.Step < 0:
		s.log.Warn("clock stepped back: this tick runs now, and not again when the clock reaches it", "service", svc.Name,
			"step", f.Step.Round(time.Second), "tick", f.Run.Format(time.RFC3339), "next", f.Next.Format(time.RFC3339))
	case f.Step > 0:
		s.log.Warn("tick late (clock stepped forward, or vigil was stopped)", "service", svc.Name,
			"late", f.Step.Round(time.Second), "tick", f.Run.Format(time.RFC3339))
	}
	if !s.shuttingDown && svc.desired == wantUp {
		s.armTick(svc, f.Next)
	}
	s.runTick(svc, f.Run)
}

// runTick starts the run of one tick, or applies concurrency to the run
// still going.
func (s *Supervisor) runTick(svc *service, tick time.Time) {
	if s.shuttingDown || svc.desired != wantUp {
		return
	}
	switch {
	case svc.state == Scheduled:
		s.startRun(svc)
	case svc.state == Backoff && svc.pid == 0:
		// Retries never reach past the next tick: this tick's run replaces
		// them.
		s.log.Warn("next tick: the failed run is not retried any more", "service", svc.Name, "retries", svc.attempts)
		s.startRun(svc)
	case svc.state == Stopping:
		s.log.Warn("tick skipped: the previous run is still stopping", "service", svc.Name,
			"pid", svc.pid, "tick", tick.Format(time.RFC3339))
	case svc.state == Blocked:
		s.log.Warn("tick skipped: blocked by a dependency that failed for good", "service", svc.Name,
			"tick", tick.Format(time.RFC3339))
	case svc.Concurrency == config.ConcurrencyReplace && svc.pid != 0:
		s.log.Info("tick: stopping the previous run to start this one", "service", svc.Name,
			"pid", svc.pid, "tick", tick.Format(time.RFC3339))
		svc.due = true
		s.disarm(svc)
		s.stopReadyCheck(svc)
		s.stop(svc) // checkGroups starts the due run once the group is gone
	default:
		s.log.Warn("tick skipped: the previous run is still going", "service", svc.Name,
			"state", string(svc.state), "pid", svc.pid, "tick", tick.Format(time.RFC3339))
	}
}

// startRun makes a run of svc due and starts it when its dependencies
// allow.
func (s *Supervisor) startRun(svc *service) {
	svc.due, svc.attempts = true, 0
	s.disarm(svc)
	s.become(svc, Starting, slog.LevelDebug, "")
	s.tryStart(svc)
}

// judgeScheduled is judge for a run of a scheduled service: a success or a
// failure with no retry left (or none before the next tick) waits for the
// next tick; it is never given up and never ends the container.
func (s *Supervisor) judgeScheduled(svc *service, code int) {
	if code == 0 && !svc.runFailed {
		svc.retries = 0
		s.toScheduled(svc, slog.LevelDebug, "")
		return
	}
	svc.failedRuns++
	svc.retries++
	s.dirty = true
	now := s.clock.Now()
	if svc.Restart == config.RestartOnFailure && (svc.MaxRetries < 0 || svc.attempts < svc.MaxRetries) {
		delay := restartDelay(svc.Backoff, svc.attempts+1, jitter())
		at := now.Add(delay)
		if svc.tick.kind == tickDue && !at.Before(svc.tick.at) {
			s.toScheduled(svc, slog.LevelWarn, "run failed; no retry before the next tick", "status", code,
				"failed_runs", svc.failedRuns, "next", svc.tick.at.Format(time.RFC3339))
			return
		}
		svc.attempts++
		attempt := fmt.Sprintf("%d of %d", svc.attempts, svc.MaxRetries)
		if svc.MaxRetries < 0 {
			attempt = fmt.Sprintf("%d of unlimited", svc.attempts)
		}
		s.become(svc, Backoff, slog.LevelWarn, "run failed; retry scheduled", "status", code,
			"delay", delay.Round(time.Millisecond), "attempt", attempt, "failed_runs", svc.failedRuns)
		s.arm(svc, restartDue, at)
		return
	}
	s.toScheduled(svc, slog.LevelWarn, "run failed; waiting for the next tick", "status", code, "failed_runs", svc.failedRuns)
}

// restoreSchedule takes a scheduled service's last run from the state file
// and decides whether a tick missed while vigil was down runs at start
// (starting_deadline).
func (s *Supervisor) restoreSchedule(svc *service, rec state.Service) {
	svc.lastRun = rec.LastRun
	if svc.StartingDeadline <= 0 || rec.LastRun.IsZero() {
		return
	}
	c := s.cronOf(svc)
	if c == nil {
		return
	}
	now := s.clock.Now()
	tick, run := c.Missed(rec.LastRun, now, svc.StartingDeadline)
	switch {
	case run:
		s.log.Info("a tick was missed while vigil was down: running it once now", "service", svc.Name,
			"tick", tick.Format(time.RFC3339), "last_run", rec.LastRun.Format(time.RFC3339))
		svc.catchUp = true
	case !tick.IsZero():
		s.log.Warn("a tick missed while vigil was down is older than starting_deadline: skipped", "service", svc.Name,
			"tick", tick.Format(time.RFC3339), "starting_deadline", svc.StartingDeadline)
	}
}

// reschedule fits a service to its schedule after a reload: a new
// expression or zone arms its next tick again, a schedule taken away makes
// it an ordinary service waiting to start, one given makes a finished
// service wait for its ticks.
func (s *Supervisor) reschedule(svc *service) {
	if !svc.scheduled() {
		s.disarmTick(svc)
		svc.due = false
		if svc.state == Scheduled {
			s.become(svc, Starting, slog.LevelDebug, "")
		}
		return
	}
	if svc.desired != wantUp {
		return
	}
	if svc.tick.kind == tickDue && svc.cronKey != svc.Schedule+"\x00"+svc.Timezone {
		s.disarmTick(svc)
	}
	switch svc.state {
	case Exited, GivenUp:
		s.toScheduled(svc, slog.LevelDebug, "")
	case Stopped:
	default:
		s.ensureTick(svc)
	}
}
