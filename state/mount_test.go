package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests use real mounts (root only; skipped where mounting fails).

func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	// A tmpfs root is 1777 unless told: a volume others could write, where
	// vigil would keep its files in a private directory; these tests are
	// about read-only and full volumes, not neighbours.
	opts += ",mode=0700"
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

func remount(t *testing.T, dir string, flags uintptr, opts string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|flags, opts+",mode=0700"); err != nil {
		t.Fatalf("remount %s: %v", dir, err)
	}
}

func TestRealVolumes(t *testing.T) {
	t.Run("read-only tmpfs: state loaded, EROFS logged once, recovery when writable", func(t *testing.T) {
		dir := t.TempDir()
		mountTmpfs(t, dir, "size=1m")
		writeState(t, dir, Encode(snap(4)))
		remount(t, dir, unix.MS_RDONLY, "size=1m")

		s, lb := openT(t, dir, fast(osFS{}))
		if s.Load().Services["web"].Retries != 4 {
			t.Fatalf("Load = %+v", s.Load())
		}
		s.Save(snap(5))
		time.Sleep(50 * time.Millisecond)
		s.Save(snap(6))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("Flush = %v", err)
		}
		// Flush returns as soon as the attempt failed; the log line follows.
		eventually(t, "the warning", func() bool { return lb.count("WARN", "cannot write the state file") > 0 })
		if lb.count("WARN", "cannot write the state file") != 1 {
			t.Fatalf("log:\n%s", lb)
		}
		if retriesOnDisk(dir) != 4 {
			t.Fatalf("state on disk %d", retriesOnDisk(dir))
		}
		remount(t, dir, 0, "size=1m")
		eventually(t, "recovery", func() bool { return retriesOnDisk(dir) == 6 })
		eventually(t, "recovery logged", func() bool { return lb.count("INFO", "writable again") == 1 })
		noTemps(t, dir)
	})

	t.Run("read-only tmpfs from the start: a fresh mount is still locked and read", func(t *testing.T) {
		dir := t.TempDir()
		mountTmpfs(t, dir, "ro,size=1m")
		s, _ := openT(t, dir, fast(osFS{}))
		if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only directory not locked: %v", err)
		}
		s.Save(snap(1))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("Flush = %v", err)
		}
	})

	t.Run("full tmpfs: ENOSPC logged once, old file intact, no temp file, recovery", func(t *testing.T) {
		dir := t.TempDir()
		mountTmpfs(t, dir, "size=64k")
		old := Encode(snap(1))
		writeState(t, dir, old)
		filler := filepath.Join(dir, "filler")
		fill(t, filler)

		s, lb := openT(t, dir, fast(osFS{}))
		big := snap(2)
		for i := range 50 {
			big.Services[string(rune('a'+i%26))+string(rune('a'+i/26))] = Service{Status: "ready"}
		}
		s.Save(big)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Flush(ctx); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Flush = %v", err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, FileName)); string(data) != string(old) {
			t.Fatalf("old state file changed:\n%s", data)
		}
		noTemps(t, dir)
		// Flush returns as soon as the attempt failed; the log line follows.
		eventually(t, "the warning", func() bool { return lb.count("WARN", "cannot write the state file") > 0 })
		if lb.count("WARN", "cannot write the state file") != 1 {
			t.Fatalf("log:\n%s", lb)
		}
		os.Remove(filler)
		eventually(t, "recovery", func() bool { return retriesOnDisk(dir) == 2 })
		eventually(t, "recovery logged", func() bool { return lb.count("INFO", "writable again") == 1 })
		noTemps(t, dir)
	})

	t.Run("single bind-mounted file: rename EBUSY, written in place", func(t *testing.T) {
		dir := t.TempDir()
		outside := filepath.Join(t.TempDir(), "host-state.json")
		if err := os.WriteFile(outside, Encode(snap(1)), 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, FileName)
		writeState(t, dir, nil)
		if err := unix.Mount(outside, target, "", unix.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount (%v): needs root", err)
		}
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })

		s, lb := openT(t, dir, fast(osFS{}))
		if s.Load().Services["web"].Retries != 1 {
			t.Fatalf("Load = %+v", s.Load())
		}
		for i := 2; i <= 3; i++ {
			s.Save(snap(i))
			flush(t, s)
		}
		data, err := os.ReadFile(outside)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := Decode(data); err != nil || f.Services["web"].Retries != 3 {
			t.Fatalf("file behind the mount: %v\n%s", err, data)
		}
		if lb.count("WARN", "single bind-mounted file") != 1 || lb.count("WARN", "cannot write") != 0 {
			t.Fatalf("log:\n%s", lb)
		}
		if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode().Perm())
		}
		noTemps(t, dir)
		s.Close()
		if err := Reset(dir, []string{"web"}); err != nil {
			t.Fatalf("Reset on a bind-mounted file: %v", err)
		}
		if data, _ := os.ReadFile(outside); retriesIn(data) != 0 {
			t.Fatalf("after Reset:\n%s", data)
		}
	})

	t.Run("corrupt bind-mounted file cannot be moved aside: fresh start, then overwritten", func(t *testing.T) {
		dir := t.TempDir()
		outside := filepath.Join(t.TempDir(), "host-state.json")
		os.WriteFile(outside, []byte("{corrupt"), 0o600)
		target := filepath.Join(dir, FileName)
		writeState(t, dir, nil)
		if err := unix.Mount(outside, target, "", unix.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount (%v): needs root", err)
		}
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
		s, lb := openT(t, dir, fast(osFS{}))
		if len(s.Load().Services) != 0 || lb.count("ERROR", "cannot be moved aside") != 1 {
			t.Fatalf("Load = %+v, log:\n%s", s.Load(), lb)
		}
		s.Save(snap(7))
		flush(t, s)
		if data, _ := os.ReadFile(outside); retriesIn(data) != 7 {
			t.Fatalf("file behind the mount:\n%s", data)
		}
	})
}

func retriesIn(data []byte) int {
	f, err := Decode(data)
	if err != nil {
		return -1
	}
	return f.Services["web"].Retries
}

// fill writes into name until the filesystem is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
