package signals

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelIgnored asks the kernel whether s's disposition is SIG_IGN. It only
// reads: the new action is nil. The handler comes first in the kernel's
// struct sigaction on every port this package builds for (MIPS, which puts
// the flags first, has no SIGSTKFLT and is not one); the buffer is larger
// than any of them.
func kernelIgnored(s syscall.Signal) bool {
	var old [8]uint64
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), 0, uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	return errno == 0 && old[0] == 1 // SIG_IGN
}
