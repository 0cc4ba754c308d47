package reexec

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// Handoff is what a vigil passes to the image that replaces it (re-exec):
// every service's runtime record and the descriptors of its output pipes.
// Its encoding is in wire.go: a field added to it, or to the types it
// holds, goes there too, at the end of its record (TestWireRoundTrip
// fails until it does).
type Handoff struct {
	Generation int
	Signals    []int       // received but not yet handled by the old image
	Panics     []time.Time // recent panic re-execs, to stop a panic loop
	Services   []HandoffService
	// Clock is CLOCK_MONOTONIC (ns) at the freeze: the new image falls back
	// on it if it cannot read the clock. It, Bucket and each service's Due
	// are zero when the old image could not read its clock: the new one
	// starts with a full bucket and waits each backoff again.
	Clock  int64
	Bucket *HandoffBucket
	// Orphans and Forwarded are the counters of the metrics
	// (vigil_orphans_reaped_total, vigil_signals_forwarded_total): a
	// re-exec keeps the process, so it keeps its counts.
	Orphans   uint64
	Forwarded uint64

	// checked delivers, in the order of Services, whether each one's Pid
	// is still the process handed over (see CheckProcesses).
	checked <-chan []bool
	// mapped is the memfd's mapping Read decoded it from; the LogRings
	// point into it until Release.
	mapped []byte
}

// CheckProcesses starts checking, in the background, that each process of
// the handoff is still the one handed over: vigil's child, with the start
// time recorded at its spawn. Adoption waits for the answers. Started as
// soon as the handoff is read, the thousand reads of /proc overlap the
// loading of the config; without it adoption checks them itself. Nothing
// reaps before adoption, so an answer holds until then.
func (h *Handoff) CheckProcesses() {
	ch := make(chan []bool, 1)
	h.checked = ch
	services := h.Services
	go func() { ch <- checkProcesses(services) }()
}

// Same reports, in the order of Services, whether each one's Pid is still
// the process handed over: the answers CheckProcesses started, or a check
// made now.
func (h *Handoff) Same() []bool {
	if h.checked != nil {
		return <-h.checked
	}
	return checkProcesses(h.Services)
}

func checkProcesses(services []HandoffService) []bool {
	ok := make([]bool, len(services))
	self := os.Getpid()
	for i, hs := range services {
		if hs.Pid != 0 {
			ppid, st, err := proc.ProcStat(hs.Pid)
			ok[i] = err == nil && st == hs.StartTime && ppid == self
		}
	}
	return ok
}

// HandoffBucket is the global respawn limit across a re-exec. Without it
// every image would start with a full bucket, and a crash loop could
// restart N more times at each re-exec.
type HandoffBucket struct {
	Tokens float64 // negative: taken by restarts still waiting for their time
	Last   int64   // last refill, CLOCK_MONOTONIC ns
}

