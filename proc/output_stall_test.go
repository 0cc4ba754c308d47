package proc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stream is one end of what vigil's stdout or stderr can be: a pipe or a
// socket, created blocking as a container runtime hands it over, so Go
// treats the writer as a plain blocking file.
type stream struct {
	name string
	make func(t *testing.T) (r, w *os.File)
	// shared: write to the description given, as when a non-root vigil
	// may not open its runtime's pipe again.
	shared bool
}

// output is NewOutput(w) for the stream.
func (st stream) output(t *testing.T, w *os.File) *Output {
	o := NewOutput(w)
	if !st.shared {
		return o
	}
	o.Close()
	if efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		o.wake = efd
	}
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { o.fd = int(fd) })
	o.keep, o.pollFirst = w, true
	return o
}

var streams = []stream{
	{"pipe", func(t *testing.T) (*os.File, *os.File) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	}, false},
	{"shared pipe", func(t *testing.T) (*os.File, *os.File) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	}, true},
	{"socket", func(t *testing.T) (*os.File, *os.File) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	}, false},
}

// fill writes to fd, set non-blocking, until it takes no more: the reader
// has stopped reading.
func fill(t *testing.T, fd int) {
	t.Helper()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 4095)
	chunk = append(chunk, '\n')
	for {
		if _, err := unix.Write(fd, chunk); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// within fails the test if f does not return in time.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s blocked for %s", what, d)
	}
}

// TestLogWriteNeverBlocks: when whatever reads vigil's stderr stops reading,
// vigil's own log lines are queued or dropped, never waited for, and once
// the reader is back they arrive with a count of the dropped ones.
func TestLogWriteNeverBlocks(t *testing.T) {
	for _, st := range streams {
		t.Run(st.name, func(t *testing.T) {
			r, w := st.make(t)
			defer r.Close()
			defer w.Close()
			o := st.output(t, w)
			wfd := int(w.Fd())
			fill(t, wfd)
			unix.SetNonblock(wfd, false)
			const total = 3 * logQueueLines
			within(t, 10*time.Second, "logging to a stalled stderr", func() {
				for i := range total {
					fmt.Fprintf(o, "vigil INFO line %d\n", i)
				}
			})
			// The reader is back.
			got := make(chan string)
			go func() {
				b, _ := io.ReadAll(r)
				got <- string(b)
			}()
			if !o.Flush(10 * time.Second) {
				t.Fatal("the queue did not drain once the reader was back")
			}
			w.Close()
			o.Close()
			out := <-got
			lines := 0
			next := 0
			for _, l := range strings.Split(out, "\n") {
				if n, ok := strings.CutPrefix(l, "vigil INFO line "); ok {
					k, _ := strconv.Atoi(n)
					if k < next {
						t.Fatalf("line %d after line %d", k, next-1)
					}
					next = k + 1
					lines++
				}
			}
			m := regexp.MustCompile(`vigil: (\d+) log lines dropped`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no report of dropped lines; %d of %d lines arrived", lines, total)
			}
			dropped, _ := strconv.Atoi(m[1])
			if lines+dropped != total || lines == 0 {
				t.Errorf("%d lines arrived and %d were reported dropped, of %d", lines, dropped, total)
			}
		})
	}
}

// TestOutputWaitsOnEAGAIN: a service with log: inherit shares vigil's
// stdout and stderr and may set O_NONBLOCK on that description, then flood
// it. vigil's lines, prefixed or its own, must wait for room, not be
// dropped on EAGAIN.
func TestOutputWaitsOnEAGAIN(t *testing.T) {
	for _, st := range streams {
		t.Run(st.name, func(t *testing.T) {
			r, w := st.make(t)
			defer r.Close()
			o := st.output(t, w)
			fill(t, int(w.Fd())) // leaves the shared description non-blocking
			const n = 2000
			var in strings.Builder
			for i := range n {
				fmt.Fprintf(&in, "line %d\n", i)
			}
			pumped := make(chan error, 1)
			go func() { pumped <- o.Pump("svc", strings.NewReader(in.String())) }()
			for i := range logQueueLines / 2 {
				fmt.Fprintf(o, "vigil INFO own %d\n", i)
			}
			got := make(chan string)
			go func() {
				b, _ := io.ReadAll(r)
				got <- string(b)
			}()
			if err := <-pumped; err != nil {
				t.Fatalf("pump: %v", err)
			}
			if !o.Flush(10 * time.Second) {
				t.Fatal("log queue not drained")
			}
			w.Close()
			o.Close()
			out := <-got
			next, own := 0, 0
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				switch {
				case strings.HasPrefix(l, "svc | line "):
					if l != "svc | line "+strconv.Itoa(next) {
						t.Fatalf("%q after line %d", l, next-1)
					}
					next++
				case strings.HasPrefix(l, "vigil INFO own "):
					own++
				case strings.Trim(l, "x") == "":
				default:
					t.Fatalf("torn line %q", l)
				}
			}
			if next != n || own != logQueueLines/2 {
				t.Errorf("%d of %d prefixed lines and %d of %d own lines arrived", next, n, own, logQueueLines/2)
			}
		})
	}
}

