// Package early catches vigil's signals while the program is still being
// initialised.
//
// Between the Go runtime installing its signal handlers and the first
// signal.Notify, a TERM, INT or HUP makes the runtime exit 2 and a QUIT makes
// it crash. A vigil that re-execs itself as PID 1 meets that window on every
// exec, with every service of the container depending on it, so the Notify
// cannot wait for main: it happens in this package's init. Go initialises
// packages dependencies first, then in import-path order, so this one runs
// right after package signals, before net, log/slog, the config and control
// packages and main (GODEBUG=inittrace=1 vigil version shows the order).
//
// A client verb (vigil status, a probe's vigil ready) is no init and skips
// it: Notify and its undoing cost a round trip with the runtime's signal
// thread per signal, more CPU than the rest of a status call.
//
// The init also makes itself undumpable here, as early as it can: its
// environment holds every service's secrets (VIGIL_SERVICES), and a
// non-root vigil is otherwise readable (/proc/1/environ, /proc/1/mem) and
// ptrace-able by every service of its uid. The flag resets at execve, so a
// re-exec'd image sets it again on its way through here; the services it
// starts are dumpable as usual.
package early

import (
	"os"
	"os/signal"

	"github.com/vigil-init/vigil/control/verb"
	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

// Signals receives every signal signals.Caught lists, but those vigil's
// parent left ignored (signals.Catch), from the moment the program starts,
// for the init's signal loop; Child receives SIGCHLD, for the reaper (one
// slot: a wake-up drains every exit). Both are nil when the first argument
// is a verb.
var Signals, Child = catch()

func catch() (chan os.Signal, chan os.Signal) {
	if len(os.Args) > 1 && verb.Is(os.Args[1]) {
		return nil, nil
	}
	// Cannot fail for these arguments; nothing to do if it did.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Notify enables one signal at a time, each a round trip with the
	// runtime's signal-mask thread. Package init runs locked to the main
	// thread, which adds a third thread to every trip: from a goroutine of
	// its own the whole list takes half the time (3.0 ms against 1.5 ms
	// for 55 signals on a 2-core machine). The init still waits for the
	// last one, so nothing after it runs with a signal not yet caught.
	// SIGCHLD goes in the same batch: the reaper's own Notify, later in
	// main, would cost one more trip.
	// The trips are faster still with every thread on one CPU (onOneCPU).
	var sigs, child chan os.Signal
	done := make(chan struct{})
	restore := onOneCPU()
	go func() {
		sigs = signals.Catch()
		child = make(chan os.Signal, 1)
		signal.Notify(child, unix.SIGCHLD)
		close(done)
	}()
	<-done
	restore()
	return sigs, child
}
