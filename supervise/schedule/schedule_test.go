package schedule

import (
	"strings"
	"testing"
	"time"
)

// at is a local time in zone tz, written "2006-01-02 15:04:05" (the seconds
// may be left out). During a repeated hour, suffix " EST"/" CET" picks the
// second occurrence (the later offset).
func at(t *testing.T, tz, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatalf("zone %s: %v", tz, err)
	}
	second := false
	for _, abbr := range []string{" EST", " CET"} {
		if v, ok := strings.CutSuffix(s, abbr); ok {
			s, second = v, true
		}
	}
	layout := "2006-01-02 15:04:05"
	if len(s) == len("2006-01-02 15:04") {
		layout = "2006-01-02 15:04"
	}
	v, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	// ParseInLocation may pick either occurrence of a repeated time.
	var found []time.Time
	for _, d := range []time.Duration{-time.Hour, 0, time.Hour} {
		if w := v.Add(d); w.Format(layout) == s {
			found = append(found, w)
		}
	}
	v = found[0]
	if second {
		if len(found) < 2 {
			t.Fatalf("%q is not a repeated local time in %s", s, tz)
		}
		v = found[1]
	}
	return v
}

// show is t on its zone's wall clock with the zone's abbreviation, which
// tells repeated local times apart.
func show(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") }

func mustParse(t *testing.T, expr, tz string) *Schedule {
	t.Helper()
	s, err := Parse(expr, tz)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, tz, err)
	}
	return s
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ expr, tz, want string }{
		{"", "", "empty schedule"},
		{"   ", "", "empty schedule"},
		{"CRON_TZ=UTC 0 * * * *", "", "timezone field"},
		{"TZ=Europe/Berlin 0 * * * *", "", "timezone field"},
		{"TZ=x", "", "timezone field"}, // robfig v3.0.1 panics on this one
		{"* * * *", "", "expected exactly 5 fields"},
		{"0 * * * * *", "", "expected exactly 5 fields"},
		{"60 * * * *", "", "above maximum"},
		{"* 24 * * *", "", "above maximum"},
		{"* * 0 * *", "", "below minimum"},
		{"* * * 13 *", "", "above maximum"},
		{"* * * * 8", "", "above maximum"},
		{"0 0 * * 7", "", "above maximum"}, // as in Kubernetes: Sunday is 0 only
		{"*/0 * * * *", "", "step"},
		{"5-1 * * * *", "", "beyond end"},
		{"0 0 * FOO *", "", "failed to parse"},
		{"@reboot", "", "unrecognized descriptor"},
		{"@every", "", "unrecognized descriptor"},
		{"@every 500ms", "", "shortest interval is 1s"},
		{"@every 0s", "", "shortest interval is 1s"},
		{"@every -1m", "", "shortest interval is 1s"},
		{"@every 1.5s", "", "whole number of seconds"},
		{"@every soon", "", "invalid duration"},
		{"0 0 30 2 *", "", "matches no date"},
		{"0 0 31 4,6,9,11 *", "", "matches no date"},
		{"@daily", "Mars/Olympus_Mons", `time zone "Mars/Olympus_Mons"`},
		{"@daily", "../../etc/passwd", "time zone"},
		{"@daily", "/etc/localtime", "time zone"},
	} {
		s, err := Parse(c.expr, c.tz)
		if err == nil {
			t.Errorf("Parse(%q, %q) = %v, want an error with %q", c.expr, c.tz, s, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q, %q): %v, want %q in it", c.expr, c.tz, err, c.want)
		}
	}
}

func TestParseZones(t *testing.T) {
	if got := mustParse(t, "@daily", "").Location(); got != time.Local {
		t.Errorf("no zone: %v, want time.Local", got)
	}
	if got := mustParse(t, "@daily", "UTC").Location(); got != time.UTC {
		t.Errorf("UTC: %v", got)
	}
	if got := mustParse(t, "@daily", "Asia/Tokyo").Location().String(); got != "Asia/Tokyo" {
		t.Errorf("Asia/Tokyo: %v", got)
	}
	s := mustParse(t, " 0 9 * * MON-FRI ", "")
	if s.String() != "0 9 * * MON-FRI" || s.Every() != 0 {
		t.Errorf("String %q Every %v", s.String(), s.Every())
	}
	if e := mustParse(t, "@every 1m30s", "").Every(); e != 90*time.Second {
		t.Errorf("Every = %v", e)
	}
}

