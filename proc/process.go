// Package proc holds the process primitives of vigil: spawning through the
// reaper, signalling groups and descendants, the terminal, users, and the
// prefixed output of services. It decides nothing.
package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// Command says how to start one process.
type Command struct {
	Argv []string
	Dir  string
	// Env is the complete environment; PATH in it is used to find Argv[0].
	Env []string
	// Files become the child's fds 0, 1, 2, ...; nil means vigil's own 0, 1, 2.
	Files []uintptr
	// Terminal, if >= 0, is the controlling terminal's fd in vigil: the child's
	// process group is made the terminal's foreground group.
	Terminal int
	// Inherit are descriptors of vigil's left open in this child at the
	// same numbers (the main process gets back what vigil inherited, as
	// under tini); they must be ones Files does not name.
	Inherit []int
	// Session puts the child in a session of its own; otherwise it gets a
	// process group of its own.
	Session    bool
	Credential *syscall.Credential
}

// StartError is a process that could not be started, with the status a shell
// would give for it: 127 not found, 126 not executable.
type StartError struct {
	Argv0 string
	Code  int
	Err   error
}

func (e *StartError) Error() string { return fmt.Sprintf("exec %s: %v", e.Argv0, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// Start spawns c through the reaper, so the exit is registered before it can
// happen; the returned channel receives it. The child always leads a process
// group of its own, so signals can go to the whole group.
func Start(r *reaper.Reaper, c Command) (int, <-chan reaper.Exit, error) {
	ch := make(chan reaper.Exit, 1)
	pid, err := StartTo(r, c, chanSink(ch))
	if err != nil {
		return 0, nil, err
	}
	return pid, ch, nil
}

type chanSink chan reaper.Exit

func (c chanSink) Deliver(e reaper.Exit) { c <- e }

// StartTo is Start with the exit delivered to sink.
func StartTo(r *reaper.Reaper, c Command, sink reaper.Sink) (int, error) {
	if len(c.Argv) == 0 {
		return 0, &StartError{Code: 127, Err: errors.New("empty command")}
	}
	path, err := LookPath(c.Argv[0], envValue(c.Env, "PATH"), c.Dir)
	if err != nil {
		return 0, err
	}
	files := c.Files
	if files == nil {
		files = []uintptr{0, 1, 2}
	}
	sys := &syscall.SysProcAttr{Credential: credential(c.Credential, os.Geteuid(), os.Getegid())}
	switch {
	case c.Session:
		sys.Setsid = true
	case c.Terminal >= 0:
		// Go's child blocks every signal while it calls TIOCSPGRP, so taking
		// the terminal from the background group raises no SIGTTOU.
		sys.Foreground, sys.Ctty = true, c.Terminal
	default:
		sys.Setpgid = true
	}
	pid, err := r.SpawnTo(sink, c.Inherit, path, c.Argv, &syscall.ProcAttr{Dir: c.Dir, Env: c.Env, Files: files, Sys: sys})
	if err != nil {
		return 0, &StartError{Argv0: c.Argv[0], Code: codeFor(err), Err: err}
	}
	return pid, nil
}

// credential is what the child gets: cred, except that a non-root vigil
// asked to run a child as itself sets nothing. Changing the groups takes
// CAP_SETGID even to the same list, so that spawn would fail with EPERM.
func credential(cred *syscall.Credential, euid, egid int) *syscall.Credential {
	if cred != nil && euid != 0 && cred.Uid == uint32(euid) && cred.Gid == uint32(egid) {
		return nil
	}
	return cred
}

// codeFor maps an exec error to the status tini and shells use.
func codeFor(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return 127
	}
	return 126
}

// LookPath finds file in the colon-separated pathEnv as execvp would, with
// the child's PATH rather than vigil's. A name with a slash is used as is,
// relative to dir.
func LookPath(file, pathEnv, dir string) (string, error) {
	if strings.Contains(file, "/") {
		p := file
		if dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", &StartError{Argv0: file, Code: codeFor(err), Err: err}
		}
		return file, nil
	}
	if pathEnv == "" {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	var denied error
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", &StartError{Argv0: file, Code: 126, Err: denied}
	}
	return "", &StartError{Argv0: file, Code: 127, Err: errors.New("not found in PATH")}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.EISDIR
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// CleanEnv is environ without vigil's own settings (VIGIL_*, TINI_*), which
// are vigil's business and may hold things a service should not see.
func CleanEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if strings.HasPrefix(kv, "VIGIL_") || strings.HasPrefix(kv, "TINI_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// MergeEnv joins environments, each a list of NAME=VALUE: every name once,
// in the order first seen, with the value of the last list that has it.
// getenv in glibc, Go, Python and Perl takes the first of two: a service's
// own value must not be shadowed by vigil's.
func MergeEnv(lists ...[]string) []string {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]string, 0, n)
	at := make(map[string]int, n)
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// ExitCode is the status vigil exits with when err stopped a start.
func ExitCode(err error) int {
	var se *StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return 1
}

// TakeInherited makes the descriptors above 2 that vigil inherited open
// across its exec close-on-exec, and returns them. Services and checks then
// get only 0-2 and what their config gives them, never a descriptor a
// careless parent left open (a root-only file, say); the main process gets
// them back through Command.Inherit.
func TakeInherited() []int {
	var out []int
	var buf [4096]byte
	// getdents into a stack buffer: os.ReadDir would make an *os.File,
	// sort the entries and allocate a string for each.
	readDirNumbers("/proc/self/fd", buf[:], func(fd int) {
		if fd <= 2 {
			return
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			return // vigil's own, or the directory being read
		}
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
		out = append(out, fd)
	})
	return out
}
