package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/vigil-init/vigil/control/verb"
	"github.com/vigil-init/vigil/signals"
)

// invocation is the command line, parsed but not yet applied to settings.
type invocation struct {
	verb     string   // "" for the run verb
	verbArgs []string // arguments after a verb other than run
	command  []string // -- CMD [ARG...]
	help     bool
	version  bool
	flags    flagValues
}

// flagValues holds the run verb's flags; a nil pointer is a flag not given,
// so it does not override the environment.
type flagValues struct {
	config      *string
	logFormat   *string
	stateDir    *string
	socket      *string
	http        *string
	exitZero    []int
	pdeath      syscall.Signal
	rewrite     signals.Rewrite
	warnOrphans bool
	verbose     int
	subreaper   bool // tini's -s: accepted, subreaping is automatic
	group       bool // tini's -g: accepted, group forwarding is the default
}

// usageError is a bad command line: vigil exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parseArgs reads the command line the way tini's getopt("+...") does: flags
// first, then the command from "--" or the first argument that is no flag.
func parseArgs(args []string) (invocation, error) {
	var inv invocation
	if len(args) > 0 && verb.Is(args[0]) {
		inv.verb, inv.verbArgs = args[0], args[1:]
		return inv, nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			inv.command = args[i+1:]
			return inv, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			next := func() (string, error) {
				if hasVal {
					return val, nil
				}
				if i+1 >= len(args) {
					return "", usagef("flag --%s needs a value", name)
				}
				i++
				return args[i], nil
			}
			if err := inv.flags.long(name, hasVal, next, &inv); err != nil {
				return inv, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				c := a[j]
				if !strings.ContainsRune("cepr", rune(c)) {
					if err := inv.flags.short(c, &inv); err != nil {
						return inv, err
					}
					continue
				}
				// A flag with a value takes the rest of the cluster (-e143)
				// or the next argument (-e 143).
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return inv, usagef("flag -%c needs a value", c)
					}
					i++
					val = args[i]
				}
				if err := inv.flags.valued(c, val); err != nil {
					return inv, err
				}
				break
			}
		default:
			inv.command = args[i:]
			return inv, nil
		}
	}
	return inv, nil
}

func (f *flagValues) short(c byte, inv *invocation) error {
	switch c {
	case 'g':
		f.group = true
	case 's':
		f.subreaper = true
	case 'w':
		f.warnOrphans = true
	case 'v':
		f.verbose++
	case 'h':
		inv.help = true
	case 'V':
		inv.version = true
	default:
		return usagef("unknown flag -%c", c)
	}
	return nil
}

func (f *flagValues) valued(c byte, val string) error {
	switch c {
	case 'c':
		f.config = &val
	case 'e':
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > 255 {
			return usagef("-e %s: want an exit status 0..255", val)
		}
		f.exitZero = append(f.exitZero, n)
	case 'p':
		sig, err := signals.Parse(val)
		if err != nil {
			return usagef("-p: %v", err)
		}
		f.pdeath = sig
	case 'r':
		from, to, err := signals.ParseRewrite(val)
		if err != nil {
			return usagef("-r: %v", err)
		}
		if f.rewrite == nil {
			f.rewrite = signals.Rewrite{}
		}
		f.rewrite[from] = to
	}
	return nil
}

func (f *flagValues) long(name string, hasVal bool, next func() (string, error), inv *invocation) error {
	str := func(dst **string) error {
		v, err := next()
		if err != nil {
			return err
		}
		*dst = &v
		return nil
	}
	switch name {
	case "help":
		inv.help = true
	case "version":
		inv.version = true
	case "config":
		return str(&f.config)
	case "log-format":
		return str(&f.logFormat)
	case "state-dir":
		return str(&f.stateDir)
	case "socket":
		return str(&f.socket)
	case "http":
		return str(&f.http)
	default:
		return usagef("unknown flag --%s", name)
	}
	if hasVal {
		return usagef("flag --%s takes no value", name)
	}
	return nil
}