func TestNext(t *testing.T) {
	const ny, berlin = "America/New_York", "Europe/Berlin"
	for _, c := range []struct {
		name, expr, tz, after string
		want                  []string // local times in tz, a repeated one with its offset suffix
	}{
		{"hourly", "@hourly", "UTC", "2026-12-31 22:59:59",
			[]string{"2026-12-31 23:00", "2027-01-01 00:00", "2027-01-01 01:00"}},
		{"daily", "@daily", "UTC", "2026-02-27 00:00",
			[]string{"2026-02-28 00:00", "2026-03-01 00:00", "2026-03-02 00:00"}},
		{"midnight", "@midnight", "UTC", "2026-02-28 23:59:59",
			[]string{"2026-03-01 00:00"}},
		{"weekly is Sunday", "@weekly", "UTC", "2026-12-02 10:00",
			[]string{"2026-12-06 00:00", "2026-12-13 00:00"}},
		{"monthly", "@monthly", "UTC", "2026-01-01 00:00",
			[]string{"2026-02-01 00:00", "2026-03-01 00:00"}},
		{"yearly", "@yearly", "UTC", "2026-01-01 00:00",
			[]string{"2027-01-01 00:00", "2028-01-01 00:00"}},
		{"annually", "@annually", "UTC", "2026-06-15 00:00",
			[]string{"2027-01-01 00:00"}},
		{"strictly after a tick", "0 * * * *", "UTC", "2026-05-05 10:00",
			[]string{"2026-05-05 11:00"}},
		{"fraction of a second", "0 * * * *", "UTC", "2026-05-05 09:59:59.5",
			[]string{"2026-05-05 10:00"}},
		{"list range step", "0,30 9-10 * * *", "UTC", "2026-05-05 08:00",
			[]string{"2026-05-05 09:00", "2026-05-05 09:30", "2026-05-05 10:00", "2026-05-05 10:30", "2026-05-06 09:00"}},
		{"step from an offset", "5-59/20 * * * *", "UTC", "2026-05-05 08:00",
			[]string{"2026-05-05 08:05", "2026-05-05 08:25", "2026-05-05 08:45", "2026-05-05 09:05"}},
		{"names", "0 9 * JAN,MAR mon-fri", "UTC", "2026-01-30 10:00",
			[]string{"2026-03-02 09:00", "2026-03-03 09:00"}},
		{"Sunday is 0", "0 0 * * 0", "UTC", "2026-12-02 00:00",
			[]string{"2026-12-06 00:00"}},
		{"day of month or day of week", "0 0 13 * FRI", "UTC", "2026-02-10 00:00",
			[]string{"2026-02-13 00:00", "2026-02-20 00:00", "2026-02-27 00:00", "2026-03-06 00:00", "2026-03-13 00:00"}},
		{"31st skips short months", "0 0 31 * *", "UTC", "2026-01-31 00:00",
			[]string{"2026-03-31 00:00", "2026-05-31 00:00", "2026-07-31 00:00", "2026-08-31 00:00"}},
		{"30th skips February", "0 0 30 * *", "UTC", "2026-01-30 00:00",
			[]string{"2026-03-30 00:00", "2026-04-30 00:00"}},
		{"leap day", "0 0 29 2 *", "UTC", "2026-01-01 00:00",
			[]string{"2028-02-29 00:00", "2032-02-29 00:00"}},
		{"leap day in a zone", "30 12 29 FEB *", berlin, "2024-02-29 12:30",
			[]string{"2028-02-29 12:30"}},
		{"every", "@every 90s", "UTC", "2026-05-05 12:00:00.5",
			[]string{"2026-05-05 12:01:30", "2026-05-05 12:03:00"}},
		{"every day is 24h of elapsed time", "@every 24h", ny, "2026-03-07 12:00",
			[]string{"2026-03-08 13:00", "2026-03-09 13:00"}},

		// Forward change: 02:00 EST becomes 03:00 EDT (8 March 2026).
		{"NY skipped time runs once at the change", "30 2 * * *", ny, "2026-03-07 12:00",
			[]string{"2026-03-07 02:30", "2026-03-08 03:00", "2026-03-09 02:30"}[1:]},
		{"NY skipped and real tick", "15 2,3 * * *", ny, "2026-03-08 00:00",
			[]string{"2026-03-08 03:00", "2026-03-08 03:15", "2026-03-09 02:15"}},
		{"NY tick at the change", "0 3 * * *", ny, "2026-03-07 12:00",
			[]string{"2026-03-08 03:00", "2026-03-09 03:00"}},
		{"NY hourly follows elapsed time", "@hourly", ny, "2026-03-08 00:30",
			[]string{"2026-03-08 01:00", "2026-03-08 03:00", "2026-03-08 04:00"}},
		{"NY every half hour", "*/30 * * * *", ny, "2026-03-08 01:00",
			[]string{"2026-03-08 01:30", "2026-03-08 03:00", "2026-03-08 03:30"}},
		// Backward change: 02:00 EDT becomes 01:00 EST (1 November 2026).
		{"NY repeated time runs once", "30 1 * * *", ny, "2026-10-31 12:00",
			[]string{"2026-11-01 01:30", "2026-11-02 01:30"}},
		{"NY after the first of a repeated time", "30 1 * * *", ny, "2026-11-01 01:45",
			[]string{"2026-11-02 01:30"}},
		{"NY in the repeat, before the tick", "30 1 * * *", ny, "2026-11-01 01:10 EST",
			[]string{"2026-11-02 01:30"}},
		{"NY hourly runs the repeated hour twice", "0 * * * *", ny, "2026-11-01 00:30",
			[]string{"2026-11-01 01:00", "2026-11-01 01:00 EST", "2026-11-01 02:00"}},

		// Past 2037 zone files give a rule, not transitions (and Go's
		// ZoneBounds misreports the last hours of such a year).
		{"NY leap days past 2037", "0 0 29 2 *", ny, "2040-02-29 00:00",
			[]string{"2044-02-29 00:00", "2048-02-29 00:00"}},
		{"NY year end past 2037", "30 1 * * *", ny, "2040-12-30 12:00",
			[]string{"2040-12-31 01:30", "2041-01-01 01:30"}},
		{"NY skipped time in 2040", "30 2 * * *", ny, "2040-03-10 12:00",
			[]string{"2040-03-11 03:00", "2040-03-12 02:30"}},
		{"NY repeated time in 2040", "30 1 * * *", ny, "2040-11-03 12:00",
			[]string{"2040-11-04 01:30", "2040-11-05 01:30"}},

		// Forward change: 02:00 CET becomes 03:00 CEST (29 March 2026).
		{"Berlin skipped time runs once at the change", "30 2 * * *", berlin, "2026-03-28 12:00",
			[]string{"2026-03-29 03:00", "2026-03-30 02:30"}},
		{"Berlin start of the gap", "0 2 * * SUN", berlin, "2026-03-22 12:00",
			[]string{"2026-03-29 03:00", "2026-04-05 02:00"}},
		// Backward change: 03:00 CEST becomes 02:00 CET (25 October 2026).
		{"Berlin repeated time runs once", "30 2 * * *", berlin, "2026-10-24 12:00",
			[]string{"2026-10-25 02:30", "2026-10-26 02:30"}},
		{"Berlin every 30 minutes follows elapsed time", "*/30 * * * *", berlin, "2026-10-25 01:45",
			[]string{"2026-10-25 02:00", "2026-10-25 02:30", "2026-10-25 02:00 CET", "2026-10-25 02:30 CET", "2026-10-25 03:00"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.expr, c.tz)
			after := at(t, c.tz, strings.Replace(c.after, ".5", "", 1))
			if strings.HasSuffix(c.after, ".5") {
				after = after.Add(500 * time.Millisecond)
			}
			for i, w := range c.want {
				want := at(t, c.tz, w)
				got := s.Next(after)
				if !got.Equal(want) {
					t.Fatalf("tick %d after %s: got %s, want %s", i+1, show(after), show(got), show(want))
				}
				after = got
			}
		})
	}
}

