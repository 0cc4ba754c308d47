package proc

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// ForegroundTerminal returns fd 0 if it is vigil's controlling terminal and
// vigil's process group holds its foreground, else -1. Only then is it vigil's
// to hand to the main process: a background vigil must not steal the terminal
// from the shell that started it.
func ForegroundTerminal() int {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		return -1
	}
	return 0
}

// ReclaimTerminal makes vigil's own process group the foreground of the
// terminal on fd again, after the main process that held it has gone.
//
// vigil is then in a background group (and as PID 1, an orphaned one), where
// TIOCSPGRP fails or raises SIGTTOU unless SIGTTOU is blocked on the calling
// thread. signal.Ignore would work too, but SIG_IGN is inherited by every
// later child; a blocked mask on a locked thread is not.
func ReclaimTerminal(fd int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	sigaddset(&set, unix.SIGTTOU)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
}

func sigaddset(set *unix.Sigset_t, sig unix.Signal) {
	n := uint(sig) - 1
	set.Val[n/64] |= 1 << (n % 64)
}
