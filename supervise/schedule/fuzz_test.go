package schedule

import (
	"testing"
	"time"
)

// FuzzParse: no expression makes Parse or Next panic (robfig/cron v3.0.1
// panics on some, e.g. "TZ=x"), and a parsed schedule's next tick is later.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 1-3 * JAN-MAR MON", "@every 1m", "@daily", "TZ=x",
		"CRON_TZ=UTC 0 0 * * *", "0 0 29 2 *", "1-2-3 * * * *", "*/ * * * *", "@every 1h1s", "? ? ? ? ?"} {
		f.Add(s)
	}
	// Around daylight-saving changes in both directions, in two zones.
	froms := []time.Time{
		time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC),    // New York, forward
		time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC),   // New York, back
		time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC),   // Berlin, forward
		time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), // Berlin, back
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, tz := range []string{"America/New_York", "Europe/Berlin"} {
			s, err := Parse(expr, tz)
			if err != nil {
				return
			}
			for _, from := range froms {
				prev := from
				for range 30 {
					n := s.Next(prev)
					if n.IsZero() {
						break
					}
					if !n.After(prev) {
						t.Fatalf("%q in %s: Next(%v) = %v", expr, tz, prev, n)
					}
					prev = n
				}
				f := s.Fired(from, prev, time.Second)
				if !f.Next.IsZero() && !f.Next.After(f.Run) {
					t.Fatalf("%q in %s: Fired(%v, %v): Next %v not after Run %v", expr, tz, from, prev, f.Next, f.Run)
				}
				if len(f.Skipped) > MaxSkipped || f.SkippedCount < len(f.Skipped) {
					t.Fatalf("%q: skipped %d, count %d", expr, len(f.Skipped), f.SkippedCount)
				}
			}
		}
	})
}
