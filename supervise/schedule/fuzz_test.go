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
	from := time.Date(2026, 3, 8, 1, 59, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr, "America/New_York")
		if err != nil {
			return
		}
		if n := s.Next(from); !n.IsZero() && !n.After(from) {
			t.Fatalf("%q: Next(%v) = %v", expr, from, n)
		}
	})
}
