package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/supervise/svclog"
)

// Reexecer replaces the running vigil by the binary on disk.
type Reexecer interface {
	// Check runs the new binary once; an error keeps the old vigil.
	Check() error
	// Exec does not return if it succeeds.
	Exec(h reexec.Handoff, keep []int) error
}

// freeze stops the supervisor's world for a re-exec, on its goroutine: the
// pumps stop at a line boundary, the reaper is held so no listed PID can be
// freed, pending signals are drained. It returns the handoff, the
// descriptors that must survive the exec, and thaw, which undoes it all if
// the exec fails.
func (s *Supervisor) freeze() (h reexec.Handoff, keep []int, thaw func()) {
	// The rings are copied into the handoff, then its encoding: room for
	// them three times until the exec, or the collector runs through
	// the pause.
	s.logMemory(3)
	s.stopPumps()
	// Every line the pumps took is in the rings and the files' queues now:
	// the queues go to disk (the new image appends), the rings into the
	// handoff.
	s.flushLogs(pumpGrace)
	held := s.o.Reaper.Hold()
	// Every exit reaped before the hold is in the queue now (Hold waits for
	// deliveries): a leader reaped but not yet handled is handed over with
	// its exit, and nothing else the queue holds is lost.
	pending := s.o.Exits.Take()
	exitOf := make(map[int]reaper.Exit, len(pending))
	for _, e := range pending {
		if !e.Orphan {
			exitOf[e.Pid] = e
		}
	}
	h.Generation = s.o.Generation + 1
	h.Panics = s.panics
	h.Orphans, h.Forwarded = s.orphanBase+held.Orphans(), s.forwarded
	s.killChecks(held.Owns)
	var clock *reexec.Clock
	if c, err := reexec.ReadClock(); err != nil {
		s.log.Error("the respawn limit and pending restarts start afresh in the new image", "err", err)
	} else {
		clock = &c
		h.Clock = c.Mono
		h.Bucket = s.limiter.handoff(c)
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
		hs := svc.handoff(clock)
		if svc.pid != 0 {
			switch e, reaped := exitOf[svc.pid]; {
			case held.Owns(svc.pid):
				// Running, or a zombie the held reaper keeps.
				hs.StartTime = svc.startTime
			case reaped:
				hs.Pid, hs.Exit = 0, &e
			default:
				// Neither running nor in the queue: cannot happen while the
				// reaper delivers before Hold returns. Should it, the new
				// image restarts the service rather than wait for an exit
				// that never comes.
				s.log.Error("internal error: a service's exit is missing at re-exec; handing it over as ended", "service", svc.Name, "pid", svc.pid)
				hs.Pid, hs.Exit = 0, &reaper.Exit{Pid: svc.pid, Status: 255 << 8}
			}
		}
		for _, p := range svc.pumps {
			fd := int(p.r.Fd())
			keep = append(keep, fd)
			hs.Pipes = append(hs.Pipes, reexec.HandoffPipe{FD: fd, Stderr: p.stderr, Carry: p.carry, Teed: p.teed})
		}
		if svc.log != nil {
			hs.LogRing = svc.log.ring // encoded straight into the handoff
		}
		if svc.notify != nil {
			hs.Notify = int(svc.notify.Fd())
			keep = append(keep, hs.Notify)
		}
		h.Services = append(h.Services, hs)
	}
	return h, keep, func() {
		s.logMemory(1)
		held.Release()
		for _, e := range pending {
			s.o.Exits.Deliver(e)
		}
		for _, sig := range h.Signals {
			s.onSignal(syscall.Signal(sig))
		}
		s.startPumps()
	}
}

// reexecDelay lets the reply to `vigil reexec` reach the client before the
// exec closes its connection.
const reexecDelay = 100 * time.Millisecond

