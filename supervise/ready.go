package supervise

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/vigil-init/vigil/config"
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
func (s *Supervisor) watchReady(svc *service, env []string) {
	ctx, cancel := context.WithCancel(context.Background())
	svc.cancel = cancel
	run := svc.run
	check := *svc.Ready
	notify := svc.notify
	svc.notify = nil
	if check.Timeout > 0 {
		s.arm(svc, readyTimeout, s.clock.Now().Add(check.Timeout))
	}
	go func() {
		if waitReady(ctx, check, notify, s.o.Reaper, env, s.devnull.Fd()) == nil {
			s.post(readyEvent{svc, run})
		}
	}()
}

// readyPassed makes svc ready if the check that passed is its current run's.
func (s *Supervisor) readyPassed(svc *service, run int) {
	if svc.run != run || svc.state != Running {
		return
	}
	if svc.timer.kind == readyTimeout {
		s.disarm(svc)
	}
	s.stopReadyCheck(svc)
	s.becomeReady(svc)
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

func (s *Supervisor) stopReadyCheck(svc *service) {
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
func waitReady(ctx context.Context, c config.Ready, notify *os.File, r *reaper.Reaper, env []string, stdin uintptr) error {
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
			ok = runCheck(ctx, c.Exec, r, env, stdin)
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
func runCheck(ctx context.Context, argv []string, r *reaper.Reaper, env []string, stdin uintptr) bool {
	pid, exits, err := proc.Start(r, proc.Command{Argv: argv, Env: env, Session: true, Terminal: -1, Files: []uintptr{stdin, 1, 2}})
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

// waitNotify waits for the service to write a line to its notify fd.
func waitNotify(ctx context.Context, f *os.File) error {
	if f == nil {
		return errors.New("no notify pipe")
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	_, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return err
	}
	return nil
}
