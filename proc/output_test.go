package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

func TestPump(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	var longWant strings.Builder
	for s := long; s != ""; {
		n := min(len(s), MaxLine)
		longWant.WriteString("web | " + s[:n] + "\n")
		s = s[n:]
	}
	exact := strings.Repeat("y", MaxLine)
	tests := []struct {
		name, in, want string
	}{
		{"empty input", "", ""},
		{"prefixing", "a\nbb\nccc\n", "web | a\nweb | bb\nweb | ccc\n"},
		{"empty lines", "\n\na\n\n", "web | \nweb | \nweb | a\nweb | \n"},
		{"CRLF kept", "a\r\nb\r\n", "web | a\r\nweb | b\r\n"},
		{"lone CR is not a line end", "a\rb\n", "web | a\rb\n"},
		{"last line without newline", "a\nb", "web | a\nweb | b\n"},
		{"only a partial line", "abc", "web | abc\n"},
		{"binary bytes kept", "\x00\xff\t|\n", "web | \x00\xff\t|\n"},
		{"200 KiB line split into prefixed chunks", long + "\n", longWant.String()},
		{"200 KiB line without newline", long, longWant.String()},
		{"line of exactly MaxLine gives no empty line", exact + "\nz\n", "web | " + exact + "\nweb | z\n"},
		{"MaxLine without newline at EOF", exact, "web | " + exact + "\n"},
		{"MaxLine+1", exact + "z\n", "web | " + exact + "\nweb | z\n"},
		{"long line after short ones", "a\n" + exact + exact + "\nb\n",
			"web | a\nweb | " + exact + "\nweb | " + exact + "\nweb | b\n"},
		{"empty line after a split line is kept", exact + "\n\n", "web | " + exact + "\nweb | \n"},
		// These two make a chunk or the last line end right at the buffer's end.
		{"chunk at the end of the buffer", "\n" + exact + "\n", "web | \nweb | " + exact + "\n"},
		{"last line at the end of the buffer", "\n\n" + exact[1:], "web | \nweb | \nweb | " + exact[1:] + "\n"},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				w := &lineWriter{}
				if err := NewOutput(w).Pump("web", rd.wrap(strings.NewReader(tt.in))); err != nil {
					t.Fatalf("Pump: %v", err)
				}
				if got := w.buf.String(); got != tt.want {
					t.Errorf("got %s, want %s", abbrev(got), abbrev(tt.want))
				}
				if w.bad != "" {
					t.Error(w.bad)
				}
			})
		}
	}
}

// abbrev shortens long outputs in failure messages.
func abbrev(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q...(%d bytes)", s[:200], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// lineWriter records what it is given and checks that every Write is whole
// prefixed lines: it ends in a newline, each of its lines has a prefix, and
// a write of more than batchMax bytes is a single line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
	lines int
	bad   string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	n := bytes.Count(b, []byte("\n"))
	w.lines += n
	if w.bad == "" {
		switch {
		case len(b) == 0 || b[len(b)-1] != '\n':
			w.bad = fmt.Sprintf("write %d does not end a line: %s", w.calls, abbrev(string(b)))
		case len(b) > batchMax && n != 1:
			w.bad = fmt.Sprintf("write %d is %d bytes and %d lines: over batchMax, lines go one by one", w.calls, len(b), n)
		}
		for l := range strings.Lines(string(b)) {
			if !strings.Contains(l, " | ") && w.bad == "" {
				w.bad = fmt.Sprintf("write %d has a line without prefix: %s", w.calls, abbrev(l))
			}
		}
	}
	w.buf.Write(b)
	return len(b), nil
}

