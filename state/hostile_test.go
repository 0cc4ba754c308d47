package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hostile neighbours on a shared volume (a Kubernetes emptyDir is 0777):
// whatever they plant, vigil must not block, follow a link, read without
// bound, load a state file it did not write, or lose its lock to them.

// sharedVolume is a directory anyone may write in, as an emptyDir.
func sharedVolume(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return dir
}

// asOther gives path to uid 65534, as if another user had made it.
func asOther(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Skipf("cannot chown (%v): needs root", err)
	}
}

// openWithin is Open, failing the test if it does not return in time.
func openWithin(t *testing.T, dir string) (*Store, *logBuf, error) {
	t.Helper()
	log, lb := newLog()
	type res struct {
		s   *Store
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := open(dir, log, fast(osFS{}))
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.s != nil {
			t.Cleanup(func() { r.s.Close() })
		}
		return r.s, lb, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("Open blocked for 10 s; log:\n%s", lb)
		return nil, nil, nil
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o666); err != nil {
		t.Fatal(err)
	}
}

func TestHostileStateFile(t *testing.T) {
	forged := snap(7)
	forged.Services["web"] = Service{Status: "given-up", Retries: 7, GivenUp: true}

	t.Run("a FIFO at state.json of a private directory: not opened, moved aside", func(t *testing.T) {
		dir := t.TempDir()
		mkfifo(t, filepath.Join(dir, FileName))
		s, lb, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Load().Services) != 0 || lb.count("ERROR", "moved it aside") != 1 {
			t.Fatalf("Load %+v; log:\n%s", s.Load(), lb)
		}
		s.Save(snap(1))
		flush(t, s)
		if retriesOnDisk(dir) != 1 {
			t.Fatal("not written")
		}
	})
	t.Run("a link at state.json is not followed", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "elsewhere.json")
		if err := os.WriteFile(target, Encode(forged), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Symlink(target, filepath.Join(dir, FileName))
		s, lb, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Load().Services) != 0 || !strings.Contains(lb.String(), "not a regular file") {
			t.Fatalf("followed the link: Load %+v; log:\n%s", s.Load(), lb)
		}
		if b, _ := os.ReadFile(target); string(b) != string(Encode(forged)) {
			t.Fatal("the link's target was changed")
		}
	})
	t.Run("a file larger than MaxFileSize is refused", func(t *testing.T) {
		dir := t.TempDir()
		big := append(Encode(forged), make([]byte, MaxFileSize)...)
		for i := len(Encode(forged)); i < len(big); i++ {
			big[i] = ' '
		}
		writeState(t, dir, big)
		s, lb, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Load().Services) != 0 || !strings.Contains(lb.String(), "larger than") {
			t.Fatalf("Load %+v; log:\n%s", s.Load(), lb)
		}
	})
	t.Run("a FIFO and a link on a shared volume: untouched, Open does not block", func(t *testing.T) {
		dir := sharedVolume(t)
		mkfifo(t, filepath.Join(dir, FileName))
		s, lb, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if lb.count("WARN", "writable by other users") != 1 {
			t.Fatalf("no single warning; log:\n%s", lb)
		}
		if fi, err := os.Lstat(filepath.Join(dir, FileName)); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
			t.Fatalf("the neighbour's FIFO was touched: %v %v", fi, err)
		}
		s.Save(snap(2))
		flush(t, s)
		priv := filepath.Join(dir, PrivateDir)
		if retriesOnDisk(priv) != 2 {
			t.Fatalf("state not in %s", priv)
		}
		if fi, _ := os.Stat(priv); fi.Mode().Perm() != 0o700 {
			t.Fatalf("private directory mode %v", fi.Mode())
		}
		s.Close()

		os.Remove(filepath.Join(dir, FileName))
		os.Symlink("/dev/zero", filepath.Join(dir, FileName))
		s, _, err = openWithin(t, dir)
		if err != nil || s.Load().Services["web"].Retries != 2 {
			t.Fatalf("reopen: %v %+v", err, s.Load())
		}
	})
	t.Run("a state file another user put on a shared volume is not loaded", func(t *testing.T) {
		dir := sharedVolume(t)
		writeState(t, dir, Encode(forged))
		asOther(t, filepath.Join(dir, FileName))
		s, lb, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		if s.Load().Services["web"].GivenUp {
			t.Fatalf("loaded a forged given-up mark; log:\n%s", lb)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
			t.Fatal("the other user's file was moved")
		}
	})
	t.Run("vigil's own state file on a shared volume is loaded once, then kept privately", func(t *testing.T) {
		dir := sharedVolume(t)
		writeState(t, dir, Encode(snap(5)))
		s, lb, err := openWithin(t, dir)
		if err != nil || s.Load().Services["web"].Retries != 5 {
			t.Fatalf("%v %+v; log:\n%s", err, s.Load(), lb)
		}
		s.Save(snap(6))
		flush(t, s)
		if retriesOnDisk(filepath.Join(dir, PrivateDir)) != 6 || retriesOnDisk(dir) != 5 {
			t.Fatal("not kept in the private directory")
		}
	})
	t.Run("a private directory someone else made: no persistence", func(t *testing.T) {
		dir := sharedVolume(t)
		priv := filepath.Join(dir, PrivateDir)
		os.Mkdir(priv, 0o777)
		writeState(t, priv, Encode(forged))
		asOther(t, filepath.Join(priv, FileName))
		asOther(t, priv)
		if s, _, err := openWithin(t, dir); !errors.Is(err, ErrUnsafe) || s != nil {
			t.Fatalf("Open = %v, %v", s, err)
		}
		if err := Reset(dir, nil); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("Reset = %v", err)
		}
	})
	t.Run("a link at the private directory's name is refused", func(t *testing.T) {
		dir := sharedVolume(t)
		elsewhere := t.TempDir()
		os.Symlink(elsewhere, filepath.Join(dir, PrivateDir))
		if _, _, err := openWithin(t, dir); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("Open = %v", err)
		}
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Fatalf("wrote through the link: %v", entries)
		}
	})
	t.Run("the private directory renamed away and replaced: writes stay in vigil's own", func(t *testing.T) {
		dir := sharedVolume(t)
		s, _, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		priv := filepath.Join(dir, PrivateDir)
		moved := filepath.Join(dir, "moved")
		elsewhere := t.TempDir()
		if err := os.Rename(priv, moved); err != nil {
			t.Fatal(err)
		}
		os.Symlink(elsewhere, priv)
		s.Save(snap(3))
		flush(t, s)
		if retriesOnDisk(moved) != 3 {
			t.Fatal("not written in vigil's own directory")
		}
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Fatalf("wrote through the planted link: %v", entries)
		}
	})
}

