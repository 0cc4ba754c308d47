// Package signals says which signals vigil catches and which it passes on,
// and parses the names users write (TERM, SIGTERM, 15, RTMIN+3).
//
// A Go PID 1 is not protected by the kernel's "init ignores default-action
// signals" rule: the runtime installs handlers, and an un-notified TERM, HUP,
// INT, ABRT, ... makes the process exit 2. So vigil notifies every catchable
// signal, through an explicit list (never signal.Notify(c) with none: the
// runtime's preemption signal SIGURG would flood the channel).
package signals

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// QueueDepth is the capacity of the channel Catch returns. signal.Notify drops
// a signal when the channel is full; real-time signals must be forwarded one
// for one, so the queue is deep.
const QueueDepth = 1024

// First and last real-time signal numbers as glibc names them (SIGRTMIN is
// 34; 32 and 33 belong to libc's threads). The Go runtime reserves 34 as
// well (musl's SIGSYNCCALL, golang/go#39343): os/signal cannot catch it, so
// vigil catches and forwards FirstCatchableRT..RTMax. As PID 1 the kernel
// drops an uncaught 34; as a plain process it would end vigil.
const (
	RTMin            = 34
	FirstCatchableRT = 35
	RTMax            = 64
)

// caught lists the standard signals vigil handles itself. Left out: KILL and
// STOP (cannot be caught), CHLD (the reaper's own channel), URG (the Go
// runtime's preemption signal) and PROF (the runtime's profiler; ignored by it
// when not profiling).
//
// The order matters at start-up: Notify enables one signal at a time, each a
// round trip with the runtime's signal thread (milliseconds on a loaded
// machine), and until its turn a signal gets the runtime's default. The ones
// whose default ends the process (exit 2 or a crash) come first, TERM, the
// one a container runtime sends, first of all.
var caught = []syscall.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGABRT,
	unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGSTKFLT, unix.SIGSYS,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE, unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN,
	unix.SIGTTOU, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGWINCH, unix.SIGIO,
	unix.SIGPWR,
}

// Caught returns every signal Catch notifies, real-time ones included.
func Caught() []os.Signal {
	list := make([]os.Signal, 0, len(caught)+RTMax-RTMin+1)
	for _, s := range caught {
		list = append(list, s)
	}
	for s := FirstCatchableRT; s <= RTMax; s++ {
		list = append(list, syscall.Signal(s))
	}
	return list
}

// Catch starts delivering every caught signal to the returned channel. Call it
// first thing in main, before any other work.
//
// A signal vigil's parent left ignored is not caught: it stays ignored, so
// it can neither reach vigil nor be forwarded, and the main process inherits
// it ignored across exec (`nohup vigil -- CMD`, as under tini). Notify would
// install a handler, and exec resets a handled signal to its default.
func Catch() chan os.Signal {
	ch := make(chan os.Signal, QueueDepth)
	var list []os.Signal
	for _, s := range Caught() {
		if !ignoredAtStart(s.(syscall.Signal)) {
			list = append(list, s)
		}
	}
	signal.Notify(ch, list...)
	return ch
}

// ignoredAtStart reports whether s is still ignored as vigil's parent left
// it. Call it before any Notify. The Go runtime keeps an inherited SIG_IGN
// only for HUP and INT (signal.Ignored reports those) and does not touch the
// job-control signals CONT, TSTP, TTIN and TTOU (the kernel reports those).
// For every other signal it installs its own handler before any of vigil's
// code runs, and an inherited SIG_IGN is lost beyond recovery.
func ignoredAtStart(s syscall.Signal) bool {
	switch s {
	case unix.SIGHUP, unix.SIGINT:
		return signal.Ignored(s)
	case unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return kernelIgnored(s)
	}
	return false
}

// Rewrite maps a received signal to the one forwarded; a mapping to 0 drops
// the signal (dumb-init's --rewrite).
type Rewrite map[syscall.Signal]syscall.Signal

