package signals

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mode is the column of the policy table: how vigil runs.
type Mode int

const (
	// Wrapper is tini's job: one main process, no config.
	Wrapper Mode = iota
	// Supervisor runs the services of a config, with or without a main.
	Supervisor
)

// Verb is what vigil does with a signal it received.
type Verb int

const (
	// Drop: nothing is sent; Action.Why says why.
	Drop Verb = iota
	// Reap: SIGCHLD, the reaper's business.
	Reap
	// ForwardMain: send Action.Signal to the main process's group.
	ForwardMain
	// ForwardAll: send Action.Signal to every service's group.
	ForwardAll
	// Shutdown: stop every service gracefully; a repeat changes nothing.
	Shutdown
	// ShutdownOrKill: a graceful shutdown, or SIGKILL to everything when
	// one is already under way (a second TERM or INT is impatience).
	ShutdownOrKill
)

var verbNames = [...]string{"drop", "reap", "forward to main", "forward to every service", "shutdown", "shutdown or kill"}

func (v Verb) String() string {
	if v < 0 || int(v) >= len(verbNames) {
		return "verb " + strconv.Itoa(int(v))
	}
	return verbNames[v]
}

// Action is the decision for one received signal.
type Action struct {
	Verb Verb
	// Signal is the signal to send or act on, after rewriting: the one to
	// forward for ForwardMain and ForwardAll.
	Signal syscall.Signal
	// Why explains a Drop, for the debug log.
	Why string
}

// rule is one row of the table: what a signal does in each mode.
type rule struct {
	wrapper Verb
	// supervisor is the verb with a main process; noMain without one.
	supervisor, noMain Verb
}

// Why a signal is dropped.
const (
	whyOwn       = "vigil's own (the Go runtime's or its stdio's), never a user's"
	whyTerminal  = "about vigil's own terminal; rewrite it with -r to pass it on"
	whyRewritten = "rewritten to 0"
	whyNoMain    = "only the main process has a terminal, and there is none"
	whyUncaught  = "not a signal vigil can catch"
)

// own are the signals that belong to vigil and its runtime: they are never
// forwarded and may not be named as a rewrite's FROM. A SIGPIPE is vigil's
// own write to a closed pipe; URG is the runtime's preemption, PROF its
// profiler. CHLD is reaped.
var own = map[syscall.Signal]bool{
	unix.SIGCHLD: true, unix.SIGURG: true, unix.SIGPIPE: true, unix.SIGPROF: true,
}

// table is the policy, one row per signal that is not the default row.
// TTIN and TTOU are absent: dropped unless rewritten, see Decide. SEGV, BUS,
// FPE and ILL raised by a fault in vigil's own code are a Go panic and never
// reach the table; sent by a user they are ordinary signals.
var table = map[syscall.Signal]rule{
	unix.SIGTERM:  {ForwardMain, ShutdownOrKill, ShutdownOrKill},
	unix.SIGINT:   {ForwardMain, ShutdownOrKill, ShutdownOrKill},
	unix.SIGQUIT:  {ForwardMain, Shutdown, Shutdown},
	unix.SIGPWR:   {ForwardMain, Shutdown, Shutdown},
	unix.SIGWINCH: {ForwardMain, ForwardMain, Drop},
	unix.SIGTSTP:  {ForwardMain, ForwardMain, Drop},
}

// otherwise is the row of every other signal vigil catches (HUP, USR1, USR2,
// ALRM, CONT, ABRT, ..., real-time 35-64).
var otherwise = rule{ForwardMain, ForwardMain, ForwardAll}

// Decide says what vigil does with sig, received in mode; hasMain tells
// whether a supervisor has a main process (a wrapper always has one).
// The rewrite applies first, to every signal a user can send, TTIN and TTOU
// included (dumb-init's job-control rewrites); the row of the rewritten
// signal decides. An unrewritten TTIN or TTOU is dropped.
func Decide(sig syscall.Signal, mode Mode, hasMain bool, rw Rewrite) Action {
	switch {
	case sig == unix.SIGCHLD:
		return Action{Verb: Reap, Signal: sig}
	case own[sig]:
		return Action{Verb: Drop, Signal: sig, Why: whyOwn}
	case !catchable(sig):
		return Action{Verb: Drop, Signal: sig, Why: whyUncaught}
	}
	to, rewritten := rw[sig]
	if !rewritten {
		to = sig
	}
	switch {
	case to == 0:
		return Action{Verb: Drop, Signal: sig, Why: whyRewritten}
	case !rewritten && (sig == unix.SIGTTIN || sig == unix.SIGTTOU):
		return Action{Verb: Drop, Signal: sig, Why: whyTerminal}
	}
	r, ok := table[to]
	if !ok {
		r = otherwise
	}
	v := r.wrapper
	switch {
	case mode == Supervisor && hasMain:
		v = r.supervisor
	case mode == Supervisor:
		v = r.noMain
	}
	a := Action{Verb: v, Signal: to}
	if v == Drop {
		a.Why = whyNoMain
	}
	return a
}

// catchable reports whether sig can reach vigil through os/signal at all:
// KILL and STOP cannot be caught, 32-34 belong to libc and the Go runtime.
func catchable(sig syscall.Signal) bool {
	switch {
	case sig == unix.SIGKILL || sig == unix.SIGSTOP:
		return false
	case sig >= 32 && sig < FirstCatchableRT:
		return false
	}
	return sig > 0 && sig <= RTMax
}
