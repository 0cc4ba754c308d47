package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
)

// Freeze stops the supervisor's world for a re-exec, on its goroutine (use
// it inside exec below): the pumps stop at a line boundary, the reaper is
// held so no listed PID can be freed, pending signals are drained. It
// returns the handoff, the descriptors that must survive the exec, and
// thaw, which undoes it all if the exec fails.
func (s *Supervisor) freeze() (h reexec.Handoff, keep []int, thaw func()) {
	s.stopPumps()
	held := s.o.Reaper.Hold()
	h.Generation = s.o.Generation + 1
	h.Panics = s.panics
	clock, clockErr := reexec.ReadClock()
	if clockErr != nil {
		s.log.Error("the respawn limit and pending restarts start afresh in the new image", "err", clockErr)
	} else {
		h.Clock = clock.Mono
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
	h.Services = make([]reexec.HandoffService, 0, len(s.order))
	for _, svc := range s.order {
		hs := reexec.HandoffService{
			Config: svc.Service, Main: svc.isMain, State: string(svc.state), Pid: svc.pid, Pgid: svc.pgid,
			Started: svc.started, Retries: svc.retries, Restarts: svc.restarts, LastExit: svc.lastExit,
			Want: svc.want, Notify: -1,
		}
		if clockErr == nil && svc.timer != nil && !svc.due.IsZero() {
			hs.Due, hs.Reserved = clock.ToMono(svc.due), svc.reserved
		}
		hs.Stopping, hs.RestartAfterStop = svc.stopping, svc.restartAfterStop
		if svc.timer != nil && !svc.killAt.IsZero() {
			// Without a clock, at once: late rather than never.
			hs.KillAt = 1
			if clockErr == nil {
				hs.KillAt = clock.ToMono(svc.killAt)
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
			hs.Pipes = append(hs.Pipes, reexec.HandoffPipe{FD: fd, Stderr: p.out == s.o.Stderr, Carry: p.carry})
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
	Exec(h reexec.Handoff, keep []int) error
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

// pumpGrace is how long stopPumps lets the pumps reach a line boundary
// before it interrupts those that wait for a reader of vigil's output.
const pumpGrace = 500 * time.Millisecond

// stopPumps interrupts every pump at a line boundary and keeps its partial
// line; the read ends stay open. Pumps that reached EOF are dropped. A pump
// that cannot get to a line boundary in time, because whatever reads
// vigil's stdout or stderr stopped reading, is interrupted in its wait and
// hands over what it did not write: a stalled log driver must not hold up
// the re-exec, the control socket and signals behind it.
func (s *Supervisor) stopPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Now())
		}
	}
	grace := time.NewTimer(pumpGrace)
	defer grace.Stop()
	interrupted := false
	for _, svc := range s.order {
		live := svc.pumps[:0]
		for _, p := range svc.pumps {
			var r pumpResult
			select {
			case r = <-p.stopped:
			case <-grace.C:
				interrupted = true
				s.o.Stdout.Interrupt()
				s.o.Stderr.Interrupt()
				r = <-p.stopped
			}
			if !r.eof {
				p.carry = r.left
				live = append(live, p)
			}
		}
		svc.pumps = live
	}
	if interrupted {
		s.o.Stdout.Resume()
		s.o.Stderr.Resume()
		s.log.Warn("vigil's output is not being read; prefixed output is handed over mid-write", "waited", pumpGrace)
	}
	// vigil's own log lines queued so far go out before the exec if the
	// reader takes them in time.
	s.o.Stderr.Flush(pumpGrace)
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
func (s *Supervisor) adopt(h reexec.Handoff) {
	clock, err := reexec.ReadClock()
	if err != nil {
		// Assume the exec took no time: the limit still holds, and pending
		// restarts come at most that much late.
		s.log.Error("assuming the re-exec took no time", "err", err)
		clock = reexec.Clock{Now: time.Now(), Mono: h.Clock}
	}
	s.limiter.restore(h.Bucket, clock)
	s.order = slices.Grow(s.order, len(h.Services))
	runs := make(map[int]adoptedRun, len(h.Services))
	same := h.Same()
	for i, hs := range h.Services {
		svc := &service{Service: hs.Config, isMain: hs.Main}
		if hs.Main {
			if s.main == nil {
				continue
			}
			svc = s.main
		}
		svc.state, svc.pgid, svc.started = State(hs.State), hs.Pgid, hs.Started
		svc.retries, svc.restarts, svc.lastExit, svc.want = hs.Retries, hs.Restarts, hs.LastExit, hs.Want
		if hs.Due != 0 {
			svc.due, svc.reserved = clock.FromMono(hs.Due), hs.Reserved
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
					svc.state, svc.due, svc.reserved = Backoff, clock.Now, false
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
			svc.killAt = clock.FromMono(hs.KillAt)
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
