package supervise

import (
	"errors"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"golang.org/x/sys/unix"
)

// Clock is the supervisor's time: the real one in vigil, a hand-driven one
// in the policy's unit tests, which then never sleep.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f after d, from another goroutine; the returned
	// function cancels it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Procs is every effect the supervisor has on processes: the real ones go
// through the reaper and kill(2); the unit tests' fake records them and
// delivers exits by hand.
type Procs interface {
	// Start spawns c; its exit arrives on the supervisor's exit queue.
	Start(c proc.Command) (pid int, err error)
	// Signal sends sig to the process group pgid (0 probes it).
	Signal(pgid int, sig syscall.Signal) error
	// SignalAll signals every process vigil is responsible for; it reports
	// whether there was any.
	SignalAll(sig syscall.Signal) bool
	// NoChildren is closed once vigil has no child left.
	NoChildren() <-chan struct{}
	// StartTime is a process's start time, 0 if it is gone.
	StartTime(pid int) uint64
	// Escaped lists the descendants of leader outside its group pgid.
	Escaped(leader, pgid int) []proc.Proc
	// SignalProc sends sig to one process, if it is still that one.
	SignalProc(p proc.Proc, sig syscall.Signal) error
}

// reaperProcs is Procs on the real reaper: every exit goes to one queue.
type reaperProcs struct {
	r *reaper.Reaper
	q *reaper.Queue
}

func (p reaperProcs) Start(c proc.Command) (int, error) { return proc.StartTo(p.r, c, p.q) }

func (p reaperProcs) Signal(pgid int, sig syscall.Signal) error { return unix.Kill(-pgid, sig) }

func (p reaperProcs) SignalAll(sig syscall.Signal) bool { return proc.SignalAll(sig) }

func (p reaperProcs) NoChildren() <-chan struct{} { return p.r.NoChildren() }

func (p reaperProcs) Escaped(leader, pgid int) []proc.Proc { return proc.Escaped(leader, pgid) }

func (p reaperProcs) SignalProc(q proc.Proc, sig syscall.Signal) error { return q.Signal(sig) }

func (p reaperProcs) StartTime(pid int) uint64 {
	st, _ := reexec.StartTime(pid)
	return st
}

// groupAlive reports whether a signal to the group still reaches anyone.
func groupAlive(err error) bool { return err == nil || errors.Is(err, unix.EPERM) }
