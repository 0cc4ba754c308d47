package supervise

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/supervise/svclog"
)

// logged is a machine whose services' output passes through pipes to
// nowhere.
func logged(t *testing.T, services ...config.Service) *machine {
	t.Helper()
	m := newMachine(t, Options{Stdout: proc.NewOutput(io.Discard), Stderr: proc.NewOutput(io.Discard)}, services...)
	t.Cleanup(func() {
		for _, svc := range m.s.order {
			for _, p := range svc.pumps {
				p.r.Close()
			}
		}
		m.s.pumps.waitFor(5 * time.Second)
		m.s.closeLogs()
	})
	return m
}

// call runs f, a verb, while the test plays the loop.
func (m *machine) call(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	for {
		select {
		case <-done:
			return
		case ev := <-m.s.events:
			m.s.handle(ev)
			m.s.checkWatchers()
		case <-time.After(10 * time.Second):
			m.t.Fatal("the verb did not return")
		}
	}
}

func prefixed(c *config.Service) { c.Log = config.LogPrefix }

func withFile(path string) func(*config.Service) {
	return func(c *config.Service) { c.LogFile = &config.LogFile{Path: path, MaxSize: 1 << 20, MaxFiles: 1} }
}

// TestLogReload: what a reload does to a service's log: a changed log_file
// is reopened without a restart; adding a log_file to inherit output
// restarts the service (its output must go through vigil's pipes); the
// ring is kept through both.
func TestLogReload(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	tests := []struct {
		name      string
		before    config.Service
		after     config.Service
		restarted bool
		file      string // the log file open after the reload, "" none
		ring      bool
	}{
		{"prefix, no file -> a file", svc("s", prefixed), svc("s", prefixed, withFile(a)), false, a, true},
		{"a file moved", svc("s", prefixed, withFile(a)), svc("s", prefixed, withFile(b)), false, b, true},
		{"a file dropped", svc("s", prefixed, withFile(a)), svc("s", prefixed), false, "", true},
		{"inherit gets a file", svc("s"), svc("s", withFile(a)), true, a, true},
		{"inherit loses its file", svc("s", withFile(a)), svc("s"), true, "", true},
		{"inherit stays inherit", svc("s"), svc("s"), false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := logged(t, tt.before)
			m.start()
			pid := m.s.byName["s"].pid
			var ring *svclog.Ring
			if l := m.s.byName["s"].log; l != nil {
				ring = l.ring
			}
			m.s.applyReload([]config.Service{tt.after})
			m.settle()
			if tt.restarted {
				m.exit("s", 143)
			}
			svc := m.s.byName["s"]
			if restarted := svc.pid != pid; restarted != tt.restarted {
				t.Errorf("restarted %v, want %v\n%s", restarted, tt.restarted, m.log)
			}
			if (svc.log != nil) != tt.ring {
				t.Fatalf("ring kept: %v, want %v", svc.log != nil, tt.ring)
			}
			if svc.log == nil {
				return
			}
			if ring != nil && svc.log.ring != ring {
				t.Error("the ring was replaced: its lines are lost")
			}
			file := ""
			if svc.log.rot.Load() != nil {
				file = svc.log.file.Path
			}
			if file != tt.file {
				t.Errorf("log file %q, want %q", file, tt.file)
			}
		})
	}
}

