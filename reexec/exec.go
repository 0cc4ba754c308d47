// Package reexec replaces a running vigil by the binary on disk, in place
// (execve: same PID, every child kept): the handoff's types and binary
// codec, its memfd framing, the check of a new binary, the exec itself and
// the listening control socket carried across it. What to freeze and adopt
// is the supervisor's business; this package moves the record.
package reexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// Version is the handoff protocol this binary reads; printed by
// `vigil version --handoff` so an old vigil can check a new binary first.
// Version 1 was JSON; 2 is the binary encoding of wire.go.
const Version = 2

// handoffEnv names the inherited memfd holding the handoff. It is one of
// vigil's own variables, so services never see it (CleanEnv).
const handoffEnv = "VIGIL_HANDOFF_FD"

// The memfd holds the handoff version (uvarint), the length of the
// Binding's encoding (uvarint), that encoding, then the Handoff's: the
// reader refuses another version before it reads anything else, and a
// handoff bound to another process before it decodes the services.

// Listener is a listening socket kept open across the exec (the control
// socket: clients never find it missing).
type Listener struct {
	FD   int
	Path string
}

// exe is the binary on disk at vigil's path: os.Executable strips
// " (deleted)", so a binary replaced at the same path is the one run.
func exe() (string, error) { return os.Executable() }

