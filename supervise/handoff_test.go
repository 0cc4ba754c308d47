package supervise

import (
	"fmt"
	"log/slog"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
)

// viaWire sends a handoff through the encoding cmd/vigil writes to the memfd.
func viaWire(t *testing.T, h reexec.Handoff) reexec.Handoff {
	t.Helper()
	b, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatalf("encode handoff: %v", err)
	}
	var out reexec.Handoff
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("decode handoff: %v", err)
	}
	return out
}

func TestBucketHandoff(t *testing.T) {
	l55 := config.RespawnLimit{N: 5, Window: 5 * time.Second} // a token a second
	full := []time.Duration{0, 0, 0, 0, 0, time.Second}
	tests := []struct {
		name        string
		old, next   config.RespawnLimit
		tokens      float64
		lastAgo     time.Duration // last refill, before the freeze
		exec        time.Duration // from the freeze to the new image's first look
		oldVigil    bool          // the handoff has no bucket
		wantNil     bool          // the old image hands no bucket over
		wantWaiting []time.Duration
	}{
		{name: "a full bucket stays full", old: l55, next: l55, tokens: 5, wantWaiting: full},
		{name: "an empty bucket is not refilled by the exec", old: l55, next: l55, tokens: 0,
			wantWaiting: []time.Duration{time.Second, 2 * time.Second}},
		{name: "the tokens of waiting restarts stay taken", old: l55, next: l55, tokens: -3,
			wantWaiting: []time.Duration{4 * time.Second, 5 * time.Second}},
		{name: "the time the exec took refills", old: l55, next: l55, tokens: -3, lastAgo: 500 * time.Millisecond,
			exec: 1500 * time.Millisecond, wantWaiting: []time.Duration{2 * time.Second}},
		{name: "never fuller than N after a long wait", old: l55, next: l55, tokens: 1, lastAgo: time.Hour, wantWaiting: full},
		{name: "a lower N in the new config caps the tokens", old: l55, next: config.RespawnLimit{N: 2, Window: 2 * time.Second},
			tokens: 5, wantWaiting: []time.Duration{0, 0, time.Second}},
		{name: "a handoff from an older vigil starts full", old: l55, next: l55, tokens: -3, oldVigil: true, wantWaiting: full},
		{name: "a limit that was off starts full when turned on", old: config.RespawnLimit{}, next: l55, wantNil: true, wantWaiting: full},
		{name: "a limit turned off stays off", old: l55, next: config.RespawnLimit{}, tokens: -3,
			wantWaiting: []time.Duration{0, 0, 0, 0, 0, 0, 0}},
		{name: "tokens that are not a number are not handed over", old: l55, next: l55, tokens: math.NaN(),
			wantNil: true, wantWaiting: full},
		{name: "a refill time ahead of now takes nothing away", old: l55, next: l55, tokens: 0, lastAgo: -10 * time.Second,
			wantWaiting: []time.Duration{time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The two images see different instants and Go monotonic
			// readings; only CLOCK_MONOTONIC links them.
			frozen := reexec.Clock{Now: time.Unix(1000, 0), Mono: 7e9}
			old := newBucket(tc.old, frozen.Now)
			old.tokens, old.last = tc.tokens, frozen.Now.Add(-tc.lastAgo)
			h := reexec.Handoff{Clock: frozen.Mono, Bucket: old.handoff(frozen)}
			if (h.Bucket == nil) != tc.wantNil {
				t.Fatalf("handoff = %+v, want nil: %v", h.Bucket, tc.wantNil)
			}
			if tc.oldVigil {
				h.Bucket = nil
			}
			h = viaWire(t, h)
			adopted := reexec.Clock{Now: time.Unix(50000, 0), Mono: frozen.Mono + int64(tc.exec)}
			b := newBucket(tc.next, adopted.Now)
			b.restore(h.Bucket, adopted)
			for i, want := range tc.wantWaiting {
				if got := b.Reserve(adopted.Now); got != want {
					t.Errorf("restart %d after the re-exec waits %s, want %s", i+1, got, want)
				}
			}
		})
	}
}