// Reexec checks the new binary, then replaces vigil in place shortly after:
// services keep running, not restarted. A failed check is returned; a
// failed exec is logged and vigil carries on.
func (s *Supervisor) Reexec(ctx context.Context) error {
	if s.o.Wrapper {
		return errors.New("re-exec needs supervisor mode: wrapper mode has nothing to carry over")
	}
	if s.o.Reexec == nil {
		return errors.New("re-exec is not available")
	}
	if err := s.o.Reexec.Check(); err != nil {
		return fmt.Errorf("the new binary failed its check, staying: %w", err)
	}
	return s.call(ctx, func() {
		s.clock.AfterFunc(reexecDelay, func() { s.post(reexecEvent{"requested"}) })
	})
}

// reexecNow freezes the world and execs; if the exec fails, the world
// thaws and vigil carries on.
func (s *Supervisor) reexecNow(reason string) {
	if s.shuttingDown || s.o.Reexec == nil {
		return
	}
	if reason != "requested" { // `vigil reexec` checked before it asked
		if err := s.o.Reexec.Check(); err != nil {
			s.log.Error("not re-executing: the new binary failed its check", "reason", reason, "err", err)
			return
		}
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

// adopt takes over the services of a handoff: each listed PID that is still
// vigil's child and started at the recorded time is registered with the
// reaper, its exit to the queue; an exit that happened during the exec is
// reaped on the first pass and handled by policy.
func (s *Supervisor) adopt(h *reexec.Handoff) {
	clock, err := reexec.ReadClock()
	if err != nil {
		// Assume the exec took no time: the limit still holds, and pending
		// restarts come at most that much late.
		s.log.Error("assuming the re-exec took no time", "err", err)
		clock = reexec.Clock{Now: s.clock.Now(), Mono: h.Clock}
	}
	s.limiter.restore(h.Bucket, clock)
	s.order = slices.Grow(s.order, len(h.Services))
	same := h.Same()
	var adopted []int
	for i := range h.Services {
		hs := &h.Services[i]
		svc := &service{Service: hs.Config, isMain: hs.Main}
		if hs.Main {
			if s.main == nil {
				continue
			}
			svc = s.main
		}
		svc.fromHandoff(hs)
		var ring *svclog.Ring
		if hs.LogRing != nil {
			raw, ok := hs.LogRing.(reexec.RawBytes)
			if !ok { // handed over in-process, not through the wire
				raw, _ = hs.LogRing.AppendBinary(nil)
			}
			if ring, _, err = svclog.DecodeRing(raw); err != nil {
				s.log.Error("the log ring handed over is damaged; starting an empty one", "service", svc.Name, "err", err)
			}
			// The handoff stays in Options: its copy of the ring must not
			// stay alive beside the ring.
			hs.LogRing = nil
		}
		if ring != nil || passesThrough(svc) {
			if ring == nil {
				ring = svclog.NewRing(s.ringSize)
			}
			// The log file opens when the loop runs (resume): it needs
			// the service's user.
			svc.log = &svcLog{ring: ring}
		}
		for _, hp := range hs.Pipes {
			// NewFile registers a non-blocking pipe with the poller, so
			// deadlines work on it again.
			syscall.SetNonblock(hp.FD, true)
			// FD_CLOEXEC was cleared for the exec: set it again, or every
			// service started from now on would inherit this pipe.
			syscall.CloseOnExec(hp.FD)
			svc.pumps = append(svc.pumps, s.newPump(svc, os.NewFile(uintptr(hp.FD), "output"), hp.Stderr, hp.Carry, hp.Teed))
		}
		if hs.Notify >= 0 {
			syscall.CloseOnExec(hs.Notify)
			svc.notify = os.NewFile(uintptr(hs.Notify), "notify")
		}
		switch {
		case hs.Exit != nil:
			// Ended during the freeze: handled once the loop runs.
			svc.pid = hs.Exit.Pid
			svc.run++
			s.byPid[svc.pid] = svc
			s.o.Exits.Deliver(*hs.Exit)
		case hs.Pid != 0 && same[i]:
			svc.pid, svc.startTime = hs.Pid, hs.StartTime
			svc.run++
			s.byPid[svc.pid] = svc
			adopted = append(adopted, svc.pid)
		case hs.Pid != 0:
			s.log.Error("cannot adopt: not the process handed over", "service", svc.Name, "pid", hs.Pid)
			svc.state = Starting
			if hs.Want && !hs.Main {
				// Its run ended unseen: starting it again is a restart,
				// under the respawn limit like any other.
				svc.state = Backoff
				svc.timer = slot{kind: restartDue, at: clock.Now}
			}
		}
		if !hs.Main {
			s.order = append(s.order, svc)
			s.byName[svc.Name] = svc
		}
		switch {
		case hs.Due != 0 && hs.Reserved:
			svc.timer = slot{kind: tokenDue, at: clock.FromMono(hs.Due)}
		case hs.Due != 0:
			svc.timer = slot{kind: restartDue, at: clock.FromMono(hs.Due)}
		case hs.KillAt != 0:
			svc.timer = slot{kind: killDue, at: clock.FromMono(hs.KillAt)}
		}
	}
	if len(adopted) > 0 {
		s.o.Reaper.Adopt(s.o.Exits, adopted...)
	}
	// Every ring is copied out of the handoff's mapping.
	h.Release()
	s.link()
}

// resume puts adopted services back on their way: pumps copy again, and
// each timer handed over (a restart, a SIGKILL) is armed for its time.
func (s *Supervisor) resume() {
	stopping := false
	s.logMemoryChanged()
	for _, svc := range s.order {
		if svc.log != nil {
			s.openFile(svc)
		}
		for _, p := range svc.pumps {
			s.runPump(p)
		}
		handed := svc.timer
		svc.timer = slot{}
		if tick := svc.tick; tick.kind == tickDue {
			// A tick that came during the exec fires at once.
			svc.tick = slot{}
			s.armTick(svc, tick.at)
		} else if svc.state == Scheduled {
			s.ensureTick(svc)
		}
		switch {
		case svc.state == Stopping:
			// The stop signal went out from the old image; SIGKILL comes
			// when it was due (the timer was not handed over if it had
			// fired already).
			stopping = true
			if handed.kind == killDue {
				s.arm(svc, killDue, handed.at)
			}
		case svc.state == Unhealthy:
			// Stopped for its health by the old image: SIGKILL when due;
			// its exit is a failed run (fromHandoff).
			if handed.kind == killDue {
				s.arm(svc, killDue, handed.at)
			}
		case svc.pid != 0 && (svc.state == Ready || svc.state == Running && svc.wasReady && svc.readyInterval() > 0):
			// The repeating checks start afresh (a run made not ready
			// by its readiness check included): their counts are not
			// handed over, so a re-exec gives a failing check its full
			// threshold again.
			s.startProbes(svc)
		case svc.pid != 0 && svc.state == Running && svc.Ready != nil:
			if id, err := s.identity(svc); err == nil {
				s.watchReady(svc, id)
			} else {
				s.log.Error("cannot run the readiness check", "service", svc.Name, "err", err)
			}
		case svc.pid == 0 && handed.kind == tokenDue:
			// Took its respawn token already: only spawns at its time.
			s.arm(svc, tokenDue, handed.at)
		case svc.pid == 0 && handed.kind == restartDue && (svc.state == Backoff || svc.state == Starting):
			s.arm(svc, restartDue, handed.at)
		case svc.pid == 0 && svc.state == Backoff:
			// No due time handed over (an older vigil, or one that could not
			// read its clock): wait it all again.
			s.become(svc, Starting, slog.LevelDebug, "")
			s.arm(svc, restartDue, s.clock.Now().Add(restartDelay(svc.Backoff, max(svc.retries, 1), jitter())))
		case svc.pid == 0 && svc.state == Starting:
			s.tryStart(svc)
		}
	}
	if stopping {
		// A group that emptied during the exec has no exit left to report.
		s.checkGroups()
	}
}
