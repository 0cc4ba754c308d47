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
package early

import (
	"os"

	"github.com/vigil-init/vigil/control/verb"
	"github.com/vigil-init/vigil/signals"
)

// Signals receives every signal signals.Caught lists, but those vigil's
// parent left ignored (signals.Catch), from the moment the program starts,
// for the init's signal loop; nil when the first argument is a verb.
var Signals = catch()

func catch() chan os.Signal {
	if len(os.Args) > 1 && verb.Is(os.Args[1]) {
		return nil
	}
	return signals.Catch()
}
