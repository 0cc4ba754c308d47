package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snap is a state in which service "web" has n retries.
func snap(n int) File {
	return File{Version: Version, Updated: t0, Services: map[string]Service{
		"web": {Status: "backoff", Retries: n, Restarts: n, LastExit: intp(1)},
		"db":  {Status: "ready", Pid: 10},
	}}
}

func onDisk(t *testing.T, dir string) File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(data)
	if err != nil {
		t.Fatalf("state file on disk: %v\n%s", err, data)
	}
	return f
}

func retriesOnDisk(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return -1
	}
	f, err := Decode(data)
	if err != nil {
		return -2
	}
	return f.Services["web"].Retries
}

// noTemps fails if a temporary file was left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func writeState(t *testing.T, dir string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func openT(t *testing.T, dir string, o options) (*Store, *logBuf) {
	t.Helper()
	log, lb := newLog()
	s, err := open(dir, log, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

func flush(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing file is an empty state", func(t *testing.T) {
		s, lb := openT(t, t.TempDir(), fast(osFS{}))
		if f := s.Load(); f.Version != Version || f.Services == nil || len(f.Services) != 0 {
			t.Fatalf("Load = %+v", f)
		}
		if lb.String() != "" {
			t.Fatalf("unexpected log: %s", lb)
		}
	})
	t.Run("valid file is loaded", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(sample()))
		s, _ := openT(t, dir, fast(osFS{}))
		if got := s.Load(); !equal(got, sample()) {
			t.Fatalf("Load = %s", Encode(got))
		}
	})
	t.Run("Load gives a copy", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(sample()))
		s, _ := openT(t, dir, fast(osFS{}))
		f := s.Load()
		*f.Services["web"].LastExit = 7
		delete(f.Services, "db")
		if !equal(s.Load(), sample()) {
			t.Fatal("changing Load's result changed the store")
		}
	})

	valid := string(Encode(sample()))
	corrupt := []struct{ name, doc string }{
		{"empty file", ""},
		{"truncated JSON", valid[:len(valid)/3]},
		{"garbage", "\x7fELF\x02\x01"},
		{"wrong version", `{"version":99,"services":{}}`},
		{"version missing", `{"services":{"web":{"retries":3}}}`},
		{"trailing garbage", valid + "}"},
		{"negative retries", `{"version":1,"services":{"web":{"retries":-3}}}`},
	}
	stamp := regexp.MustCompile(`^state\.json\.corrupt-\d{8}T\d{6}Z$`)
	for _, tt := range corrupt {
		t.Run("corrupt file is moved aside and the state starts fresh: "+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeState(t, dir, []byte(tt.doc))
			s, lb := openT(t, dir, fast(osFS{}))
			if f := s.Load(); len(f.Services) != 0 || f.Version != Version {
				t.Fatalf("Load = %+v, want a fresh state", f)
			}
			if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("state.json still there: %v", err)
			}
			matches, _ := filepath.Glob(filepath.Join(dir, FileName+".corrupt-*"))
			if len(matches) != 1 || !stamp.MatchString(filepath.Base(matches[0])) {
				t.Fatalf("moved-aside files: %v", matches)
			}
			if data, _ := os.ReadFile(matches[0]); string(data) != tt.doc {
				t.Fatalf("moved-aside content changed: %q", data)
			}
			if lb.count("ERROR", "moved it aside") != 1 {
				t.Fatalf("want one error line, log:\n%s", lb)
			}
		})
	}

	t.Run("unreadable file is moved aside", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(sample()))
		ffs := newFakeFS()
		ffs.setFault("read", syscall.EIO)
		s, lb := openT(t, dir, fast(ffs))
		if len(s.Load().Services) != 0 || lb.count("ERROR", "moved it aside") != 1 {
			t.Fatalf("Load = %+v, log:\n%s", s.Load(), lb)
		}
	})
	t.Run("a second corrupt file in the same second gets its own name", func(t *testing.T) {
		dir := t.TempDir()
		s := &Store{path: filepath.Join(dir, FileName), file: filepath.Join(dir, FileName), o: fast(osFS{})}
		now := time.Date(2026, 11, 26, 3, 15, 0, 0, time.UTC)
		first := s.asideName(now)
		if filepath.Base(first) != "state.json.corrupt-20261126T031500Z" {
			t.Fatalf("aside name %s", first)
		}
		os.WriteFile(first, nil, 0o600)
		if second := s.asideName(now); second != first+"-2" {
			t.Fatalf("second aside name %s", second)
		}
	})
	t.Run("temporary files of a dead vigil are removed", func(t *testing.T) {
		dir := t.TempDir()
		stale := filepath.Join(dir, tempPrefix+"12345")
		os.WriteFile(stale, []byte("{"), 0o600)
		openT(t, dir, fast(osFS{}))
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale temp file still there: %v", err)
		}
	})
}

