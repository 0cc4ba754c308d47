package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parsed is an exposition read back: each family's type and help, and every
// sample under its canonical key name{l1="v1",...} (labels sorted,
// values unescaped).
type parsed struct {
	types   map[string]string
	helps   map[string]string
	samples map[string]float64
}

// parse is a strict reader of the 0.0.4 text format, as far as Write uses
// it: it fails on anything a Prometheus server would refuse (a sample
// outside its family, a family met twice, a repeated series, bad escapes).
func parse(text string) (parsed, error) {
	p := parsed{types: map[string]string{}, helps: map[string]string{}, samples: map[string]float64{}}
	if text != "" && !strings.HasSuffix(text, "\n") {
		return p, errors.New("no final newline")
	}
	current := ""
	done := map[string]bool{}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", n+1, line, fmt.Sprintf(format, a...))
		}
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(rest, " ")
			if done[name] || p.helps[name] != "" {
				return p, fail("family again")
			}
			if current != "" && current != name {
				done[current] = true
			}
			current = name
			u, err := unescape(help, false)
			if err != nil {
				return p, fail("%v", err)
			}
			p.helps[name] = u
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if name != current || p.types[name] != "" {
				return p, fail("TYPE not right after its HELP")
			}
			p.types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			return p, fail("unexpected line")
		}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			return p, fail("no value")
		}
		name, rest := line[:i], line[i:]
		if name != current {
			return p, fail("sample outside its family %q", current)
		}
		var labels []string
		if rest[0] == '{' {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				ln, after, ok := strings.Cut(rest, `="`)
				if !ok {
					return p, fail("bad label")
				}
				// The value ends at the first quote not escaped.
				var val strings.Builder
				j := 0
				for ; j < len(after) && after[j] != '"'; j++ {
					if after[j] == '\\' {
						j++
						if j == len(after) {
							return p, fail("dangling escape")
						}
						switch after[j] {
						case '\\', '"':
							val.WriteByte(after[j])
						case 'n':
							val.WriteByte('\n')
						default:
							return p, fail("bad escape")
						}
						continue
					}
					if after[j] == '\n' {
						return p, fail("raw newline")
					}
					val.WriteByte(after[j])
				}
				if j == len(after) {
					return p, fail("unterminated label value")
				}
				labels = append(labels, ln+"="+strconv.Quote(val.String()))
				rest = strings.TrimPrefix(after[j+1:], ",")
			}
			rest = rest[1:]
		}
		vs, ok := strings.CutPrefix(rest, " ")
		if !ok {
			return p, fail("no space before the value")
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return p, fail("value: %v", err)
		}
		sort.Strings(labels)
		key := name + "{" + strings.Join(labels, ",") + "}"
		if _, dup := p.samples[key]; dup {
			return p, fail("repeated series")
		}
		p.samples[key] = v
	}
	return p, nil
}