// Check runs the new binary once (`vigil version --handoff`), through the
// reaper, and checks it reads this handoff version; otherwise the old vigil
// stays.
func Check(rp *reaper.Reaper) error {
	exe, err := exe()
	if err != nil {
		return fmt.Errorf("find the binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return err
	}
	defer devnull.Close()
	pid, exits, err := proc.Start(rp, proc.Command{
		Argv: []string{exe, "version", "--handoff"}, Env: proc.CleanEnv(os.Environ()),
		Files: []uintptr{devnull.Fd(), w.Fd(), 2}, Terminal: -1, Session: true,
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("run %s: %w", exe, err)
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, _ := io.ReadAll(io.LimitReader(r, 64))
	var e reaper.Exit
	select {
	case e = <-exits:
	case <-time.After(10 * time.Second):
		unix.Kill(-pid, unix.SIGKILL)
		<-exits
		return fmt.Errorf("%s version --handoff did not finish in 10s", exe)
	}
	if e.Code() != 0 {
		return fmt.Errorf("%s version --handoff exited %d", exe, e.Code())
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || v != Version {
		return fmt.Errorf("%s reads handoff version %q, this vigil writes %d", exe, strings.TrimSpace(string(out)), Version)
	}
	return nil
}

// Exec writes the handoff to a memfd, lets it, the descriptors in keep and
// the listener (if any) survive the exec, and execs. Nothing may fork
// meanwhile (hold the reaper). It returns only if the exec failed, with
// every descriptor as it was.
//
// pdeath, if not 0, is set as the parent-death signal of the thread that
// execs: the kernel keeps it per thread, and only that thread survives the
// exec (a parent's `unshare --kill-child` would otherwise stop working after
// the first re-exec).
func Exec(h *Handoff, keep []int, ln *Listener, pdeath syscall.Signal) error {
	exe, err := exe()
	if err != nil {
		return err
	}
	bind, err := Bind()
	if err != nil {
		return err
	}
	doc, err := encodeHandoff(bind, h)
	if err != nil {
		return fmt.Errorf("encode handoff: %w", err)
	}
	// No MFD_CLOEXEC: the new image inherits it. Nothing forks meanwhile:
	// every fork goes through the reaper, which is held.
	fd, err := unix.MemfdCreate("vigil-handoff", 0)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(fd)
	for rest := doc; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write handoff: %w", err)
		}
		rest = rest[n:]
	}
	env := []string{handoffEnv + "=" + strconv.Itoa(fd)}
	if ln != nil {
		keep = append(keep, ln.FD)
		env = append(env, listenerFDEnv+"="+strconv.Itoa(ln.FD), listenerPathEnv+"="+ln.Path)
	}
	// Pipes keep FD_CLOEXEC until now; ForkLock keeps any fork out while
	// they are inheritable.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	for _, k := range keep {
		unix.FcntlInt(uintptr(k), unix.F_SETFD, 0)
	}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case handoffEnv, listenerFDEnv, listenerPathEnv:
		default:
			env = append(env, kv)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if pdeath != 0 {
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(pdeath), 0, 0, 0)
	}
	err = syscall.Exec(exe, os.Args, env)
	for _, k := range keep {
		unix.FcntlInt(uintptr(k), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	return fmt.Errorf("exec %s: %w", exe, err)
}

// Read takes the handoff an earlier image of this process left, if any
// (nil, nil when this is no re-exec). A handoff bound to another process or
// of another version is refused.
func Read() (*Handoff, error) {
	v, ok := os.LookupEnv(handoffEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(handoffEnv)
	fd, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: not a descriptor", handoffEnv, v)
	}
	f := os.NewFile(uintptr(fd), "handoff")
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	if fi.Size() == 0 {
		return nil, errors.New("handoff: empty")
	}
	// Mapped, not read: the rings in it (a megabyte a chatty service) are
	// decoded from the mapping, and fresh memory costs the pause more
	// than anything else (a read into a new buffer was a third of it).
	// Private: nothing the new image does writes to it.
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	h, err := decodeHandoff(data)
	if err != nil {
		unix.Munmap(data)
		return nil, err
	}
	h.mapped = data
	return h, nil
}

// Release unmaps the handoff Read mapped: every LogRing of it (RawBytes
// into the mapping) must be done with. Everything else was copied out.
func (h *Handoff) Release() {
	if h.mapped != nil {
		for i := range h.Services {
			h.Services[i].LogRing = nil
		}
		unix.Munmap(h.mapped)
		h.mapped = nil
	}
}

// encodeHandoff lays out the memfd's contents (see above).
func encodeHandoff(bind Binding, h *Handoff) ([]byte, error) {
	b, err := bind.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	// A service takes some 100 bytes: one allocation, rather than doubling
	// through the sizes in the pause.
	size := 2*binary.MaxVarintLen64 + len(b) + 128*(len(h.Services)+1)
	for _, hs := range h.Services {
		if hs.LogRing != nil {
			size += hs.LogRing.EncodedLen() + 8
		}
	}
	doc := make([]byte, 0, size)
	doc = binary.AppendUvarint(doc, Version)
	doc = binary.AppendUvarint(doc, uint64(len(b)))
	doc = append(doc, b...)
	return h.AppendBinary(doc)
}

// decodeHandoff reads what encodeHandoff wrote, refusing a handoff of
// another version or bound to another process.
func decodeHandoff(data []byte) (*Handoff, error) {
	v, n := binary.Uvarint(data)
	if len(data) > 0 && data[0] == '{' {
		v, n = 1, 1 // version 1 was JSON
	}
	if n <= 0 {
		return nil, errors.New("handoff: no version")
	}
	if v != Version {
		return nil, fmt.Errorf("handoff version %d, this vigil reads %d", v, Version)
	}
	data = data[n:]
	size, n := binary.Uvarint(data)
	if n <= 0 || size > uint64(len(data)-n) {
		return nil, errors.New("handoff: malformed binding")
	}
	var bound Binding
	if err := bound.UnmarshalBinary(data[n : n+int(size)]); err != nil {
		return nil, fmt.Errorf("decode binding: %w", err)
	}
	bind, err := Bind()
	if err != nil {
		return nil, err
	}
	if bound != bind {
		return nil, errors.New("handoff was written by another process")
	}
	var h Handoff
	if err := h.UnmarshalBinary(data[n+int(size):]); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &h, nil
}

// Variables through which a re-exec passes the listening control socket.
// They are vigil's own (VIGIL_*), so services never see them.
const (
	listenerFDEnv   = "VIGIL_CONTROL_FD"
	listenerPathEnv = "VIGIL_CONTROL_PATH"
)

// InheritedListener takes the listener an earlier image of this process
// kept open across its exec, if any (nil, nil if none).
func InheritedListener() (*Listener, error) {
	v, ok := os.LookupEnv(listenerFDEnv)
	path := os.Getenv(listenerPathEnv)
	os.Unsetenv(listenerFDEnv)
	os.Unsetenv(listenerPathEnv)
	if !ok {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: not a descriptor", listenerFDEnv, v)
	}
	return &Listener{FD: fd, Path: path}, nil
}

// CloseInherited marks every descriptor above 2 close-on-exec. A refused
// handoff leaves the old image's descriptors (its services' pipes, whose
// FD_CLOEXEC was cleared for the exec) open without an owner: they must not
// leak into every child started from now on.
func CloseInherited() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list descriptors: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	return nil
}
