package supervise

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/reexec"
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

// handoff is the bucket's state for the image that replaces this one; nil
// when the limit is off (a limit turned on by the new config then starts
// full, as at boot) or when tokens is not finite (a window shorter than N
// ns), which means nothing to the new image (restore refuses it too).
func (b *bucket) handoff(c reexec.Clock) *reexec.HandoffBucket {
	if b.limit.N <= 0 || math.IsNaN(b.tokens) || math.IsInf(b.tokens, 0) {
		return nil
	}
	return &reexec.HandoffBucket{Tokens: b.tokens, Last: c.ToMono(b.last)}
}

// restore takes over the bucket of the image this one replaced, so a
// re-exec neither refills it nor forgets the tokens taken from the future
// by restarts still waiting. nil (a limit that was off, or an old image
// that could not read its clock) leaves it full.
func (b *bucket) restore(hb *reexec.HandoffBucket, c reexec.Clock) {
	if hb == nil || b.limit.N <= 0 || math.IsNaN(hb.Tokens) || math.IsInf(hb.Tokens, 0) {
		return
	}
	// The new config may have lowered N; the debt of waiting restarts is
	// kept whatever it is, as their tokens are already spoken for.
	b.tokens = min(hb.Tokens, float64(b.limit.N))
	b.last = c.FromMono(hb.Last)
	// A refill time ahead of now would take tokens away at the next refill.
	if b.last.After(c.Now) {
		b.last = c.Now
	}
}
