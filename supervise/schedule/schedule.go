// Package schedule computes when a scheduled service runs: cron expressions
// in the syntax of Kubernetes CronJob (github.com/robfig/cron/v3, standard
// five-field form), in an IANA time zone, with what a wall clock does to
// them: daylight-saving gaps and repeats, clock steps, and ticks missed while
// vigil was not running. It keeps no timers and reads no clock: the caller
// passes every instant, so all of it is testable with explicit times.
package schedule

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule in its time zone. It is immutable and safe
// for concurrent use.
type Schedule struct {
	expr  string
	loc   *time.Location
	spec  *cron.SpecSchedule // nil for @every
	every time.Duration      // > 0 for @every
	// wall is set for cron expressions with fixed hours (not every hour):
	// they run by the wall clock across daylight-saving changes (see
	// Next). Schedules that fire every hour run by elapsed time instead.
	wall bool
}

// allHours is SpecSchedule.Hour's bits when every hour matches.
const allHours = 1<<24 - 1

// neverRef is where Parse looks for a first tick: a leap year, so 29
// February schedules are found; the parser searches five years ahead.
var neverRef = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Parse reads a schedule: five fields (minute hour day-of-month month
// day-of-week, with ranges, lists, steps and month and day names), or one of
// @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly, or
// "@every DURATION" (a whole number of seconds, at least 1s). tz is an IANA
// zone name such as "Europe/Berlin"; "" means time.Local (TZ, else the
// system's zone, else UTC). A zone prefix in the expression (CRON_TZ=, TZ=)
// is refused: the zone is the separate tz argument.
func Parse(expr, tz string) (*Schedule, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("empty schedule")
	}
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return nil, fmt.Errorf("%q: give the zone in the timezone field, not in the expression", expr)
	}
	loc := time.Local
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("time zone %q: %w", tz, err)
		}
	}
	s := &Schedule{expr: expr, loc: loc}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		// robfig rounds a delay below 1s up and drops fractions of a
		// second; refuse both rather than run at another rate than
		// written.
		every, err := time.ParseDuration(strings.TrimSpace(d))
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q: %w", expr, err)
		case every < time.Second:
			return nil, fmt.Errorf("%q: the shortest interval is 1s", expr)
		case every%time.Second != 0:
			return nil, fmt.Errorf("%q: the interval must be a whole number of seconds", expr)
		}
		s.every = every
		return s, nil
	}
	parsed, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q: unsupported schedule", expr)
	}
	spec.Location = loc
	s.spec = spec
	s.wall = spec.Hour&allHours != allHours
	if s.Next(neverRef).IsZero() {
		return nil, fmt.Errorf("%q: matches no date (e.g. 30 February)", expr)
	}
	return s, nil
}

// String is the expression as given.
func (s *Schedule) String() string { return s.expr }

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Every is the interval of an @every schedule, 0 for a cron expression.
func (s *Schedule) Every() time.Duration { return s.every }

// Next is the first tick strictly after after, in the schedule's zone; the
// zero time if there is none within five years.
//
// @every ticks are after plus the interval (whole seconds): their phase is
// the caller's (the last tick, or the start). Cron ticks are absolute.
//
// Daylight saving, for expressions with fixed hours (cronie's rule): a tick
// whose local time is skipped by a forward change runs once, at the change
// (03:00 for a 02:30 tick when 02:00 becomes 03:00); a tick whose local time
// is repeated by a backward change runs once, at its first occurrence.
// Expressions that fire every hour ("*/15 * * * *", @hourly) follow elapsed
// time: none of the skipped hour's ticks run, and the repeated hour's run
// twice. robfig/cron on its own (so Kubernetes CronJob) skips a skipped
// tick altogether and runs a repeated fixed-hour tick twice.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.every > 0 {
		// On the second, as robfig's ConstantDelaySchedule does.
		return after.In(s.loc).Add(s.every - time.Duration(after.Nanosecond()))
	}
	after = after.In(s.loc)
	for {
		n := s.spec.Next(after)
		if n.IsZero() || !s.wall {
			return n
		}
		if g, ok := s.gapTick(after, n); ok {
			return g
		}
		if !repeated(n) {
			return n
		}
		after = n
	}
}

// gapTick finds a forward change in (after, n) whose skipped local times
// held a tick, and returns the change's instant.
func (s *Schedule) gapTick(after, n time.Time) (time.Time, bool) {
	for t := after; ; {
		end := nextChange(t)
		if end.IsZero() || !end.Before(n) {
			return time.Time{}, false
		}
		_, before := end.Add(-time.Nanosecond).Zone()
		_, offset := end.Zone()
		if gap := time.Duration(offset-before) * time.Second; gap > 0 {
			// The skipped local times, read on the old offset, are
			// the instants [end, end+gap): did the schedule want one?
			fixed := *s.spec
			fixed.Location = time.FixedZone("", before)
			if tick := fixed.Next(end.Add(-time.Second)); !tick.IsZero() && tick.Before(end.Add(gap)) {
				return end, true
			}
		}
		t = end
	}
}

