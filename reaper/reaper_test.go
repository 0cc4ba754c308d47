package reaper

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStatusCode(t *testing.T) {
	tests := []struct {
		name string
		ws   unix.WaitStatus
		want int
	}{
		{"exit 0", 0, 0},
		{"exit 3", 3 << 8, 3},
		{"exit 255", 255 << 8, 255},
		{"killed by SIGKILL is 137", unix.WaitStatus(unix.SIGKILL), 137},
		{"killed by SIGTERM is 143", unix.WaitStatus(unix.SIGTERM), 143},
		{"killed by SIGSEGV with core is 139", unix.WaitStatus(unix.SIGSEGV) | 0x80, 139},
	}
	for _, tc := range tests {
		if got := StatusCode(tc.ws); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

func spawn(t *testing.T, r *Reaper, script string) (int, <-chan Exit) {
	t.Helper()
	pid, ch, err := r.Spawn("/bin/sh", []string{"sh", "-c", script}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	return pid, ch
}

func expectExit(t *testing.T, ch <-chan Exit, pid, code int) {
	t.Helper()
	select {
	case e := <-ch:
		if e.Pid != pid || e.Code() != code {
			t.Errorf("exit %+v code %d, want pid %d code %d", e, e.Code(), pid, code)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit for pid %d", pid)
	}
}

// The tests share one reaper: it owns wait4(-1) for the whole test binary.
func TestReaper(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	orphans := make(chan Exit, 100)
	r := New(func(e Exit) { orphans <- e })
	defer r.Stop()
	done := make(chan struct{})
	defer close(done)
	go r.Run(done)

	t.Run("each exit reaches its owner", func(t *testing.T) {
		p1, c1 := spawn(t, r, "exit 3")
		p2, c2 := spawn(t, r, "kill -TERM $$")
		expectExit(t, c2, p2, 143)
		expectExit(t, c1, p1, 3)
	})

	t.Run("an exit that beats the owner is kept", func(t *testing.T) {
		pid, ch := spawn(t, r, "exit 9")
		// Nobody reads ch until the child has surely been reaped.
		waitGone(t, pid)
		expectExit(t, ch, pid, 9)
	})

	t.Run("orphans are counted and handed over", func(t *testing.T) {
		before := r.Orphans()
		pid, ch := spawn(t, r, "sh -c 'exit 4' & sh -c 'exit 5' & exit 0")
		expectExit(t, ch, pid, 0)
		got := map[int]bool{}
		for len(got) < 2 {
			select {
			case e := <-orphans:
				got[e.Code()] = true
			case <-time.After(20 * time.Second):
				t.Fatalf("orphans seen: %v", got)
			}
		}
		if !got[4] || !got[5] {
			t.Errorf("orphan codes %v", got)
		}
		if r.Orphans()-before != 2 {
			t.Errorf("orphan count went up by %d", r.Orphans()-before)
		}
	})

	t.Run("NoChildren fires once all are gone", func(t *testing.T) {
		pid, ch := spawn(t, r, "exit 0")
		expectExit(t, ch, pid, 0)
		select {
		case <-r.NoChildren():
		case <-time.After(20 * time.Second):
			t.Fatal("NoChildren did not fire")
		}
	})

	t.Run("a failed exec registers nothing", func(t *testing.T) {
		_, _, err := r.Spawn("/no/such", []string{"x"}, &syscall.ProcAttr{})
		if err == nil {
			t.Fatal("spawn of a missing file succeeded")
		}
	})
}

// waitGone waits until pid is reaped (its /proc entry is gone).
func waitGone(t *testing.T, pid int) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not reaped", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHoldAndAdopt(t *testing.T) {
	r := New(nil)
	defer r.Stop()
	// A child spawned behind the reaper's back, as one inherited at exec.
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 6"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	held := r.Hold()
	if held.Owns(pid) {
		t.Fatalf("pid %d is owned before it is adopted", pid)
	}
	ch := r.adoptLocked(pid)
	if !held.Owns(pid) {
		t.Fatalf("pid %d is not owned once adopted", pid)
	}
	done := make(chan int)
	go func() { done <- r.Reap() }()
	select {
	case <-done:
		t.Fatal("Reap ran while held")
	case <-time.After(50 * time.Millisecond):
	}
	held.Release()
	<-done
	// The child may not have exited yet on a loaded machine: reap until
	// its exit arrives (a Run loop would do so on SIGCHLD).
	deadline := time.Now().Add(30 * time.Second)
	for len(ch) == 0 && time.Now().Before(deadline) {
		r.Reap()
		time.Sleep(5 * time.Millisecond)
	}
	expectExit(t, ch, pid, 6)
	held = r.Hold()
	defer held.Release()
	if held.Owns(pid) {
		t.Errorf("pid %d is still owned once reaped", pid)
	}
}

// adoptLocked is Adopt for a caller already holding the lock (the test's Hold).
func (r *Reaper) adoptLocked(pid int) <-chan Exit {
	ch := make(exitChan, 1)
	r.owners[pid] = ch
	return ch
}

// TestAdoptMany: children adopted together deliver their exits, each once,
// to one queue that never makes the reaper wait.
func TestAdoptMany(t *testing.T) {
	r := New(nil)
	defer r.Stop()
	codes := map[int]int{}
	var pids []int
	for code := 1; code <= 3; code++ {
		pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit " + strconv.Itoa(code)}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		codes[pid] = code
		pids = append(pids, pid)
	}
	q := NewQueue()
	r.Adopt(q, pids...)
	var got []Exit
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(pids) && time.Now().Before(deadline) {
		r.Reap()
		got = append(got, q.Take()...)
		time.Sleep(5 * time.Millisecond)
	}
	for _, e := range got {
		if want, ok := codes[e.Pid]; !ok || e.Code() != want || e.Orphan {
			t.Errorf("exit %+v code %d: want one of %v, owned", e, e.Code(), codes)
		}
		delete(codes, e.Pid)
	}
	if more := q.Take(); len(more) != 0 || len(codes) != 0 {
		t.Errorf("%d more exits, %d missing", len(more), len(codes))
	}
}

// TestOrphanCallbackOutsideLock: a receiver of orphans that blocks (a log
// line to a stalled stderr) must not stop a spawn, nor the delivery of an
// owned exit.
func TestOrphanCallbackOutsideLock(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	seen := make(chan Exit, 1)
	r := New(func(e Exit) {
		seen <- e
		<-stall
	})
	defer r.Stop()
	done := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		r.Run(done)
	}()
	defer func() {
		close(done)
		<-reaped
	}()
	defer close(stall)
	pid, ch := spawn(t, r, "sh -c 'exit 4' & exit 0")
	expectExit(t, ch, pid, 0)
	select {
	case e := <-seen:
		if !e.Orphan || e.Code() != 4 {
			t.Fatalf("orphan %+v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the orphan was not handed over")
	}
	// The orphan's receiver is stuck now; a spawn must still go through.
	spawned := make(chan error, 1)
	go func() {
		_, _, err := r.Spawn("/bin/true", []string{"true"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		spawned <- err
	}()
	select {
	case err := <-spawned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a spawn waited for the orphan's receiver")
	}
}

// TestHasChildren: a living child and an exited, not yet reaped one both
// count, and looking does not reap: the exit status is still there for the
// one who waits.
func TestHasChildren(t *testing.T) {
	if HasChildren() {
		t.Skip("the test process already has children")
	}
	cmd := exec.Command("sh", "-c", "read x; exit 7")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !HasChildren() {
		t.Error("HasChildren() = false with a living child")
	}
	w.Close()
	// Wait for the exit without reaping it.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !HasChildren() {
		t.Error("HasChildren() = false with a zombie child")
	}
	if err := cmd.Wait(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("the child's exit was lost: %v", err)
	}
	if HasChildren() {
		t.Error("HasChildren() = true once the child is reaped")
	}
}

// TestNoChildrenAtOnce: with no child at all, NoChildren answers without a
// pass of Run (none runs here); with one, only a pass after its exit does.
func TestNoChildrenAtOnce(t *testing.T) {
	if HasChildren() {
		t.Skip("the test process already has children")
	}
	r := NewWoken(make(chan os.Signal, 1), nil)
	select {
	case <-r.NoChildren():
	default:
		t.Fatal("NoChildren not closed with no child")
	}
	pid, exit, err := r.Spawn("/bin/sh", []string{"sh", "-c", "exit 3"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	gone := r.NoChildren()
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
		t.Fatal("NoChildren closed while a zombie waits to be reaped")
	default:
	}
	r.Reap()
	if e := <-exit; e.Code() != 3 {
		t.Errorf("exit %d, want 3", e.Code())
	}
	<-gone
}
