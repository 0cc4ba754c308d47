package state

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func intp(v int) *int { return &v }

var t0 = time.Date(2026, 11, 26, 3, 15, 0, 123456789, time.UTC)

func sample() File {
	return File{
		Version:    Version,
		Generation: 3,
		Updated:    t0,
		Services: map[string]Service{
			"web": {Status: "ready", Pid: 42, StartTime: 123456, Restarts: 2, Retries: 1,
				LastExit: intp(143), Started: t0.Add(-time.Minute), Exited: t0.Add(-2 * time.Minute)},
			"db":     {Status: "given-up", Retries: 4, GivenUp: true, LastExit: intp(1)},
			"worker": {Status: "backoff"},
		},
	}
}

// equal compares files with time.Equal semantics (Decode gives fixed zones).
func equal(a, b File) bool { return bytes.Equal(Encode(a), Encode(b)) }

func TestCodec(t *testing.T) {
	tests := []struct {
		name string
		in   File
		want File // after a round trip
	}{
		{"full document round-trips", sample(), sample()},
		{"empty document round-trips", empty(), empty()},
		{"nil services encode as an empty object", File{Version: Version}, empty()},
		{"version is always written as the current one", File{Version: 0, Services: map[string]Service{}}, empty()},
		{"signal exit and zero exit survive", File{Version: Version, Services: map[string]Service{
			"a": {Status: "exited", LastExit: intp(0)}, "b": {Status: "backoff", LastExit: intp(128 + 9)}}},
			File{Version: Version, Services: map[string]Service{
				"a": {Status: "exited", LastExit: intp(0)}, "b": {Status: "backoff", LastExit: intp(128 + 9)}}}},
		{"a time JSON cannot hold is written as zero", File{Version: Version,
			Updated: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), Services: map[string]Service{}}, empty()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := Encode(tt.in)
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode(Encode(x)): %v\n%s", err, data)
			}
			if !equal(got, tt.want) {
				t.Fatalf("round trip:\n got %s\nwant %s", Encode(got), Encode(tt.want))
			}
			if got.Services == nil {
				t.Fatal("Decode gave nil Services")
			}
		})
	}

	t.Run("output is indented, stable and ends with a newline", func(t *testing.T) {
		a, b := Encode(sample()), Encode(sample())
		if !bytes.Equal(a, b) {
			t.Fatal("two encodings differ")
		}
		if !bytes.HasSuffix(a, []byte("}\n")) || !bytes.HasPrefix(a, []byte("{\n  \"version\": 1,\n  \"generation\": 3,")) {
			t.Fatalf("unexpected layout:\n%s", a)
		}
		if i, j := bytes.Index(a, []byte(`"db"`)), bytes.Index(a, []byte(`"web"`)); i < 0 || j < i {
			t.Fatalf("services not sorted by name:\n%s", a)
		}
	})
	t.Run("required fields appear, empty optional ones do not", func(t *testing.T) {
		s := string(Encode(File{Services: map[string]Service{"x": {Status: "starting"}}}))
		for _, want := range []string{`"retries": 0`, `"given_up": false`, `"last_exit": null`, `"restarts": 0`} {
			if !strings.Contains(s, want) {
				t.Errorf("missing %s in\n%s", want, s)
			}
		}
		for _, not := range []string{`"pid"`, `"start_time"`, `"started"`, `"exited"`} {
			if strings.Contains(s, not) {
				t.Errorf("unexpected %s in\n%s", not, s)
			}
		}
	})
	t.Run("Encode does not change its argument", func(t *testing.T) {
		f := sample()
		f.Version = 7
		Encode(f)
		if f.Version != 7 || !reflect.DeepEqual(f.Services["web"], sample().Services["web"]) {
			t.Fatal("argument changed")
		}
	})
}