func TestSave(t *testing.T) {
	t.Run("snapshot reaches the disk with mode 0600 whatever the umask", func(t *testing.T) {
		for _, umask := range []int{0, 0o022, 0o077, 0o777} {
			old := syscall.Umask(umask)
			dir := t.TempDir()
			os.Chmod(dir, 0o700) // t.TempDir follows the umask
			s, _ := openT(t, dir, fast(osFS{}))
			s.Save(snap(3))
			flush(t, s)
			syscall.Umask(old)
			fi, err := os.Stat(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("umask %03o: mode %v", umask, fi.Mode().Perm())
			}
			if retriesOnDisk(dir) != 3 {
				t.Errorf("umask %03o: state on disk %d", umask, retriesOnDisk(dir))
			}
			noTemps(t, dir)
		}
	})
	t.Run("Save copies the snapshot", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir, fast(osFS{}))
		f := snap(1)
		s.Save(f)
		f.Services["web"] = Service{Retries: 99}
		flush(t, s)
		if retriesOnDisk(dir) != 1 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
	})
	t.Run("zero Updated is set", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir, fast(osFS{}))
		before := time.Now()
		s.Save(File{Services: map[string]Service{"a": {}}})
		flush(t, s)
		if u := onDisk(t, dir).Updated; u.Before(before.Add(-time.Second)) {
			t.Fatalf("updated = %v", u)
		}
	})
	t.Run("a burst of 1000 saves makes few writes and the last one is on disk", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		o := fast(ffs)
		o.minInterval = MinInterval
		s, _ := openT(t, dir, o)
		start := time.Now()
		for i := 1; i <= 1000; i++ {
			s.Save(snap(i))
		}
		burst := time.Since(start)
		eventually(t, "the last snapshot on disk", func() bool { return retriesOnDisk(dir) == 1000 })
		time.Sleep(2 * MinInterval)
		// One write at once, one per MinInterval while the burst lasts (a
		// few ms; more on a loaded machine), one for the end of the burst.
		if n, most := len(ffs.writes()), 2+int(burst/MinInterval); n > most {
			t.Fatalf("%d writes for a burst of %v, want at most %d", n, burst, most)
		}
		noTemps(t, dir)
	})
	t.Run("steady saves are spaced at least MinInterval apart", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		o := fast(ffs)
		o.minInterval = 50 * time.Millisecond
		s, _ := openT(t, dir, o)
		end := time.Now().Add(500 * time.Millisecond)
		n := 0
		for time.Now().Before(end) {
			n++
			s.Save(snap(n))
			time.Sleep(time.Millisecond)
		}
		eventually(t, "the last snapshot on disk", func() bool { return retriesOnDisk(dir) == n })
		w := ffs.writes()
		if len(w) > 500/50+2 {
			t.Fatalf("%d writes in 500 ms", len(w))
		}
		for i := 1; i < len(w); i++ {
			if d := w[i].Sub(w[i-1]); d < o.minInterval {
				t.Fatalf("writes %d and %d only %v apart", i-1, i, d)
			}
		}
	})
	t.Run("Save never blocks on a hung disk", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		ffs.block = make(chan struct{})
		ffs.entered = make(chan struct{}, 10)
		s, _ := openT(t, dir, fast(ffs))
		s.Save(snap(1))
		select {
		case <-ffs.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the writer never started")
		}
		start := time.Now()
		for i := 2; i <= 1000; i++ {
			s.Save(snap(i))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("1000 Saves took %v with the disk hung", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Flush on a hung disk = %v", err)
		}
		close(ffs.block)
		flush(t, s)
		if retriesOnDisk(dir) != 1000 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
	})
	t.Run("Flush with nothing saved returns at once", func(t *testing.T) {
		s, _ := openT(t, t.TempDir(), fast(osFS{}))
		flush(t, s)
	})
	t.Run("Close flushes, releases the lock and later Saves are dropped", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir, fast(osFS{}))
		s.Save(snap(5))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if retriesOnDisk(dir) != 5 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
		s.Save(snap(6))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, _ := openT(t, dir, fast(osFS{}))
		if s2.Load().Services["web"].Retries != 5 {
			t.Fatalf("reopened: %+v", s2.Load())
		}
	})
	t.Run("nil store persists nothing and does not fail", func(t *testing.T) {
		var s *Store
		s.Save(snap(1))
		if f := s.Load(); f.Services == nil || f.Version != Version {
			t.Fatalf("Load = %+v", f)
		}
		if s.Flush(context.Background()) != nil || s.Close() != nil {
			t.Fatal("nil store failed")
		}
	})
}

