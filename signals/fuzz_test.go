package signals

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// isASCII reports whether s has no byte above 0x7f: case folding of other
// runes is Unicode's business (strings.ToUpper("ſ") is "S").
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > 0x7f {
			return false
		}
	}
	return true
}

// FuzzParse checks that no input panics, that every accepted name is a
// signal vigil can send (1..64), that it is found again from its number and
// its conventional name, that padding and ASCII case do not matter, and that
// every refusal says why. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"TERM", "sigterm", " hup ", "15", "64", "0", "65", "-1", "+15", "RTMIN",
		"SIGRTMIN+3", "RTMAX-2", "RTMIN+31", "RTMAX+1", "RTMIN+x", "IOT", "CLD", "POLL", "", "SIG", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err != nil {
			if sig != 0 || err.Error() == "" {
				t.Fatalf("Parse(%q) = %d, %q", s, sig, err)
			}
		} else {
			if sig < 1 || sig > RTMax {
				t.Fatalf("Parse(%q) = %d, outside 1..%d", s, sig, RTMax)
			}
			if back, err := Parse(strconv.Itoa(int(sig))); err != nil || back != sig {
				t.Fatalf("Parse(%q) = %d, but its number parses as %d, %v", s, sig, back, err)
			}
			if name := Name(sig); !strings.HasPrefix(name, "signal ") {
				if back, err := Parse(name); err != nil || back != sig {
					t.Fatalf("Parse(%q) = %d, but its name %q parses as %d, %v", s, sig, name, back, err)
				}
			}
		}
		// Padding and (ASCII) case do not change the answer.
		for _, v := range []string{" " + s + "\t", strings.ToLower(s), strings.ToUpper(s)} {
			if v != " "+s+"\t" && !isASCII(s) {
				continue
			}
			got, err2 := Parse(v)
			if got != sig || (err2 == nil) != (err == nil) {
				t.Fatalf("Parse(%q) = %d, %v but Parse(%q) = %d, %v", s, sig, err, v, got, err2)
			}
		}
		for _, m := range []Mode{Wrapper, Supervisor} {
			if a := Decide(sig, m, m == Wrapper, nil); (a.Verb == Drop) != (a.Why != "") {
				t.Fatalf("Decide(%d, %d) = %+v", sig, m, a)
			}
		}
	})
}

// FuzzParseRewrite checks -r FROM:TO: no panic, FROM as Parse reads it, TO
// 0 exactly when written "0", every error naming the rule. Seeds:
// testdata/fuzz/FuzzParseRewrite.
func FuzzParseRewrite(f *testing.F) {
	for _, s := range []string{"TERM:QUIT", "15:3", "SIGHUP:0", "TERM", "TERM:", ":QUIT", "NOPE:1", "1:2:3",
		"RTMIN+1:RTMAX-1", "TTIN:TERM", "CHLD:1", "PIPE:0", " usr1 : usr2 ", "TERM:00", "TERM:-0", "\xff:\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		from, to, err := ParseRewrite(spec)
		if err != nil {
			if from != 0 || to != 0 || !strings.HasPrefix(err.Error(), "signal rewrite ") {
				t.Fatalf("ParseRewrite(%q) = %d, %d, %q", spec, from, to, err)
			}
			return
		}
		a, b, ok := strings.Cut(spec, ":")
		if !ok {
			t.Fatalf("ParseRewrite(%q) accepted a rule without ':'", spec)
		}
		if want, err := Parse(a); err != nil || want != from {
			t.Fatalf("ParseRewrite(%q): from %d, Parse(%q) = %d, %v", spec, from, a, want, err)
		}
		if from < 1 || from > RTMax || to < 0 || to > RTMax {
			t.Fatalf("ParseRewrite(%q) = %d, %d: out of range", spec, from, to)
		}
		if (to == 0) != (strings.TrimSpace(b) == "0") {
			t.Fatalf("ParseRewrite(%q): to %d", spec, to)
		}
		if to != 0 {
			if want, err := Parse(b); err != nil || want != to {
				t.Fatalf("ParseRewrite(%q): to %d, Parse(%q) = %d, %v", spec, to, b, want, err)
			}
		}
		// Every rule accepted applies: in wrapper mode the signal goes
		// out as TO, or is dropped for TO 0.
		act := Decide(from, Wrapper, true, Rewrite{from: to})
		if to == 0 && act.Verb != Drop || to != 0 && (act.Verb != ForwardMain || act.Signal != to) {
			t.Fatalf("ParseRewrite(%q) = %d, %d, but Decide gives %+v", spec, from, to, act)
		}
	})
}

// TestNameRoundTrip: every signal vigil forwards has a name Parse reads back.
func TestNameRoundTrip(t *testing.T) {
	for s := syscall.Signal(1); s <= RTMax; s++ {
		name := Name(s)
		if strings.HasPrefix(name, "signal ") {
			if s != 32 && s != 33 {
				t.Errorf("signal %d has no name", s)
			}
			continue
		}
		if got, err := Parse(name); err != nil || got != s {
			t.Errorf("Parse(Name(%d) = %q) = %d, %v", s, name, got, err)
		}
	}
}