func TestPumpConcurrent(t *testing.T) {
	const pumps, lines = 8, 10000
	w := &lineWriter{}
	out := NewOutput(w)
	var wg sync.WaitGroup
	errs := make(chan error, 2*pumps)
	for i := range pumps {
		name := fmt.Sprintf("svc%d", i)
		pr, pw := io.Pipe()
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- out.Pump(name, pr)
		}()
		go func() {
			defer wg.Done()
			// Write in pieces that cut lines anywhere, sizes varying with i.
			var all bytes.Buffer
			for n := range lines {
				fmt.Fprintf(&all, "%s line %d %s\n", name, n, strings.Repeat("z", n%97))
			}
			b := all.Bytes()
			for step := 1 + i*37; len(b) > 0; step = step*7%4093 + 1 {
				k := min(step, len(b))
				if _, err := pw.Write(b[:k]); err != nil {
					errs <- err
					return
				}
				b = b[k:]
			}
			pw.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if w.bad != "" {
		t.Fatal(w.bad)
	}
	if w.lines != pumps*lines {
		t.Errorf("%d lines written, want %d", w.lines, pumps*lines)
	}
	t.Logf("%d lines in %d writes", w.lines, w.calls)
	next := make(map[string]int)
	for l := range strings.Lines(w.buf.String()) {
		name, rest, ok := strings.Cut(l, " | ")
		if !ok {
			t.Fatalf("line without prefix: %q", l)
		}
		n := next[name]
		want := fmt.Sprintf("%s line %d %s\n", name, n, strings.Repeat("z", n%97))
		if rest != want {
			t.Fatalf("%s: got %q, want %q", name, rest, want)
		}
		next[name] = n + 1
	}
	for i := range pumps {
		if name := fmt.Sprintf("svc%d", i); next[name] != lines {
			t.Errorf("%s: %d lines, want %d", name, next[name], lines)
		}
	}
}

type failWriter struct {
	err   error
	calls int
}

func (w *failWriter) Write(b []byte) (int, error) {
	w.calls++
	return 0, w.err
}

func TestPumpFailingWriter(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		wantCalls int
	}{
		// EPIPE is for good: only the first write is tried.
		{"EPIPE", syscall.EPIPE, 1},
		// Anything else (a full disk, say) may pass: every batch is tried,
		// four of these lines to a batch at most.
		{"ENOSPC", syscall.ENOSPC, 250},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &failWriter{err: tt.err}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- NewOutput(w).Pump("web", pr) }()
			// The service must be able to write all of its output: Pump keeps
			// draining although nothing can be written.
			line := strings.Repeat("a", 999) + "\n"
			for range 1000 {
				if _, err := io.WriteString(pw, line); err != nil {
					t.Fatal(err)
				}
			}
			pw.Close()
			err := <-done
			if !errors.Is(err, tt.err) {
				t.Errorf("Pump returned %v, want %v", err, tt.err)
			}
			if tt.wantCalls == 1 && w.calls != 1 || w.calls < tt.wantCalls {
				t.Errorf("%d writes, want %d (at least, for a batch of %d)", w.calls, tt.wantCalls, batchMax)
			}
		})
	}
}

func TestPumpReadError(t *testing.T) {
	boom := errors.New("boom")
	w := &lineWriter{}
	r := io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom))
	if err := NewOutput(w).Pump("web", r); !errors.Is(err, boom) {
		t.Errorf("Pump returned %v, want %v", err, boom)
	}
	if got, want := w.buf.String(), "web | a\nweb | b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPumpAllocations(t *testing.T) {
	in := strings.Repeat("some log line of a service\n", 10000)
	out := NewOutput(io.Discard)
	allocs := testing.AllocsPerRun(10, func() {
		out.Pump("web", strings.NewReader(in))
	})
	// The buffer and its growth, not one per line.
	if allocs > 10 {
		t.Errorf("%v allocations for 10000 lines", allocs)
	}
}

// TestPumpBatches: the lines of one read go out in writes of up to batchMax
// bytes, not one each, and vigil's stream still sees them all in order.
func TestPumpBatches(t *testing.T) {
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	w := &lineWriter{}
	if err := NewOutput(w).Pump("web", strings.NewReader(in.String())); err != nil {
		t.Fatal(err)
	}
	if w.bad != "" {
		t.Fatal(w.bad)
	}
	if w.lines != 1000 || w.calls > 1000*15/batchMax+2*((1000*15/(initialBuf-1))+1) {
		t.Errorf("%d lines in %d writes: not batched", w.lines, w.calls)
	}
	for i, l := range strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n") {
		if want := fmt.Sprintf("web | line %d", i); l != want {
			t.Fatalf("line %d: %q, want %q", i, l, want)
		}
	}
}

