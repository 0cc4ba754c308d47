package state

import (
	"bytes"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFS is the real filesystem with faults injected on chosen operations:
// "lock", "read", "create", "chmod", "write", "sync", "close", "rename",
// "syncdir", "open". It counts calls, remembers which files were fsynced,
// and can hang every Write until released.
type fakeFS struct {
	real osFS

	mu      sync.Mutex
	faults  map[string]error
	calls   map[string]int
	syncs   map[string]int // file name -> Sync calls
	renames []time.Time    // successful renames onto state.json
	block   chan struct{}  // if set, Write waits until it is closed
	entered chan struct{}  // gets a value when a Write starts waiting
}

func newFakeFS() *fakeFS {
	return &fakeFS{faults: map[string]error{}, calls: map[string]int{}, syncs: map[string]int{}}
}

func (f *fakeFS) setFault(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.faults, op)
	} else {
		f.faults[op] = err
	}
}

// op counts a call and returns its injected fault.
func (f *fakeFS) op(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	return f.faults[name]
}

func (f *fakeFS) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeFS) writes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.renames...)
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

func (f *fakeFS) ReadFile(name string) ([]byte, error) {
	if err := f.op("read"); err != nil {
		return nil, pathErr("read", name, err)
	}
	return f.real.ReadFile(name)
}

func (f *fakeFS) CreateTemp(dir, pattern string) (file, error) {
	if err := f.op("create"); err != nil {
		return nil, pathErr("open", filepath.Join(dir, pattern), err)
	}
	r, err := f.real.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &fakeFile{file: r, fs: f}, nil
}

func (f *fakeFS) OpenFile(name string, flag int, perm fs.FileMode) (file, error) {
	if err := f.op("open"); err != nil {
		return nil, pathErr("open", name, err)
	}
	r, err := f.real.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &fakeFile{file: r, fs: f, inPlace: true}, nil
}

func (f *fakeFS) Rename(oldpath, newpath string) error {
	if err := f.op("rename"); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	if err := f.real.Rename(oldpath, newpath); err != nil {
		return err
	}
	if filepath.Base(newpath) == FileName {
		f.mu.Lock()
		f.renames = append(f.renames, time.Now())
		f.mu.Unlock()
	}
	return nil
}

func (f *fakeFS) Remove(name string) error                   { return f.real.Remove(name) }
func (f *fakeFS) Lstat(name string) (fs.FileInfo, error)     { return f.real.Lstat(name) }
func (f *fakeFS) ReadDir(name string) ([]fs.DirEntry, error) { return f.real.ReadDir(name) }

func (f *fakeFS) SyncDir(dir string) error {
	if err := f.op("syncdir"); err != nil {
		return pathErr("sync", dir, err)
	}
	return f.real.SyncDir(dir)
}

func (f *fakeFS) Lock(dir string) (io.Closer, error) {
	if err := f.op("lock"); err != nil {
		return nil, pathErr("open", dir, err)
	}
	return f.real.Lock(dir)
}

type fakeFile struct {
	file
	fs      *fakeFS
	inPlace bool
}

func (f *fakeFile) Chmod(mode fs.FileMode) error {
	if err := f.fs.op("chmod"); err != nil {
		return pathErr("chmod", f.Name(), err)
	}
	return f.file.Chmod(mode)
}

func (f *fakeFile) wait() {
	f.fs.mu.Lock()
	block, entered := f.fs.block, f.fs.entered
	f.fs.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-block
	}
}

func (f *fakeFile) Write(b []byte) (int, error) {
	f.wait()
	if err := f.fs.op("write"); err != nil {
		return 0, pathErr("write", f.Name(), err)
	}
	return f.file.Write(b)
}

func (f *fakeFile) WriteAt(b []byte, off int64) (int, error) {
	f.wait()
	if err := f.fs.op("write"); err != nil {
		return 0, pathErr("write", f.Name(), err)
	}
	return f.file.WriteAt(b, off)
}

func (f *fakeFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs[f.Name()]++
	f.fs.mu.Unlock()
	if err := f.fs.op("sync"); err != nil {
		return pathErr("sync", f.Name(), err)
	}
	if err := f.file.Sync(); err != nil {
		return err
	}
	if f.inPlace {
		f.fs.mu.Lock()
		f.fs.renames = append(f.fs.renames, time.Now())
		f.fs.mu.Unlock()
	}
	return nil
}

func (f *fakeFile) Close() error {
	if err := f.fs.op("close"); err != nil {
		f.file.Close()
		return pathErr("close", f.Name(), err)
	}
	return f.file.Close()
}

// logBuf collects a logger's lines; safe for the writer goroutine.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count counts lines at level (INFO, WARN, ERROR, DEBUG) containing substr.
func (l *logBuf) count(level, substr string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func newLog() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// fast are options with short times for tests.
func fast(fsys fsys) options {
	return options{fs: fsys, minInterval: 10 * time.Millisecond, backoffMin: 5 * time.Millisecond,
		backoffMax: 20 * time.Millisecond, closeWait: 2 * time.Second}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
