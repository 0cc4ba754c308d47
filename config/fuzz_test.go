package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode checks that no input panics or hangs, that every problem has a
// position inside the document, that the parser agrees with encoding/json on
// what is JSON and what it means, and that a clean document gives runnable
// services. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(everyFieldExample))
	f.Add([]byte(allSettings))
	f.Add([]byte(`[{"name":"a","command":"x","depends_on":["b"]},{"name":"b","command":"x","depends_on":["a"]}]`))
	f.Add([]byte(`[{"name":"a","command":"x","instances":3,"depends_on":["b"]},` +
		`{"name":"b","command":"x","schedule":"*/5 1-3 * JAN MON","timezone":"UTC","concurrency":"allow"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, src := range []string{"f.json", ServicesVar} {
			s := Default()
			raw, probs := Decode(data, src, &s)
			svcs, more := Resolve(raw, s)
			all := append(probs, more...)
			for _, p := range all {
				if p.Line < 1 || p.Line > lines || p.Col < 1 || p.Source != src || p.Msg == "" {
					t.Fatalf("bad problem %+v", p)
				}
				_ = p.String()
			}
			if len(svcs) < len(raw) {
				t.Fatalf("%d services from %d raw", len(svcs), len(raw))
			}
			if len(all) == 0 {
				n := 0
				for _, r := range raw {
					n += max(1, r.Instances)
				}
				if len(svcs) != n {
					t.Fatalf("%d services from %d raw, want %d with the copies", len(svcs), len(raw), n)
				}
				for _, v := range svcs {
					if v.Schedule != "" && (!v.Oneshot || v.Critical || v.Concurrency == "" || v.Restart == RestartAlways) {
						t.Fatalf("clean document gave a bad scheduled service %+v", v)
					}
					if !validName(v.Name) || v.Name == MainName || len(v.Argv) == 0 || v.Argv[0] == "" ||
						v.Restart == "" || v.Log == "" || v.StopSignal == 0 || v.MaxRetries < -1 ||
						v.Backoff.Factor < 1 || v.Backoff.Jitter < 0 || v.Backoff.Jitter > 1 {
						t.Fatalf("clean document gave a bad service %+v", v)
					}
				}
				if errs := s.Validate(); len(errs) != 0 {
					t.Fatalf("clean document gave bad settings: %v", errs)
				}
			}
			// Deterministic.
			s2 := Default()
			raw2, probs2 := Decode(data, src, &s2)
			if !reflect.DeepEqual(raw, raw2) || !reflect.DeepEqual(probs, probs2) || !reflect.DeepEqual(s, s2) {
				t.Fatal("Decode is not deterministic")
			}
		}

		// Differential check of the parser against encoding/json, on the
		// inputs where both are meant to agree.
		if !utf8.Valid(data) || bytes.HasPrefix(data, []byte("\xEF\xBB\xBF")) {
			return
		}
		tree, perr := parseJSON(data)
		if perr != nil && strings.HasPrefix(perr.msg, "nested more than") {
			return
		}
		if valid := json.Valid(data); valid != (perr == nil) {
			t.Fatalf("json.Valid = %v, parseJSON error = %v", valid, perr)
		}
		if perr != nil {
			if perr.off < 0 || perr.off > len(data) {
				t.Fatalf("error offset %d outside 0..%d", perr.off, len(data))
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if got := tree.toAny(); !reflect.DeepEqual(got, want) {
			t.Fatalf("parsed %#v\nencoding/json %#v", got, want)
		}
	})
}

// toAny converts a node to what encoding/json with UseNumber gives (a
// repeated key: the last one wins).
func (n *jnode) toAny() any {
	switch n.kind {
	case jNull:
		return nil
	case jBool:
		return n.b
	case jNumber:
		return json.Number(n.str)
	case jString:
		return n.str
	case jArray:
		out := make([]any, len(n.elems))
		for i, e := range n.elems {
			out[i] = e.toAny()
		}
		return out
	default:
		out := make(map[string]any, len(n.members))
		for _, m := range n.members {
			out[m.key] = m.val.toAny()
		}
		return out
	}
}

// TestFuzzSeeds keeps the seed corpus honest: valid-* seeds decode without a
// problem, invalid-* seeds with at least one.
func TestFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, lit, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			q, ok := strings.CutPrefix(lit, "[]byte(")
			q, ok2 := strings.CutSuffix(q, ")")
			doc, err := strconv.Unquote(q)
			if !ok || !ok2 || err != nil {
				t.Fatalf("not a fuzz seed: %q", lit)
			}
			probs := check(doc)
			switch valid := strings.HasPrefix(filepath.Base(f), "valid-"); {
			case valid && len(probs) != 0:
				t.Errorf("problems in a valid seed: %q", probs)
			case !valid && len(probs) == 0:
				t.Error("no problem in an invalid seed")
			}
		})
	}
}

// TestManyProblemsOnOneLine reports every problem of 10000 services on one
// 700 KB line. Its time is logged, not asserted (tests never assert a timing
// on a shared machine): positions once cost time proportional to the line's
// length, 12 s here; linear, it takes well under a second on a quiet one.
func TestManyProblemsOnOneLine(t *testing.T) {
	const n = 10000
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"s%d","command":"","x":1,"x":2,"depends_on":["s%d","nope"]}`, i, (i+1)%n)
	}
	b.WriteString("]")
	start := time.Now()
	raw, probs := Decode([]byte(b.String()), "f.json", nil)
	_, more := Resolve(raw, Default())
	if len(probs) != 3*n || len(more) != n+1 {
		t.Errorf("%d + %d problems", len(probs), len(more))
	}
	t.Logf("%d problems in %v", len(probs)+len(more), time.Since(start))
}