// nextChange is the first instant after t where t's zone changes offset,
// zero if none within a thousand zone periods. Past the zone file's last transition Go derives zone bounds
// from the zone's rule year by year, and (Go 1.26) gives an end before t
// for the last hours of a year: there it scans a day at a time and
// bisects.
func nextChange(t time.Time) time.Time {
	for range 1000 {
		_, end := t.ZoneBounds()
		_, off := t.Zone()
		if end.IsZero() {
			return end
		}
		if end.After(t) {
			// A bound can also be a year's end with the same
			// offset on both sides.
			if _, o := end.Zone(); o != off {
				return end
			}
			t = end
			continue
		}
		day := t.Add(24 * time.Hour)
		if _, o := day.Zone(); o == off {
			t = day
			continue
		}
		lo, hi := t, day
		for hi.Sub(lo) > time.Second/2 {
			mid := lo.Add(hi.Sub(lo) / 2)
			if _, o := mid.Zone(); o == off {
				lo = mid
			} else {
				hi = mid
			}
		}
		// Changes fall on whole seconds.
		return hi.Truncate(time.Second)
	}
	return time.Time{}
}

// repeated reports whether t's local time already occurred: t falls in the
// first hours of a zone period that began by setting clocks back.
func repeated(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() || start.After(t) {
		return false
	}
	_, offset := t.Zone()
	_, before := start.Add(-time.Nanosecond).Zone()
	back := time.Duration(before-offset) * time.Second
	return back > 0 && t.Before(start.Add(back))
}

// Missed looks for ticks missed while vigil was not running: last is the
// tick the last run was for, from the state file (zero when there is none,
// and then nothing counts as missed); the run's start time does as well,
// except that it sets the phase of an @every schedule, and a retry's start
// would shift it. now is the time of vigil's start. tick is the newest
// tick in (last, now], zero if none; run is whether to run once now for it:
// deadline > 0 (0 is the default: off) and the tick is younger than
// deadline. Older missed ticks never run: one run covers them all.
func (s *Schedule) Missed(last, now time.Time, deadline time.Duration) (tick time.Time, run bool) {
	if last.IsZero() || !now.After(last) {
		return time.Time{}, false
	}
	tick = s.newest(last, now)
	if tick.IsZero() {
		return tick, false
	}
	return tick, deadline > 0 && now.Sub(tick) < deadline
}

// newest is the newest tick in (from, to], zero if none.
func (s *Schedule) newest(from, to time.Time) time.Time {
	if s.every > 0 {
		first := s.Next(from)
		if first.After(to) {
			return time.Time{}
		}
		return first.Add(to.Sub(first) / s.every * s.every)
	}
	// Cron ticks are absolute, so look back from to over a window that
	// doubles: a year-long outage of an every-minute schedule costs a
	// few windows, not half a million ticks.
	for window := time.Minute; ; window *= 2 {
		start := to.Add(-window)
		if window > math.MaxInt64/4 || !start.After(from) {
			start = from
		}
		var found time.Time
		for t := s.Next(start); !t.IsZero() && !t.After(to); t = s.Next(t) {
			found = t
		}
		if !found.IsZero() || start.Equal(from) {
			return found
		}
	}
}

// MaxSkipped bounds Firing.Skipped: a long forward step of a frequent
// schedule is logged by its first ticks and a count.
const MaxSkipped = 10

// maxCounted bounds the walk over the ticks a forward step jumped over.
const maxCounted = 1 << 16

// Firing is what to do when the timer armed for a tick goes off.
type Firing struct {
	// Step is how far the wall clock is from the tick beyond the slack:
	// > 0 it stepped forward (or the timer fired that late), < 0 it
	// stepped backward; 0 within the slack.
	Step time.Duration
	// Run is the tick to run now, always set: the newest tick not after
	// the firing, or the expected tick if the clock went back.
	Run time.Time
	// Skipped are the ticks after the expected one and before Run that
	// will not run (one run covers them), at most MaxSkipped of them;
	// SkippedCount counts them, up to maxCounted (past that the count
	// stops and Run jumps to the newest tick).
	Skipped      []time.Time
	SkippedCount int
	// Next is the tick to arm next. It is after Run and after the firing,
	// so no tick runs twice when the clock went back.
	Next time.Time
}

// Fired says what to do when the timer armed for tick expected went off and
// the wall clock read fired. Timers run on elapsed time, so a fired far
// from expected means the clock stepped (or the process was stopped, which
// looks the same as a forward step); slack is the lateness that is no step.
//
// Forward: the ticks the clock jumped over run once, as the newest of them,
// and are listed to be logged. Backward: the expected tick runs now (its
// time has elapsed) and the next one is armed from it, so when the clock
// reaches expected again it does not run a second time. An @every schedule
// has no wall-clock ticks to skip: it runs now and arms fired plus the
// interval.
func (s *Schedule) Fired(expected, fired time.Time, slack time.Duration) Firing {
	expected, fired = expected.Round(0), fired.Round(0)
	f := Firing{Run: expected}
	switch d := fired.Sub(expected); {
	case d > slack:
		f.Step = d
	case d < -slack:
		f.Step = d
	}
	if s.every > 0 {
		f.Next = s.Next(laterOf(expected, fired))
		return f
	}
	if fired.After(expected) {
		for t := s.Next(expected); !t.IsZero() && !t.After(fired); t = s.Next(t) {
			if len(f.Skipped) < MaxSkipped {
				f.Skipped = append(f.Skipped, f.Run)
			}
			f.SkippedCount++
			f.Run = t
			if f.SkippedCount >= maxCounted {
				// An absurd step (years of a per-minute
				// schedule): jump to the newest tick.
				f.Run = s.newest(t, fired)
				if f.Run.IsZero() {
					f.Run = t
				}
				break
			}
		}
	}
	f.Next = s.Next(laterOf(expected, fired))
	return f
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
