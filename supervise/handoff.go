package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// Handoff is what a vigil passes to the image that replaces it (re-exec):
// every service's runtime record and the descriptors of its output pipes.
// Its encoding is in wire.go: a field added to it, or to the types it
// holds, goes there too, at the end of its record (TestWireRoundTrip
// fails until it does).
type Handoff struct {
	Generation int
	Signals    []int       // received but not yet handled by the old image
	Panics     []time.Time // recent panic re-execs, to stop a panic loop
	Services   []HandoffService
	// Clock is CLOCK_MONOTONIC (ns) at the freeze: the new image falls back
	// on it if it cannot read the clock. It, Bucket and each service's Due
	// are zero when the old image could not read its clock: the new one
	// starts with a full bucket and waits each backoff again.
	Clock  int64
	Bucket *HandoffBucket

	// checked delivers, in the order of Services, whether each one's Pid
	// is still the process handed over (see CheckProcesses).
	checked <-chan []bool
}

// CheckProcesses starts checking, in the background, that each process of
// the handoff is still the one handed over: vigil's child, with the start
// time recorded at its spawn. Adoption waits for the answers. Started as
// soon as the handoff is read, the thousand reads of /proc overlap the
// loading of the config; without it adoption checks them itself. Nothing
// reaps before adoption, so an answer holds until then.
func (h *Handoff) CheckProcesses() {
	ch := make(chan []bool, 1)
	h.checked = ch
	services := h.Services
	go func() { ch <- checkProcesses(services) }()
}

func checkProcesses(services []HandoffService) []bool {
	ok := make([]bool, len(services))
	self := os.Getpid()
	for i, hs := range services {
		if hs.Pid != 0 {
			ppid, st, err := procStat(hs.Pid)
			ok[i] = err == nil && st == hs.StartTime && ppid == self
		}
	}
	return ok
}

// HandoffBucket is the global respawn limit across a re-exec. Without it
// every image would start with a full bucket, and a crash loop could
// restart N more times at each re-exec.
type HandoffBucket struct {
	Tokens float64 // negative: taken by restarts still waiting for their time
	Last   int64   // last refill, CLOCK_MONOTONIC ns
}

// HandoffService is one service across a re-exec.
type HandoffService struct {
	Config config.Service
	Main   bool
	State  State
	Pid    int
	Pgid   int
	// Exit is the status of a run that ended while the old image froze,
	// before it could handle it; the new one does.
	Exit      *reaper.Exit
	StartTime uint64 // of Pid, to recognise it (field 22 of /proc/PID/stat)
	Started   time.Time
	Retries   int
	Restarts  int
	LastExit  *int
	Want      bool
	// Output pipes of a prefixed service (this run's, and an earlier run's
	// still held open by a leftover process): vigil's read ends, kept open
	// across the exec, and the partial line each pump held.
	Pipes  []HandoffPipe
	Notify int // read end of the notify_fd pipe, -1 if none
	// Due is when a pending restart fires (CLOCK_MONOTONIC ns, 0 if none):
	// the new image keeps that time rather than starting it at once or
	// waiting a whole backoff again. Reserved: the restart already took its
	// respawn token and waits for it to come due, so it must not take
	// another.
	Due      int64
	Reserved bool
	// Stopping: vigil had sent the stop signal (vigil stop, restart,
	// reload); KillAt is when SIGKILL is due (CLOCK_MONOTONIC ns, 0 if sent
	// already); RestartAfterStop: a vigil restart waits for the stop.
	// Without them the new image forgot the stop: a service deaf to its
	// stop signal was never killed, and its exit was judged a failure.
	Stopping         bool
	KillAt           int64
	RestartAfterStop bool
}

// monoClock pairs a reading of time.Now with one of CLOCK_MONOTONIC, to
// translate times to and from what another image of this process can
// compare: Go's own monotonic reading starts afresh at each exec, the wall
// clock can be stepped, but CLOCK_MONOTONIC runs on across execve within a
// boot (and the Binding refuses a handoff from another boot).
type monoClock struct {
	now  time.Time
	mono int64 // ns
}

func readClock() (monoClock, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return monoClock{}, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return monoClock{now: now, mono: ts.Nano()}, nil
}

func (c monoClock) toMono(t time.Time) int64 { return c.mono + int64(t.Sub(c.now)) }

// fromMono keeps c.now's monotonic reading, so durations to and from the
// result are immune to steps of the wall clock.
func (c monoClock) fromMono(m int64) time.Time { return c.now.Add(time.Duration(m - c.mono)) }

