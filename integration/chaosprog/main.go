// Command chaosprog is the chaos and soak tests' misbehaving service: it
// floods vigil with orphans, output and children, ignores every signal, and
// reports what a service can see of vigil (descriptors, the control socket).
// testprog covers the well-behaved cases; each mode here is one small
// function.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: chaosprog MODE [ARG...]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "storm": // storm TOTAL BATCH FILE: TOTAL orphans, BATCH at a time, "made N" to FILE after each batch, then "done TOTAL"
		storm(atoi(args[0]), atoi(args[1]), args[2])
	case "orphans": // orphans N: fork N children that exit at once (half after 1 ms), exit without waiting
		orphans(atoi(args[0]))
	case "flood": // flood BYTES TAG: numbered lines of varying width to stdout, BYTES in all, written in odd-sized chunks
		flood(atoi64(args[0]), args[1])
	case "trickle": // trickle RATE TAG: flood's lines, RATE a second, forever
		trickle(atoi(args[0]), args[1])
	case "forkexit": // forkexit N FILE: start N sleepers in our group, list their PIDs in FILE, exit 0
		sleepers(atoi(args[0]), args[1])
	case "forkstay": // forkstay N FILE: like forkexit, then stay (TERM ends us, not the sleepers)
		sleepers(atoi(args[0]), args[1])
		pause()
	case "ignore-all": // ignore-all N FILE: ignore every catchable signal, with N sleepers that inherit that; "ready" to FILE
		ignoreAll(atoi(args[0]), args[1])
	case "fds": // fds FILE: list our open descriptors (fd -> target) in FILE, then "end", then stay
		fds(args[0])
		pause()
	case "args": // args FILE ARG...: write our argv and whether our parent is a shell to FILE
		for _, a := range os.Args {
			appendLine(args[0], "arg "+a)
		}
		exe, _ := os.Readlink("/proc/self/exe")
		appendLine(args[0], "exe "+exe)
	case "connect": // connect SOCK FILE: try the control socket; write the outcome to FILE, then stay
		connect(args[0], args[1])
		pause()
	case "die-at-exec": // die-at-exec SOCK FILE: hold a connection to the control socket open with half a request; when it closes, exit 1
		dieAtExec(args[0], args[1])
	case "squat": // squat SOCK FILE: a squatter's socket at SOCK ("shm": vigil's /dev/shm name in our mount namespace), answering every request as a vigil with one service "impostor"; "listening PATH" to FILE, then stay
		squat(args[0], args[1])
	case "nonblock-flood": // nonblock-flood BYTES FILE: set O_NONBLOCK on the stdout and stderr we share with vigil, flood both with "junk" lines (BYTES in all, retrying on EAGAIN), then "done" to FILE
		nonblockFlood(atoi64(args[0]), args[1])
	case "crash": // crash FILE: append "run" to FILE and exit 1
		appendLine(args[0], "run")
		os.Exit(1)
	default:
		fail("unknown mode " + os.Args[1])
	}
}

// storm runs `orphans BATCH` one after the other until TOTAL orphans were
// made: each batch's children are re-parented to vigil when it exits.
func storm(total, batch int, file string) {
	made := 0
	for made < total {
		n := min(batch, total-made)
		cmd := exec.Command(os.Args[0], "orphans", strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fail("orphans: " + err.Error())
		}
		made += n
		appendLine(file, fmt.Sprintf("made %d", made))
	}
	appendLine(file, fmt.Sprintf("done %d", made))
}

// orphans forks n children with the raw system call: a child runs no Go
// code at all, it exits (every second one after sleeping 1 ms, so some are
// still alive when they are re-parented). Much cheaper than exec'ing
// /bin/true, so 100,000 orphans take seconds, not minutes.
func orphans(n int) {
	ts := unix.Timespec{Nsec: int64(time.Millisecond)}
	for i := 0; i < n; i++ {
		pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if errno != 0 {
			// EAGAIN under a process limit: let vigil catch up.
			time.Sleep(time.Millisecond)
			i--
			continue
		}
		if pid == 0 {
			if i%2 == 1 {
				syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
			}
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
}

// floodWidth is the width of line seq (newline included), 24..4119 bytes:
// the test computes the same to check every line whole.
func floodWidth(seq int64) int { return 24 + int((seq*7919)%4096) }

// flood writes lines "TAG SEQ xxxx...\n" until bytes are out; the writes are
// cut at odd places, never at line ends, so vigil has to join them.
func flood(total int64, tag string) {
	w := bufio.NewWriterSize(os.Stdout, 65521)
	var buf []byte
	var seq, written int64
	for written < total {
		buf = buf[:0]
		buf = append(buf, tag...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, ' ')
		for len(buf) < floodWidth(seq)-1 {
			buf = append(buf, 'x')
		}
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			fail(err.Error())
		}
		written += int64(len(buf))
		seq++
	}
	if err := w.Flush(); err != nil {
		fail(err.Error())
	}
	fmt.Fprintf(os.Stderr, "flood done %s %d lines %d bytes\n", tag, seq, written)
}

// trickle writes flood's lines at rate lines a second, each in one write.
func trickle(rate int, tag string) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var buf []byte
	for seq := int64(0); ; seq++ {
		<-tick.C
		buf = append(buf[:0], tag...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, ' ')
		for len(buf) < floodWidth(seq)-1 {
			buf = append(buf, 'x')
		}
		buf = append(buf, '\n')
		if _, err := os.Stdout.Write(buf); err != nil {
			fail(err.Error())
		}
	}
}

