package main

import (
	"testing"
	"time"

	vconfig "github.com/vigil-init/vigil/config"
)

// The configs the reexec and statewrites tables give vigil must be valid and
// mean what the tables say they mean.
func TestBenchConfigs(t *testing.T) {
	s := vconfig.Default()
	raw, probs := vconfig.Decode(sleepConfig(3), "sleep.json", &s)
	if len(probs) > 0 {
		t.Fatalf("sleepConfig: %v", probs)
	}
	svcs, probs := vconfig.Resolve(raw, s)
	if len(probs) > 0 || len(svcs) != 3 || s.RespawnLimit.N != 0 {
		t.Fatalf("sleepConfig: %v, %d services, respawn limit %v", probs, len(svcs), s.RespawnLimit)
	}
	if a := svcs[2].Argv; len(a) != 2 || a[0] != "sleep" || svcs[2].Name != "s0002" {
		t.Errorf("sleepConfig: %+v", svcs[2])
	}

	s = vconfig.Default()
	raw, probs = vconfig.Decode(crashConfig(2), "crash.json", &s)
	if len(probs) > 0 {
		t.Fatalf("crashConfig: %v", probs)
	}
	svcs, probs = vconfig.Resolve(raw, s)
	if len(probs) > 0 || len(svcs) != 2 || s.RespawnLimit.N != 0 {
		t.Fatalf("crashConfig: %v, %d services, respawn limit %v", probs, len(svcs), s.RespawnLimit)
	}
	c := svcs[1]
	if !c.Shell || c.MaxRetries != -1 || c.Backoff.Initial != time.Millisecond || c.Backoff.Max != time.Millisecond || c.Backoff.Jitter != 0 {
		t.Errorf("crashConfig: %+v", c)
	}
}
