// Command vigil is a container init: it reaps zombies, forwards signals to
// process groups and passes on the main process's exit status; with a config
// it supervises services (see README.md and docs/).
package main

import (
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/vigil-init/vigil/cmd/vigil/internal/early"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/control/verb"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"golang.org/x/sys/unix"
)

// Set at build time by the Makefile.
var version = "dev"

// Exit statuses of vigil's own failures (sysexits.h where one fits).
const (
	exitUsage  = 2
	exitConfig = 78 // EX_CONFIG
)

func main() {
	// A verb is only ever the first argument, and a client (vigil status,
	// a Kubernetes probe running vigil ready) is no init: it skips the
	// signal and reaper set-up and answers at once.
	if len(os.Args) > 1 && verb.Is(os.Args[1]) {
		os.Exit(runVerb(os.Args[1], os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

// runVerb runs every verb but the init itself.
func runVerb(verb string, args []string) int {
	switch verb {
	case "version":
		return runVersion(args, os.Stdout)
	case "check":
		return runCheck(args)
	}
	c := control.Client{Socket: os.Getenv("VIGIL_SOCKET"), Stdout: os.Stdout, Stderr: os.Stderr, OfflineReset: offlineReset}
	return c.Main(verb, args)
}

// run is the init, in the order tini's main tells it: signals (caught
// since package early's init), the reaper, a handoff if this is a re-exec,
// the settings, then one runtime for both modes, then exit.
func run(args []string) int {
	// Until Notify, a TERM or HUP would make the Go runtime exit 2: early
	// caught them before main. SIGCHLD must reach the reaper before any
	// child exists: it comes next. Every exit, a service's or an orphan's,
	// goes to one queue the supervisor drains.
	sigs := early.Signals
	exits := reaper.NewQueue()
	rp := reaper.NewWoken(early.Child, exits.Deliver)

	// A vigil that replaced itself in place (re-exec) finds its services
	// here; they must be adopted before the reaper's first pass.
	handoff, herr := reexec.Read()
	var inherited []int
	if handoff == nil && herr == nil {
		// Only the main process gets what vigil's parent left open.
		inherited = proc.TakeInherited()
	}
	resumeGC := func() {}
	if handoff != nil {
		handoff.CheckProcesses()
		// The new image allocates a few megabytes before it supervises
		// again (the config, a record per service): collecting them would
		// only lengthen the pause. Adoption turns the collector back on;
		// until then the memory limit (tune) still bounds the heap.
		gc := debug.SetGCPercent(-1)
		resumeGC = func() { debug.SetGCPercent(gc) }
	}

	inv, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\nRun 'vigil --help' for usage.\n", err)
		return exitUsage
	}
	switch {
	case inv.help:
		printUsage(os.Stdout)
		return 0
	case inv.version:
		fmt.Println("vigil", version)
		return 0
	}

	st, errs := load(os.Environ(), inv.flags)
	if handoff != nil {
		// The services run already: a config that went bad meanwhile
		// changes nothing, as with `vigil reload`.
		st.supervisor = true
		if len(errs) > 0 {
			st.services = handedOver(handoff)
			fmt.Fprintf(os.Stderr, "vigil: after re-exec the config has problems; keeping the services as they were:\n%s", indent(errs))
			errs = nil
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "vigil: invalid configuration:\n%s", indent(errs))
		return exitConfig
	}
	if !st.supervisor && len(inv.command) == 0 {
		printUsage(os.Stderr)
		return exitUsage
	}
	stderr := proc.NewOutput(os.Stderr)
	log, closer, err := newLogger(st.settings, stderr, handoff != nil || herr != nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
		return exitConfig
	}
	defer closer.Close()
	if herr != nil {
		log.Error("cannot take the re-exec handoff: stopping what the old image ran, then starting afresh", "err", herr)
	}
	if handoff != nil {
		log.Debug("handoff read and config loaded", "services", len(handoff.Services))
	}

	tune()
	if handoff != nil {
		// The rings handed over are live twice until adopted (the
		// handoff's copy and the rings): room for both, or the collector
		// would run without end through the adoption.
		roomForRings(2 * handedRings(handoff))
	}
	if os.Getpid() != 1 {
		// Orphans of our children come to us instead of the real init.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("cannot become a child subreaper; orphans will not be reaped", "err", err)
		}
	}
	if inv.flags.pdeath != 0 {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(inv.flags.pdeath), 0, 0, 0); err != nil {
			log.Warn("cannot set the parent-death signal", "err", err)
		}
	}

	return runtime(log, rp, exits, sigs, inv, st, stderr, handoff, herr != nil, inherited, resumeGC)
}

// baseMemoryLimit is the soft memory limit of a vigil without log rings.
const baseMemoryLimit = 32 << 20

// tune keeps an idle vigil small: few threads, and a soft memory limit that
// makes the GC return memory early.
func tune() {
	if goruntime.NumCPU() > 2 {
		goruntime.GOMAXPROCS(2)
	}
	debug.SetMemoryLimit(baseMemoryLimit)
}

// handedRings is the size of the log rings in a handoff.
func handedRings(h *reexec.Handoff) int64 {
	var n int64
	for _, hs := range h.Services {
		if hs.LogRing != nil {
			n += int64(hs.LogRing.EncodedLen())
		}
	}
	return n
}

// roomForRings raises the soft memory limit by what the services' log
// rings may hold (1 MiB each): full rings are live memory the collector
// cannot free, and a limit below them would make it run without end.
func roomForRings(rings int64) {
	debug.SetMemoryLimit(baseMemoryLimit + rings)
}

func runVersion(args []string, out io.Writer) int {
	if len(args) == 1 && args[0] == "--handoff" {
		fmt.Fprintln(out, reexec.Version)
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "vigil version: unexpected argument %q\n", args[0])
		return exitUsage
	}
	fmt.Fprintln(out, "vigil", version)
	return 0
}

// indent puts each error on its own indented line.
func indent(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}