// HandoffPipe is one output pipe across a re-exec.
type HandoffPipe struct {
	FD     int
	Stderr bool
	Carry  []byte
}

// Freeze stops the supervisor's world for a re-exec, on its goroutine (use
// it inside exec below): the pumps stop at a line boundary, the reaper is
// held so no listed PID can be freed, pending signals are drained. It
// returns the handoff, the descriptors that must survive the exec, and
// thaw, which undoes it all if the exec fails.
func (s *Supervisor) freeze() (h Handoff, keep []int, thaw func()) {
	s.stopPumps()
	held := s.o.Reaper.Hold()
	h.Generation = s.o.Generation + 1
	h.Panics = s.panics
	clock, clockErr := readClock()
	if clockErr != nil {
		s.log.Error("the respawn limit and pending restarts start afresh in the new image", "err", clockErr)
	} else {
		h.Clock = clock.mono
		h.Bucket = s.limiter.handoff(clock)
	}
	for {
		select {
		case sig := <-s.o.Signals:
			h.Signals = append(h.Signals, int(sig.(syscall.Signal)))
			continue
		default:
		}
		break
	}
	// Sized up front: growing a slice of a thousand of these copied
	// megabytes during the pause.
	h.Services = make([]HandoffService, 0, len(s.order))
	for _, svc := range s.order {
		hs := HandoffService{
			Config: svc.Service, Main: svc.isMain, State: svc.state, Pid: svc.pid, Pgid: svc.pgid,
			Started: svc.started, Retries: svc.retries, Restarts: svc.restarts, LastExit: svc.lastExit,
			Want: svc.want, Notify: -1,
		}
		if clockErr == nil && svc.timer != nil && !svc.due.IsZero() {
			hs.Due, hs.Reserved = clock.toMono(svc.due), svc.reserved
		}
		hs.Stopping, hs.RestartAfterStop = svc.stopping, svc.restartAfterStop
		if svc.timer != nil && !svc.killAt.IsZero() {
			// Without a clock, at once: late rather than never.
			hs.KillAt = 1
			if clockErr == nil {
				hs.KillAt = clock.toMono(svc.killAt)
			}
		}
		if svc.pid != 0 {
			// Still there (running, or a zombie the held reaper keeps)?
			if held.Owns(svc.pid) {
				hs.StartTime = svc.startTime
			} else {
				// Reaped before the hold, so its exit is already on its
				// way to the loop; take it from there.
				hs.Pid, hs.Exit = 0, awaitReaped(svc)
			}
		}
		for _, p := range svc.pumps {
			fd := int(p.r.Fd())
			keep = append(keep, fd)
			hs.Pipes = append(hs.Pipes, HandoffPipe{FD: fd, Stderr: p.out == s.o.Stderr, Carry: p.carry})
		}
		if svc.notify != nil {
			hs.Notify = int(svc.notify.Fd())
			keep = append(keep, hs.Notify)
		}
		h.Services = append(h.Services, hs)
	}
	return h, keep, func() {
		held.Release()
		for _, sig := range h.Signals {
			s.onSignal(syscall.Signal(sig))
		}
		s.startPumps()
	}
}

// awaitReaped waits for the watcher of a reaped leader to store its exit;
// the reaper handed it over before the hold, so this is a matter of the
// watcher goroutine being scheduled.
func awaitReaped(svc *service) *reaper.Exit {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if e := svc.reaped.Load(); e != nil {
			return e
		}
		runtime.Gosched()
	}
	return nil
}

// Reexecer replaces the running vigil by the binary on disk.
type Reexecer interface {
	// Check runs the new binary once; an error keeps the old vigil.
	Check() error
	// Exec does not return if it succeeds.
	Exec(h Handoff, keep []int) error
}

// reexecDelay lets the reply to `vigil reexec` reach the client before the
// exec closes its connection.
const reexecDelay = 100 * time.Millisecond

// Reexec checks the new binary, then replaces vigil in place shortly after:
// services keep running, not restarted. A failed check is returned; a
// failed exec is logged and vigil carries on.
func (s *Supervisor) Reexec(ctx context.Context) error {
	if s.o.Reexec == nil {
		return errors.New("re-exec is not available")
	}
	if err := s.o.Reexec.Check(); err != nil {
		return fmt.Errorf("the new binary failed its check, staying: %w", err)
	}
	return s.call(ctx, func() {
		time.AfterFunc(reexecDelay, func() { s.post(func() { s.reexecNow("requested") }) })
	})
}