func BenchmarkPump(b *testing.B) {
	var in bytes.Buffer
	for i := 0; in.Len() < 1<<20; i++ {
		fmt.Fprintf(&in, "%d a typical log line of a service, %s\n", i, strings.Repeat("-", i%60))
	}
	data := in.Bytes()
	out := NewOutput(io.Discard)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := out.Pump("web", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPumpCarryStopsAtLineBoundary(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var got bytes.Buffer
	o := NewOutput(&got)
	done := make(chan []byte)
	go func() {
		left, _ := o.PumpCarry("svc", r, []byte("carried "))
		done <- left
	}()
	w.WriteString("half one\nwhole two\npartial thr")
	// Wait until the whole lines are out, then interrupt as a re-exec does.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(got2(o, &got), "whole two"); {
		if time.Now().After(deadline) {
			t.Fatal("lines not pumped")
		}
		time.Sleep(time.Millisecond)
	}
	r.SetReadDeadline(time.Now())
	left := <-done
	if string(left) != "partial thr" {
		t.Errorf("leftover %q", left)
	}
	if want := "svc | carried half one\nsvc | whole two\n"; got2(o, &got) != want {
		t.Errorf("output %q, want %q", got.String(), want)
	}
	// A new pump goes on with the leftover: the line arrives whole.
	r.SetReadDeadline(time.Time{})
	w.WriteString("ee\n")
	w.Close()
	if _, err := o.PumpCarry("svc", r, left); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got.String(), "svc | partial three\n") {
		t.Errorf("output %q", got.String())
	}
}

// got2 reads the buffer under the Output's lock.
func got2(o *Output, b *bytes.Buffer) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return b.String()
}

func TestPumpTee(t *testing.T) {
	exact := strings.Repeat("y", MaxLine)
	tests := []struct {
		name, prefix, in, want string
		tee                    []string
	}{
		{"no prefix", "", "a\nbb\n", "a\nbb\n", []string{"a", "bb"}},
		{"prefixed", "w | ", "a\n\nc", "w | a\nw | \nw | c\n", []string{"a", "", "c"}},
		{"CR kept", "", "a\r\n", "a\r\n", []string{"a\r"}},
		{"long line in chunks", "", exact + "z\n", exact + "\nz\n", []string{exact, "z"}},
		{"exact MaxLine: no empty line", "", exact + "\nq\n", exact + "\nq\n", []string{exact, "q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var got []string
			o := NewOutput(&out)
			left, teed, err := o.PumpTee(PumpOptions{Prefix: tt.prefix, Tee: func(l []byte, _ time.Time) { got = append(got, string(l)) }},
				iotest.OneByteReader(strings.NewReader(tt.in)), nil)
			if err != nil || left != nil || teed != 0 {
				t.Fatalf("left %q teed %d err %v", left, teed, err)
			}
			if out.String() != tt.want {
				t.Errorf("wrote %q, want %q", out.String(), tt.want)
			}
			if strings.Join(got, "|") != strings.Join(tt.tee, "|") || len(got) != len(tt.tee) {
				t.Errorf("tee %q, want %q", got, tt.tee)
			}
		})
	}
	// The lines a pump carried and teed already are written, not teed again.
	var out bytes.Buffer
	var got []string
	o := NewOutput(&out)
	_, _, err := o.PumpTee(PumpOptions{Tee: func(l []byte, _ time.Time) { got = append(got, string(l)) }, Teed: len("old\n")},
		strings.NewReader("new\n"), []byte("old\n"))
	if err != nil || out.String() != "old\nnew\n" || len(got) != 1 || got[0] != "new" {
		t.Errorf("carry: wrote %q, teed %q, err %v", out.String(), got, err)
	}
}
