package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

// withTerminal gives vigil a fresh pty as its controlling terminal and
// stdin/stdout, as `docker run -it` does. Writing to the returned master is
// typing at the keyboard.
func withTerminal(t *testing.T) (*os.File, func(*exec.Cmd)) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	// Whatever the programs print must be read, or they block on a full pty.
	go io.Copy(io.Discard, master)
	t.Cleanup(func() { master.Close() })
	return master, func(cmd *exec.Cmd) {
		cmd.Stdin, cmd.Stdout = slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		t.Cleanup(func() { slave.Close() })
	}
}

// mainPid is the PID of vigil's main process.
func mainPid(t *testing.T, v *vigil) int {
	t.Helper()
	pid := 0
	waitFor(t, 10*time.Second, "vigil's main process", func() bool {
		if kids := children(v.pid()); len(kids) > 0 {
			pid = kids[0]
		}
		return pid != 0
	})
	return pid
}

func TestTerminal(t *testing.T) {
	t.Run("main owns the foreground and Ctrl-C reaches it once", func(t *testing.T) {
		master, setup := withTerminal(t)
		rec := filepath.Join(t.TempDir(), "rec")
		v := start(t, modes[0], opts{setup: setup}, "--", testProg, "tty", rec)
		waitReady(t, rec)
		if l := lines(rec); l[0] != "fg" {
			t.Fatalf("main's group does not own the terminal: %q", l[0])
		}
		master.Write([]byte{3}) // Ctrl-C
		waitForLine(t, rec, "SIGINT", 1)
		// Had vigil got the keyboard's SIGINT too, it would forward a second.
		v.signal(syscall.Signal(signals.RTMax))
		waitForLine(t, rec, signals.Name(signals.RTMax), 1)
		if n := count(lines(rec), "SIGINT"); n != 1 {
			t.Errorf("SIGINT arrived %d times, want 1", n)
		}
		v.signal(unix.SIGTERM)
		v.wait(15 * time.Second)
	})

	t.Run("Ctrl-C gives 130", func(t *testing.T) {
		master, setup := withTerminal(t)
		v := start(t, modes[0], opts{setup: setup}, "--", "sleep", "1000")
		mainPid(t, v)
		waitFor(t, 10*time.Second, "sleep to start", func() bool {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(mainPid(t, v)) + "/cmdline")
			return strings.HasPrefix(string(b), "sleep")
		})
		master.Write([]byte{3})
		if code := v.wait(15 * time.Second); code != 130 {
			t.Errorf("exit %d, want 130", code)
		}
	})

	t.Run("Ctrl-Z stops the job and not vigil", func(t *testing.T) {
		master, setup := withTerminal(t)
		v := start(t, modes[0], opts{setup: setup}, "--", "sleep", "1000")
		pid := mainPid(t, v)
		waitFor(t, 10*time.Second, "sleep to start", func() bool {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			return strings.HasPrefix(string(b), "sleep")
		})
		master.Write([]byte{0x1a}) // Ctrl-Z
		waitFor(t, 10*time.Second, "main stopped", func() bool {
			st, _ := readStat(pid)
			return st.state == 'T'
		})
		if st, _ := readStat(v.pid()); st.state == 'T' {
			t.Fatalf("vigil itself is stopped")
		}
		v.signal(unix.SIGCONT) // forwarded: the job goes on
		waitFor(t, 10*time.Second, "main continued", func() bool {
			st, _ := readStat(pid)
			return st.state != 'T'
		})
		master.Write([]byte{3})
		if code := v.wait(15 * time.Second); code != 130 {
			t.Errorf("exit %d, want 130", code)
		}
	})

	t.Run("stdin reaches the main process", func(t *testing.T) {
		master, setup := withTerminal(t)
		out := filepath.Join(t.TempDir(), "line")
		v := start(t, modes[0], opts{setup: setup}, "--", testProg, "readline", out)
		mainPid(t, v)
		master.Write([]byte("hello vigil\n"))
		if code := v.wait(15 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		if l := lines(out); len(l) != 1 || l[0] != "hello vigil" {
			t.Errorf("main read %q", l)
		}
	})
}

func TestInheritedFdsPassThrough(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			v := start(t, m, opts{setup: func(cmd *exec.Cmd) { cmd.ExtraFiles = []*os.File{w} }},
				"--", testProg, "fdwrite", "3", "through fd 3")
			w.Close()
			if code := v.wait(15 * time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			b, _ := io.ReadAll(r)
			if string(b) != "through fd 3" {
				t.Errorf("read %q from the inherited pipe", b)
			}
		})
	}
}

func TestParentDeathSignal(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	// sh is vigil's parent; when it dies vigil gets USR1 and forwards it.
	sh := exec.Command("sh", "-c", `"$0" -p SIGUSR1 -- "$1" record "$2" & wait`, vigilBin, testProg, rec)
	sh.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, rec)
	var vigilPid int
	for _, l := range lines(rec) {
		if strings.HasPrefix(l, "ready") {
			vigilPid, _ = strconv.Atoi(strings.TrimPrefix(strings.Fields(l)[2], "ppid="))
		}
	}
	sh.Process.Kill()
	sh.Wait()
	waitForLine(t, rec, "SIGUSR1", 1)
	unix.Kill(vigilPid, unix.SIGTERM)
	waitFor(t, 15*time.Second, "vigil to exit", func() bool {
		st, alive := readStat(vigilPid)
		return !alive || st.state == 'Z'
	})
}