func TestLock(t *testing.T) {
	t.Run("a second Open on the same directory gets ErrLocked", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Open(dir, nil)
		if !errors.Is(err, ErrLocked) || s2 != nil {
			t.Fatalf("second Open = %v, %v", s2, err)
		}
		if err := Reset(dir, nil); !errors.Is(err, ErrLocked) {
			t.Fatalf("Reset while open = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s3, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("Open after Close: %v", err)
		}
		s3.Close()
	})
	t.Run("the lock of a directory only vigil can read leaves no file behind", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o700)
		s, _ := openT(t, dir, fast(osFS{}))
		s.Close()
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files left: %v", entries)
		}
	})
	t.Run("a directory taken late by another vigil turns persistence off", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "vol")
		s, lb := openT(t, dir, fast(osFS{}))
		os.Mkdir(dir, 0o700)
		other, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		s.Save(snap(1))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, ErrLocked) {
			t.Fatalf("Flush = %v", err)
		}
		s.Save(snap(2))
		if err := s.Flush(ctx); !errors.Is(err, ErrLocked) {
			t.Fatalf("second Flush = %v", err)
		}
		if lb.count("ERROR", "without persistence") != 1 {
			t.Fatalf("log:\n%s", lb)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("wrote into a directory another vigil holds")
		}
	})
}

