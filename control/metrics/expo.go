// Package metrics writes vigil's metrics in the Prometheus text exposition
// format, version 0.0.4: the one every Prometheus server and scraper reads.
// It is a writer only, with no registry: the supervisor hands a Snapshot of
// its counters to Write at scrape time, so nothing is kept or updated between
// scrapes.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the HTTP Content-Type of the exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types of a family's TYPE line.
const (
	Counter = "counter"
	Gauge   = "gauge"
	Untyped = "untyped"
)

// Label is one name="value" pair of a sample.
type Label struct{ Name, Value string }

// Encoder writes families in order. The format wants the samples of one
// name together, under one HELP and TYPE: Family refuses a name a second
// time, and Sample refuses a name other than the current family's (a
// counter's samples carry its name as is, _total included).
type Encoder struct {
	w      *bufio.Writer
	family string
	seen   map[string]bool
	err    error
}

// NewEncoder writes to w; call Flush at the end.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: bufio.NewWriter(w), seen: map[string]bool{}}
}

// Family starts the family name with its HELP and TYPE lines.
func (e *Encoder) Family(name, help, typ string) {
	if e.err != nil {
		return
	}
	switch {
	case !validName(name, true):
		e.err = fmt.Errorf("metric name %q is not valid", name)
	case e.seen[name]:
		e.err = fmt.Errorf("metric family %q written twice", name)
	case typ != Counter && typ != Gauge && typ != Untyped:
		e.err = fmt.Errorf("metric family %q: unknown type %q", name, typ)
	}
	if e.err != nil {
		return
	}
	e.seen[name] = true
	e.family = name
	e.w.WriteString("# HELP ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(escape(help, false))
	e.w.WriteString("\n# TYPE ")
	e.w.WriteString(name)
	e.w.WriteByte(' ')
	e.w.WriteString(typ)
	e.w.WriteByte('\n')
}

// Sample writes one sample of the current family.
func (e *Encoder) Sample(name string, value float64, labels ...Label) {
	if e.err != nil {
		return
	}
	if name != e.family {
		e.err = fmt.Errorf("sample %q outside its family (current: %q)", name, e.family)
		return
	}
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i, l := range labels {
			if !validName(l.Name, false) || strings.HasPrefix(l.Name, "__") {
				e.err = fmt.Errorf("sample %q: label name %q is not valid", name, l.Name)
				return
			}
			for _, prev := range labels[:i] {
				if prev.Name == l.Name {
					e.err = fmt.Errorf("sample %q: label %q given twice", name, l.Name)
					return
				}
			}
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(l.Name)
			e.w.WriteString(`="`)
			e.w.WriteString(escape(l.Value, true))
			e.w.WriteByte('"')
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	e.w.WriteString(FormatValue(value))
	e.w.WriteByte('\n')
}

// Flush writes out what is buffered and returns the first error of the
// whole encoding.
func (e *Encoder) Flush() error {
	if e.err != nil {
		return e.err
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// Err is the first error so far.
func (e *Encoder) Err() error { return e.err }

// FormatValue writes a sample value as the format wants it: whole numbers
// without exponent up to 2^53 (counters read naturally), Go's shortest
// float otherwise, and +Inf, -Inf, NaN spelled as Prometheus does.
func FormatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) <= 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escape escapes a HELP text (backslash, newline) or a label value (also the
// double quote), as the format defines.
func escape(s string, quote bool) string {
	if !strings.ContainsAny(s, "\\\n\"") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// validName checks a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, without
// colons, a label name.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c == ':' && colon:
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
