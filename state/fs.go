package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fsys is the filesystem as the store uses it; tests put a fake that fails
// chosen calls in front of the real one.
type fsys interface {
	ReadFile(name string) ([]byte, error)
	CreateTemp(dir, pattern string) (file, error)
	OpenFile(name string, flag int, perm fs.FileMode) (file, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	// SyncDir fsyncs a directory, making a rename in it durable.
	SyncDir(dir string) error
	// Lock takes the exclusive lock of the state directory dir without
	// waiting: an error wrapping ErrLocked if another open file
	// description holds it. The real one returns a *held, which says
	// where the files live (dir, or its private subdirectory).
	Lock(dir string) (io.Closer, error)
}

type file interface {
	Name() string
	Write(b []byte) (int, error)
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	Chmod(mode fs.FileMode) error
	Sync() error
	Close() error
}

const (
	tempPrefix = "." + FileName + ".tmp-"
	// lockName is the lock file, used only where a directory cannot be
	// flocked (NFS emulates flock with POSIX locks, which need a file open
	// for writing).
	lockName = ".lock"
)

type osFS struct{}

// ReadFile is readOwn: the state file lives where others may have planted
// a FIFO, a link to /dev/zero or a file of their own.
func (osFS) ReadFile(name string) ([]byte, error) { return readOwn(name) }

func (osFS) CreateTemp(dir, pattern string) (file, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error       { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                   { return os.Remove(name) }
func (osFS) Lstat(name string) (fs.FileInfo, error)     { return os.Lstat(name) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems (FUSE, CIFS, old NFS) cannot fsync a directory: there
	// is nothing more to make durable by us then.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// Lock is lockDir (see there).
func (osFS) Lock(dir string) (io.Closer, error) {
	h, err := lockDir(dir)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return h, nil
}

func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return &fs.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return nil
}

// errBindMounted marks a rename over the state file that failed with EBUSY:
// the file is a mount point (`-v file:file`, a Kubernetes subPath).
var errBindMounted = errors.New("the state file is a mount point")

// writeAtomic replaces dir/state.json by data: a new temporary file in the
// same directory, write, fsync, close, rename over the file, fsync the
// directory. The file is made 0600 with fchmod, whatever the umask. On any
// failure the temporary file is removed and the old state file is left as it
// was (unless the failure came after the rename). A failed fsync is never
// retried on the same file: after it the kernel may have dropped the dirty
// pages and a second fsync can succeed without them being on disk, so the
// caller's next attempt writes a new file from scratch.
func writeAtomic(fsys fsys, dir string, data []byte) (err error) {
	f, err := fsys.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create a temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			fsys.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	path := filepath.Join(dir, FileName)
	if err := fsys.Rename(tmp, path); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w: %w", errBindMounted, err)
		}
		return err
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// writeInPlace overwrites dir/state.json without a rename. It is only for a
// state file that is itself a bind mount: nothing can be renamed over a mount
// point (EBUSY), so the only way to update it is to rewrite its content,
// which is not atomic (a crash in the middle leaves a file that the next
// start finds corrupt and replaces). Mount a directory instead.
func writeInPlace(fsys fsys, dir string, data []byte) error {
	path := filepath.Join(dir, FileName)
	// No O_CREATE: a mount point exists; if it went away, fail and let the
	// caller go back to the atomic path.
	f, err := fsys.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	// The file is the user's: fchmod may be refused (another owner); the
	// content matters more.
	_ = f.Chmod(0o600)
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// removeTemps removes temporary files left by a vigil that died while
// writing. Only under the lock: another vigil's are never touched.
func removeTemps(fsys fsys, dir string) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) && e.Type().IsRegular() {
			fsys.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