// TestVolumeErrors drives each failure of the volume through a fake: the
// problem is logged once, the state stays in memory, the old file and no
// temporary file are left, and recovery is logged once when the fault goes.
func TestVolumeErrors(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		err   error
		retry string // the operation that repeats on each retry
	}{
		{"full volume: write fails with ENOSPC", "write", syscall.ENOSPC, "write"},
		{"read-only volume: create fails with EROFS", "create", syscall.EROFS, "create"},
		{"fsync fails with EIO", "sync", syscall.EIO, "sync"},
		{"close fails with EIO", "close", syscall.EIO, "close"},
		{"rename fails with EIO", "rename", syscall.EIO, "rename"},
		{"directory fsync fails with EIO", "syncdir", syscall.EIO, "syncdir"},
		{"fchmod fails with EPERM", "chmod", syscall.EPERM, "chmod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			old := Encode(snap(0))
			writeState(t, dir, old)
			ffs := newFakeFS()
			ffs.setFault(tt.op, tt.err)
			s, lb := openT(t, dir, fast(ffs))
			s.Save(snap(1))
			eventually(t, "retries", func() bool { return ffs.count(tt.retry) >= 4 })
			s.Save(snap(2))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Flush(ctx); !errors.Is(err, tt.err) {
				t.Fatalf("Flush = %v, want %v", err, tt.err)
			}
			if n := lb.count("WARN", "cannot write the state file"); n != 1 {
				t.Fatalf("%d warnings, want 1; log:\n%s", n, lb)
			}
			if tt.op != "syncdir" { // after a rename the new file is there
				if data, _ := os.ReadFile(filepath.Join(dir, FileName)); string(data) != string(old) {
					t.Fatalf("old state file changed:\n%s", data)
				}
			}
			noTemps(t, dir)

			ffs.setFault(tt.op, nil)
			eventually(t, "recovery", func() bool { return retriesOnDisk(dir) == 2 })
			eventually(t, "recovery logged", func() bool { return lb.count("INFO", "writable again") == 1 })
			s.Save(snap(3))
			flush(t, s)
			if lb.count("WARN", "") != 1 || lb.count("INFO", "writable again") != 1 {
				t.Fatalf("log:\n%s", lb)
			}
			noTemps(t, dir)
		})
	}

	t.Run("a failed fsync is never retried on the same file", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		ffs.setFault("sync", syscall.EIO)
		s, _ := openT(t, dir, fast(ffs))
		s.Save(snap(1))
		eventually(t, "retries", func() bool { return ffs.count("sync") >= 4 })
		ffs.setFault("sync", nil)
		flush(t, s)
		ffs.mu.Lock()
		defer ffs.mu.Unlock()
		if len(ffs.syncs) < 5 {
			t.Fatalf("fsynced %d files", len(ffs.syncs))
		}
		for name, n := range ffs.syncs {
			if n != 1 {
				t.Errorf("%s fsynced %d times", name, n)
			}
		}
	})
	t.Run("a second episode is logged again", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		s, lb := openT(t, dir, fast(ffs))
		for i := 1; i <= 2; i++ {
			ffs.setFault("write", syscall.ENOSPC)
			s.Save(snap(i))
			eventually(t, "warning", func() bool { return lb.count("WARN", "cannot write") == i })
			ffs.setFault("write", nil)
			eventually(t, "recovery", func() bool { return lb.count("INFO", "writable again") == i })
		}
		if retriesOnDisk(dir) != 2 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
	})
	t.Run("backoff doubles up to its cap", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		ffs.setFault("create", syscall.EROFS)
		o := fast(ffs)
		o.backoffMin, o.backoffMax = 20*time.Millisecond, 80*time.Millisecond
		s, _ := openT(t, dir, o)
		s.Save(snap(1))
		time.Sleep(500 * time.Millisecond)
		// 0, 20, 60, 140, 220, 300, 380, 460 ms: about 8 attempts, far from
		// the 25 of a fixed 20 ms or the 50 of MinInterval.
		if n := ffs.count("create"); n < 3 || n > 11 {
			t.Fatalf("%d attempts in 500 ms", n)
		}
	})
	t.Run("Flush tries again at once during a backoff", func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFakeFS()
		ffs.setFault("create", syscall.EROFS)
		o := fast(ffs)
		o.backoffMin, o.backoffMax = time.Hour, time.Hour
		s, _ := openT(t, dir, o)
		s.Save(snap(1))
		eventually(t, "first attempt", func() bool { return ffs.count("create") == 1 })
		ffs.setFault("create", nil)
		flush(t, s)
		if retriesOnDisk(dir) != 1 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
	})
	t.Run("missing directory: memory kept, written once it appears", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "vol")
		s, lb := openT(t, dir, fast(osFS{}))
		if len(s.Load().Services) != 0 || lb.count("WARN", "state directory unusable") != 1 {
			t.Fatalf("Load = %+v, log:\n%s", s.Load(), lb)
		}
		s.Save(snap(1))
		time.Sleep(50 * time.Millisecond)
		s.Save(snap(2))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Flush = %v", err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		eventually(t, "recovery", func() bool { return retriesOnDisk(dir) == 2 })
		eventually(t, "recovery logged", func() bool { return lb.count("INFO", "writable again") == 1 })
		if lb.count("WARN", "") != 1 {
			t.Fatalf("log:\n%s", lb)
		}
		if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
			t.Fatalf("the lock was not taken when the directory appeared: %v", err)
		}
	})
	t.Run("rename EBUSY: the bind-mounted file is written in place", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(snap(0)))
		ffs := newFakeFS()
		ffs.setFault("rename", syscall.EBUSY)
		s, lb := openT(t, dir, fast(ffs))
		for i := 1; i <= 3; i++ {
			s.Save(snap(i))
			flush(t, s)
			if retriesOnDisk(dir) != i {
				t.Fatalf("state on disk %d, want %d", retriesOnDisk(dir), i)
			}
		}
		if n := ffs.count("rename"); n != 1 {
			t.Fatalf("%d renames tried; after the first EBUSY none should be", n)
		}
		if lb.count("WARN", "single bind-mounted file") != 1 || lb.count("WARN", "cannot write") != 0 {
			t.Fatalf("log:\n%s", lb)
		}
		noTemps(t, dir)
	})
}

