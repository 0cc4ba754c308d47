package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzRespawnLimit checks "N/window" and "0": no panic; a refusal leaves
// the value alone and says "respawn limit"; an accepted limit is N >= 0 with
// a positive window (or off), prints back to itself, and the file and the
// environment accept exactly what UnmarshalText accepts. Seeds:
// testdata/fuzz/FuzzRespawnLimit.
func FuzzRespawnLimit(f *testing.F) {
	for _, s := range []string{"10/1m", "0", " 0 ", "0/1s", "5/0s", "5/-1s", "-1/1m", "1/1ns", "10", "/1m", "10/",
		"9223372036854775807/1h", "9223372036854775808/1h", "3/1h2m3s", "1/2562047h47m16.854775807s", "1/2562048h", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sentinel := RespawnLimit{N: -7, Window: -7}
		r := sentinel
		err := r.UnmarshalText([]byte(s))
		if err != nil {
			if r != sentinel || !strings.Contains(err.Error(), "respawn limit") {
				t.Fatalf("UnmarshalText(%q) = %+v, %q", s, r, err)
			}
		} else {
			if r.N < 0 || (r.N > 0 && r.Window <= 0) {
				t.Fatalf("UnmarshalText(%q) = %+v", s, r)
			}
			var back RespawnLimit
			if err := back.UnmarshalText([]byte(r.String())); err != nil {
				t.Fatalf("%q -> %+v prints as %q, which does not parse: %v", s, r, r.String(), err)
			}
			if back.N != r.N || (r.N > 0 && back.Window != r.Window) {
				t.Fatalf("%q -> %+v -> %q -> %+v", s, r, r.String(), back)
			}
		}

		// The file: {"respawn_limit": s}.
		q, _ := json.Marshal(s)
		var s2 string
		json.Unmarshal(q, &s2) // invalid UTF-8 became U+FFFD
		var want RespawnLimit
		werr := want.UnmarshalText([]byte(s2))
		set := Default()
		_, probs := Decode([]byte(`{"respawn_limit": `+string(q)+`}`), "f.json", &set)
		if (len(probs) != 0) != (werr != nil) {
			t.Fatalf("file respawn_limit %q: problems %v, UnmarshalText %v", s2, probs, werr)
		}
		for _, p := range probs {
			if p.Field != "respawn_limit" || p.Line != 1 || p.Msg == "" {
				t.Fatalf("file respawn_limit %q: problem %+v", s2, p)
			}
		}
		if werr == nil && set.RespawnLimit != want {
			t.Fatalf("file respawn_limit %q: %+v, want %+v", s2, set.RespawnLimit, want)
		}

		// The environment: VIGIL_RESPAWN_LIMIT=s ("" is unset).
		if s == "" {
			return
		}
		set = Default()
		errs := set.Env([]string{"VIGIL_RESPAWN_LIMIT=" + s})
		if (len(errs) != 0) != (err != nil) {
			t.Fatalf("VIGIL_RESPAWN_LIMIT=%q: errors %v, UnmarshalText %v", s, errs, err)
		}
		for _, e := range errs {
			if !strings.Contains(e.Error(), "VIGIL_RESPAWN_LIMIT") {
				t.Fatalf("VIGIL_RESPAWN_LIMIT=%q: error %q does not name the variable", s, e)
			}
		}
	})
}

// durationDoc puts one JSON string into every duration field a config
// document has: four per service, five top-level settings.
func durationDoc(q string) string {
	return `{"services": [{"name": "a", "command": "x", "stop_timeout": ` + q + `, "stable_after": ` + q +
		`, "backoff": {"initial": ` + q + `, "max": ` + q + `}, "ready": {"file": "/f", "timeout": ` + q + `}}],
"shutdown_timeout": ` + q + `, "stop_timeout": ` + q + `, "backoff_initial": ` + q + `, "backoff_max": ` + q +
		`, "stable_after": ` + q + `, "reexec_interval": ` + q + `}`
}

var durationFields = []string{"stop_timeout", "stable_after", "backoff.initial", "backoff.max", "ready.timeout",
	"shutdown_timeout", "stop_timeout", "backoff_initial", "backoff_max", "stable_after", "reexec_interval"}

