package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/vigil-init/vigil/control/httpd"
	"github.com/vigil-init/vigil/control/metrics"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/supervise"
	"golang.org/x/sys/unix"
)

// liveWithin is how long /livez waits for the supervisor's loop.
const liveWithin = time.Second

// serveHTTP opens the HTTP endpoint on addr; stop closes it. A re-exec does
// not carry the listener: it is close-on-exec, and the new image listens
// again once its supervisor answers (a probe in that gap of a few
// milliseconds is refused, and probes retry).
func serveHTTP(log *slog.Logger, addr string, src httpd.Source) (stop func()) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("no HTTP endpoint: /livez, /readyz and /metrics will not answer", "addr", addr, "err", err)
		return func() {}
	}
	log.Info("HTTP endpoint", "addr", ln.Addr().String())
	srv := httpd.New(ln, src, log)
	go srv.Serve()
	return func() { srv.Close() }
}

// httpSource answers the endpoint from the supervisor: every value comes
// from its loop, as `vigil status` and `vigil ready` do, each call bounded
// so a stalled loop is a 503 and never a hung probe.
type httpSource struct {
	sup   *supervise.Supervisor
	start time.Time
}

func (h httpSource) Live() bool {
	ctx, cancel := context.WithTimeout(context.Background(), liveWithin)
	defer cancel()
	return h.sup.Live(ctx)
}

func (h httpSource) NotReady(name string) ([]string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), liveWithin)
	defer cancel()
	var names []string
	if name != "" {
		names = []string{name}
	}
	list, err := h.sup.Status(ctx, names)
	if errors.Is(err, supervise.ErrUnknown) {
		return nil, false
	}
	if err != nil {
		// No answer is no proof of readiness.
		if name == "" {
			name = "vigil"
		}
		return []string{name + " (no answer: " + err.Error() + ")"}, true
	}
	var out []string
	for _, st := range list {
		if !st.Ready {
			out = append(out, st.Name)
		}
	}
	return out, true
}

func (h httpSource) Metrics(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), liveWithin)
	defer cancel()
	snap, err := h.sup.Metrics(ctx)
	if err != nil {
		return err
	}
	snap.Version, snap.Start = version, h.start
	return metrics.Write(w, snap)
}

// processStart is when this process started: a re-exec keeps it, as it
// keeps the PID. It is derived from the kernel's start time of the process
// (in clock ticks since boot), rounded to the tick so that each image
// computes the same value; if it cannot be read, now.
func processStart() time.Time {
	ticks, err := reexec.StartTime(os.Getpid())
	// The two clocks read back to back: the closer, the rarer a rounding
	// that differs between two images.
	now := time.Now()
	var boot unix.Timespec
	berr := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	if err != nil || ticks == 0 || berr != nil {
		return now
	}
	const tick = time.Second / 100 // the kernel's USER_HZ, fixed for userspace
	since := time.Duration(boot.Nano()) - time.Duration(ticks)*tick
	if since < 0 {
		return now
	}
	return now.Add(-since).Round(tick)
}
