// Package reaper owns every wait of the process: it is the only code that
// calls wait4. Children are started through Spawn, which registers the PID
// under the same lock the reaper holds while it reaps, so no exit can be seen
// before its owner is known. Exits of unknown PIDs (orphans re-parented to an
// init or a subreaper) are counted and handed to an optional callback.
//
// The package decides nothing: what an exit means is the caller's business.
package reaper

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit is the end of one child process.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
}

// Code is the status a shell would report: the exit status, or 128+S for a
// process killed by signal S.
func (e Exit) Code() int { return StatusCode(e.Status) }

// StatusCode converts a wait status into 0..255 or 128+signal.
func StatusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}

// Reaper reaps children and delivers each exit to the channel registered for
// its PID. The zero value is not usable; call New.
type Reaper struct {
	wake     chan os.Signal
	onOrphan func(Exit)

	mu      sync.Mutex
	owners  map[int]chan Exit
	idle    []chan struct{} // closed when a pass finds no child left
	orphans uint64
}

// New makes a reaper woken by SIGCHLD. onOrphan, if not nil, is called from
// the reaper's goroutine for each exit that has no owner; it must not block.
func New(onOrphan func(Exit)) *Reaper {
	r := &Reaper{
		// One slot is enough: every wake-up drains all exits.
		wake:     make(chan os.Signal, 1),
		onOrphan: onOrphan,
		owners:   make(map[int]chan Exit),
	}
	signal.Notify(r.wake, unix.SIGCHLD)
	return r
}

// Spawn forks and executes argv0 with attr and registers the child before the
// lock is released. The returned channel receives the child's exit exactly
// once; it is buffered, so the reaper never waits for the owner.
func (r *Reaper) Spawn(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Exit, 1)
	r.owners[pid] = ch
	return pid, ch, nil
}

// Run reaps on every SIGCHLD until done is closed. It makes one pass first:
// children may have exited before the handler was installed.
func (r *Reaper) Run(done <-chan struct{}) {
	for {
		r.Reap()
		select {
		case <-r.wake:
		case <-done:
			return
		}
	}
}

// Kick asks Run for a pass without a SIGCHLD.
func (r *Reaper) Kick() {
	select {
	case r.wake <- unix.SIGCHLD:
	default:
	}
}

// Reap collects every exited child without blocking and returns how many it
// collected.
func (r *Reaper) Reap() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			for _, ch := range r.idle {
				close(ch)
			}
			r.idle = nil
			return n
		}
		if err != nil || pid <= 0 {
			return n
		}
		n++
		e := Exit{Pid: pid, Status: ws}
		if ch, ok := r.owners[pid]; ok {
			delete(r.owners, pid)
			ch <- e
			continue
		}
		r.orphans++
		if r.onOrphan != nil {
			r.onOrphan(e)
		}
	}
}

// NoChildren returns a channel that is closed once a pass finds that the
// process has no child left, running or zombie.
func (r *Reaper) NoChildren() <-chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	r.idle = append(r.idle, ch)
	r.mu.Unlock()
	r.Kick()
	return ch
}

// Orphans is the number of exits reaped that had no owner.
func (r *Reaper) Orphans() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// Stop stops the SIGCHLD notifications.
func (r *Reaper) Stop() { signal.Stop(r.wake) }

// Adopt registers children this process did not spawn itself: those
// inherited across a re-exec. Call it before the first pass of Run, so
// their exits, even those that happened during the exec, reach the returned
// channel. The channel has room for every one of them, so the reaper never
// waits on it; one channel for them all lets one goroutine watch a
// thousand adopted services, where a goroutine each cost a tenth of the
// re-exec's pause in fresh stacks.
func (r *Reaper) Adopt(pids ...int) <-chan Exit {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan Exit, len(pids))
	for _, pid := range pids {
		r.owners[pid] = ch
	}
	return ch
}

// Hold stops all reaping until Release is called: before a re-exec hands
// the PIDs of the children over, none of them may be reaped (and so freed
// for reuse). Release must be called if the exec fails.
func (r *Reaper) Hold() Held {
	r.mu.Lock()
	return Held{r}
}

// Held is a reaper stopped by Hold.
type Held struct{ r *Reaper }

// Owns reports whether pid is a child registered by Spawn or Adopt whose
// exit has not been reaped: while held, such a child is running or a
// zombie, so its PID cannot have been reused. It asks no kernel: a re-exec
// asks it about each of a thousand services in the pause.
func (h Held) Owns(pid int) bool {
	_, ok := h.r.owners[pid]
	return ok
}

// Release lets the reaper run again.
func (h Held) Release() { h.r.mu.Unlock() }