// FuzzDurations feeds one string to every duration field of a config
// document (through Decode and Resolve) and of the environment: no panic;
// accepted exactly when time.ParseDuration accepts it and it is not
// negative, then with that value everywhere; otherwise one problem per
// field, naming the field, at its line:column. Seeds:
// testdata/fuzz/FuzzDurations.
func FuzzDurations(f *testing.F) {
	for _, s := range []string{"500ms", "1m30s", "0", "0s", "-1s", "-0s", "1.5h", ".5s", "5", "5x", "", " 1s", "1s ",
		"9223372036854775807ns", "9223372036854775808ns", "2562047h47m16.854775807s", "1e3s", "+1s", "1µs", "1us",
		"\x00", "1s\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, _ := json.Marshal(s)
		var s2 string
		json.Unmarshal(q, &s2)
		want, perr := time.ParseDuration(s2)
		good := perr == nil && want >= 0
		doc := durationDoc(string(q))
		lines := strings.Count(doc, "\n") + 1
		set := Default()
		raw, probs := Decode([]byte(doc), "f.json", &set)
		if len(raw) != 1 {
			t.Fatalf("%q: %d services", s2, len(raw))
		}
		if good {
			if len(probs) != 0 {
				t.Fatalf("%q: problems %v", s2, probs)
			}
			r := raw[0]
			for _, d := range []*time.Duration{r.StopTimeout, r.StableAfter, r.Backoff.Initial, r.Backoff.Max} {
				if d == nil || *d != want {
					t.Fatalf("%q: service field %v, want %v", s2, d, want)
				}
			}
			if r.Ready == nil || r.Ready.Timeout != want {
				t.Fatalf("%q: ready %+v", s2, r.Ready)
			}
			for _, d := range []time.Duration{set.ShutdownTimeout, set.StopTimeout, set.BackoffInitial, set.BackoffMax,
				set.StableAfter, set.ReexecInterval} {
				if d != want {
					t.Fatalf("%q: setting %v, want %v", s2, d, want)
				}
			}
			svcs, more := Resolve(raw, set)
			if len(svcs) != 1 {
				t.Fatalf("%q: resolved %d services", s2, len(svcs))
			}
			for _, p := range more {
				if p.Line < 1 || p.Line > lines || p.Msg == "" {
					t.Fatalf("%q: resolve problem %+v", s2, p)
				}
			}
		} else {
			if len(probs) != len(durationFields) {
				t.Fatalf("%q: %d problems, want one per duration field (%d): %v", s2, len(probs), len(durationFields), probs)
			}
			for _, p := range probs {
				if p.Line < 1 || p.Line > lines || p.Col < 1 || !strings.Contains(p.Msg, "duration") {
					t.Fatalf("%q: problem %+v", s2, p)
				}
				found := false
				for _, fld := range durationFields {
					found = found || p.Field == fld
				}
				if !found {
					t.Fatalf("%q: problem on field %q", s2, p.Field)
				}
			}
		}

		// The environment: VIGIL_STOP_TIMEOUT=s, then Validate.
		if s == "" {
			return
		}
		set = Default()
		errs := append(set.Env([]string{"VIGIL_STOP_TIMEOUT=" + s}), set.Validate()...)
		envWant, envErr := time.ParseDuration(s)
		envGood := envErr == nil && envWant >= 0
		if (len(errs) == 0) != envGood {
			t.Fatalf("VIGIL_STOP_TIMEOUT=%q: errors %v, ParseDuration %v, %v", s, errs, envWant, envErr)
		}
		for _, e := range errs {
			if !strings.Contains(e.Error(), "VIGIL_STOP_TIMEOUT") {
				t.Fatalf("VIGIL_STOP_TIMEOUT=%q: error %q does not name the variable", s, e)
			}
		}
		if envGood && set.StopTimeout != envWant {
			t.Fatalf("VIGIL_STOP_TIMEOUT=%q: %v, want %v", s, set.StopTimeout, envWant)
		}
	})
}
