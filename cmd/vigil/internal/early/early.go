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
package early

import (
	"os/signal"

	"github.com/vigil-init/vigil/signals"
)

// Signals receives every signal signals.Caught lists from the moment the
// program starts; main hands it to the init's signal loop.
var Signals = signals.Catch()

// Release gives every signal back its default behaviour, for a vigil that is
// no init (vigil status, vigil ready): Ctrl-C must end it.
func Release() {
	signal.Reset()
}
