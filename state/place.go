package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// PrivateDir is the subdirectory (mode 0700, owned by vigil) where vigil
// keeps its files when the state directory is writable by other users (a
// Kubernetes emptyDir is 0777): there nobody else can plant a FIFO, a
// symlink or a forged state file, nor flock the directory.
const PrivateDir = ".vigil"

// MaxFileSize bounds what is read of a state file: a thousand services take
// well under 1 MiB, and a bigger file is no state of ours.
const MaxFileSize = 16 << 20

// ErrUnsafe is wrapped by Open and Reset when the private directory cannot be
// trusted (someone else made it, or it is no directory): vigil then runs
// without persistence rather than use files others control.
var ErrUnsafe = errors.New("state directory is not safe to use")

// held is a taken lock and where the files live.
type held struct {
	f *os.File // the flocked descriptor: a directory or a lock file
	// keep is the private directory, held open so that base keeps naming it
	// even if someone renames it in the shared parent.
	keep *os.File
	base string // directory of state.json, for I/O
	// shown is base as the user knows it, for log lines.
	shown  string
	shared bool // the state directory is writable by others
}

func (h *held) Close() error {
	err := h.f.Close()
	if h.keep != nil && h.keep != h.f {
		if cerr := h.keep.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// sharedDir reports whether others than vigil (and root) can create or
// replace entries in a directory of this owner and mode. The sticky bit does
// not help: it keeps others from replacing vigil's files, not from creating
// state.json before vigil does.
func sharedDir(uid uint32, perm fs.FileMode) bool {
	owner := uid == uint32(os.Geteuid()) || uid == 0
	return !owner || perm&0o022 != 0
}

// lockDir finds where the files of the state directory dir live and takes
// the exclusive lock on them without waiting:
//   - dir itself when only vigil (or root) can write in it. The lock is a
//     flock on dir when nobody else may open it, else on the lock file
//     dir/.lock (mode 0600, so only vigil can open it to flock it), or on
//     dir again where that file cannot be made (a read-only volume);
//   - else dir/.vigil, a 0700 directory vigil makes and must own (ErrUnsafe
//     if someone else made it), flocked itself.
//
// Opens never follow a final symbolic link and never wait (O_NONBLOCK).
func lockDir(dir string) (*held, error) {
	// dir itself is the administrator's setting: following a link there
	// is theirs to choose.
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s: no stat data", dir)
	}
	if sharedDir(st.Uid, fi.Mode().Perm()) {
		return lockPrivate(dir)
	}
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	h := &held{f: d, base: dir, shown: dir}
	if fi.Mode().Perm()&0o044 == 0 {
		if err := flock(d); err == nil {
			return h, nil
		} else if errors.Is(err, unix.EWOULDBLOCK) {
			d.Close()
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		// NFS cannot flock a directory: the lock file below.
	}
	lf, lerr := openLockFile(filepath.Join(dir, lockName))
	if lerr == nil {
		d.Close()
		h.f = lf
		if err := flock(lf); err != nil {
			lf.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", lf.Name(), ErrLocked)
			}
			return nil, fmt.Errorf("flock %s: %w", lf.Name(), err)
		}
		return h, nil
	}
	// No lock file (a read-only volume): the directory, as before.
	if err := flock(d); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("flock %s: %w (lock file: %w)", dir, err, lerr)
	}
	return h, nil
}

// lockPrivate makes (if missing) and locks dir/.vigil.
func lockPrivate(dir string) (*held, error) {
	priv := filepath.Join(dir, PrivateDir)
	if err := os.Mkdir(priv, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	d, err := openDir(priv)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s is not a directory: %w", priv, ErrUnsafe)
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("fstat %s: %w", priv, err)
	}
	if st.Uid != uint32(os.Geteuid()) {
		d.Close()
		return nil, fmt.Errorf("%s is owned by uid %d, not by vigil's uid %d: %w", priv, st.Uid, os.Geteuid(), ErrUnsafe)
	}
	if st.Mode&0o777 != 0o700 { // a umask may have taken vigil's own bits
		if err := unix.Fchmod(int(d.Fd()), 0o700); err != nil {
			d.Close()
			return nil, fmt.Errorf("chmod %s: %w", priv, err)
		}
	}
	h := &held{f: d, keep: d, base: priv, shown: priv, shared: true}
	// Through the open descriptor, the files stay in this very directory
	// even if it is renamed and something else put at its name.
	if p := "/proc/self/fd/" + strconv.Itoa(int(d.Fd())); sameFile(p, &st) {
		h.base = p
	}
	if err := flock(d); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			d.Close()
			return nil, fmt.Errorf("%s: %w", priv, ErrLocked)
		}
		lf, lerr := openLockFile(filepath.Join(h.base, lockName))
		if lerr != nil {
			d.Close()
			return nil, fmt.Errorf("flock %s: %w (lock file: %w)", priv, err, lerr)
		}
		if ferr := flock(lf); ferr != nil {
			lf.Close()
			d.Close()
			if errors.Is(ferr, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", priv, ErrLocked)
			}
			return nil, fmt.Errorf("flock %s: %w", lf.Name(), ferr)
		}
		h.f = lf
	}
	return h, nil
}

func sameFile(path string, st *unix.Stat_t) bool {
	var o unix.Stat_t
	return unix.Stat(path, &o) == nil && o.Dev == st.Dev && o.Ino == st.Ino
}

func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openLockFile opens (making it if missing) a lock file that must be a
// regular file of vigil's.
func openLockFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if err := checkOwn(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOwn checks that f is a regular file owned by vigil's uid (or root)
// with no other name (a hard link would let its content be swapped in from
// elsewhere).
func checkOwn(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s is not a regular file (mode %#o)", path, st.Mode&unix.S_IFMT)
	case st.Uid != uint32(os.Geteuid()) && st.Uid != 0:
		return fmt.Errorf("%s is owned by uid %d, not by vigil's uid %d", path, st.Uid, os.Geteuid())
	case st.Nlink > 1:
		return fmt.Errorf("%s has %d names (hard links)", path, st.Nlink)
	}
	return nil
}

// readOwn reads the regular file path, owned by vigil (or root), of at most
// MaxFileSize bytes. It never follows a symbolic link and never waits on a
// FIFO or a device: those, and anything larger, are errors.
func readOwn(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		// Not even opened: opening some devices has effects.
		return nil, fmt.Errorf("%s is not a regular file but %s", path, kind(fi.Mode()))
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := checkOwn(f, path); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// kind names a file type for a log line.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "of type " + m.Type().String()
}