// ParseRewrite parses FROM:TO, each side a name or a number; TO may be 0.
// FROM may be any signal a user can send to vigil, TTIN and TTOU included;
// CHLD, URG, PIPE and PROF (vigil's own) and the uncatchable ones are refused.
func ParseRewrite(spec string) (from, to syscall.Signal, err error) {
	a, b, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, 0, fmt.Errorf("signal rewrite %q: want FROM:TO", spec)
	}
	if from, err = Parse(a); err != nil {
		return 0, 0, fmt.Errorf("signal rewrite %q: %w", spec, err)
	}
	// A rewrite that could never apply is a mistake to report, not to
	// accept silently.
	switch {
	case own[from]:
		return 0, 0, fmt.Errorf("signal rewrite %q: %s is vigil's own, never a user's, and cannot be rewritten", spec, Name(from))
	case !catchable(from):
		return 0, 0, fmt.Errorf("signal rewrite %q: %s cannot be caught, so it cannot be rewritten", spec, Name(from))
	}
	if strings.TrimSpace(b) == "0" {
		return from, 0, nil
	}
	if to, err = Parse(b); err != nil {
		return 0, 0, fmt.Errorf("signal rewrite %q: %w", spec, err)
	}
	return from, to, nil
}

var byName = map[string]syscall.Signal{
	"HUP": unix.SIGHUP, "INT": unix.SIGINT, "QUIT": unix.SIGQUIT, "ILL": unix.SIGILL,
	"TRAP": unix.SIGTRAP, "ABRT": unix.SIGABRT, "IOT": unix.SIGABRT, "BUS": unix.SIGBUS,
	"FPE": unix.SIGFPE, "KILL": unix.SIGKILL, "USR1": unix.SIGUSR1, "SEGV": unix.SIGSEGV,
	"USR2": unix.SIGUSR2, "PIPE": unix.SIGPIPE, "ALRM": unix.SIGALRM, "TERM": unix.SIGTERM,
	"STKFLT": unix.SIGSTKFLT, "CHLD": unix.SIGCHLD, "CLD": unix.SIGCHLD, "CONT": unix.SIGCONT,
	"STOP": unix.SIGSTOP, "TSTP": unix.SIGTSTP, "TTIN": unix.SIGTTIN, "TTOU": unix.SIGTTOU,
	"URG": unix.SIGURG, "XCPU": unix.SIGXCPU, "XFSZ": unix.SIGXFSZ, "VTALRM": unix.SIGVTALRM,
	"PROF": unix.SIGPROF, "WINCH": unix.SIGWINCH, "IO": unix.SIGIO, "POLL": unix.SIGIO,
	"PWR": unix.SIGPWR, "SYS": unix.SIGSYS,
}

// Parse reads a signal as a name with or without the SIG prefix, in any case
// (TERM, sigterm), a number (15), or RTMIN+n / RTMAX-n.
// Only ASCII folds (strings.ToUpper would make "ſigterm" SIGTERM) and a
// number is digits only (no sign: "+15" and "RTMIN++3" are refused).
func Parse(s string) (syscall.Signal, error) {
	name := asciiUpper(strings.TrimSpace(s))
	if name == "" {
		return 0, fmt.Errorf("empty signal name")
	}
	if n, err := strconv.Atoi(name); err == nil && digits(name) {
		if n < 1 || n > RTMax {
			return 0, fmt.Errorf("signal number %d out of range 1..%d", n, RTMax)
		}
		return syscall.Signal(n), nil
	}
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := byName[name]; ok {
		return sig, nil
	}
	if rt, ok := parseRealtime(name); ok {
		return rt, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func parseRealtime(name string) (syscall.Signal, bool) {
	base, sign, rest := 0, 1, ""
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		base, rest = RTMin, name[len("RTMIN"):]
	case strings.HasPrefix(name, "RTMAX"):
		base, rest, sign = RTMax, name[len("RTMAX"):], -1
	default:
		return 0, false
	}
	if rest == "" {
		return syscall.Signal(base), true
	}
	want := "+"
	if sign < 0 {
		want = "-"
	}
	if !strings.HasPrefix(rest, want) {
		return 0, false
	}
	n, err := strconv.Atoi(rest[1:])
	if err != nil || !digits(rest[1:]) || n > RTMax-RTMin {
		return 0, false
	}
	return syscall.Signal(base + sign*n), true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Name gives the conventional name of a signal: SIGTERM, SIGRTMIN+3.
func Name(s syscall.Signal) string {
	for name, sig := range byName {
		if sig == s && name != "IOT" && name != "CLD" && name != "POLL" {
			return "SIG" + name
		}
	}
	if int(s) >= RTMin && int(s) <= RTMax {
		if int(s) == RTMin {
			return "SIGRTMIN"
		}
		return "SIGRTMIN+" + strconv.Itoa(int(s)-RTMin)
	}
	return "signal " + strconv.Itoa(int(s))
}