// sleepers starts n /bin/sleep processes in our process group (no setpgid)
// and lists their PIDs in file, one a line, then "end".
func sleepers(n int, file string) {
	var b strings.Builder
	for _, pid := range forkSleepers(n) {
		fmt.Fprintf(&b, "%d\n", pid)
	}
	b.WriteString("end\n")
	writeFile(file, b.String())
}

// forkSleepers starts n `sleep 1000` in our process group.
func forkSleepers(n int) []int {
	attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}}
	pids := make([]int, n)
	for i := range pids {
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "1000"}, attr)
		if err != nil {
			fail(err.Error())
		}
		pids[i] = pid
	}
	return pids
}

// ignoreAll sets every catchable signal to SIG_IGN (inherited across fork
// and exec by the sleepers), then waits forever.
func ignoreAll(n int, file string) {
	for s := 1; s <= 64; s++ {
		switch syscall.Signal(s) {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD:
			continue
		}
		if s == 32 || s == 33 {
			continue
		}
		signal.Ignore(syscall.Signal(s))
	}
	var b strings.Builder
	for _, pid := range forkSleepers(n) {
		fmt.Fprintf(&b, "child %d\n", pid)
	}
	fmt.Fprintf(&b, "ready pid=%d\n", os.Getpid())
	writeFile(file, b.String())
	pause()
}

// fds lists every open descriptor but the one reading the directory.
func fds(file string) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fail(err.Error())
	}
	var b strings.Builder
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue
		}
		fmt.Fprintf(&b, "%s %s\n", e.Name(), target)
	}
	b.WriteString("end\n")
	writeFile(file, b.String())
}

// connect reports "connect-failed ERR" or, when the socket let us in,
// "connected" and the server's reply line.
func connect(sock, file string) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		writeFile(file, fmt.Sprintf("uid=%d connect-failed %v\nend\n", os.Getuid(), err))
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "{\"v\":1,\"verb\":\"status\"}\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	writeFile(file, fmt.Sprintf("uid=%d connected\nreply %s\nend\n", os.Getuid(), strings.TrimSpace(line)))
}

// dieAtExec holds a connection to vigil's control socket with half a
// request, so vigil neither answers nor drops it (until its 5 s request
// limit): the connection is a close-on-exec descriptor of vigil's, so it
// closes the moment vigil calls execve, and this service exits 1 right
// then, in the middle of the re-exec. "held PID" and then "eof PID" go to
// FILE.
func dieAtExec(sock, file string) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fail(err.Error())
	}
	fmt.Fprint(c, `{"v":1,"verb":"sta`)
	pid := strconv.Itoa(os.Getpid())
	appendLine(file, "held "+pid)
	var b [1]byte
	c.Read(b[:])
	appendLine(file, "eof "+pid)
	os.Exit(1)
}

// nonblockFlood is a log: inherit service that makes the open file
// descriptions of its stdout and stderr, which are vigil's, non-blocking and
// keeps them full: a vigil that took EAGAIN for a lost line lost most of its
// own and the prefixed services' lines.
func nonblockFlood(total int64, file string) {
	for _, fd := range []int{1, 2} {
		if err := unix.SetNonblock(fd, true); err != nil {
			fail("O_NONBLOCK: " + err.Error())
		}
	}
	line := []byte("junk " + strings.Repeat("x", 4000) + "\n")
	var written int64
	for i := 0; written < total; i++ {
		fd := 1 + i%2
		for {
			n, err := unix.Write(fd, line)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				fail("write: " + err.Error())
			}
			written += int64(n)
			break
		}
	}
	appendLine(file, "done")
}

func pause() {
	for {
		time.Sleep(time.Hour)
	}
}

func writeFile(file, s string) {
	if err := os.WriteFile(file+".tmp", []byte(s), 0o644); err != nil {
		fail(err.Error())
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		fail(err.Error())
	}
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

func atoi64(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fail(err.Error())
	}
	return n
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "chaosprog:", msg)
	os.Exit(100)
}

// squat listens where vigil wants its socket and answers like a vigil,
// as a hostile neighbour would: a client that trusts it is fooled.
func squat(sock, file string) {
	if sock == "shm" {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/mnt", &st); err != nil {
			fail(err.Error())
		}
		sock = fmt.Sprintf("/dev/shm/vigil-%d.sock", st.Ino)
	}
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fail(err.Error())
	}
	os.Chmod(sock, 0o666)
	appendLine(file, "listening "+sock)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "{\"v\":1,\"ok\":true,\"ready\":true,\"services\":[{\"name\":\"impostor\",\"state\":\"ready\"}]}\n")
		}()
	}
}
