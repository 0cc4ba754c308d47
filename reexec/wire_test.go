package reexec

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/reaper"
)

// fullHandoff sets every field of a handoff, nested ones included, so a
// field the encoding forgets shows in the round trip (and allSet fails for
// a field added to the types but not here).
func fullHandoff() Handoff {
	last := 137
	at := time.Unix(1700000000, 123456789)
	return Handoff{
		Generation: 7,
		Signals:    []int{1, 10, 64},
		Panics:     []time.Time{at, at.Add(time.Second)},
		Clock:      5e9,
		Bucket:     &HandoffBucket{Tokens: -2.5, Last: 4e9},
		Services: []HandoffService{{
			Config: config.Service{
				Name: "web", Argv: []string{"nginx", "-g", "daemon off;"}, Shell: true, Dir: "/srv",
				Env: []string{"A=1", "PORT=8080"}, User: "1:2", Restart: config.RestartOnFailure, MaxRetries: -1,
				Backoff:     config.Backoff{Initial: time.Millisecond, Max: time.Minute, Factor: 1.5, Jitter: 0.25},
				StableAfter: 10 * time.Second, StopSignal: syscall.SIGQUIT, StopTimeout: 5 * time.Second,
				Critical: true, DependsOn: []string{"db", "cache"},
				Ready: &config.Ready{TCP: "127.0.0.1:80", Exec: []string{"check", "-q"}, File: "/run/ok",
					NotifyFD: 3, Timeout: 30 * time.Second, HTTP: "http://127.0.0.1/ready",
					Interval: 5 * time.Second, FailureThreshold: 2},
				Oneshot: true, Log: config.LogPrefix,
				EnvFiles: []config.EnvFile{{Path: "/common.env", Optional: true, TopLevel: true}, {Path: "/web.env"}},
				Secrets:  []config.Secret{{Var: "DB_PASSWORD", Path: "/run/secrets/db"}},
				LogFile:  &config.LogFile{Path: "/var/log/web.log", MaxSize: 10 << 20, MaxFiles: 5},
				Schedule: "*/5 * * * *", Timezone: "Europe/Berlin", Concurrency: config.ConcurrencyReplace,
				StartingDeadline: time.Minute, Template: "web", Instance: 2, Instances: 3,
				Health: &config.Health{TCP: "127.0.0.1:81", Exec: []string{"alive"}, HTTP: "http://h/healthz",
					Interval: 10 * time.Second, Timeout: time.Second, StartPeriod: time.Minute, FailureThreshold: 3},
			},
			Main: true, State: "stopping", Pid: 42, Pgid: 41,
			Exit:      &reaper.Exit{Pid: 40, Status: 0x0100, Orphan: true},
			StartTime: 123456, Started: at, Retries: 2, Restarts: 9, LastExit: &last, Want: true,
			Pipes:  []HandoffPipe{{FD: 7, Stderr: true, Carry: []byte("a line\nhalf a li"), Teed: 7}},
			Notify: 9, Due: 6e9, Reserved: true, Stopping: true, KillAt: 8e9, RestartAfterStop: true,
			NextRun: time.Unix(1_700_000_600, 0), LastRun: time.Unix(1_699_999_000, 5), FailedRuns: 4, RunDue: true,
			LogRing:        RawBytes{1, 2, 3},
			HealthFailures: 11, WasReady: true,
		}},
		Orphans: 1 << 40, Forwarded: 12,
	}
}

// allSet fails for every field of v, at any depth, that holds its zero
// value. Unexported fields are the process's own, never handed over.
func allSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("%s is zero: set it in fullHandoff, and encode it in wire.go", path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		allSet(t, path, v.Elem())
	case reflect.Slice:
		allSet(t, path+"[0]", v.Index(0))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				allSet(t, path+"."+f.Name, v.Field(i))
			}
		}
	}
}