// TestNextAcrossYears checks whole years: a fixed-hour daily schedule runs
// exactly once on every local date through both changes, in both zones.
func TestNextAcrossYears(t *testing.T) {
	for _, tz := range []string{"America/New_York", "Europe/Berlin", "UTC"} {
		for _, expr := range []string{"30 1 * * *", "30 2 * * *", "0 2 * * *", "59 23 * * *"} {
			s := mustParse(t, expr, tz)
			from := at(t, tz, "2026-01-01 00:00")
			end := at(t, tz, "2027-01-01 00:00")
			days := map[string]int{}
			prev := from
			for tick := s.Next(from); tick.Before(end); tick = s.Next(tick) {
				if !tick.After(prev) {
					t.Fatalf("%s %s: %s does not follow %s", tz, expr, show(tick), show(prev))
				}
				days[tick.Format("2006-01-02")]++
				prev = tick
			}
			if len(days) != 365 {
				t.Errorf("%s %q: ran on %d dates, want 365", tz, expr, len(days))
			}
			for d, n := range days {
				if n != 1 {
					t.Errorf("%s %q: %d runs on %s", tz, expr, n, d)
				}
			}
		}
	}
}

func TestMissed(t *testing.T) {
	const tz = "UTC"
	for _, c := range []struct {
		name, expr, last, now string
		deadline              time.Duration
		tick                  string // "" = none
		run                   bool
	}{
		{"no last run: nothing missed", "@hourly", "", "2026-05-05 10:30", time.Hour, "", false},
		{"no tick since the last run", "@hourly", "2026-05-05 10:00", "2026-05-05 10:59:59", time.Hour, "", false},
		{"a tick at now counts", "@hourly", "2026-05-05 10:00", "2026-05-05 11:00", time.Minute, "2026-05-05 11:00", true},
		{"young enough", "@hourly", "2026-05-05 10:00", "2026-05-05 11:20", 30 * time.Minute, "2026-05-05 11:00", true},
		{"too old", "@hourly", "2026-05-05 10:00", "2026-05-05 11:40", 30 * time.Minute, "2026-05-05 11:00", false},
		{"exactly the deadline is too old", "@hourly", "2026-05-05 10:00", "2026-05-05 11:30", 30 * time.Minute, "2026-05-05 11:00", false},
		{"deadline off", "@hourly", "2026-05-05 10:00", "2026-05-05 11:01", 0, "2026-05-05 11:00", false},
		{"newest of many", "@hourly", "2026-05-01 10:00", "2026-05-05 11:20", time.Hour, "2026-05-05 11:00", true},
		{"a year down, every minute", "* * * * *", "2025-05-05 10:00", "2026-05-05 11:20:30", time.Minute, "2026-05-05 11:20", true},
		{"a year down, yearly", "@yearly", "2025-01-01 00:00", "2026-05-05 11:20", 24 * time.Hour, "2026-01-01 00:00", false},
		{"ten years down, leap day", "0 0 29 2 *", "2016-02-29 00:00", "2026-05-05 00:00", 0, "2024-02-29 00:00", false},
		{"clock behind the last run", "@hourly", "2026-05-05 10:00", "2026-05-05 09:00", time.Hour, "", false},
		{"every: phase from the last run", "@every 10m", "2026-05-05 10:03", "2026-05-05 10:55", 5 * time.Minute, "2026-05-05 10:53", true},
		{"every: not yet", "@every 10m", "2026-05-05 10:03", "2026-05-05 10:12", time.Hour, "", false},
		{"every: years down", "@every 1s", "2020-01-01 00:00", "2026-05-05 10:00:00.7", time.Second, "2026-05-05 10:00", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.expr, tz)
			var last time.Time
			if c.last != "" {
				last = at(t, tz, c.last)
			}
			now := at(t, tz, strings.Replace(c.now, ".7", "", 1))
			if strings.HasSuffix(c.now, ".7") {
				now = now.Add(700 * time.Millisecond)
			}
			tick, run := s.Missed(last, now, c.deadline)
			var want time.Time
			if c.tick != "" {
				want = at(t, tz, c.tick)
			}
			if !tick.Equal(want) || run != c.run {
				t.Errorf("Missed = %s, %v; want %s, %v", show(tick), run, show(want), c.run)
			}
		})
	}
}