func unescape(s string, quote bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case i == len(s):
			return "", errors.New("dangling escape")
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		case s[i] == '"' && quote:
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("bad escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

var states = []string{"starting", "running", "ready", "backoff", "stopping", "stopped", "exited",
	"given-up", "blocked", "unhealthy", "scheduled"}

func sampleSnapshot() Snapshot {
	exit := 143
	return Snapshot{
		Version: `v1.2.3-"odd"\name` + "\nline",
		Start:   time.Unix(1764684583, 250_000_000),
		Services: []Service{
			{Name: "web", Up: true, Ready: true, State: "ready", States: states, Restarts: 2,
				FailedRuns: 1, LastExit: &exit, HealthFailures: 7},
			{Name: "db", State: "backoff", States: states, FailedRuns: 3},
		},
		OrphansReaped: 12, SignalsForwarded: 3, Reexecs: 1,
	}
}

func TestWriteRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	p, err := parse(buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	want := map[string]float64{
		`vigil_build_info{version="v1.2.3-\"odd\"\\name\nline"}`: 1,
		`vigil_start_time_seconds{}`:                             1764684583.25,
		`vigil_service_up{service="web"}`:                        1,
		`vigil_service_up{service="db"}`:                         0,
		`vigil_service_ready{service="web"}`:                     1,
		`vigil_service_ready{service="db"}`:                      0,
		`vigil_service_restarts_total{service="web"}`:            2,
		`vigil_service_restarts_total{service="db"}`:             0,
		`vigil_service_failed_runs{service="web"}`:               1,
		`vigil_service_failed_runs{service="db"}`:                3,
		`vigil_service_last_exit_code{service="web"}`:            143,
		`vigil_service_health_failures_total{service="web"}`:     7,
		`vigil_service_health_failures_total{service="db"}`:      0,
		`vigil_orphans_reaped_total{}`:                           12,
		`vigil_signals_forwarded_total{}`:                        3,
		`vigil_reexecs_total{}`:                                  1,
	}
	for _, svc := range []struct{ name, state string }{{"web", "ready"}, {"db", "backoff"}} {
		for _, st := range states {
			v := 0.0
			if st == svc.state {
				v = 1
			}
			want[fmt.Sprintf(`vigil_service_state{service=%q,state=%q}`, svc.name, st)] = v
		}
	}
	for k, v := range want {
		got, ok := p.samples[k]
		switch {
		case !ok:
			t.Errorf("missing %s", k)
		case got != v:
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for k := range p.samples {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s (db has no last exit: no series)", k)
		}
	}
	wantTypes := map[string]string{
		"vigil_build_info": Gauge, "vigil_start_time_seconds": Gauge, "vigil_service_up": Gauge,
		"vigil_service_ready": Gauge, "vigil_service_state": Gauge, "vigil_service_restarts_total": Counter,
		"vigil_service_failed_runs": Gauge, "vigil_service_last_exit_code": Gauge,
		"vigil_service_health_failures_total": Counter, "vigil_orphans_reaped_total": Counter,
		"vigil_signals_forwarded_total": Counter, "vigil_reexecs_total": Counter,
	}
	for name, typ := range wantTypes {
		if p.types[name] != typ || p.helps[name] == "" {
			t.Errorf("family %s: type %q help %q, want type %q and a help", name, p.types[name], p.helps[name], typ)
		}
	}
	if len(p.types) != len(wantTypes) {
		t.Errorf("families %v, want %d", p.types, len(wantTypes))
	}
	promtool(t, buf.Bytes())
}

func TestWriteEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		snap  Snapshot
		check func(parsed) error
	}{
		{"no services: every family still present", Snapshot{Version: "dev"}, func(p parsed) error {
			if len(p.types) != 12 {
				return fmt.Errorf("%d families", len(p.types))
			}
			return nil
		}},
		{"a repeated state word gives one series", Snapshot{Services: []Service{
			{Name: "a", State: "ready", States: []string{"ready", "ready", "stopped"}}}}, func(p parsed) error {
			if p.samples[`vigil_service_state{service="a",state="ready"}`] != 1 ||
				p.samples[`vigil_service_state{service="a",state="stopped"}`] != 0 {
				return fmt.Errorf("%v", p.samples)
			}
			return nil
		}},
		{"a state missing from the list still shows as 1", Snapshot{Services: []Service{
			{Name: "a", State: "weird", States: []string{"ready"}}}}, func(p parsed) error {
			if p.samples[`vigil_service_state{service="a",state="weird"}`] != 1 {
				return fmt.Errorf("%v", p.samples)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tc.snap); err != nil {
				t.Fatal(err)
			}
			p, err := parse(buf.String())
			if err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			if err := tc.check(p); err != nil {
				t.Errorf("%v\n%s", err, buf.String())
			}
			promtool(t, buf.Bytes())
		})
	}
}

func TestEncoderRefuses(t *testing.T) {
	tests := []struct {
		name string
		do   func(e *Encoder)
		want string
	}{
		{"family twice", func(e *Encoder) {
			e.Family("a", "h", Gauge)
			e.Family("b", "h", Gauge)
			e.Family("a", "h", Gauge)
		}, "written twice"},
		{"sample outside its family", func(e *Encoder) {
			e.Family("a", "h", Gauge)
			e.Sample("b", 1)
		}, "outside its family"},
		{"bad metric name", func(e *Encoder) { e.Family("1a", "h", Gauge) }, "not valid"},
		{"bad label name", func(e *Encoder) {
			e.Family("a", "h", Gauge)
			e.Sample("a", 1, Label{"x:y", "v"})
		}, "label name"},
		{"reserved label name", func(e *Encoder) {
			e.Family("a", "h", Gauge)
			e.Sample("a", 1, Label{"__name__", "v"})
		}, "label name"},
		{"label twice", func(e *Encoder) {
			e.Family("a", "h", Gauge)
			e.Sample("a", 1, Label{"x", "v"}, Label{"x", "w"})
		}, "twice"},
		{"unknown type", func(e *Encoder) { e.Family("a", "h", "histogramm") }, "unknown type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			e := NewEncoder(&buf)
			tc.do(e)
			if err := e.Flush(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-3, "-3"}, {1 << 53, "9007199254740992"}, {1e300, "1e+300"},
		{0.5, "0.5"}, {1764684583.25, "1.76468458325e+09"},
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
	}
	for _, tc := range tests {
		got := FormatValue(tc.v)
		if got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
		if back, err := strconv.ParseFloat(got, 64); err != nil || (back != tc.v && !math.IsNaN(tc.v)) {
			t.Errorf("%q does not read back as %v: %v %v", got, tc.v, back, err)
		}
	}
}

// promtool runs `promtool check metrics` on an exposition when the binary is
// there (Debian's prometheus package): the reference linter.
func promtool(t *testing.T, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (apt-get install prometheus): reference lint skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}
