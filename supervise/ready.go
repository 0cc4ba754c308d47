package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control/httpd"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
)

// Readiness checks poll where the kernel has nothing to tell (a port that
// starts listening, a file that appears, a command that starts passing),
// starting fast and slowing to once a second; each stops once ready or when
// its run ends. notify_fd needs no polling: it is a read on a pipe.
const (
	firstPoll = 50 * time.Millisecond
	maxPoll   = time.Second
)

// watchReady runs svc's readiness check for the current run, and arms the
// check's timeout: a run not ready in time counts as failed and is stopped.
//
// id is how the service runs: exec checks run as its user, groups, dir and
// environment, with only fds 0-2 (as Docker's HEALTHCHECK and Kubernetes'
// exec probes run as the container's user).
func (s *Supervisor) watchReady(svc *service, id proc.Command) {
	ctx, cancel := context.WithCancel(context.Background())
	svc.cancel = cancel
	run := svc.run
	check := *svc.Ready
	notify := svc.notify
	svc.notify = nil
	// The deadline counts from the start of the run: after a re-exec it
	// keeps its time (one that passed during the exec comes at once). A
	// run that was ready already (a continuous readiness check made it not
	// ready) has none: not being ready never fails it.
	if check.Timeout > 0 && !svc.wasReady {
		at := svc.started.Add(check.Timeout)
		if now := s.clock.Now(); at.Before(now) {
			at = now
		}
		s.arm(svc, readyTimeout, at)
	}
	stdin := s.devnull.Fd() // on the loop: devnull is closed when Run ends
	go func() {
		err := waitReady(ctx, check, notify, s.o.Reaper, id, stdin)
		if ctx.Err() == nil && (err == nil || errors.Is(err, errNotifyLong)) {
			s.post(readyEvent{svc, run, err})
		}
	}()
}

// readyDone makes svc ready if the check that passed is its current run's;
// a check that cannot pass any more (a notify line too long) fails the run
// as a timeout does.
func (s *Supervisor) readyDone(svc *service, run int, err error) {
	if svc.run != run || svc.state != Running {
		return
	}
	if err != nil {
		s.log.Error("readiness failed: the run counts as failed", "service", svc.Name, "err", err)
		svc.runFailed = true
		s.stopReadyCheck(svc)
		s.signalStop(svc)
		return
	}
	if svc.timer.kind == readyTimeout {
		s.disarm(svc)
	}
	s.stopReadyCheck(svc)
	s.becomeReady(svc)
	s.startProbes(svc)
}

// readyTimedOut fails a run whose check did not pass in time.
func (s *Supervisor) readyTimedOut(svc *service) {
	if svc.state != Running {
		return
	}
	s.log.Error("not ready in time: the run counts as failed", "service", svc.Name, "timeout", svc.Ready.Timeout)
	svc.runFailed = true
	s.stopReadyCheck(svc)
	s.signalStop(svc)
}

// stopReadyCheck ends every check of svc's run: the readiness check
// waited for, and the repeating ones.
func (s *Supervisor) stopReadyCheck(svc *service) {
	s.stopProbes(svc)
	if svc.cancel != nil {
		svc.cancel()
		svc.cancel = nil
	}
	if svc.notify != nil {
		svc.notify.Close()
		svc.notify = nil
	}
}

// waitReady blocks until the check passes (nil) or ctx ends (its error).
func waitReady(ctx context.Context, c config.Ready, notify *os.File, r *reaper.Reaper, id proc.Command, stdin uintptr) error {
	if c.NotifyFD > 0 {
		return waitNotify(ctx, notify)
	}
	poll := firstPoll
	for {
		var ok bool
		switch {
		case c.TCP != "":
			d := net.Dialer{Timeout: time.Second}
			if conn, err := d.DialContext(ctx, "tcp", c.TCP); err == nil {
				conn.Close()
				ok = true
			}
		case c.File != "":
			_, err := os.Stat(c.File)
			ok = err == nil
		case len(c.Exec) > 0:
			ok = runCheck(ctx, c.Exec, r, id, stdin)
		case c.HTTP != "":
			actx, cancel := context.WithTimeout(ctx, time.Second)
			ok = httpd.Check(actx, c.HTTP) == nil
			cancel()
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
		poll = min(poll*2, maxPoll)
	}
}

// runCheck runs an exec check through the reaper (never os/exec's Wait,
// which would race the reaper for the exit) and reports whether it exited 0.
func runCheck(ctx context.Context, argv []string, r *reaper.Reaper, id proc.Command, stdin uintptr) bool {
	pid, exits, err := proc.Start(r, proc.Command{Argv: argv, Dir: id.Dir, Env: id.Env, Credential: id.Credential,
		Session: true, Terminal: -1, Files: []uintptr{stdin, 1, 2}})
	if err != nil {
		return false
	}
	select {
	case e := <-exits:
		return e.Code() == 0
	case <-ctx.Done():
		proc.KillGroup(pid)
		<-exits
		return false
	}
}

// maxNotifyLine bounds what vigil reads from a notify fd: a service that
// writes and never ends a line must not grow PID 1 without bound.
const maxNotifyLine = 4096

// waitNotify waits for the service to write a line to its notify fd; a
// line longer than maxNotifyLine is a failed readiness.
func waitNotify(ctx context.Context, f *os.File) error {
	if f == nil {
		return errors.New("no notify pipe")
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	var buf [maxNotifyLine]byte
	n := 0
	for n < len(buf) {
		k, err := f.Read(buf[n:])
		if bytes.IndexByte(buf[n:n+k], '\n') >= 0 {
			return nil
		}
		n += k
		if err != nil {
			return fmt.Errorf("notify fd: %w", err)
		}
	}
	return errNotifyLong
}

var errNotifyLong = fmt.Errorf("notify fd: no newline in the first %d bytes", maxNotifyLine)