func TestReset(t *testing.T) {
	base := File{Version: Version, Updated: t0, Services: map[string]Service{
		"web":    {Status: "given-up", Retries: 4, GivenUp: true, Restarts: 4, LastExit: intp(1)},
		"db":     {Status: "backoff", Retries: 2, Restarts: 7},
		"worker": {Status: "ready", Retries: 0},
	}}
	cleared := func(f File, names ...string) File {
		f = clone(f)
		for _, n := range names {
			s := f.Services[n]
			s.Retries, s.GivenUp = 0, false
			f.Services[n] = s
		}
		return f
	}
	tests := []struct {
		name    string
		names   []string
		want    File
		wantErr error
	}{
		{"named services are cleared, others kept", []string{"web"}, cleared(base, "web"), nil},
		{"several names", []string{"web", "db"}, cleared(base, "web", "db"), nil},
		{"no names clears every service", nil, cleared(base, "web", "db", "worker"), nil},
		{"an unknown name is an error and changes nothing", []string{"web", "nope"}, base, ErrUnknown},
		{"a name with nothing to clear leaves the file alone", []string{"worker"}, base, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeState(t, dir, Encode(base))
			before, _ := os.Stat(filepath.Join(dir, FileName))
			err := Reset(dir, tt.names)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Reset = %v, want %v", err, tt.wantErr)
			}
			got := onDisk(t, dir)
			got.Updated = t0
			if !equal(got, tt.want) {
				t.Fatalf("after Reset:\n%s\nwant\n%s", Encode(got), Encode(tt.want))
			}
			after, _ := os.Stat(filepath.Join(dir, FileName))
			if changed := !os.SameFile(before, after); changed != !equal(base, tt.want) {
				t.Fatalf("file rewritten = %v", changed)
			}
			if after.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", after.Mode().Perm())
			}
			noTemps(t, dir)
		})
	}
	t.Run("missing file: nothing to reset", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o700) // a directory others can read gets a lock file
		if err := Reset(dir, []string{"web"}); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files created: %v", entries)
		}
	})
	t.Run("missing directory: nothing to reset", func(t *testing.T) {
		if err := Reset(filepath.Join(t.TempDir(), "none"), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a corrupt file is an error and is left alone", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, []byte("{garbage"))
		if err := Reset(dir, nil); err == nil || errors.Is(err, ErrUnknown) {
			t.Fatalf("Reset = %v", err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, FileName)); string(data) != "{garbage" {
			t.Fatalf("file changed: %q", data)
		}
	})
	t.Run("a read-only volume is an error", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(base))
		ffs := newFakeFS()
		ffs.setFault("create", syscall.EROFS)
		if err := reset(ffs, dir, nil); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("reset = %v", err)
		}
		noTemps(t, dir)
	})
	t.Run("a bind-mounted file is rewritten in place", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, Encode(base))
		ffs := newFakeFS()
		ffs.setFault("rename", syscall.EBUSY)
		if err := reset(ffs, dir, []string{"web"}); err != nil {
			t.Fatal(err)
		}
		if f := onDisk(t, dir); f.Services["web"].GivenUp || f.Services["db"].Retries != 2 {
			t.Fatalf("after reset: %s", Encode(f))
		}
		noTemps(t, dir)
	})
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "vigil-state")
	defer os.RemoveAll(dir)
	s, err := Open(dir, nil)
	if err != nil { // ErrLocked: run without persistence
		fmt.Println(err)
	}
	f := s.Load()
	f.Services["web"] = Service{Status: "backoff", Retries: 1}
	s.Save(f)
	if err := s.Close(); err != nil {
		fmt.Println(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	g, _ := Decode(data)
	fmt.Println(g.Services["web"].Retries)
	// Output: 1
}