// flockFrom takes a flock on path from a descriptor of its own, as another
// user who can read the directory could.
func flockFrom(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

func TestHostileLock(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{
		{"a shared volume (0777)", 0o777},
		{"a volume others can read (0755)", 0o755},
	} {
		t.Run("a flock on "+tc.name+" by someone else does not turn persistence off", func(t *testing.T) {
			dir := sharedVolume(t)
			os.Chmod(dir, tc.mode)
			flockFrom(t, dir)
			s, lb, err := openWithin(t, dir)
			if err != nil {
				t.Fatalf("Open = %v; log:\n%s", err, lb)
			}
			s.Save(snap(1))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// A second vigil is still kept out.
			if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
				t.Fatalf("second Open = %v", err)
			}
		})
	}
	t.Run("the lock file of a readable volume is 0600 and must be vigil's", func(t *testing.T) {
		dir := sharedVolume(t)
		os.Chmod(dir, 0o755)
		s, _, err := openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(dir, lockName))
		if err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
			t.Fatalf("lock file %v %v", fi, err)
		}
		s.Close()
		os.Remove(filepath.Join(dir, lockName))
		mkfifo(t, filepath.Join(dir, lockName))
		// A FIFO there (made by root: only root could) neither blocks nor locks.
		s, _, err = openWithin(t, dir)
		if err != nil {
			t.Fatal(err)
		}
	})
}
