package supervise

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/supervise/svclog"
)

// pump is one output pipe of a service whose output passes through vigil.
type pump struct {
	r       *os.File
	out     *proc.Output
	stderr  bool
	prefix  string                  // "NAME | " for log: prefix, "" for inherit
	tee     func([]byte, time.Time) // the service's ring and log file
	carry   []byte                  // output to start with (after a re-exec): a partial line, or what an interrupted pump did not write
	teed    int                     // bytes at the front of carry already given to tee
	stopped chan pumpResult         // one result per runPump
	eof     atomic.Bool
}

type pumpResult struct {
	left []byte // partial line held when interrupted
	teed int    // of left, the bytes tee had already
	eof  bool
}

// newPump is a pump of svc's stdout or stderr, read from r.
func (s *Supervisor) newPump(svc *service, r *os.File, stderr bool, carry []byte, teed int) *pump {
	p := &pump{r: r, out: s.o.Stdout, stderr: stderr, carry: carry, teed: teed}
	stream := svclog.Stdout
	if stderr {
		p.out, stream = s.o.Stderr, svclog.Stderr
	}
	if svc.Log == config.LogPrefix {
		p.prefix = svc.Name + " | "
	}
	if svc.log != nil {
		p.tee = svc.log.tee(stream)
	}
	return p
}

// pumpGroup counts the pumps (and log file closes) still running.
type pumpGroup struct {
	wg sync.WaitGroup
	n  atomic.Int32 // started by Go and not yet returned
}

// Go runs f in a goroutine of the group.
func (g *pumpGroup) Go(f func()) {
	g.n.Add(1)
	g.wg.Go(func() {
		defer g.n.Add(-1)
		f()
	})
}

// waitFor waits until every pump is done, at most d; it reports whether
// they all were. Called from the loop, which alone starts pumps.
func (g *pumpGroup) waitFor(d time.Duration) bool {
	if g.n.Load() == 0 {
		// The usual end (wrapper mode has no pump): no goroutine and no
		// timer on the way out.
		return true
	}
	drained := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(drained)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-drained:
		return true
	case <-t.C:
		return false
	}
}

// runPump copies p's pipe until EOF (then closes it) or until stopPumps
// interrupts it at a line boundary.
func (s *Supervisor) runPump(p *pump) {
	p.stopped = make(chan pumpResult, 1)
	opt := proc.PumpOptions{Prefix: p.prefix, Tee: p.tee, Teed: p.teed}
	carry := p.carry
	p.carry, p.teed = nil, 0
	s.pumps.Go(func() {
		left, teed, err := p.out.PumpTee(opt, p.r, carry)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, proc.ErrInterrupted) || left != nil {
			p.stopped <- pumpResult{left: left, teed: teed}
			return
		}
		p.eof.Store(true)
		p.r.Close()
		p.stopped <- pumpResult{eof: true}
	})
}

// pumpGrace is how long stopPumps lets the pumps reach a line boundary
// before it interrupts those that wait for a reader of vigil's output.
const pumpGrace = 500 * time.Millisecond

// stopPumps interrupts every pump at a line boundary and keeps its partial
// line; the read ends stay open. Pumps that reached EOF are dropped. A pump
// that cannot get to a line boundary in time, because whatever reads
// vigil's stdout or stderr stopped reading, is interrupted in its wait and
// hands over what it did not write: a stalled log driver must not hold up
// the re-exec, the control socket and signals behind it.
func (s *Supervisor) stopPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Now())
		}
	}
	grace := time.NewTimer(pumpGrace)
	defer grace.Stop()
	interrupted := false
	for _, svc := range s.order {
		live := svc.pumps[:0]
		for _, p := range svc.pumps {
			var r pumpResult
			select {
			case r = <-p.stopped:
			case <-grace.C:
				interrupted = true
				s.o.Stdout.Interrupt()
				s.o.Stderr.Interrupt()
				r = <-p.stopped
			}
			if !r.eof {
				p.carry, p.teed = r.left, r.teed
				live = append(live, p)
			}
		}
		svc.pumps = live
	}
	if interrupted {
		s.o.Stdout.Resume()
		s.o.Stderr.Resume()
		s.log.Warn("vigil's output is not being read; prefixed output is handed over mid-write", "waited", pumpGrace)
	}
	// vigil's own log lines queued so far go out before the exec if the
	// reader takes them in time.
	s.o.Stderr.Flush(pumpGrace)
}

// startPumps restarts every pump with its carried partial line.
func (s *Supervisor) startPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Time{})
			s.runPump(p)
		}
	}
}
