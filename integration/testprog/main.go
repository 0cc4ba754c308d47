// Command testprog is the integration tests' stand-in for a user's program:
// it records the signals it gets, exits with a given code, makes orphans,
// ignores TERM, reads its terminal... Each mode is one small function.
//
// Run it with GODEBUG=asyncpreemptoff=1 when recording signals, so the Go
// runtime's own SIGURG preemption is not mistaken for a forwarded one.
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testprog MODE [ARG...]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "exit": // exit CODE
		os.Exit(atoi(args[0]))
	case "record": // record FILE: log every signal; exit 0 on TERM
		record(args[0], false)
	case "ignore-term": // ignore-term FILE: like record, but TERM is ignored
		record(args[0], true)
	case "group": // group FILE: record, with a child in the same group recording to FILE.child
		cmd := exec.Command(os.Args[0], "record", args[0]+".child")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fail(err.Error())
		}
		record(args[0], false)
	case "orphans": // orphans N FILE: make N orphans, write "done" to FILE, then record
		cmd := exec.Command(os.Args[0], "spawn", args[0])
		if err := cmd.Run(); err != nil {
			fail(err.Error())
		}
		appendLine(args[1], "done")
		record(args[1], false)
	case "spawn": // spawn N: start N short processes (/bin/true) and exit without waiting
		n := atoi(args[0])
		attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
		for i := 0; i < n; i++ {
			if _, err := syscall.ForkExec("/bin/true", []string{"true"}, attr); err != nil {
				fail(err.Error())
			}
		}
	case "env": // env FILE: write the environment to FILE, one variable a line
		for _, kv := range os.Environ() {
			appendLine(args[0], kv)
		}
	case "lines": // lines N TEXT [WIDTH]: print N numbered lines to stdout and to stderr, padded to WIDTH bytes
		n, width := atoi(args[0]), 0
		if len(args) > 2 {
			width = atoi(args[2])
		}
		out, errw := bufio.NewWriter(os.Stdout), bufio.NewWriter(os.Stderr)
		for i := 0; i < n; i++ {
			for _, w := range []struct {
				b    *bufio.Writer
				kind string
			}{{out, "out"}, {errw, "err"}} {
				line := fmt.Sprintf("%s %s %d ", args[1], w.kind, i)
				if pad := width - len(line) - 1; pad > 0 {
					line += strings.Repeat("x", pad)
				}
				w.b.WriteString(line + "\n")
			}
		}
		out.Flush()
		errw.Flush()
	case "listen": // listen ADDR MS: after MS milliseconds listen on ADDR, then wait on TERM
		time.Sleep(time.Duration(atoi(args[1])) * time.Millisecond)
		l, err := net.Listen("tcp", args[0])
		if err != nil {
			fail(err.Error())
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		record(os.DevNull, false)
	case "http": // http ADDR FILE: serve /healthz and /ready on ADDR (see httpService), record signals to FILE
		httpService(args[0], args[1])
	case "readline": // readline FILE: copy one line of stdin to FILE
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			fail(err.Error())
		}
		appendLine(args[0], line[:len(line)-1])
	case "tty": // tty FILE: write "fg" to FILE if our group owns the terminal, then wait on TERM
		pg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
		if err != nil {
			fail(err.Error())
		}
		if pg == unix.Getpgrp() {
			appendLine(args[0], "fg")
		} else {
			appendLine(args[0], fmt.Sprintf("bg %d %d", pg, unix.Getpgrp()))
		}
		record(args[0], false)
	case "sigexec": // sigexec BLOCK IGNORE PROG [ARG...]: block and ignore the listed signals (comma-separated, - for none), then exec PROG
		sigexec(args[0], args[1], args[2:])
	case "fdwrite": // fdwrite FD TEXT: write TEXT to an inherited fd
		f := os.NewFile(uintptr(atoi(args[0])), "inherited")
		if _, err := f.WriteString(args[1]); err != nil {
			fail(err.Error())
		}
	default:
		fail("unknown mode " + os.Args[1])
	}
}

// record appends "ready pid=P ppid=Q" to file, then one line per signal
// (its name, e.g. SIGUSR1). It exits 0 after recording SIGTERM unless
// ignoreTerm.
func record(file string, ignoreTerm bool) {
	ch := make(chan os.Signal, 256)
	var list []os.Signal
	for _, s := range append(signals.Caught(), unix.SIGURG, unix.SIGCHLD) {
		// A HUP or INT ignored from the start stays ignored (nohup): a
		// handler would make it arrive.
		if !signal.Ignored(s) {
			list = append(list, s)
		}
	}
	signal.Notify(ch, list...)
	if ignoreTerm {
		signal.Ignore(unix.SIGTERM)
	}
	// TAG lets several services record into one file, in arrival order.
	tag := os.Getenv("TAG")
	if tag != "" {
		tag += " "
	}
	appendLine(file, fmt.Sprintf("%sready pid=%d ppid=%d", tag, os.Getpid(), os.Getppid()))
	for s := range ch {
		sig := s.(syscall.Signal)
		appendLine(file, tag+signals.Name(sig))
		if sig == unix.SIGTERM && !ignoreTerm {
			os.Exit(0)
		}
	}
}

// sigexec starts prog the way a launcher that blocks or ignores signals
// does: the mask of the exec'ing thread and every SIG_IGN survive execve.
func sigexec(block, ignore string, argv []string) {
	parse := func(list string) []syscall.Signal {
		var out []syscall.Signal
		for _, name := range strings.Split(list, ",") {
			if name == "-" {
				continue
			}
			sig, err := signals.Parse(name)
			if err != nil {
				fail(err.Error())
			}
			out = append(out, sig)
		}
		return out
	}
	for _, sig := range parse(ignore) {
		signal.Ignore(sig)
	}
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, sig := range parse(block) {
		set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fail(err.Error())
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fail(err.Error())
	}
	fail(syscall.Exec(path, argv, os.Environ()).Error())
}

func appendLine(file, line string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail(err.Error())
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		fail(err.Error())
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err.Error())
	}
	return n
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "testprog:", msg)
	os.Exit(100)
}

// httpService is a web service whose health the test steers with files
// beside FILE: FILE.hang makes /healthz hang (a deadlocked server),
// FILE.down makes it answer 503, FILE.unready makes /ready answer 503. It
// records its signals to FILE like record.
func httpService(addr, file string) {
	exists := func(suffix string) bool { _, err := os.Stat(file + suffix); return err == nil }
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case exists(".hang"):
			time.Sleep(time.Hour) // never answers in time
		case exists(".down"):
			http.Error(w, "down", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if exists(".unready") {
			http.Error(w, "unready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err.Error())
	}
	go http.Serve(l, mux)
	record(file, false)
}