// HandoffService is one service across a re-exec.
type HandoffService struct {
	Config config.Service
	Main   bool
	State  string
	Pid    int
	Pgid   int
	// Exit is the status of a run that ended while the old image froze,
	// before it could handle it; the new one does.
	Exit      *reaper.Exit
	StartTime uint64 // of Pid, to recognise it (field 22 of /proc/PID/stat)
	Started   time.Time
	Retries   int
	Restarts  int
	LastExit  *int
	Want      bool
	// Output pipes of a prefixed service (this run's, and an earlier run's
	// still held open by a leftover process): vigil's read ends, kept open
	// across the exec, and the partial line each pump held.
	Pipes  []HandoffPipe
	Notify int // read end of the notify_fd pipe, -1 if none
	// Due is when a pending restart fires (CLOCK_MONOTONIC ns, 0 if none):
	// the new image keeps that time rather than starting it at once or
	// waiting a whole backoff again. Reserved: the restart already took its
	// respawn token and waits for it to come due, so it must not take
	// another.
	Due      int64
	Reserved bool
	// Stopping: vigil had sent the stop signal (vigil stop, restart,
	// reload); KillAt is when SIGKILL is due (CLOCK_MONOTONIC ns, 0 if sent
	// already); RestartAfterStop: a vigil restart waits for the stop.
	// Without them the new image forgot the stop: a service deaf to its
	// stop signal was never killed, and its exit was judged a failure.
	Stopping         bool
	KillAt           int64
	RestartAfterStop bool
	// A scheduled service's next tick (wall clock; zero if none armed), its
	// latest run's start, its failed runs, and whether a run is due
	// (waiting for its dependencies, or for a replaced run to stop).
	NextRun    time.Time
	LastRun    time.Time
	FailedRuns int
	RunDue     bool
	// LogRing is the service's ring of recent lines (`vigil logs`), nil
	// if it keeps none. The old image hands the ring itself, which
	// encodes itself straight into the handoff (a megabyte each: no copy
	// on the way); the new image gets it as RawBytes, a slice of the
	// handoff it must copy before the handoff goes.
	LogRing Blob
	// HealthFailures counts the failed health checks of the service since
	// vigil started (a metric's counter).
	HealthFailures uint64
	// WasReady: the current run was ready at some point; in state running
	// it was made not ready by a continuous readiness check, and has no
	// readiness deadline any more.
	WasReady bool
}

// Blob is data the handoff carries opaque: what encodes it, or the bytes
// it was decoded from.
type Blob interface {
	AppendBinary(b []byte) ([]byte, error)
	// EncodedLen is the length AppendBinary appends, to size the handoff
	// in one allocation.
	EncodedLen() int
}

// RawBytes is a Blob as the new image reads it.
type RawBytes []byte

func (r RawBytes) AppendBinary(b []byte) ([]byte, error) { return append(b, r...), nil }
func (r RawBytes) EncodedLen() int                       { return len(r) }

// Clock pairs a reading of time.Now with one of CLOCK_MONOTONIC, to
// translate times to and from what another image of this process can
// compare: Go's own monotonic reading starts afresh at each exec, the wall
// clock can be stepped, but CLOCK_MONOTONIC runs on across execve within a
// boot (and the Binding refuses a handoff from another boot).
type Clock struct {
	Now  time.Time
	Mono int64 // ns
}

func ReadClock() (Clock, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Clock{}, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return Clock{Now: now, Mono: ts.Nano()}, nil
}

func (c Clock) ToMono(t time.Time) int64 { return c.Mono + int64(t.Sub(c.Now)) }

// FromMono keeps c.Now's monotonic reading, so durations to and from the
// result are immune to steps of the wall clock.
func (c Clock) FromMono(m int64) time.Time { return c.Now.Add(time.Duration(m - c.Mono)) }

// HandoffPipe is one output pipe across a re-exec.
type HandoffPipe struct {
	FD     int
	Stderr bool
	Carry  []byte
	// Teed is how many bytes at the front of Carry are in the service's
	// ring and log file already (lines whose write to vigil's output was
	// interrupted): the new image writes them out, not into the log again.
	Teed int
}

// startTime is a process's start time (see procStat).
func StartTime(pid int) (uint64, error) {
	_, st, err := proc.ProcStat(pid)
	return st, err
}

// Binding ties a handoff to this very process, so a stray descriptor can
// never hand a new vigil someone else's children: the start time of
// vigil's process, its PID namespace and the boot.
type Binding struct {
	StartTime uint64
	PidNS     uint64
	BootID    string
}

// Bind reads this process's Binding.
func Bind() (Binding, error) {
	st, err := StartTime(os.Getpid())
	if err != nil {
		return Binding{}, fmt.Errorf("start time: %w", err)
	}
	var ns unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &ns); err != nil {
		return Binding{}, fmt.Errorf("pid namespace: %w", err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Binding{}, fmt.Errorf("boot id: %w", err)
	}
	return Binding{StartTime: st, PidNS: ns.Ino, BootID: string(bytes.TrimSpace(boot))}, nil
}
