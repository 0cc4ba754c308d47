package svclog

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FS is a log directory as the rotator uses it. Names are base names in
// it; the rotator never walks a path, so a directory swapped or a link
// planted by a service that can write there cannot send vigil's writes
// elsewhere.
type FS interface {
	// Open opens name for appending, creating it 0640 owned by uid:gid
	// (-1: vigil's own) if it does not exist, and returns its size. It
	// refuses anything but a regular file with one link, owned by uid or
	// by vigil, and never blocks (a FIFO in its place is refused).
	Open(name string, uid, gid int) (File, int64, error)
	Rename(from, to string) error
	Remove(name string) error
}

// File is an open log file.
type File interface {
	Write(b []byte) (int, error)
	Close() error
}

// Dir is the FS of a real directory, held open: every operation is
// relative to it (openat, renameat, unlinkat) and follows no link.
type Dir struct {
	fd   int
	path string
}

// OpenDir opens the log directory path, creating it (0755, with its
// parents) if it is missing. The path itself may be a symbolic link: it is
// the administrator's choice, resolved once here.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("log directory %s: %w", path, err)
	}
	return &Dir{fd: fd, path: path}, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

const openFlags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY

// Open implements FS.
func (d *Dir) Open(name string, uid, gid int) (File, int64, error) {
	fd, err := unix.Openat(d.fd, name, openFlags|unix.O_CREAT|unix.O_EXCL, 0o640)
	created := err == nil
	if errors.Is(err, unix.EEXIST) {
		fd, err = unix.Openat(d.fd, name, openFlags, 0)
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, 0, fmt.Errorf("%s/%s: a symbolic link, refused", d.path, name)
	}
	if err != nil {
		return nil, 0, &os.PathError{Op: "open", Path: d.path + "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path+"/"+name)
	size, err := d.check(fd, name, uid, gid, created)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

func (d *Dir) check(fd int, name string, uid, gid int, created bool) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return 0, fmt.Errorf("%s/%s: not a regular file, refused", d.path, name)
	case st.Nlink != 1:
		// A hard link planted in the directory would make vigil append
		// to (and chown) some other file.
		return 0, fmt.Errorf("%s/%s: has %d links, refused", d.path, name, st.Nlink)
	}
	if created {
		// The umask may have taken bits off 0640.
		if err := unix.Fchmod(fd, 0o640); err != nil {
			return 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
		}
		if uid >= 0 || gid >= 0 {
			if err := unix.Fchown(fd, uid, gid); err != nil {
				return 0, fmt.Errorf("%s/%s: %w", d.path, name, err)
			}
		}
		return st.Size, nil
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && (uid < 0 || int(st.Uid) != uid) {
		return 0, fmt.Errorf("%s/%s: owned by uid %d, refused", d.path, name, st.Uid)
	}
	return st.Size, nil
}

// Rename implements FS.
func (d *Dir) Rename(from, to string) error {
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return &os.LinkError{Op: "rename", Old: d.path + "/" + from, New: d.path + "/" + to, Err: err}
	}
	return nil
}

// Remove implements FS.
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: d.path + "/" + name, Err: err}
	}
	return nil
}