// testSupervisor is a supervisor that is not running: the test drives its
// loop by hand.
func testSupervisor(t *testing.T, o Options) *Supervisor {
	t.Helper()
	o.Log = slog.New(slog.DiscardHandler)
	o.Terminal = -1
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, svc := range s.order {
			s.disarm(svc)
			s.disarmTick(svc)
			if svc.pid != 0 {
				// Spawned when the test did not expect it: not left behind.
				syscall.Kill(-svc.pid, syscall.SIGKILL)
			}
		}
		if s.devnull != nil {
			s.devnull.Close()
		}
	})
	return s
}

// crashLooper is a service that restarts for ever, an hour apart unless the
// respawn limit says later.
func crashLooper(name string) config.Service {
	return config.Service{Name: name, Argv: []string{"sleep", "1000"}, Restart: config.RestartAlways, MaxRetries: -1,
		Backoff: config.Backoff{Initial: time.Hour, Max: time.Hour, Factor: 1}, StopSignal: syscall.SIGKILL,
		StopTimeout: time.Second, Log: config.LogInherit}
}

// near reports whether a due time is d from now, give or take a minute:
// enough to tell an hour from half an hour on a loaded machine.
func near(due time.Time, d time.Duration) bool {
	off := time.Until(due) - d
	return off > -time.Minute && off < time.Minute
}

// TestHandoffCarriesPendingRestarts freezes a supervisor with restarts
// pending and adopts its handoff in another: the bucket and each restart's
// time and token come over.
func TestHandoffCarriesPendingRestarts(t *testing.T) {
	r := reaper.New(nil)
	defer r.Stop()
	limit := config.RespawnLimit{N: 2, Window: 2 * time.Hour} // a token an hour
	old := testSupervisor(t, Options{Reaper: r, RespawnLimit: limit,
		Services: []config.Service{crashLooper("backoff"), crashLooper("waiting")}})
	old.limiter.Reserve(time.Now())
	old.limiter.Reserve(time.Now())
	backoff, waiting := old.byName["backoff"], old.byName["waiting"]
	old.judge(backoff, 1, 0) // failed: backoff an hour
	old.restart(waiting)     // the bucket is empty: its token comes in an hour
	if backoff.state != Backoff || waiting.state != Starting || !(waiting.timer.kind == tokenDue) || (backoff.timer.kind == tokenDue) {
		t.Fatalf("before the freeze: backoff %s reserved %v, waiting %s reserved %v",
			backoff.state, (backoff.timer.kind == tokenDue), waiting.state, (waiting.timer.kind == tokenDue))
	}
	tokens := old.limiter.tokens
	h, _, thaw := old.freeze()
	thaw()
	if h.Bucket == nil || h.Clock == 0 {
		t.Fatalf("the handoff carries no bucket: %+v", h)
	}
	h = viaWire(t, h)

	s := testSupervisor(t, Options{Reaper: r, RespawnLimit: limit, Handoff: &h})
	s.resume()
	if s.limiter.tokens != tokens {
		t.Errorf("tokens after the re-exec %v, want %v", s.limiter.tokens, tokens)
	}
	if d := s.limiter.last.Sub(old.limiter.last); d < -time.Minute || d > time.Minute {
		t.Errorf("last refill moved by %s across the re-exec", d)
	}
	tests := []struct {
		name     string
		state    State
		reserved bool
	}{
		{"backoff", Backoff, false},
		{"waiting", Starting, true},
	}
	for _, tc := range tests {
		svc := s.byName[tc.name]
		if svc.pid != 0 || svc.timer.kind == noTimer || svc.state != tc.state || (svc.timer.kind == tokenDue) != tc.reserved || !near(svc.timer.at, time.Hour) {
			t.Errorf("%s after the re-exec: pid %d, timer %v, state %s, reserved %v, due in %s; want no pid, a timer, %s, reserved %v, due in 1h",
				tc.name, svc.pid, svc.timer.kind != noTimer, svc.state, (svc.timer.kind == tokenDue), time.Until(svc.timer.at).Round(time.Second), tc.state, tc.reserved)
		}
	}
}

