package supervise

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
)

// tryStart starts svc if it is wanted, waiting to start (or blocked), and
// its dependencies are ready. A dependency that failed for good blocks it.
// A service that finished, was given up or stopped waits for an operator's
// start (startNow), never for its dependencies.
func (s *Supervisor) tryStart(svc *service) {
	if s.shuttingDown || svc.desired != wantUp || svc.pid != 0 || svc.timer.kind != noTimer ||
		(svc.state != Starting && svc.state != Blocked) {
		return
	}
	if svc.scheduled() && !svc.due {
		s.toScheduled(svc, slog.LevelDebug, "")
		return
	}
	for _, d := range svc.deps {
		if d.failedForGood() {
			s.block(svc, d)
			return
		}
	}
	// A blocked service whose dependencies came back (vigil start on
	// them) is waiting again.
	s.become(svc, Starting, slog.LevelDebug, "")
	for _, d := range svc.deps {
		if !d.ready() {
			s.log.Debug("waiting for a dependency", "service", svc.Name, "dependency", d.Name)
			return
		}
	}
	s.spawn(svc)
}

// block marks svc, waiting to run, and its waiting dependents blocked.
func (s *Supervisor) block(svc *service, by *service) {
	if svc.pid != 0 || (svc.state != Starting && svc.state != Backoff) {
		return
	}
	s.disarm(svc)
	s.become(svc, Blocked, slog.LevelError, "blocked: a dependency failed for good",
		"dependency", by.Name, "dependency_state", string(by.state))
	for _, u := range svc.users {
		s.block(u, svc)
	}
	s.maybeAllDone()
}

// spawn starts one run of svc.
func (s *Supervisor) spawn(svc *service) {
	svc.run++
	svc.runFailed, svc.wasReady = false, false
	if svc.scheduled() {
		svc.due = false
		svc.lastRun = s.clock.Now()
	}
	cmd, closeAfter, pumps, err := s.command(svc)
	var pid int
	if err == nil {
		pid, err = s.procs.Start(cmd)
	}
	for _, f := range closeAfter {
		f.Close()
	}
	svc.started = s.clock.Now()
	s.dirty = true
	if err != nil {
		for _, p := range pumps {
			p.r.Close()
		}
		if svc.notify != nil {
			svc.notify.Close()
			svc.notify = nil
		}
		code := proc.ExitCode(err)
		s.log.Error("cannot start", "service", svc.Name, "status", code, "err", err)
		svc.lastExit = &code
		if svc.isMain {
			s.become(svc, GivenUp, slog.LevelDebug, "")
			s.mainExited(code)
			return
		}
		s.judge(svc, code, 0)
		return
	}
	// Pumps of an earlier run that reached EOF are done with; others may
	// still drain a leftover process's output.
	svc.pumps = slices.DeleteFunc(svc.pumps, func(p *pump) bool { return p.eof.Load() })
	for _, p := range pumps {
		svc.pumps = append(svc.pumps, p)
		s.runPump(p)
	}
	svc.pid, svc.pgid = pid, pid
	s.byPid[pid] = svc
	// Read once now, off the re-exec path; 0 if it is already gone.
	svc.startTime = s.procs.StartTime(pid)
	s.become(svc, Running, slog.LevelInfo, "started", "pid", pid)
	switch {
	case svc.Ready != nil:
		s.watchReady(svc, cmd)
	case !svc.Oneshot:
		s.becomeReady(svc)
		s.startProbes(svc)
	}
}

// identity is how svc's processes run, its checks' too: its argv, dir,
// user (credential and HOME) and environment, each name once with the
// service's own value winning over vigil's.
func (s *Supervisor) identity(svc *service) (proc.Command, error) {
	c := proc.Command{Argv: svc.Argv, Dir: svc.Dir, Terminal: -1}
	var home []string
	if svc.User != "" {
		cred, dir, err := proc.Credential(s.o.Root, svc.User)
		if err != nil {
			return c, &proc.StartError{Argv0: svc.Argv[0], Code: 126, Err: err}
		}
		c.Credential = cred
		home = []string{"HOME=" + dir}
	}
	c.Env = proc.MergeEnv(s.o.Env, home, svc.Env)
	return c, nil
}

// command builds how svc is started. closeAfter are vigil's copies of the
// child's pipe ends, closed once the child has them.
func (s *Supervisor) command(svc *service) (proc.Command, []*os.File, []*pump, error) {
	c, err := s.identity(svc)
	if err != nil {
		return c, nil, nil, err
	}
	if svc.isMain {
		c.Terminal = s.o.Terminal
		c.Inherit = s.o.MainFiles
		return c, nil, nil, nil // vigil's own stdin, stdout and stderr
	}
	c.Session = true
	c.Files = []uintptr{s.devnull.Fd(), 1, 2}
	var closeAfter []*os.File
	var pumps []*pump
	if passesThrough(svc) {
		s.openLog(svc, nil)
		for i := range 2 {
			r, w, err := os.Pipe()
			if err != nil {
				for _, f := range closeAfter {
					f.Close()
				}
				for _, p := range pumps {
					p.r.Close()
				}
				return c, nil, nil, fmt.Errorf("output pipe: %w", err)
			}
			c.Files[1+i] = w.Fd()
			closeAfter = append(closeAfter, w)
			pumps = append(pumps, s.newPump(svc, r, i == 1, nil, 0))
		}
	}
	if svc.Ready != nil && svc.Ready.NotifyFD > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return c, closeAfter, pumps, fmt.Errorf("notify pipe: %w", err)
		}
		for len(c.Files) <= svc.Ready.NotifyFD {
			c.Files = append(c.Files, ^uintptr(0)) // closed in the child
		}
		c.Files[svc.Ready.NotifyFD] = w.Fd()
		closeAfter = append(closeAfter, w)
		svc.notify = r
	}
	return c, closeAfter, pumps, nil
}

