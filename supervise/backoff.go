package supervise

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/vigil-init/vigil/config"
)

// restartDelay is the wait before restart number n (1-based) after
// consecutive failed runs: Initial * Factor^(n-1), capped at Max, then moved
// by up to +/- Jitter of itself so a fleet of crash-looping containers does
// not restart in lockstep. rnd is in [0, 1).
func restartDelay(b config.Backoff, n int, rnd float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(b.Initial) * math.Pow(b.Factor, float64(n-1))
	if max := float64(b.Max); b.Max > 0 && d > max {
		d = max
	}
	d *= 1 + b.Jitter*(2*rnd-1)
	if d < 0 || math.IsNaN(d) {
		d = 0
	}
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

func jitter() float64 { return rand.Float64() }

// bucket is the global respawn limit: N restarts, refilled evenly over the
// window. Reserve never refuses: a restart beyond the limit takes a token
// from the future and waits for it, so none is dropped.
type bucket struct {
	limit  config.RespawnLimit
	tokens float64
	last   time.Time
}

func newBucket(l config.RespawnLimit, now time.Time) *bucket {
	return &bucket{limit: l, tokens: float64(l.N), last: now}
}

// Reserve takes a token and returns how long to wait before using it.
func (b *bucket) Reserve(now time.Time) time.Duration {
	if b.limit.N <= 0 {
		return 0
	}
	per := b.limit.Window / time.Duration(b.limit.N) // one token's refill time
	b.tokens += float64(now.Sub(b.last)) / float64(per)
	if b.tokens > float64(b.limit.N) {
		b.tokens = float64(b.limit.N)
	}
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens * float64(per))
}
