// Package reaper owns every wait of the process: it is the only code that
// calls wait4. Children are started through Spawn, which registers the PID
// under the same lock the reaper holds while it reaps, so no exit can be seen
// before its owner is known. Exits of unknown PIDs (orphans re-parented to an
// init or a subreaper) are counted and handed to an optional callback.
//
// Exits are collected under the lock and delivered after it is released
// (containerd's shape): a slow receiver can never stop a spawn. Delivery
// itself never blocks: each owner's Sink (a buffered channel, or a Queue
// its consumer drains) takes every exit at once.
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
	// Orphan: no Spawn or Adopt registered the PID (a process re-parented
	// to this init or subreaper).
	Orphan bool
}

// Sink receives exits. Deliver is called from the reaper's goroutine,
// outside its lock, and must not block.
type Sink interface{ Deliver(Exit) }

// exitChan is a Sink for one child: its buffer holds the one exit.
type exitChan chan Exit

func (c exitChan) Deliver(e Exit) { c <- e }

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

	// deliver is held from a pass's first wait4 until its last delivery,
	// so Hold (which takes it first) knows every exit reaped so far has
	// reached its sink.
	deliver sync.Mutex
	batch   []delivery // a pass's exits, reused; owned under deliver
	mu      sync.Mutex
	owners  map[int]Sink
	idle    []chan struct{} // closed when a pass finds no child left
	orphans uint64
}

// New makes a reaper woken by SIGCHLD. onOrphan, if not nil, is called from
// the reaper's goroutine, outside its lock, for each exit that has no owner;
// it must not block.
func New(onOrphan func(Exit)) *Reaper {
	// One slot is enough: every wake-up drains all exits.
	wake := make(chan os.Signal, 1)
	signal.Notify(wake, unix.SIGCHLD)
	return NewWoken(wake, onOrphan)
}

// NewWoken is New with a channel the caller already had notified of
// SIGCHLD: vigil's init does it with all its other signals, in one go
// (each Notify of a new signal is a round trip with the runtime's signal
// thread).
func NewWoken(wake chan os.Signal, onOrphan func(Exit)) *Reaper {
	return &Reaper{wake: wake, onOrphan: onOrphan, owners: make(map[int]Sink)}
}

// Spawn forks and executes argv0 with attr and registers the child before the
// lock is released. The returned channel receives the child's exit exactly
// once; it is buffered, so the reaper never waits for the owner.
func (r *Reaper) Spawn(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan Exit, error) {
	ch := make(exitChan, 1)
	pid, err := r.SpawnTo(ch, nil, argv0, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	return pid, ch, nil
}

// SpawnTo is Spawn with the exit delivered to sink. The descriptors in
// inherit, close-on-exec in vigil, stay open in this child only: every
// spawn holds the reaper's lock, so no other child can inherit them
// meanwhile.
func (r *Reaper) SpawnTo(sink Sink, inherit []int, argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range inherit {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
	}
	pid, err := syscall.ForkExec(argv0, argv, attr)
	for _, fd := range inherit {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	if err != nil {
		return 0, err
	}
	r.owners[pid] = sink
	return pid, nil
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

// Reap collects every exited child without blocking, delivers the exits
// once the lock is released, and returns how many it collected.
func (r *Reaper) Reap() int {
	r.deliver.Lock()
	defer r.deliver.Unlock()
	r.mu.Lock()
	batch := r.batch[:0]
	var idle []chan struct{}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			idle, r.idle = r.idle, nil
			break
		}
		if err != nil || pid <= 0 {
			break
		}
		e := Exit{Pid: pid, Status: ws}
		sink, ok := r.owners[pid]
		if ok {
			delete(r.owners, pid)
		} else {
			e.Orphan = true
			r.orphans++
		}
		batch = append(batch, delivery{e, sink})
	}
	r.mu.Unlock()
	// Owners first: an orphan's receiver may be slow (it logs).
	for _, d := range batch {
		if d.sink != nil {
			d.sink.Deliver(d.exit)
		}
	}
	if r.onOrphan != nil {
		for _, d := range batch {
			if d.sink == nil {
				r.onOrphan(d.exit)
			}
		}
	}
	clear(batch) // the sinks are not the reaper's to keep
	if cap(batch) > 1024 {
		batch = nil // a storm's buffer is not kept for an idle init
	}
	r.batch = batch
	// After the deliveries: whoever waits for no child left has every
	// exit in hand by then.
	for _, ch := range idle {
		close(ch)
	}
	return len(batch)
}

// delivery is one exit of a pass and where it goes (nil: an orphan).
type delivery struct {
	exit Exit
	sink Sink
}

// NoChildren returns a channel that is closed once a pass finds that the
// process has no child left, running or zombie.
func (r *Reaper) NoChildren() <-chan struct{} {
	ch := make(chan struct{})
	// Holding deliver, no pass is half delivered; holding mu, no spawn
	// happens: if there is no child now, the answer needs no pass (and no
	// wake-up of Run: this is on every exit's path).
	r.deliver.Lock()
	defer r.deliver.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !HasChildren() {
		close(ch)
		return ch
	}
	r.idle = append(r.idle, ch)
	r.Kick()
	return ch
}

// HasChildren reports whether the calling process has a child, living or
// not yet reaped. waitid with WNOWAIT looks without reaping, so every exit
// is still the reaper's.
func HasChildren() bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if err != unix.EINTR {
			return err != unix.ECHILD
		}
	}
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
// their exits, even those that happened during the exec, reach sink.
func (r *Reaper) Adopt(sink Sink, pids ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pid := range pids {
		r.owners[pid] = sink
	}
}

// Hold stops all reaping until Release is called: before a re-exec hands
// the PIDs of the children over, none of them may be reaped (and so freed
// for reuse). Every exit reaped before the hold has been delivered to its
// sink when Hold returns. Release must be called if the exec fails.
func (r *Reaper) Hold() Held {
	r.deliver.Lock()
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

// Orphans is Reaper.Orphans while held: exact, as nothing is reaped.
func (h Held) Orphans() uint64 { return h.r.orphans }

// Release lets the reaper run again.
func (h Held) Release() {
	h.r.mu.Unlock()
	h.r.deliver.Unlock()
}

// Queue is a Sink its consumer drains: exits of any number of children
// wait in it, in the order they were reaped, and Ready tells the consumer
// there are some. One queue for all services replaces a goroutine per run.
type Queue struct {
	mu    sync.Mutex
	exits []Exit
	ready chan struct{}
}

// NewQueue makes an empty queue.
func NewQueue() *Queue { return &Queue{ready: make(chan struct{}, 1)} }

// Deliver appends e and wakes the consumer; it never blocks.
func (q *Queue) Deliver(e Exit) {
	q.mu.Lock()
	q.exits = append(q.exits, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value when exits may be waiting.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take removes and returns every exit waiting.
func (q *Queue) Take() []Exit {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.exits
	q.exits = nil
	return out
}
