// Command floor is the Go floor of the bench: the least a Go init can do for
// `INIT -- CMD`, so that vigil's figures can be read against what Go itself
// costs. It notifies every catchable signal, fork/execs CMD in its own
// process group, forwards every signal but CHLD to that group, reaps every
// child and exits with CMD's status (128+N if a signal N ended it).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--version" {
		os.Stdout.WriteString("floor (the bench's minimal Go init)\n")
		return
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		os.Stderr.WriteString("usage: floor -- CMD [ARG...]\n")
		os.Exit(2)
	}
	// Every catchable signal: KILL and STOP cannot be, URG is the runtime's
	// preemption and 32 to 34 are the C library's and the runtime's.
	var list []os.Signal
	for s := 1; s <= 64; s++ {
		switch syscall.Signal(s) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGURG, 32, 33, 34:
			continue
		}
		list = append(list, syscall.Signal(s))
	}
	sigs := make(chan os.Signal, 1024)
	signal.Notify(sigs, list...)
	path := args[0]
	if p, err := lookPath(path); err == nil {
		path = p
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		os.Stderr.WriteString("floor: " + err.Error() + "\n")
		os.Exit(127)
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			syscall.Kill(-pid, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
}

// lookPath finds a bare name in $PATH without os/exec (a few hundred KiB of
// binary the floor does not need).
func lookPath(name string) (string, error) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name, nil
		}
	}
	dir := ""
	path := os.Getenv("PATH")
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == ':' {
			if dir == "" {
				dir = "."
			}
			if st, err := os.Stat(dir + "/" + name); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return dir + "/" + name, nil
			}
			dir = ""
			continue
		}
		dir += string(path[i])
	}
	return "", syscall.ENOENT
}
