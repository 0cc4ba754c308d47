package main

import (
	"testing"
	"time"
)

// TestProcessStart: the start of this process from the kernel's start
// time, the same on every call (a re-exec computes it again) to the
// kernel's 10 ms tick, before the test's own start and now.
func TestProcessStart(t *testing.T) {
	first := processStart()
	now := time.Now()
	if first.After(now) || now.Sub(first) > time.Hour {
		t.Fatalf("process start %v, now %v", first, now)
	}
	if first.Sub(testStarted) > 20*time.Millisecond {
		t.Errorf("process start %v is after the test's package initialised (%v)", first, testStarted)
	}
	for range 20 {
		if again := processStart(); again.Sub(first).Abs() > 10*time.Millisecond {
			t.Fatalf("process start %v, then %v", first, again)
		}
	}
}

var testStarted = time.Now()