// reexecNow freezes the world and execs; if the exec fails, the world
// thaws and vigil carries on.
func (s *Supervisor) reexecNow(reason string) {
	if s.shuttingDown || s.o.Reexec == nil {
		return
	}
	s.log.Info("re-executing", "reason", reason, "generation", s.o.Generation+1)
	// The state's lock closes with the exec; the new image opens it again.
	s.flushState()
	h, keep, thaw := s.freeze()
	s.log.Debug("frozen for re-exec", "services", len(h.Services), "fds", len(keep))
	err := s.o.Reexec.Exec(h, keep)
	thaw()
	s.log.Error("re-exec failed; carrying on", "err", err)
}

// stopPumps interrupts every pump at a line boundary and keeps its partial
// line; the read ends stay open. Pumps that reached EOF are dropped.
func (s *Supervisor) stopPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Now())
		}
	}
	for _, svc := range s.order {
		live := svc.pumps[:0]
		for _, p := range svc.pumps {
			if r := <-p.stopped; !r.eof {
				p.carry = r.left
				live = append(live, p)
			}
		}
		svc.pumps = live
	}
}

// startPumps restarts every pump with its carried partial line.
func (s *Supervisor) startPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Time{})
			s.runPump(svc.Name, p)
		}
	}
}

// adopt takes over the services of a handoff: each listed PID that is still
// vigil's child and started at the recorded time is registered with the
// reaper; an exit that happened during the exec is reaped on the first pass
// and handled by policy.
func (s *Supervisor) adopt(h Handoff) {
	clock, err := readClock()
	if err != nil {
		// Assume the exec took no time: the limit still holds, and pending
		// restarts come at most that much late.
		s.log.Error("assuming the re-exec took no time", "err", err)
		clock = monoClock{now: time.Now(), mono: h.Clock}
	}
	s.limiter.restore(h.Bucket, clock)
	s.order = slices.Grow(s.order, len(h.Services))
	runs := make(map[int]adoptedRun, len(h.Services))
	var same []bool
	if h.checked != nil {
		same = <-h.checked
	} else {
		same = checkProcesses(h.Services)
	}
	for i, hs := range h.Services {
		svc := &service{Service: hs.Config, isMain: hs.Main}
		if hs.Main {
			if s.main == nil {
				continue
			}
			svc = s.main
		}
		svc.state, svc.pgid, svc.started = hs.State, hs.Pgid, hs.Started
		svc.retries, svc.restarts, svc.lastExit, svc.want = hs.Retries, hs.Restarts, hs.LastExit, hs.Want
		if hs.Due != 0 {
			svc.due, svc.reserved = clock.fromMono(hs.Due), hs.Reserved
		}
		for _, hp := range hs.Pipes {
			out := s.o.Stdout
			if hp.Stderr {
				out = s.o.Stderr
			}
			// NewFile registers a non-blocking pipe with the poller, so
			// deadlines work on it again.
			syscall.SetNonblock(hp.FD, true)
			// FD_CLOEXEC was cleared for the exec: set it again, or every
			// service started from now on would inherit this pipe.
			syscall.CloseOnExec(hp.FD)
			svc.pumps = append(svc.pumps, &pump{r: os.NewFile(uintptr(hp.FD), "output"), out: out, carry: hp.Carry})
		}
		if hs.Notify >= 0 {
			syscall.CloseOnExec(hs.Notify)
			svc.notify = os.NewFile(uintptr(hs.Notify), "notify")
		}
		if hs.Exit != nil {
			// Ended during the freeze: handled once the loop runs.
			svc.pid = hs.Exit.Pid
			svc.run++
			ch := make(chan reaper.Exit, 1)
			ch <- *hs.Exit
			s.watchExit(svc, ch)
		}
		if hs.Pid != 0 {
			if same[i] {
				svc.pid, svc.startTime = hs.Pid, hs.StartTime
				svc.run++
				runs[hs.Pid] = adoptedRun{svc, svc.run}
			} else {
				s.log.Error("cannot adopt: not the process handed over", "service", svc.Name, "pid", hs.Pid)
				svc.state = Starting
				if hs.Want && !hs.Main {
					// Its run ended unseen: starting it again is a restart,
					// under the respawn limit like any other.
					svc.state, svc.due, svc.reserved = Backoff, clock.now, false
				}
			}
		}
		if !hs.Main {
			// add resets the state: keep the one set above, which a failed
			// adoption changed.
			st := svc.state
			s.add(svc)
			svc.state = st
			svc.want = hs.Want
		}
		svc.stopping, svc.restartAfterStop = hs.Stopping, hs.RestartAfterStop
		if hs.KillAt != 0 {
			svc.killAt = clock.fromMono(hs.KillAt)
		}
	}
	s.watchAdopted(runs)
	s.link()
}

