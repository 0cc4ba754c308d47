package control

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guard looks at the socket's directory once, when serving starts. If users
// other than vigil (and root) can replace entries there (a shared 0777
// directory without the sticky bit, as VIGIL_SOCKET may name), it warns and
// watches the directory with inotify: once someone unlinks or replaces the
// socket, connections go to the impostor or nowhere and never reach vigil,
// so a check when a connection arrives or on status would never run. The
// watch is one descriptor in the poller and costs nothing until the
// directory changes; no timer.
func (s *Server) guard(log *slog.Logger) {
	dir := filepath.Dir(s.path)
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !replaceable(st.Uid, fi.Mode()) {
		return
	}
	log.Warn("control socket: its directory is writable by other users, who can remove or replace the socket; "+
		"give vigil a directory only it can write", "dir", dir, "mode", fi.Mode().Perm(), "owner_uid", st.Uid)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		log.Warn("control socket: cannot watch its directory", "dir", dir, "err", err)
		return
	}
	const mask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_CREATE |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		log.Warn("control socket: cannot watch its directory", "dir", dir, "err", err)
		return
	}
	w := os.NewFile(uintptr(fd), "inotify "+dir) // non-blocking: read through the poller
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.Close()
		return
	}
	s.watch = w
	s.mu.Unlock()
	go s.watchLoop(w, log)
}

// replaceable reports whether others than vigil and root can unlink or
// rename a file of vigil's in a directory of this owner and mode.
func replaceable(uid uint32, mode fs.FileMode) bool {
	if uid != 0 && uid != uint32(os.Geteuid()) {
		return true // its owner can
	}
	return mode.Perm()&0o022 != 0 && mode&fs.ModeSticky == 0
}

func (s *Server) watchLoop(w *os.File, log *slog.Logger) {
	name := filepath.Base(s.path)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.Read(buf)
		if err != nil {
			return // closed by Close
		}
		if touched(buf[:n], name) && !s.stillOurs() && s.ctx.Err() == nil {
			s.warn(&s.replacedLog, log, slog.LevelError, "control socket: someone removed or replaced it; "+
				"vigil status and friends reach an impostor or nothing", "path", s.path, "found", describe(s.path))
		}
	}
}

// touched reports whether the inotify events in b concern name or the
// directory itself.
func touched(b []byte, name string) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(b[4:8])
		l := int(binary.NativeEndian.Uint32(b[12:16]))
		if len(b) < unix.SizeofInotifyEvent+l {
			return true // cut short: look anyway
		}
		got := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l], "\x00"))
		if got == name || mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_Q_OVERFLOW) != 0 {
			return true
		}
		b = b[unix.SizeofInotifyEvent+l:]
	}
	return false
}

// stillOurs reports whether the socket file is still the one vigil bound.
func (s *Server) stillOurs() bool {
	fi, err := os.Lstat(s.path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == s.dev && st.Ino == s.ino
}

// describe says what is at path now, for the log.
func describe(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return "nothing"
	}
	desc := fi.Mode().Type().String() + " " + fi.Mode().Perm().String()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		desc += " of uid " + strconv.FormatUint(uint64(st.Uid), 10)
	}
	return desc + ", since " + fi.ModTime().UTC().Format(time.RFC3339)
}