// TestPumpInterrupt: a pump waiting for a reader that does not read is
// ended by Interrupt and hands over everything it took in but did not
// write, so that a new pump carrying it on writes every line once.
func TestPumpInterrupt(t *testing.T) {
	for _, st := range streams {
		t.Run(st.name, func(t *testing.T) {
			out, w := st.make(t)
			defer out.Close()
			o := st.output(t, w)
			fill(t, int(w.Fd()))
			unix.SetNonblock(int(w.Fd()), false)
			sr, sw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer sr.Close()
			const n = 3000
			wrote := make(chan int)
			go func() {
				var b strings.Builder
				for i := range n {
					fmt.Fprintf(&b, "line %d\n", i)
					if i == n/2 {
						b.WriteString("a partial ")
					}
				}
				b.WriteString("last without end")
				sw.WriteString(b.String())
				// sw stays open: the service is still running.
				wrote <- b.Len()
			}()
			type res struct {
				left []byte
				teed int
				err  error
			}
			// Every line reaches the tee (a service's ring and log file)
			// once, across the interruption as across a re-exec.
			var teed []string
			tee := func(l []byte, _ time.Time) { teed = append(teed, string(l)) }
			done := make(chan res, 1)
			go func() {
				left, n, err := o.PumpTee(PumpOptions{Prefix: "svc | ", Tee: tee}, sr, nil)
				done <- res{left, n, err}
			}()
			// Once the pump has taken some in (and so waits to write it),
			// stop it as a re-exec does.
			total := <-wrote
			waitFor(t, "the pump to read", func() bool { return pipeBytes(t, sr) < total })
			sr.SetReadDeadline(time.Now())
			o.Interrupt()
			var got res
			within(t, 10*time.Second, "an interrupted pump", func() { got = <-done })
			if got.err == nil || !strings.Contains(got.err.Error(), ErrInterrupted.Error()) {
				t.Fatalf("err %v, want ErrInterrupted", got.err)
			}
			o.Resume()
			// The new image's pump goes on with the leftover, the reader is
			// back.
			all := make(chan string)
			go func() {
				b, _ := io.ReadAll(out)
				all <- string(b)
			}()
			sw.Close()
			sr.SetReadDeadline(time.Time{})
			if _, _, err := o.PumpTee(PumpOptions{Prefix: "svc | ", Tee: tee, Teed: got.teed}, sr, got.left); err != nil {
				t.Fatal(err)
			}
			w.Close()
			o.Close()
			next := 0
			for _, l := range strings.Split(strings.TrimSuffix(<-all, "\n"), "\n") {
				if strings.Trim(l, "x") == "" {
					continue
				}
				if want := lineText(next, n); l != want {
					t.Fatalf("%q, want %q", l, want)
				}
				next++
			}
			if next != n+1 {
				t.Errorf("%d of %d lines", next, n+1)
			}
			if len(teed) != n+1 {
				t.Fatalf("tee got %d lines, want %d", len(teed), n+1)
			}
			for i, l := range teed {
				if want := strings.TrimPrefix(lineText(i, n), "svc | "); l != want {
					t.Fatalf("tee line %d: %q, want %q", i, l, want)
				}
			}
		})
	}
}

// lineText is line i of TestPumpInterrupt's n as written out.
func lineText(i, n int) string {
	switch i {
	case n/2 + 1:
		return "svc | a partial line " + strconv.Itoa(i)
	case n:
		return "svc | last without end"
	}
	return "svc | line " + strconv.Itoa(i)
}

// pipeBytes is how much the pipe holds, without making r blocking (Fd
// would).
func pipeBytes(t *testing.T, r *os.File) int {
	t.Helper()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond, which is observable only from outside, until it
// holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