// becomeReady marks svc ready and starts what waited for it.
func (s *Supervisor) becomeReady(svc *service) {
	svc.wasReady = true
	if svc.Ready != nil {
		s.become(svc, Ready, slog.LevelInfo, "ready", "pid", svc.pid)
	} else {
		s.become(svc, Ready, slog.LevelDebug, "")
	}
	s.startUsers(svc)
}

func (s *Supervisor) startUsers(svc *service) {
	for _, u := range svc.users {
		s.tryStart(u)
	}
}

// exited handles the end of a run.
func (s *Supervisor) exited(svc *service, e reaper.Exit) {
	code := e.Code()
	ran := s.clock.Now().Sub(svc.started)
	svc.pid = 0
	svc.lastExit = &code
	s.dirty = true
	s.stopReadyCheck(svc)
	s.log.Info("exited", "service", svc.Name, "pid", e.Pid, "status", code, "ran", ran.Round(time.Millisecond))
	if svc.isMain {
		s.mainExited(code)
	}
	if svc.state == Stopping {
		s.checkGroups()
		return
	}
	if s.shuttingDown {
		s.become(svc, Stopped, slog.LevelDebug, "")
		s.checkGroups()
		return
	}
	s.judge(svc, code, ran)
}

// mainExited ends the run with the main process's status.
func (s *Supervisor) mainExited(code int) {
	if slices.Contains(s.o.ExitZero, code) {
		code = 0
	}
	s.fixExit(code)
	if s.o.Terminal >= 0 {
		if err := proc.ReclaimTerminal(s.o.Terminal); err != nil {
			s.log.Debug("cannot take the terminal back", "err", err)
		}
	}
	s.shutdown("main exited")
}

// judge applies the restart policy to a run that ended by itself
// (docs/configuration.md: failed runs, max_retries, backoff, stable_after).
func (s *Supervisor) judge(svc *service, code int, ran time.Duration) {
	if svc.scheduled() {
		s.judgeScheduled(svc, code)
		return
	}
	success := code == 0 && !svc.runFailed
	stable := ran >= svc.StableAfter && !svc.runFailed && svc.StableAfter > 0
	if svc.Oneshot && success {
		svc.retries = 0
		s.become(svc, Exited, slog.LevelDebug, "")
		s.startUsers(svc)
		s.maybeAllDone()
		return
	}
	if svc.Restart == config.RestartNever || (svc.Restart == config.RestartOnFailure && success) {
		if success {
			svc.retries = 0
			s.become(svc, Exited, slog.LevelDebug, "")
		} else {
			s.become(svc, GivenUp, slog.LevelWarn, "will not restart", "restart", svc.Restart, "status", code)
		}
		s.endedForGood(svc, code)
		return
	}
	var delay time.Duration
	if stable {
		svc.retries = 0
	} else {
		svc.retries++
		if svc.MaxRetries >= 0 && svc.retries > svc.MaxRetries {
			s.become(svc, GivenUp, slog.LevelError, "given up", "runs", svc.retries, "status", code)
			s.endedForGood(svc, code)
			return
		}
		delay = restartDelay(svc.Backoff, svc.retries, jitter())
	}
	attempt := fmt.Sprintf("%d of %d", svc.retries, svc.MaxRetries)
	if svc.MaxRetries < 0 {
		attempt = fmt.Sprintf("%d of unlimited", svc.retries)
	}
	s.become(svc, Backoff, slog.LevelInfo, "restart scheduled", "delay", delay.Round(time.Millisecond), "attempt", attempt)
	s.arm(svc, restartDue, s.clock.Now().Add(delay))
}

// restart spawns svc again once the global respawn limit allows.
func (s *Supervisor) restart(svc *service) {
	now := s.clock.Now()
	if wait := s.limiter.Reserve(now); wait > 0 {
		s.become(svc, Starting, slog.LevelInfo, "respawn limit reached: restart delayed", "wait", wait.Round(time.Millisecond))
		s.arm(svc, tokenDue, now.Add(wait))
		return
	}
	s.respawn(svc)
}

func (s *Supervisor) respawn(svc *service) {
	if s.shuttingDown || svc.desired != wantUp || svc.state == Blocked {
		return
	}
	svc.restarts++
	s.spawn(svc)
}

// endedForGood handles a service that will not run again by itself: its
// waiting dependents are blocked, and a critical one ends the run.
func (s *Supervisor) endedForGood(svc *service, code int) {
	if svc.state == GivenUp {
		for _, u := range svc.users {
			s.block(u, svc)
		}
	}
	if svc.Critical && !svc.isMain {
		status := code
		if status == 0 && svc.state == GivenUp {
			status = 1
		}
		s.fixExit(status)
		s.shutdown("critical service " + svc.Name + " ended")
		return
	}
	s.maybeAllDone()
}

// maybeAllDone ends a run without main once every service has finished for
// good without failure. Given-up services keep vigil up for `vigil start`.
func (s *Supervisor) maybeAllDone() {
	if s.main != nil || s.shuttingDown {
		return
	}
	for _, svc := range s.order {
		if svc.state != Exited {
			return
		}
	}
	s.shutdown("every service has finished")
}
