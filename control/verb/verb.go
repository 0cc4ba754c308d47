// Package verb is the one table of vigil's verbs: the early dispatch (which
// must not pull in the control package: it runs before any package's init
// but signals'), the client and the server all read it. A new verb is a row
// here plus its Handler method and its answer in the server.
package verb

import "time"

// Names says which service names a verb takes.
type Names int

const (
	AnyNames  Names = iota // none means all
	SomeNames              // at least one
	NoNames                // none at all
)

// Verb is one row of the table.
type Verb struct {
	Name  string
	Usage string
	Help  string // one line for `vigil --help`
	// Local verbs run in the client's process (check, version); the others
	// go over the control socket.
	Local bool
	Names Names
	// Timeout is how long the server lets the verb run; the client waits a
	// margin longer, so the server's own timeout error is what users see.
	// start's 30 s is the documented wait for ready (docs/control.md); stop
	// waits for whole groups, which each service's stop timeout bounds.
	Timeout time.Duration
	// Probe: a verb Kubernetes and Docker run as health probes: it may use
	// the slots kept for probes, and the client tries every socket path.
	Probe bool
	// Retriable: safe to send again to the next socket path after a
	// connection that failed before any reply.
	Retriable bool
}

// Table lists every verb, in the order of `vigil --help`.
var Table = []Verb{
	{Name: "check", Help: "validate config and environment; exit 0 or 78", Usage: "vigil check [-c FILE]", Local: true},
	{Name: "status", Help: "ask the running vigil", Usage: "vigil status [--json] [NAME...]", Names: AnyNames, Timeout: 10 * time.Second, Probe: true, Retriable: true},
	{Name: "start", Help: "start services; wait until ready or exited", Usage: "vigil start NAME...", Names: SomeNames, Timeout: 30 * time.Second, Retriable: true},
	{Name: "stop", Help: "stop services; wait until their groups are gone", Usage: "vigil stop NAME...", Names: SomeNames, Timeout: 120 * time.Second, Retriable: true},
	{Name: "restart", Help: "stop, then start: a new PID each", Usage: "vigil restart NAME...", Names: SomeNames, Timeout: 150 * time.Second},
	{Name: "signal", Help: "signal a service's process group", Usage: "vigil signal SIG NAME...", Names: SomeNames, Timeout: 10 * time.Second},
	{Name: "reload", Help: "re-read the config; apply what changed", Usage: "vigil reload", Names: NoNames, Timeout: 150 * time.Second},
	{Name: "reexec", Help: "replace vigil in place, services kept running", Usage: "vigil reexec", Names: NoNames, Timeout: 60 * time.Second},
	{Name: "ready", Help: "exit 0 iff ready (a Kubernetes exec probe)", Usage: "vigil ready [NAME...]", Names: AnyNames, Timeout: 5 * time.Second, Probe: true, Retriable: true},
	{Name: "reset", Help: "forget retry counts and given-up marks", Usage: "vigil reset [NAME...]", Names: AnyNames, Timeout: 10 * time.Second},
	// scale stops the copies it removes, like reload, so it waits as long.
	{Name: "scale", Help: "run N copies of a service with instances (until the next reload)", Usage: "vigil scale NAME N", Names: SomeNames, Timeout: 150 * time.Second},
	{Name: "logs", Help: "print services' recent output; -f follows it", Usage: "vigil logs [-f] [-n N] NAME...", Names: SomeNames, Timeout: 10 * time.Second, Retriable: true},
	{Name: "version", Help: "print the version", Usage: "vigil version", Local: true},
}

// Lookup finds a verb by name.
func Lookup(name string) (Verb, bool) {
	for _, v := range Table {
		if v.Name == name {
			return v, true
		}
	}
	return Verb{}, false
}

// Is reports whether name is a verb: recognised only as the first
// argument, so `vigil -- status` runs a program called status.
func Is(name string) bool {
	_, ok := Lookup(name)
	return ok
}