func TestWireRoundTrip(t *testing.T) {
	h := fullHandoff()
	allSet(t, "Handoff", reflect.ValueOf(h))
	if got := viaWire(t, h); !reflect.DeepEqual(got, h) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, h)
	}

	// nil and empty lists stay apart: reload compares readiness checks
	// with reflect.DeepEqual.
	empty := Handoff{Signals: []int{}, Services: []HandoffService{{
		Config: config.Service{Argv: []string{}, Ready: &config.Ready{Exec: []string{}}},
		Pipes:  []HandoffPipe{{Carry: []byte{}}},
	}}}
	if got := viaWire(t, empty); !reflect.DeepEqual(got, empty) {
		t.Errorf("empty lists:\n got %+v\nwant %+v", got, empty)
	}
	if got := viaWire(t, Handoff{}); !reflect.DeepEqual(got, Handoff{}) {
		t.Errorf("zero handoff: got %+v", got)
	}

	b := Binding{StartTime: 99, PidNS: 4026531836, BootID: "2d6f0e9c-9a0b-4c8e-8f52-3f1f3c1e2a77"}
	enc, _ := b.AppendBinary(nil)
	var got Binding
	if err := got.UnmarshalBinary(enc); err != nil || got != b {
		t.Errorf("binding round trip: %+v, %v", got, err)
	}
}

// A record written by another vigil of the same version may hold fewer
// fields (older: the rest read as zero) or more (newer: skipped).
func TestWireRecordsGrowAtTheEnd(t *testing.T) {
	var w wireWriter
	w.record(func() {
		w.uint(99)
		w.uint(7)
		w.string("boot")
		w.string("a field this vigil does not know")
	})
	var b Binding
	if err := b.UnmarshalBinary(w.b); err != nil || b != (Binding{StartTime: 99, PidNS: 7, BootID: "boot"}) {
		t.Errorf("a longer record: %+v, %v", b, err)
	}
	w = wireWriter{}
	w.record(func() { w.uint(99) })
	if err := b.UnmarshalBinary(w.b); err != nil || b != (Binding{StartTime: 99}) {
		t.Errorf("a shorter record: %+v, %v", b, err)
	}

	// A nested record that grew: what follows it is still read.
	w = wireWriter{}
	w.record(func() {
		w.int(3)         // Generation
		w.count(0, true) // Signals
		w.count(0, true) // Panics
		w.int(5)         // Clock
		w.bool(true)     // Bucket
		w.record(func() {
			w.float(1.5)
			w.int(6)
			w.int(12345) // newer
		})
		w.count(1, false) // Services
		w.record(func() {
			w.record(func() { w.string("svc") })
			w.bool(false)
			w.string("running")
			w.int(42)
		})
	})
	var h Handoff
	if err := h.UnmarshalBinary(w.b); err != nil {
		t.Fatal(err)
	}
	want := Handoff{Generation: 3, Clock: 5, Bucket: &HandoffBucket{Tokens: 1.5, Last: 6},
		Services: []HandoffService{{Config: config.Service{Name: "svc"}, State: "running", Pid: 42}}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v\nwant %+v", h, want)
	}
}

func TestWireRefusesMalformed(t *testing.T) {
	full := fullHandoff()
	enc, err := full.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(enc) {
		var h Handoff
		if err := h.UnmarshalBinary(enc[:n]); !errors.Is(err, errWire) {
			t.Fatalf("cut to %d of %d bytes: %v, want a malformed handoff", n, len(enc), err)
		}
	}
	var h Handoff
	if err := h.UnmarshalBinary(append(enc, 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing byte: %v", err)
	}
	// A count far past the data allocates nothing.
	var w wireWriter
	w.record(func() {
		w.int(1)
		w.uint(1 << 60)
	})
	if err := h.UnmarshalBinary(w.b); !errors.Is(err, errWire) {
		t.Errorf("huge count: %v", err)
	}
}

func FuzzWire(f *testing.F) {
	full := fullHandoff()
	enc, _ := full.AppendBinary(nil)
	f.Add(enc)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Handoff
		if h.UnmarshalBinary(data) != nil {
			return
		}
		// What decodes encodes back to a handoff that decodes the same.
		again := viaWire(t, h)
		if !reflect.DeepEqual(again, h) {
			t.Errorf("not stable:\n%+v\n%+v", h, again)
		}
	})
}

// viaWire sends a handoff through the encoding Exec writes to the memfd.
func viaWire(t *testing.T, h Handoff) Handoff {
	t.Helper()
	b, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatalf("encode handoff: %v", err)
	}
	var out Handoff
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("decode handoff: %v", err)
	}
	return out
}
