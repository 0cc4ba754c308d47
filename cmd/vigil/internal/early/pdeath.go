package early

import (
	"os"
	"syscall"
	"unsafe"

	"github.com/vigil-init/vigil/control/verb"
	"golang.org/x/sys/unix"
)

// ParentDeathSignal is the parent-death signal vigil's parent set on it
// (unshare --kill-child, Go's Pdeathsig), 0 if none. The kernel keeps it per
// thread and a Go exec runs on whichever thread it happens to be on: read here,
// during package init, which runs on the main thread (the one the parent
// set it on), so a re-exec can set it again on the thread that execs.
var ParentDeathSignal = parentDeathSignal()

func parentDeathSignal() syscall.Signal {
	if len(os.Args) > 1 && verb.Is(os.Args[1]) {
		return 0
	}
	var sig int32
	if err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0); err != nil {
		return 0
	}
	return syscall.Signal(sig)
}