func TestLogsVerb(t *testing.T) {
	m := logged(t, svc("a", prefixed), svc("b", prefixed), svc("quiet"))
	m.start()
	t0 := time.Unix(2_000_000, 0)
	put := func(name string, sec int, text string) {
		m.s.byName[name].log.ring.Append(svclog.Line{Time: t0.Add(time.Duration(sec) * time.Second), Stream: svclog.Stdout, Text: text})
	}
	put("a", 1, "a1")
	put("b", 2, "b2")
	put("a", 3, "a3")
	put("b", 4, "b4")
	texts := func(lines []control.LogLine) string {
		var out []string
		for _, l := range lines {
			out = append(out, l.Service+":"+l.Text)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name  string
		req   control.LogsRequest
		want  string
		notes string
		err   string
	}{
		{"last lines of one", control.LogsRequest{Names: []string{"a"}, Lines: 1}, "a:a3", "", ""},
		{"merged by time", control.LogsRequest{Names: []string{"b", "a"}, Lines: 100}, "a:a1 b:b2 a:a3 b:b4", "", ""},
		{"n of each", control.LogsRequest{Names: []string{"a", "b"}, Lines: 1}, "a:a3 b:b4", "", ""},
		{"none", control.LogsRequest{Names: []string{"a"}, Lines: 0}, "", "", ""},
		{"since", control.LogsRequest{Names: []string{"a", "b"}, Lines: 100, Since: t0.Add(2 * time.Second)}, "a:a3 b:b4", "", ""},
		{"a service that keeps none", control.LogsRequest{Names: []string{"quiet", "a"}, Lines: 1}, "a:a3", "quiet: its output does not pass through vigil", ""},
		{"only services that keep none", control.LogsRequest{Names: []string{"quiet"}, Lines: 1}, "", "", "does not pass through vigil"},
		{"unknown", control.LogsRequest{Names: []string{"x"}, Lines: 1}, "", "", "unknown service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got control.LogBatch
			var err error
			m.call(func() {
				err = m.s.Logs(context.Background(), tt.req, func(b control.LogBatch) error {
					got.Lines = append(got.Lines, b.Lines...)
					got.Notes = append(got.Notes, b.Notes...)
					return nil
				})
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				if tt.err == "unknown service" && !errors.Is(err, ErrUnknown) {
					t.Errorf("%v is not ErrUnknown", err)
				}
				return
			}
			if err != nil || texts(got.Lines) != tt.want || !strings.Contains(strings.Join(got.Notes, "|"), tt.notes) {
				t.Errorf("lines %q notes %q err %v; want %q, %q", texts(got.Lines), got.Notes, err, tt.want, tt.notes)
			}
		})
	}

	// Following: new lines as they come, until the service is removed.
	batches := make(chan control.LogBatch, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- m.s.Logs(ctx, control.LogsRequest{Names: []string{"a"}, Lines: 1, Follow: true}, func(b control.LogBatch) error {
			batches <- b
			return nil
		})
	}()
	next := func() control.LogBatch {
		for {
			select {
			case b := <-batches:
				return b
			case ev := <-m.s.events:
				m.s.handle(ev)
			case <-time.After(10 * time.Second):
				t.Fatal("no batch")
			}
		}
	}
	if b := next(); texts(b.Lines) != "a:a3" {
		t.Fatalf("first batch %q", texts(b.Lines))
	}
	put("a", 5, "a5")
	if b := next(); texts(b.Lines) != "a:a5" {
		t.Fatalf("followed %q", texts(b.Lines))
	}
	m.s.applyReload([]config.Service{svc("b", prefixed), svc("quiet")})
	m.exit("a", 143)
	if b := next(); len(b.Notes) != 1 || !strings.Contains(b.Notes[0], "removed") {
		t.Fatalf("after removal: %+v", b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end when its only service was removed")
	}
}

// TestHandoffCarriesRings freezes a supervisor whose services keep lines
// and adopts its handoff in another: each ring comes over whole, and the
// log file is open again in the new image.
func TestHandoffCarriesRings(t *testing.T) {
	r := reaper.New(nil)
	defer r.Stop()
	file := filepath.Join(t.TempDir(), "f.log")
	services := []config.Service{
		crashLooper("p"), crashLooper("f"), crashLooper("quiet"),
	}
	services[0].Log = config.LogPrefix
	services[1].LogFile = &config.LogFile{Path: file, MaxSize: 1 << 20}
	old := testSupervisor(t, Options{Reaper: r, Services: services})
	t0 := time.Unix(3_000_000, 0)
	for _, name := range []string{"p", "f"} {
		old.openLog(old.byName[name], nil)
		for i := range 3 {
			old.byName[name].log.ring.Append(svclog.Line{Time: t0.Add(time.Duration(i)), Stream: svclog.Stderr, Text: name + strings.Repeat("!", i)})
		}
	}
	t.Cleanup(old.closeLogs)
	h, _, thaw := old.freeze()
	thaw()
	h = viaWire(t, h)

	s := testSupervisor(t, Options{Reaper: r, Handoff: &h})
	t.Cleanup(s.closeLogs)
	s.resume()
	for _, name := range []string{"p", "f"} {
		got, want := s.byName[name].log.ring.Last(-1), old.byName[name].log.ring.Last(-1)
		if len(got) != 3 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s's ring after the re-exec: %v, want %v", name, got, want)
		}
	}
	if l := s.byName["quiet"].log; l != nil {
		t.Errorf("quiet keeps a ring after the re-exec; its output never passed through vigil")
	}
	if l := s.byName["f"].log; l.rot.Load() == nil || l.file.Path != file {
		t.Errorf("f's log file is not open after the re-exec")
	}
}

// merge interleaves services by time but keeps each ring's own order: the
// stdout and stderr pumps time their reads apart, so a ring's lines need
// not be in time order.
func TestMergeKeepsEachRingsOrder(t *testing.T) {
	at := func(svc string, sec int, text string) control.LogLine {
		return control.LogLine{Service: svc, Time: time.Unix(int64(sec), 0), Text: text}
	}
	got := merge([][]control.LogLine{
		{at("a", 1, "a1"), at("a", 5, "a5"), at("a", 3, "a3 after a5"), at("a", 6, "a6")},
		{at("b", 2, "b2"), at("b", 4, "b4"), at("b", 7, "b7")},
	})
	var texts []string
	for _, l := range got {
		texts = append(texts, l.Text)
	}
	if want := "a1 b2 b4 a5 a3 after a5 a6 b7"; strings.Join(texts, " ") != want {
		t.Errorf("merged %q, want %q", strings.Join(texts, " "), want)
	}
}
