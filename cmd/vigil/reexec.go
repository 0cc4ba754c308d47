package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/supervise"
	"golang.org/x/sys/unix"
)

// handoffEnv names the inherited memfd holding the handoff. It is one of
// vigil's own variables, so services never see it (CleanEnv).
const handoffEnv = "VIGIL_HANDOFF_FD"

// The memfd holds the handoff version (uvarint), the length of the
// Binding's encoding (uvarint), that encoding, then the Handoff's: the
// reader refuses another version before it reads anything else, and a
// handoff bound to another process before it decodes the services.

// reexecer replaces this vigil by the binary on disk (SPEC section 6).
type reexecer struct {
	reaper  *reaper.Reaper
	control *control.Server // kept listening across the exec; nil if none
	serve   func()          // serves control again if the exec fails
}

// exe is the binary on disk at vigil's path: os.Executable strips
// " (deleted)", so a binary replaced at the same path is the one run.
func (x *reexecer) exe() (string, error) { return os.Executable() }

// Check runs the new binary once (`vigil version --handoff`) and checks it
// reads this handoff version; otherwise the old vigil stays.
func (x *reexecer) Check() error {
	exe, err := x.exe()
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
	pid, exits, err := supervise.Start(x.reaper, supervise.Command{
		Argv: []string{exe, "version", "--handoff"}, Env: supervise.CleanEnv(os.Environ()),
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
	if err != nil || v != handoffVersion {
		return fmt.Errorf("%s reads handoff version %q, this vigil writes %d", exe, strings.TrimSpace(string(out)), handoffVersion)
	}
	return nil
}

// Exec writes the handoff to a memfd, lets it and the services' pipes
// survive the exec, and execs. It returns only if the exec failed, with
// every descriptor as it was.
func (x *reexecer) Exec(h supervise.Handoff, keep []int) error {
	exe, err := x.exe()
	if err != nil {
		return err
	}
	bind, err := supervise.Bind()
	if err != nil {
		return err
	}
	doc, err := encodeHandoff(bind, &h)
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
	if x.control != nil {
		x.control.Pause()
		defer func() { // only reached if the exec failed
			x.control.Resume()
			x.serve()
		}()
		if cfd, err := x.control.Fd(); err == nil {
			keep = append(keep, cfd)
			env = append(env, controlFDEnv+"="+strconv.Itoa(cfd), controlPathEnv+"="+x.control.Path())
		}
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
		case handoffEnv, controlFDEnv, controlPathEnv:
		default:
			env = append(env, kv)
		}
	}
	err = syscall.Exec(exe, os.Args, env)
	for _, k := range keep {
		unix.FcntlInt(uintptr(k), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	return fmt.Errorf("exec %s: %w", exe, err)
}

// readHandoff takes the handoff an earlier image of this process left, if
// any. A handoff bound to another process or of another version is refused.
func readHandoff() (*supervise.Handoff, error) {
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
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return decodeHandoff(data)
}

// encodeHandoff lays out the memfd's contents (see above).
func encodeHandoff(bind supervise.Binding, h *supervise.Handoff) ([]byte, error) {
	b, err := bind.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	// A service takes some 100 bytes: one allocation, rather than doubling
	// through the sizes in the pause.
	doc := make([]byte, 0, 2*binary.MaxVarintLen64+len(b)+128*(len(h.Services)+1))
	doc = binary.AppendUvarint(doc, handoffVersion)
	doc = binary.AppendUvarint(doc, uint64(len(b)))
	doc = append(doc, b...)
	return h.AppendBinary(doc)
}

// decodeHandoff reads what encodeHandoff wrote, refusing a handoff of
// another version or bound to another process.
func decodeHandoff(data []byte) (*supervise.Handoff, error) {
	v, n := binary.Uvarint(data)
	if len(data) > 0 && data[0] == '{' {
		v, n = 1, 1 // version 1 was JSON
	}
	if n <= 0 {
		return nil, errors.New("handoff: no version")
	}
	if v != handoffVersion {
		return nil, fmt.Errorf("handoff version %d, this vigil reads %d", v, handoffVersion)
	}
	data = data[n:]
	size, n := binary.Uvarint(data)
	if n <= 0 || size > uint64(len(data)-n) {
		return nil, errors.New("handoff: malformed binding")
	}
	var bound supervise.Binding
	if err := bound.UnmarshalBinary(data[n : n+int(size)]); err != nil {
		return nil, fmt.Errorf("decode binding: %w", err)
	}
	bind, err := supervise.Bind()
	if err != nil {
		return nil, err
	}
	if bound != bind {
		return nil, errors.New("handoff was written by another process")
	}
	var h supervise.Handoff
	if err := h.UnmarshalBinary(data[n+int(size):]); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &h, nil
}
