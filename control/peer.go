package control

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// peerRule is the SO_PEERCRED rule: root or the server's own uid, where the
// overflow uid is nobody's. In a user namespace a peer whose uid is not
// mapped there shows as the overflow uid (65534 unless the kernel says
// otherwise), which is also the uid a vigil often runs as: it must not pass
// for vigil's own. Outside of any user namespace every uid is mapped, so
// the overflow uid is a real user's and only then is it taken as one.
type peerRule struct {
	self     uint32
	overflow uint32
	mapped   bool // every uid is mapped here: the overflow uid is real
}

func (r peerRule) allowed(peer uint32) bool {
	if peer == r.overflow && !r.mapped {
		return false
	}
	return peer == 0 || peer == r.self
}

// Where the kernel says it; variables so tests can move them.
var (
	overflowUIDFile = "/proc/sys/kernel/overflowuid"
	uidMapFile      = "/proc/self/uid_map"
)

// defaultOverflowUID is the kernel's default, used when /proc says nothing.
const defaultOverflowUID = 65534

func currentPeerRule() peerRule {
	r := peerRule{self: uint32(os.Geteuid()), overflow: defaultOverflowUID}
	if b, err := readSmall(overflowUIDFile); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			r.overflow = uint32(n)
		}
	}
	// The initial user namespace maps the whole range onto itself.
	if b, err := readSmall(uidMapFile); err == nil {
		f := strings.Fields(string(b))
		r.mapped = len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
	}
	return r
}

// readSmall reads at most 4 KiB of a /proc file.
func readSmall(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4096))
}

// limiter lets one log line of a kind through per interval and counts the
// ones it held back, so that a flood of refused or busy connections cannot
// flood the log. It needs no timer: the count is reported with the next line
// let through.
type limiter struct {
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether to log now, and how many were held back since the
// last line logged.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.skipped++
		return false, 0
	}
	n := l.skipped
	l.last, l.skipped = now, 0
	return true, n
}