func TestDecodeRejects(t *testing.T) {
	valid := string(Encode(sample()))
	tests := []struct{ name, doc string }{
		{"empty file", ""},
		{"only whitespace", " \n"},
		{"truncated JSON", valid[:len(valid)/2]},
		{"truncated by one byte", strings.TrimSuffix(valid, "}\n")},
		{"garbage", "\x00\x01\x02garbage"},
		{"null", "null"},
		{"an array", `[{"version":1}]`},
		{"a string", `"version"`},
		{"version missing", `{"services":{}}`},
		{"version null", `{"version":null,"services":{}}`},
		{"version 0", `{"version":0,"services":{}}`},
		{"version 2", `{"version":2,"services":{}}`},
		{"version as a string", `{"version":"1","services":{}}`},
		{"version as a fraction", `{"version":1.5,"services":{}}`},
		{"trailing garbage", valid + "x"},
		{"two documents", valid + valid},
		{"negative generation", `{"version":1,"generation":-1}`},
		{"negative retries", `{"version":1,"services":{"a":{"status":"ready","retries":-1}}}`},
		{"negative restarts", `{"version":1,"services":{"a":{"status":"ready","restarts":-2}}}`},
		{"negative pid", `{"version":1,"services":{"a":{"status":"ready","pid":-5}}}`},
		{"negative start time", `{"version":1,"services":{"a":{"status":"ready","start_time":-5}}}`},
		{"last exit above 255", `{"version":1,"services":{"a":{"status":"ready","last_exit":256}}}`},
		{"negative last exit", `{"version":1,"services":{"a":{"status":"ready","last_exit":-1}}}`},
		{"null service", `{"version":1,"services":{"a":null}}`},
		{"empty service name", `{"version":1,"services":{"":{"status":"ready"}}}`},
		{"services not an object", `{"version":1,"services":[]}`},
		{"retries of the wrong type", `{"version":1,"services":{"a":{"retries":"3"}}}`},
		{"given_up of the wrong type", `{"version":1,"services":{"a":{"given_up":1}}}`},
		{"bad time", `{"version":1,"updated":"yesterday"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, err := Decode([]byte(tt.doc)); err == nil {
				t.Fatalf("Decode accepted %q: %+v", tt.doc, f)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(File) bool
	}{
		{"unknown fields within the version are ignored (forward compatibility)",
			`{"version":1,"future":{"x":[1,2]},"services":{"a":{"status":"ready","retries":2,"reason":"oom"}}}`,
			func(f File) bool { return f.Services["a"].Retries == 2 }},
		{"services missing is no services", `{"version":1}`,
			func(f File) bool { return f.Services != nil && len(f.Services) == 0 }},
		{"services null is no services", `{"version":1,"services":null}`,
			func(f File) bool { return f.Services != nil && len(f.Services) == 0 }},
		{"whitespace around the document", " \n\t{\"version\":1}\n\n",
			func(f File) bool { return f.Version == Version }},
		{"times with a zone offset", `{"version":1,"updated":"2026-11-26T04:15:00+01:00"}`,
			func(f File) bool { return f.Updated.Equal(time.Date(2026, 11, 26, 3, 15, 0, 0, time.UTC)) }},
		{"last exit null and absent", `{"version":1,"services":{"a":{"last_exit":null},"b":{}}}`,
			func(f File) bool { return f.Services["a"].LastExit == nil && f.Services["b"].LastExit == nil }},
		{"last exit 255", `{"version":1,"services":{"a":{"last_exit":255}}}`,
			func(f File) bool { return *f.Services["a"].LastExit == 255 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode([]byte(tt.doc))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !tt.check(f) {
				t.Fatalf("unexpected result %+v", f)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(sample()))
	f.Add(Encode(empty()))
	f.Add([]byte(`{"version":1,"services":{"a":{"status":"ready","last_exit":null}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		if err != nil {
			return
		}
		if got.Version != Version || got.Services == nil || got.Generation < 0 {
			t.Fatalf("Decode accepted a bad document: %+v", got)
		}
		for name, s := range got.Services {
			if name == "" || s.Retries < 0 || s.Restarts < 0 || s.Pid < 0 ||
				(s.LastExit != nil && (*s.LastExit < 0 || *s.LastExit > 255)) {
				t.Fatalf("Decode accepted a bad service %q: %+v", name, s)
			}
		}
		enc := Encode(got)
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))): %v\n%s", err, enc)
		}
		if enc2 := Encode(again); !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable over a round trip:\n%s\n%s", enc, enc2)
		}
		if len(again.Services) != len(got.Services) {
			t.Fatalf("services lost: %d -> %d", len(got.Services), len(again.Services))
		}
	})
}

// TestFuzzCorpus checks the seed corpus says what its names say: valid_*
// documents decode, invalid_* ones do not.
func TestFuzzCorpus(t *testing.T) {
	paths, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
			body, ok2 := strings.CutSuffix(body, ")\n")
			doc, err := strconv.Unquote(body)
			if !ok || !ok2 || err != nil {
				t.Fatalf("not a corpus file: %q", raw)
			}
			_, err = Decode([]byte(doc))
			switch {
			case strings.HasPrefix(name, "valid_") && err != nil:
				t.Fatalf("Decode: %v", err)
			case strings.HasPrefix(name, "invalid_") && err == nil:
				t.Fatal("Decode accepted it")
			}
		})
	}
}
