package dotenv

import (
	"strings"
	"testing"
)

// FuzzParse: no input panics, an error never quotes more than the file
// name and line, and whatever parses comes back the same through Format.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"A=1\n", "export A='x'\n", "A=\"l1\\nl2\" # c\r\n", "A= #c\nB=a#b\n", "A='\n'\n",
		"A=\"\\\"\\\\\\x\"", "# only\n\n", "=x", "A", "A=\"x\"y", "A=x\ry\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := Parse(data, "f.env")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.env:") {
				t.Fatalf("error without a location: %v", err)
			}
			return
		}
		for _, v := range vars {
			if !ValidKey(v.Key) || strings.IndexByte(v.Value, 0) >= 0 {
				t.Fatalf("bad var accepted: %q", v.Key)
			}
		}
		again, err := Parse(Format(vars), "f.env")
		if err != nil {
			t.Fatalf("Format's output does not parse: %v\n%q", err, Format(vars))
		}
		if len(again) != len(vars) {
			t.Fatalf("round trip: %d vars, want %d", len(again), len(vars))
		}
		for i := range vars {
			if again[i].Key != vars[i].Key || again[i].Value != vars[i].Value {
				t.Fatalf("round trip of var %d: %q=%q became %q=%q", i, vars[i].Key, vars[i].Value, again[i].Key, again[i].Value)
			}
		}
	})
}