// TestHandoffCarriesSchedule: a scheduled service keeps its next tick, its
// last run and its failed runs across a re-exec.
func TestHandoffCarriesSchedule(t *testing.T) {
	r := reaper.New(nil)
	defer r.Stop()
	job := config.Service{Name: "job", Argv: []string{"true"}, Restart: config.RestartOnFailure, Oneshot: true,
		Schedule: "@hourly", Timezone: "UTC", Concurrency: config.ConcurrencyForbid, StopSignal: syscall.SIGTERM,
		StopTimeout: time.Second, Log: config.LogInherit}
	old := testSupervisor(t, Options{Reaper: r, Services: []config.Service{job}})
	old.startAll()
	o := old.byName["job"]
	o.lastRun, o.failedRuns = time.Now().Add(-time.Hour).Round(0), 2
	if o.state != Scheduled || o.tick.kind != tickDue {
		t.Fatalf("before the freeze: %s, tick %d", o.state, o.tick.kind)
	}
	h, _, thaw := old.freeze()
	thaw()
	h = viaWire(t, h)
	s := testSupervisor(t, Options{Reaper: r, Services: []config.Service{job}, Handoff: &h})
	s.resume()
	s.applyReload([]config.Service{job})
	svc := s.byName["job"]
	if svc.state != Scheduled || svc.tick.kind != tickDue || !svc.tick.at.Equal(o.tick.at) ||
		!svc.lastRun.Equal(o.lastRun) || svc.failedRuns != 2 || svc.pid != 0 {
		t.Errorf("after the re-exec: %s, tick %d at %s (was %s), last run %s (was %s), %d failed runs, pid %d",
			svc.state, svc.tick.kind, svc.tick.at, o.tick.at, svc.lastRun, o.lastRun, svc.failedRuns, svc.pid)
	}
}

// runReaper starts a reaper running until the test ends.
func runReaper(t *testing.T) *reaper.Reaper {
	r := reaper.New(nil)
	done := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		r.Run(done)
	}()
	t.Cleanup(func() {
		close(done)
		<-reaped
		r.Stop()
	})
	return r
}

// TestResumeHonoursPendingRestart adopts handoffs with a restart pending:
// one that took its token spawns at its time without taking another; one
// whose backoff ends takes a token; neither starts before its time.
func TestResumeHonoursPendingRestart(t *testing.T) {
	r := runReaper(t)
	limit := config.RespawnLimit{N: 5, Window: 5 * time.Hour} // a token an hour
	const debt = -2                                           // two restarts wait for a token
	tests := []struct {
		name     string
		state    State
		dueIn    time.Duration // 0: none handed over (an older vigil)
		reserved bool
		noBucket bool // an older vigil's handoff
		// What the new image does: spawn at once (the due time has passed),
		// or keep a timer for dueIn; tokens is the bucket afterwards (NaN:
		// one was taken, how much refilled meanwhile depends on the clock).
		spawns    bool
		waitState State
		waitDue   time.Duration
		reserves  bool
		tokens    float64
	}{
		{name: "a token wait keeps its time", state: Starting, dueIn: 30 * time.Minute, reserved: true,
			waitState: Starting, waitDue: 30 * time.Minute, reserves: true, tokens: debt},
		{name: "a token wait that came due spawns without a second token", state: Starting, dueIn: -time.Second, reserved: true,
			spawns: true, tokens: debt},
		{name: "a backoff keeps its time", state: Backoff, dueIn: 30 * time.Minute,
			waitState: Backoff, waitDue: 30 * time.Minute, tokens: debt},
		{name: "a backoff that ended takes a token and waits for it", state: Backoff, dueIn: -time.Second,
			waitState: Starting, waitDue: 3 * time.Hour, reserves: true, tokens: math.NaN()},
		{name: "an older vigil's backoff is waited again", state: Backoff, noBucket: true,
			waitState: Starting, waitDue: time.Hour, tokens: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := reexec.ReadClock()
			if err != nil {
				t.Fatal(err)
			}
			hs := reexec.HandoffService{Config: crashLooper("svc"), State: string(tc.state), Want: true, Retries: 1, Restarts: 3, Notify: -1,
				Reserved: tc.reserved}
			h := reexec.Handoff{Generation: 1, Services: []reexec.HandoffService{hs}}
			if !tc.noBucket {
				h.Clock = c.Mono
				h.Bucket = &reexec.HandoffBucket{Tokens: debt, Last: c.Mono}
				h.Services[0].Due = c.ToMono(c.Now.Add(tc.dueIn))
			}
			h = viaWire(t, h)
			s := testSupervisor(t, Options{Reaper: r, RespawnLimit: limit, Handoff: &h})
			svc := s.byName["svc"]
			s.resume()
			if tc.spawns {
				// The timer fired at once; run what it posted, as the loop would.
				select {
				case ev := <-s.events:
					s.handle(ev)
				case <-time.After(30 * time.Second):
					t.Fatal("the restart that came due did not fire")
				}
				if svc.pid == 0 || svc.restarts != 4 {
					t.Fatalf("not spawned: pid %d, state %s, restarts %d", svc.pid, svc.state, svc.restarts)
				}
				pid := svc.pid
				syscall.Kill(-pid, syscall.SIGKILL)
				select {
				case <-s.o.Exits.Ready(): // its exit: the reaper let go of it
				case <-time.After(30 * time.Second):
					t.Fatalf("pid %d not reaped", pid)
				}
			} else {
				if tc.dueIn < 0 {
					select {
					case ev := <-s.events:
						s.handle(ev)
					case <-time.After(30 * time.Second):
						t.Fatal("the backoff that ended did not fire")
					}
				}
				if svc.pid != 0 || svc.timer.kind == noTimer || svc.state != tc.waitState || (svc.timer.kind == tokenDue) != tc.reserves || !near(svc.timer.at, tc.waitDue) {
					t.Errorf("pid %d, timer %v, state %s, reserved %v, due in %s; want no pid, a timer, %s, reserved %v, due in %s",
						svc.pid, svc.timer.kind != noTimer, svc.state, (svc.timer.kind == tokenDue), time.Until(svc.timer.at).Round(time.Second),
						tc.waitState, tc.reserves, tc.waitDue)
				}
			}
			switch got := s.limiter.tokens; {
			case math.IsNaN(tc.tokens):
				if got >= debt {
					t.Errorf("tokens %v: no token was taken", got)
				}
			case got != tc.tokens:
				t.Errorf("tokens %v, want %v", got, tc.tokens)
			}
		})
	}
}