// adoptedRun is the run of an adopted service whose exit is awaited.
type adoptedRun struct {
	svc *service
	run int
}

// watchAdopted registers the adopted children with the reaper and hands
// their exits to the loop, as watchExit does for a single run, with one
// goroutine for all of them. Each exit is stored in its service's reaped
// as soon as it arrives, before the goroutine waits to post it: a freeze
// that finds the leader reaped waits for exactly that (awaitReaped), and
// must not wait behind another service's exit queued for a busy loop.
func (s *Supervisor) watchAdopted(runs map[int]adoptedRun) {
	if len(runs) == 0 {
		return
	}
	pids := make([]int, 0, len(runs))
	for pid, a := range runs {
		a.svc.reaped.Store(nil)
		pids = append(pids, pid)
	}
	exits := s.o.Reaper.Adopt(pids...)
	go func() {
		var queue []reaper.Exit
		for left := len(runs); left > 0 || len(queue) > 0; {
			var events chan<- func()
			var next func()
			if len(queue) > 0 {
				e := queue[0]
				a := runs[e.Pid]
				events, next = s.events, func() { s.exited(a.svc, a.run, e) }
			}
			select {
			case e := <-exits:
				left--
				runs[e.Pid].svc.reaped.Store(&e)
				queue = append(queue, e)
			case events <- next:
				queue = queue[1:]
			case <-s.quit:
				return
			}
		}
	}()
}

// resume puts adopted services that were between runs back on their way.
func (s *Supervisor) resume() {
	stopping := false
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			s.runPump(svc.Name, p)
		}
		switch {
		case svc.stopping:
			// The stop signal went out from the old image; SIGKILL comes
			// when it was due (the timer was not handed over if it had
			// fired already).
			stopping = true
			if at := svc.killAt; !at.IsZero() {
				s.armKill(svc, at)
			}
		case svc.pid != 0 && svc.state == Running && svc.Ready != nil:
			s.watchReady(svc, append(append([]string{}, s.o.Env...), svc.Env...))
		case svc.pid == 0 && !svc.due.IsZero() && (svc.state == Backoff || svc.state == Starting):
			s.resumeRestart(svc)
		case svc.pid == 0 && svc.state == Backoff:
			// No due time handed over (an older vigil, or one that could not
			// read its clock): wait it all again.
			svc.state = Starting
			s.schedule(svc, restartDelay(svc.Backoff, max(svc.retries, 1), jitter()), false, func() { s.restart(svc) })
		case svc.pid == 0 && svc.state == Starting:
			s.tryStart(svc)
		}
	}
	if stopping {
		// A group that emptied during the exec has no exit left to report.
		s.checkGroups()
	}
}

// resumeRestart arms a restart the old image had scheduled, for the time it
// had: a backoff that ends takes a respawn token as usual; a restart that
// already took one (waiting for it to come due) only spawns, or the new
// image would take a second token for it, or start it early.
func (s *Supervisor) resumeRestart(svc *service) {
	due, reserved := svc.due, svc.reserved
	f := func() { s.restart(svc) }
	if reserved {
		f = func() { s.respawn(svc) }
	}
	s.schedule(svc, time.Until(due), reserved, f)
	svc.due = due
}

// startTime is a process's start time (see procStat).
func startTime(pid int) (uint64, error) {
	_, st, err := procStat(pid)
	return st, err
}

// Binding ties a handoff to this very process, so a stray descriptor can
// never hand a new vigil someone else's children: the start time of
// vigil's process, its PID namespace and the boot.
type Binding struct {
	StartTime uint64
	PidNS     uint64
	BootID    string
}

// Bind reads this process's Binding.
func Bind() (Binding, error) {
	st, err := startTime(os.Getpid())
	if err != nil {
		return Binding{}, fmt.Errorf("start time: %w", err)
	}
	var ns unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &ns); err != nil {
		return Binding{}, fmt.Errorf("pid namespace: %w", err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Binding{}, fmt.Errorf("boot id: %w", err)
	}
	return Binding{StartTime: st, PidNS: ns.Ino, BootID: string(bytes.TrimSpace(boot))}, nil
}
