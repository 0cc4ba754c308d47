package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/supervise"
)

// serveControl opens the control socket and answers on it until the
// returned stop function is called. A socket that cannot be opened is
// logged, never fatal: the services matter more than their remote control.
func serveControl(log *slog.Logger, socket string, h control.Handler) (srv *control.Server, stop func()) {
	if socket == control.SocketOff {
		log.Debug("no control socket: VIGIL_SOCKET=none")
		return nil, func() {}
	}
	srv, err := inheritedControl()
	if srv == nil {
		if err != nil {
			log.Warn("cannot take over the control socket after re-exec; opening it again", "err", err)
		}
		srv, err = control.Listen(socket)
	}
	if err != nil {
		log.Warn("no control socket: vigil status and friends will not reach this vigil", "err", err)
		return nil, func() {}
	}
	log.Debug("control socket", "path", srv.Path())
	go srv.Serve(h, log)
	// Only ever called on the way out of the process.
	return srv, func() { srv.Leave() }
}

// inheritedControl takes over the control socket an earlier image of this
// process kept open across its exec, if any.
func inheritedControl() (*control.Server, error) {
	ln, err := reexec.InheritedListener()
	if ln == nil {
		return nil, err
	}
	return control.Inherit(ln.FD, ln.Path)
}

// reexecer replaces this vigil by the binary on disk, keeping the control
// socket listening across the exec.
type reexecer struct {
	reaper  *reaper.Reaper
	control *control.Server // kept listening across the exec; nil if none
	serve   func()          // serves control again if the exec fails
	pdeath  syscall.Signal  // set again on the exec's thread
	// controlUp is closed once control and serve are set (wrapper mode
	// opens the socket in a goroutine of its own).
	controlUp <-chan struct{}
}

func (x *reexecer) Check() error { return reexec.Check(x.reaper) }

func (x *reexecer) Exec(h reexec.Handoff, keep []int) error {
	if x.controlUp != nil {
		<-x.controlUp
	}
	var ln *reexec.Listener
	if x.control != nil {
		x.control.Pause()
		defer func() { // only reached if the exec failed
			x.control.Resume()
			x.serve()
		}()
		if fd, err := x.control.Fd(); err == nil {
			ln = &reexec.Listener{FD: fd, Path: x.control.Path()}
		}
	}
	return reexec.Exec(&h, keep, ln, x.pdeath)
}

// supervisorControl answers the verbs for supervisor mode.
type supervisorControl struct {
	sup    *supervise.Supervisor
	reload func() ([]config.Service, []error)
}

// unknown marks supervise's unknown-service errors as control's, keeping
// the message.
func unknown(err error) error {
	if errors.Is(err, supervise.ErrUnknown) {
		return unknownService{err}
	}
	return err
}

type unknownService struct{ error }

func (u unknownService) Is(target error) bool { return target == control.ErrUnknown }

func (c supervisorControl) Status(ctx context.Context, names []string) ([]control.ServiceStatus, error) {
	list, err := c.sup.Status(ctx, names)
	return list, unknown(err)
}

func (c supervisorControl) Start(ctx context.Context, names []string) error {
	return unknown(c.sup.Start(ctx, names))
}

func (c supervisorControl) Stop(ctx context.Context, names []string) error {
	return unknown(c.sup.Stop(ctx, names))
}

func (c supervisorControl) Restart(ctx context.Context, names []string) error {
	return unknown(c.sup.Restart(ctx, names))
}

func (c supervisorControl) Signal(ctx context.Context, sig syscall.Signal, names []string) error {
	return unknown(c.sup.Signal(ctx, sig, names))
}

func (c supervisorControl) Ready(ctx context.Context, names []string) (bool, error) {
	ok, err := c.sup.Ready(ctx, names)
	return ok, unknown(err)
}

func (c supervisorControl) Reset(ctx context.Context, names []string) error {
	return unknown(c.sup.Reset(ctx, names))
}

// Reload re-reads the config with the same environment and flags; on any
// problem nothing changes and the problems are the reply.
func (c supervisorControl) Reload(ctx context.Context) error {
	services, errs := c.reload()
	if len(errs) > 0 {
		return fmt.Errorf("the config has %d problem(s), nothing changed:\n%s", len(errs), indent(errs))
	}
	return c.sup.Reload(ctx, services)
}

func (c supervisorControl) Reexec(ctx context.Context) error {
	return c.sup.Reexec(ctx)
}

func (c supervisorControl) Scale(ctx context.Context, name string, n int) error {
	return unknown(c.sup.Scale(ctx, name, n))
}

func (c supervisorControl) Logs(ctx context.Context, req control.LogsRequest, send func(control.LogBatch) error) error {
	return unknown(c.sup.Logs(ctx, req, send))
}