func TestFired(t *testing.T) {
	const tz = "UTC"
	slack := 5 * time.Second
	for _, c := range []struct {
		name, expr, expected, fired string
		step                        time.Duration
		run                         string
		skipped                     []string
		count                       int
		next                        string
	}{
		{"on time", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 10:00", 0,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
		{"late within the slack", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 10:00:04", 0,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
		{"early within the slack", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 09:59:57", 0,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
		{"forward, no tick jumped", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 10:07", 7 * time.Minute,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
		{"forward over ticks", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 10:35", 35 * time.Minute,
			"2026-05-05 10:30", []string{"2026-05-05 10:00", "2026-05-05 10:10", "2026-05-05 10:20"}, 3, "2026-05-05 10:40"},
		{"forward onto a tick", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 10:10", 10 * time.Minute,
			"2026-05-05 10:10", []string{"2026-05-05 10:00"}, 1, "2026-05-05 10:20"},
		{"forward a day, list capped", "* * * * *", "2026-05-05 10:00", "2026-05-06 10:00", 24 * time.Hour,
			"2026-05-06 10:00", []string{"2026-05-05 10:00", "2026-05-05 10:01", "2026-05-05 10:02", "2026-05-05 10:03",
				"2026-05-05 10:04", "2026-05-05 10:05", "2026-05-05 10:06", "2026-05-05 10:07", "2026-05-05 10:08",
				"2026-05-05 10:09"}, 1440, "2026-05-06 10:01"},
		{"forward a century, walk bounded", "* * * * *", "2026-05-05 10:00", "2126-05-05 10:00", 0,
			"2126-05-05 10:00", nil, maxCounted, "2126-05-05 10:01"},
		{"backward: runs once, not again at the same wall time", "*/10 * * * *", "2026-05-05 10:00", "2026-05-05 09:00", -time.Hour,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
		{"every, forward", "@every 10m", "2026-05-05 10:00", "2026-05-05 11:00", time.Hour,
			"2026-05-05 10:00", nil, 0, "2026-05-05 11:10"},
		{"every, backward: interval of elapsed time", "@every 10m", "2026-05-05 10:00", "2026-05-05 09:00", -time.Hour,
			"2026-05-05 10:00", nil, 0, "2026-05-05 10:10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.expr, tz)
			expected, fired := at(t, tz, c.expected), at(t, tz, c.fired)
			f := s.Fired(expected, fired, slack)
			if c.step == 0 && c.name == "forward a century, walk bounded" {
				c.step = fired.Sub(expected)
			}
			if f.Step != c.step {
				t.Errorf("Step = %v, want %v", f.Step, c.step)
			}
			if want := at(t, tz, c.run); !f.Run.Equal(want) {
				t.Errorf("Run = %s, want %s", show(f.Run), show(want))
			}
			if c.skipped != nil || c.count == 0 {
				var got []string
				for _, k := range f.Skipped {
					got = append(got, k.Format("2006-01-02 15:04"))
				}
				if strings.Join(got, ",") != strings.Join(c.skipped, ",") {
					t.Errorf("Skipped = %v, want %v", got, c.skipped)
				}
			}
			if f.SkippedCount != c.count {
				t.Errorf("SkippedCount = %d, want %d", f.SkippedCount, c.count)
			}
			if want := at(t, tz, c.next); !f.Next.Equal(want) {
				t.Errorf("Next = %s, want %s", show(f.Next), show(want))
			}
			if !f.Next.After(f.Run) {
				t.Errorf("Next %s is not after Run %s", show(f.Next), show(f.Run))
			}
		})
	}
}

// TestFiredNoDoubleRun plays a backward step through: the tick that ran
// when the timer fired must not come round again when the wall clock
// reaches it.
func TestFiredNoDoubleRun(t *testing.T) {
	s := mustParse(t, "0 3 * * *", "Europe/Berlin")
	expected := at(t, "Europe/Berlin", "2026-05-05 03:00")
	f := s.Fired(expected, expected.Add(-2*time.Hour), time.Second)
	if !f.Run.Equal(expected) || f.Step != -2*time.Hour {
		t.Fatalf("Run %s Step %v", show(f.Run), f.Step)
	}
	// The supervisor arms f.Next; when the clock has caught up and that
	// timer fires, the tick it runs is the next day's.
	g := s.Fired(f.Next, f.Next, time.Second)
	if want := expected.AddDate(0, 0, 1); !g.Run.Equal(want) {
		t.Errorf("second run %s, want %s", show(g.Run), show(want))
	}
}

// TestNextChange walks the offset changes of ten years across 2037, where
// zone files switch from listed transitions to a rule: two a year, each a
// real change of offset, none missed.
func TestNextChange(t *testing.T) {
	for _, tz := range []string{"America/New_York", "Europe/Berlin"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(2033, 1, 1, 0, 0, 0, 0, loc)
		end := time.Date(2043, 1, 1, 0, 0, 0, 0, loc)
		n := 0
		for c := nextChange(from); c.Before(end); c = nextChange(c) {
			_, before := c.Add(-time.Second).Zone()
			_, after := c.Zone()
			if before == after {
				t.Fatalf("%s: no change at %s", tz, show(c))
			}
			n++
		}
		if n != 20 {
			t.Errorf("%s: %d changes in ten years, want 20", tz, n)
		}
	}
	if c := nextChange(time.Date(2040, 12, 31, 23, 0, 0, 0, time.UTC)); !c.IsZero() {
		t.Errorf("UTC changes at %v", c)
	}
}

func BenchmarkNext(b *testing.B) {
	for _, c := range []struct{ expr, tz string }{
		{"*/5 * * * *", "UTC"},
		{"30 2 * * *", "America/New_York"},
		{"0 0 29 2 *", "Europe/Berlin"},
	} {
		s, err := Parse(c.expr, c.tz)
		if err != nil {
			b.Fatal(err)
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		b.Run(c.expr, func(b *testing.B) {
			t := from
			for b.Loop() {
				if t = s.Next(t); t.Year() > 2090 {
					t = from
				}
			}
		})
	}
}