// TestAdoptWatchesExits adopts children handed over, one of them not the
// process the handoff names: the others' exits reach the loop through the
// one exit queue.
func TestAdoptWatchesExits(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("checked early %v", early), func(t *testing.T) {
			r := runReaper(t)
			h := reexec.Handoff{Generation: 1}
			for _, name := range []string{"a", "b", "stranger"} {
				// Spawned behind the reaper's back, as by an earlier image.
				pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "1000"},
					&syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: true}})
				if err != nil {
					t.Fatal(err)
				}
				defer syscall.Kill(pid, syscall.SIGKILL)
				st, err := reexec.StartTime(pid)
				if err != nil {
					t.Fatal(err)
				}
				if name == "stranger" {
					st++ // the PID went to another process
				}
				h.Services = append(h.Services, reexec.HandoffService{Config: crashLooper(name), State: string(Ready), Pid: pid, Pgid: pid,
					StartTime: st, Want: true, Notify: -1})
			}
			if early {
				h.CheckProcesses()
			}
			s := testSupervisor(t, Options{Reaper: r, Handoff: &h})
			if st := s.byName["stranger"]; st.pid != 0 || st.state != Backoff {
				t.Errorf("stranger: pid %d, state %s; want not adopted, in backoff", st.pid, st.state)
			}
			for _, name := range []string{"a", "b"} {
				if svc := s.byName[name]; svc.pid == 0 {
					t.Fatalf("%s not adopted", name)
				}
				syscall.Kill(s.byName[name].pid, syscall.SIGKILL)
			}
			for got := 0; got < 2; {
				select {
				case <-s.o.Exits.Ready():
					exits := s.o.Exits.Take()
					got += len(exits)
					s.onExits(exits)
				case <-time.After(30 * time.Second):
					t.Fatal("an adopted child's exit did not reach the loop")
				}
			}
			for _, name := range []string{"a", "b"} {
				svc := s.byName[name]
				if svc.pid != 0 || svc.lastExit == nil || *svc.lastExit != 137 {
					t.Errorf("%s after its exit: pid %d, last exit %v", name, svc.pid, svc.lastExit)
				}
			}
		})
	}
}
