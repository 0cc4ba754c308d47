package main

import (
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/signals"
	"github.com/vigil-init/vigil/supervise"
	"golang.org/x/sys/unix"
)

// wrapper is tini's job: run one main process, forward signals to its group,
// reap everything, and exit with the main process's status.
type wrapper struct {
	log      *slog.Logger
	reaper   *reaper.Reaper
	signals  <-chan os.Signal
	rewrite  signals.Rewrite
	exitZero []int
	shutdown time.Duration
	socket   string
}

// killGrace bounds the wait after SIGKILL: a process in uninterruptible sleep
// must not keep vigil (and the container) alive for ever.
const killGrace = 5 * time.Second

func (w *wrapper) run(argv []string) int {
	term := supervise.ForegroundTerminal()
	pid, exited, err := supervise.Start(w.reaper, supervise.Command{
		Argv:     argv,
		Env:      supervise.CleanEnv(os.Environ()),
		Terminal: term,
	})
	if err != nil {
		w.log.Error("cannot start main", "err", err)
		return supervise.ExitCode(err)
	}
	w.log.Info("started main", "pid", pid, "cmd", argv[0])
	// The socket comes after the spawn: nothing may delay the main process.
	ctl := &wrapperControl{}
	ctl.set(pid)
	_, stopControl := serveControl(w.log, w.socket, ctl)
	defer stopControl()

	for {
		select {
		case sig := <-w.signals:
			w.forward(pid, sig.(syscall.Signal))
		case e := <-exited:
			code := e.Code()
			w.log.Info("main exited", "pid", pid, "status", code)
			if term >= 0 {
				if err := supervise.ReclaimTerminal(term); err != nil {
					w.log.Debug("cannot take the terminal back", "err", err)
				}
			}
			w.stopTheRest()
			if slices.Contains(w.exitZero, code) {
				code = 0
			}
			return code
		}
	}
}

// forward passes a signal on to the main process's group, as the wrapper
// column of the signal table says.
func (w *wrapper) forward(pgid int, sig syscall.Signal) {
	act := signals.Decide(sig, signals.Wrapper, true, w.rewrite)
	if act.Verb != signals.ForwardMain {
		w.log.Debug("dropped signal", "signal", signals.Name(sig), "why", act.Why)
		return
	}
	to := act.Signal
	if err := unix.Kill(-pgid, to); err != nil {
		w.log.Debug("cannot forward signal", "signal", signals.Name(to), "to", -pgid, "err", err)
		return
	}
	w.log.Debug("forwarded signal", "signal", signals.Name(to), "to", -pgid)
}

// stopTheRest ends whatever outlived the main process: SIGTERM, then SIGKILL
// when the shutdown budget (counted from the main's exit) runs out, or at once
// on a second TERM or INT. It returns as soon as no child is left.
func (w *wrapper) stopTheRest() {
	gone := w.reaper.NoChildren()
	if !supervise.SignalAll(unix.SIGTERM) {
		<-gone
		return
	}
	// A stopped process cannot act on TERM until it is continued.
	supervise.SignalAll(unix.SIGCONT)
	w.log.Info("sent SIGTERM to the remaining processes", "timeout", w.shutdown)
	deadline := time.NewTimer(w.shutdown)
	defer deadline.Stop()
wait:
	for {
		select {
		case <-gone:
			return
		case sig := <-w.signals:
			if sig == unix.SIGTERM || sig == unix.SIGINT {
				break wait
			}
		case <-deadline.C:
			break wait
		}
	}
	w.log.Warn("sending SIGKILL to the remaining processes")
	supervise.SignalAll(unix.SIGKILL)
	select {
	case <-gone:
	case <-time.After(killGrace):
		w.log.Error("processes survived SIGKILL; exiting anyway", "waited", killGrace)
	}
}
