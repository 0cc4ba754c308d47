package svclog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logRec records log messages.
type logRec struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRec) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logRec) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRec) WithGroup(string) slog.Handler      { return l }
func (l *logRec) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// closeOK closes r and checks it ends in time.
func closeOK(t *testing.T, r *Rotator) {
	t.Helper()
	if err := r.Close(ctx30(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

var lineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) (stdout|stderr) (.*)$`)

// texts returns the text of each line of the files, oldest file first,
// failing on any line not in the format.
func texts(t *testing.T, files ...string) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s does not end with a whole line", f)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" && len(b) == 0 {
				continue
			}
			m := lineRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("%s: bad line %q", f, l)
			}
			out = append(out, m[3])
		}
	}
	return out
}

func TestRotatorWritesAndRotates(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
		lines    int
		want     []string // files that must exist
		gone     []string // files that must not
	}{
		{"no rotation needed", 3, 10, []string{"web.log"}, []string{"web.log.1"}},
		{"rotated, the oldest removed", 3, 2000, []string{"web.log", "web.log.1", "web.log.2", "web.log.3"}, []string{"web.log.4"}},
		{"max_files 0 keeps no rotated file", 0, 2000, []string{"web.log"}, []string{"web.log.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const maxSize = 4096
			r, err := OpenRotator(filepath.Join(dir, "web.log"), RotatorOptions{MaxSize: maxSize, MaxFiles: tc.maxFiles, UID: -1, GID: -1})
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for i := range tc.lines {
				text := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%40))
				all = append(all, text)
				s := Stdout
				if i%2 == 1 {
					s = Stderr
				}
				if !r.Write(Line{Time: time.Now(), Stream: s, Text: text}) {
					// The test's writer outpaces nothing: a drop here
					// would be a bug, the queue is 256 KiB.
					t.Fatalf("line %d dropped", i)
				}
				if i%500 == 0 {
					if err := r.Flush(ctx30(t)); err != nil {
						t.Fatal(err)
					}
				}
			}
			closeOK(t, r)
			for _, f := range tc.gone {
				if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s exists", f)
				}
			}
			var files []string
			for i := len(tc.want) - 1; i >= 0; i-- {
				p := filepath.Join(dir, tc.want[i])
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > maxSize {
					t.Errorf("%s: %d bytes, over max_size", tc.want[i], fi.Size())
				}
				files = append(files, p)
			}
			got := texts(t, files...)
			// The files hold the newest lines, in order, none missing.
			want := all[len(all)-len(got):]
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the files do not hold the last %d lines in order", len(got))
			}
			st := r.Stats()
			if st.Written != uint64(tc.lines) || st.Dropped != 0 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
			if (st.Rotations > 0) != (tc.lines > 100) {
				t.Errorf("%d rotations", st.Rotations)
			}
		})
	}
}

func TestRotatorFormat(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRotator(filepath.Join(dir, "a.log"), RotatorOptions{MaxSize: 1 << 20, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 13, 4, 5, 678_000_000, time.UTC)
	r.Write(Line{Time: at, Stream: Stdout, Text: "hello"})
	r.Write(Line{Time: at, Stream: Stderr, Text: ""})
	closeOK(t, r)
	b, _ := os.ReadFile(filepath.Join(dir, "a.log"))
	if want := "2026-12-02T13:04:05.678Z stdout hello\n2026-12-02T13:04:05.678Z stderr \n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
}

func TestRotatorALineOverMaxSizeGoesAlone(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRotator(filepath.Join(dir, "a.log"), RotatorOptions{MaxSize: 100, MaxFiles: 2, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Write(Line{Time: time.Now(), Stream: Stdout, Text: "short"})
	r.Write(Line{Time: time.Now(), Stream: Stdout, Text: strings.Repeat("L", 300)})
	r.Write(Line{Time: time.Now(), Stream: Stdout, Text: "after"})
	closeOK(t, r)
	got := texts(t, filepath.Join(dir, "a.log.2"), filepath.Join(dir, "a.log.1"), filepath.Join(dir, "a.log"))
	if len(got) != 3 || got[0] != "short" || len(got[1]) != 300 || got[2] != "after" {
		t.Errorf("got %q", got)
	}
}

func TestRotatorFileModeAndOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := t.TempDir()
	r, err := OpenRotator(filepath.Join(dir, "a.log"), RotatorOptions{MaxSize: 4096, MaxFiles: 1, UID: 1234, GID: 1235})
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for range 200 {
		r.Write(Line{Time: time.Now(), Stream: Stdout, Text: strings.Repeat("o", 50)})
	}
	closeOK(t, r)
	for _, f := range []string{"a.log", "a.log.1"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o640 || st.Uid != 1234 || st.Gid != 1235 {
			t.Errorf("%s: mode %v, owner %d:%d; want 0640 1234:1235", f, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
}

// TestRotatorHostileDirectory: what a service that can write the log
// directory may plant there is refused, and nothing outside is touched.
func TestRotatorHostileDirectory(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, target string)
		want  string
	}{
		{"a symbolic link", func(t *testing.T, dir, target string) {
			if err := os.Symlink(target, filepath.Join(dir, "web.log")); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"a hard link", func(t *testing.T, dir, target string) {
			if err := os.Link(target, filepath.Join(dir, "web.log")); err != nil {
				t.Fatal(err)
			}
		}, "links"},
		{"a FIFO (refused, not waited on)", func(t *testing.T, dir, _ string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "web.log"), 0o666); err != nil {
				t.Fatal(err)
			}
		}, "no such device or address"},
		{"a directory", func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(filepath.Join(dir, "web.log"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"a file of another user", func(t *testing.T, dir, _ string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			p := filepath.Join(dir, "web.log")
			if err := os.WriteFile(p, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 4321, 4321); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 4321"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(t.TempDir(), "precious")
			if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, dir, target)
			d, err := OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			_, _, err = d.Open("web.log", 1234, 1234)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: got %v, want an error with %q", err, tc.want)
			}
			logs := &logRec{}
			r := NewRotator(RotatorOptions{FS: d, Name: "web.log", MaxSize: 4096, UID: 1234, GID: 1234, Log: slog.New(logs), RetryEvery: time.Hour})
			for range 10 {
				r.Write(Line{Time: time.Now(), Stream: Stdout, Text: "x"})
				r.Flush(ctx30(t))
			}
			closeOK(t, r)
			if st := r.Stats(); st.Written != 0 || st.Dropped != 10 {
				t.Errorf("stats %+v", st)
			}
			if n := logs.count("ERROR"); n != 1 {
				t.Errorf("%d error logs, want 1", n)
			}
			b, _ := os.ReadFile(target)
			fi, _ := os.Stat(target)
			if string(b) != "keep\n" || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
				t.Errorf("the target was touched: %q", b)
			}
		})
	}
}

// fakeFS is an FS in memory whose failures the test sets.
type fakeFS struct {
	mu      sync.Mutex
	files   map[string]*bytes.Buffer
	opens   int
	openErr error
	room    int         // bytes the disk still takes; < 0 = unlimited
	gate    chan string // when set, each write waits for a receive
}

type fakeFile struct {
	fs  *fakeFS
	buf *bytes.Buffer
}

func newFakeFS() *fakeFS { return &fakeFS{files: map[string]*bytes.Buffer{}, room: -1} }

func (f *fakeFS) Open(name string, _, _ int) (File, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if f.openErr != nil {
		return nil, 0, &os.PathError{Op: "open", Path: name, Err: f.openErr}
	}
	b := f.files[name]
	if b == nil {
		b = &bytes.Buffer{}
		f.files[name] = b
	}
	return &fakeFile{f, b}, int64(b.Len()), nil
}

func (f *fakeFS) Rename(from, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[from]
	if !ok {
		return &os.PathError{Op: "rename", Path: from, Err: syscall.ENOENT}
	}
	delete(f.files, from)
	f.files[to] = b
	return nil
}

func (f *fakeFS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	}
	delete(f.files, name)
	return nil
}

func (f *fakeFS) setRoom(n int) {
	f.mu.Lock()
	f.room = n
	f.mu.Unlock()
}

func (w *fakeFile) Write(b []byte) (int, error) {
	if g := w.fs.gate; g != nil {
		g <- "write"
	}
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	if w.fs.room >= 0 && len(b) > w.fs.room {
		n := w.fs.room
		w.buf.Write(b[:n])
		w.fs.room = 0
		return n, syscall.ENOSPC
	}
	if w.fs.room >= 0 {
		w.fs.room -= len(b)
	}
	return w.buf.Write(b)
}

func (w *fakeFile) Close() error { return nil }

func TestRotatorFullDisk(t *testing.T) {
	fs := newFakeFS()
	fs.setRoom(1000)
	logs := &logRec{}
	r := NewRotator(RotatorOptions{FS: fs, Name: "web.log", MaxSize: 1 << 20, UID: -1, GID: -1, Log: slog.New(logs)})
	write := func(from, to int) {
		for i := from; i < to; i++ {
			r.Write(Line{Time: time.Now(), Stream: Stdout, Text: fmt.Sprintf("line %d", i)})
			if err := r.Flush(ctx30(t)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 100)
	st := r.Stats()
	if st.Dropped == 0 || st.Written == 0 || st.Written+st.Dropped != 100 || st.Errors == 0 {
		t.Errorf("disk full: stats %+v", st)
	}
	if n := logs.count("ERROR"); n != 1 {
		t.Errorf("%d error logs for a full disk, want 1", n)
	}
	fs.setRoom(-1) // space freed
	write(100, 110)
	closeOK(t, r)
	if n := logs.count("INFO log file writable again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	st = r.Stats()
	if st.Written+st.Dropped != 110 {
		t.Errorf("stats %+v: lines unaccounted for", st)
	}
	// The partial line the full disk cut is ended before the next
	// whole lines: every line after it is whole and in order.
	lines := strings.Split(strings.TrimSuffix(fs.files["web.log"].String(), "\n"), "\n")
	tail := lines[len(lines)-10:]
	for i, l := range tail {
		m := lineRE.FindStringSubmatch(l)
		if m == nil || m[3] != fmt.Sprintf("line %d", 100+i) {
			t.Fatalf("line after recovery %d: %q", i, l)
		}
	}
	if !lineRE.MatchString(lines[0]) {
		t.Errorf("first line %q", lines[0])
	}
}

func TestRotatorReadOnlyDisk(t *testing.T) {
	fs := newFakeFS()
	fs.openErr = syscall.EROFS
	logs := &logRec{}
	r := NewRotator(RotatorOptions{FS: fs, Name: "web.log", MaxSize: 4096, UID: -1, GID: -1, Log: slog.New(logs), RetryEvery: time.Hour})
	for i := range 1000 {
		r.Write(Line{Time: time.Now(), Stream: Stdout, Text: fmt.Sprint(i)})
	}
	if err := r.Flush(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	closeOK(t, r)
	if st := r.Stats(); st.Dropped != 1000 || st.Written != 0 || st.Errors != 1 {
		t.Errorf("stats %+v", st)
	}
	if fs.opens != 1 {
		t.Errorf("%d open attempts within RetryEvery, want 1", fs.opens)
	}
	if n := logs.count("ERROR cannot open"); n != 1 {
		t.Errorf("%d error logs, want 1", n)
	}
}

// TestRotatorNeverBlocks: with the disk stalled, Write returns at once and
// drops what the queue cannot hold; the counts add up once it moves again.
func TestRotatorNeverBlocks(t *testing.T) {
	fs := newFakeFS()
	fs.gate = make(chan string)
	r := NewRotator(RotatorOptions{FS: fs, Name: "web.log", MaxSize: 1 << 30, UID: -1, GID: -1, Queue: 4096})
	const n = 100000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			r.Write(Line{Time: time.Now(), Stream: Stdout, Text: fmt.Sprint("line ", i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Write blocked on a stalled disk")
	}
	if st := r.Stats(); st.Dropped == 0 {
		t.Errorf("a 4 KiB queue held %d lines of a stalled disk", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); err == nil {
		t.Error("Close returned at once with the writer stuck")
	}
	go func() {
		for range fs.gate {
		}
	}()
	if err := r.Close(ctx30(t)); err != nil {
		t.Fatal(err)
	}
	close(fs.gate)
	st := r.Stats()
	if st.Written+st.Dropped != n || st.Written == 0 {
		t.Errorf("stats %+v: want %d lines accounted for", st, n)
	}
}
