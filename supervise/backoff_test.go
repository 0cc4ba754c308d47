package supervise

import (
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
)

func TestRestartDelay(t *testing.T) {
	b := config.Backoff{Initial: time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 0.2}
	tests := []struct {
		name string
		b    config.Backoff
		n    int
		rnd  float64
		want time.Duration
	}{
		{"first restart waits initial", b, 1, 0.5, time.Second},
		{"each next one factor times longer", b, 3, 0.5, 4 * time.Second},
		{"capped at max", b, 10, 0.5, 30 * time.Second},
		{"jitter low end", b, 1, 0, 800 * time.Millisecond},
		{"jitter high end", b, 1, 1, 1200 * time.Millisecond},
		{"no jitter", config.Backoff{Initial: time.Second, Max: time.Minute, Factor: 3}, 2, 0, 3 * time.Second},
		{"huge n does not overflow", b, 10000, 0.5, 30 * time.Second},
		{"zero initial is immediate", config.Backoff{Factor: 2}, 5, 0.5, 0},
	}
	for _, tc := range tests {
		if got := restartDelay(tc.b, tc.n, tc.rnd); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(config.RespawnLimit{N: 3, Window: 3 * time.Second}, now)
	for i := 0; i < 3; i++ {
		if d := b.Reserve(now); d != 0 {
			t.Fatalf("token %d waits %s", i, d)
		}
	}
	// Beyond the limit each restart waits its turn: 1s, then 2s.
	if d := b.Reserve(now); d != time.Second {
		t.Errorf("4th waits %s, want 1s", d)
	}
	if d := b.Reserve(now); d != 2*time.Second {
		t.Errorf("5th waits %s, want 2s", d)
	}
	// After a long quiet spell the bucket is full again, never fuller.
	later := now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if d := b.Reserve(later); d != 0 {
			t.Fatalf("after refill token %d waits %s", i, d)
		}
	}
	if d := b.Reserve(later); d == 0 {
		t.Errorf("bucket overfilled")
	}
	off := newBucket(config.RespawnLimit{}, now)
	for i := 0; i < 100; i++ {
		if d := off.Reserve(now); d != 0 {
			t.Fatal("limit 0 must be off")
		}
	}
}
