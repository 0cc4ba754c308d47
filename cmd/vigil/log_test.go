package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-init/vigil/config"
	"golang.org/x/sys/unix"
)

func TestTextLog(t *testing.T) {
	var b strings.Builder
	log := slog.New(handlerFor(&b, "text", slog.LevelInfo, false))
	log.Info("started main", "pid", 12, "cmd", "sh -c x")
	log.With("svc", "web").Warn("exited", "status", 3)
	log.Debug("hidden")
	got := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(got) != 2 {
		t.Fatalf("lines %q", got)
	}
	if !strings.HasSuffix(got[0], ` vigil INFO started main pid=12 cmd="sh -c x"`) {
		t.Errorf("line %q", got[0])
	}
	if !strings.HasSuffix(got[1], ` vigil WARN exited svc=web status=3`) {
		t.Errorf("line %q", got[1])
	}
}

func TestJSONLog(t *testing.T) {
	var b strings.Builder
	slog.New(handlerFor(&b, "json", slog.LevelDebug, false)).Info("main exited", "status", 3)
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	if m["msg"] != "main exited" || m["status"] != 3.0 {
		t.Errorf("%v", m)
	}
}

// TestTextLogNeutralisesControls: logged values can come from a forged
// state file or a service; none may start a line of its own or reach a
// terminal as an escape sequence, in the message, a key or a value.
func TestTextLogNeutralisesControls(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string // the line's end
	}{
		{"value with newline", func(l *slog.Logger) { l.Info("x", "service", "a\n12:00:00.000 vigil INFO forged") }, `service="a\n12:00:00.000 vigil INFO forged"`},
		{"value with CR", func(l *slog.Logger) { l.Info("x", "service", "a\rb") }, `service="a\rb"`},
		{"value with ESC", func(l *slog.Logger) { l.Info("x", "service", "\x1b]0;pwned\x07") }, `service="\x1b]0;pwned\a"`},
		{"value with bidi override", func(l *slog.Logger) { l.Info("x", "service", "a\u202eb") }, `service="a\u202eb"`},
		{"invalid UTF-8", func(l *slog.Logger) { l.Info("x", "service", "a\xffb") }, `service="a\xffb"`},
		{"key with newline", func(l *slog.Logger) { l.Info("x", "k\nINFO", 1) }, `"k\nINFO"=1`},
		{"key with ESC", func(l *slog.Logger) { l.Info("x", "k\x1b[2J", 1) }, `"k\x1b[2J"=1`},
		{"message with newline and ESC", func(l *slog.Logger) { l.Info("bad\nline\x1b[31m\r") }, `INFO bad\nline\x1b[31m\r`},
		{"group", func(l *slog.Logger) { l.WithGroup("g\n").Info("x", "k", "v") }, `"g\n.k"=v`},
		{"with attrs", func(l *slog.Logger) { l.With("svc", "a\nb").Info("x") }, `svc="a\nb"`},
		{"plain stays plain", func(l *slog.Logger) { l.Info("started main", "pid", 12, "name", "web-1.a_b") }, `INFO started main pid=12 name=web-1.a_b`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tc.log(slog.New(handlerFor(&b, "text", slog.LevelInfo, false)))
			out := b.String()
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("not one line: %q", out)
			}
			line := strings.TrimSuffix(out, "\n")
			if strings.ContainsAny(line, "\r\x1b\x07\u202e") || !utf8.ValidString(line) {
				t.Errorf("control characters left: %q", line)
			}
			if !strings.HasSuffix(line, tc.want) {
				t.Errorf("line %q\nwant it to end in %q", line, tc.want)
			}
		})
	}
}

// TestOpenLogFile: the log file's directory may be writable by a service;
// vigil (often root) must not follow a link planted there, block on a FIFO
// or append to a file that is not its own.
func TestOpenLogFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	mustSymlink := func(old, new string) string {
		if err := os.Symlink(old, new); err != nil {
			t.Fatal(err)
		}
		return new
	}
	own := filepath.Join(dir, "own.log")
	if err := os.WriteFile(own, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "p")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	readFifo := filepath.Join(dir, "q")
	if err := unix.Mkfifo(readFifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(readFifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	linked := filepath.Join(dir, "linked")
	if err := os.WriteFile(linked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(linked, filepath.Join(dir, "linked2")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // "" = opens
	}{
		{"new file", filepath.Join(dir, "new.log"), ""},
		{"own file", own, ""},
		{"symlink to a missing file", mustSymlink(target, filepath.Join(dir, "link")), "symbolic link"},
		{"symlink to own file", mustSymlink(own, filepath.Join(dir, "link2")), "symbolic link"},
		{"FIFO without reader", fifo, "no such device"},
		{"FIFO with a reader", readFifo, "not a regular file"},
		{"directory", dir, "directory"},
		{"hard link", linked, "2 links"},
		{"missing directory", filepath.Join(dir, "no/such.log"), "no such file"},
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other.log")
		if err := os.WriteFile(other, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, path, want string }{"another uid's file", other, "owned by uid 65534"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				f   *os.File
				err error
			}
			done := make(chan result, 1)
			go func() {
				f, err := openLogFile(tc.path)
				done <- result{f, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("openLogFile blocked")
			}
			if tc.want == "" {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if _, err := r.f.WriteString("line\n"); err != nil {
					t.Fatal(err)
				}
				r.f.Close()
				return
			}
			if r.f != nil {
				r.f.Close()
			}
			if r.err == nil || !strings.Contains(strings.ToLower(r.err.Error()), tc.want) {
				t.Errorf("error %v, want %q", r.err, tc.want)
			}
		})
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("the symlink's target was created")
	}
	if data, _ := os.ReadFile(own); string(data) != "old\nline\n" {
		t.Errorf("own file holds %q: not appended to", data)
	}
}

// TestLogFileAfterReexec: after a re-exec, a log file that went bad must
// not kill the container; at the first start it stays a config error.
func TestLogFileAfterReexec(t *testing.T) {
	s := config.Default()
	s.LogFile = filepath.Join(t.TempDir(), "gone", "vigil.log")
	if _, _, err := newLogger(s, io.Discard, false); err == nil {
		t.Error("first start: no error for a log file that cannot be opened")
	}
	var stderr strings.Builder
	log, closer, err := newLogger(s, &stderr, true)
	if err != nil {
		t.Fatalf("after re-exec: %v", err)
	}
	defer closer.Close()
	log.Info("still here")
	out := stderr.String()
	if !strings.Contains(out, "stderr only") || !strings.Contains(out, "still here") {
		t.Errorf("stderr %q: want the fallback said and the log going on", out)
	}
}
