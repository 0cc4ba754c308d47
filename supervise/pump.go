package supervise

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-init/vigil/proc"
)

// pump is one prefixed output pipe of a service.
type pump struct {
	r       *os.File
	out     *proc.Output
	carry   []byte          // output to start with (after a re-exec): a partial line, or what an interrupted pump did not write
	stopped chan pumpResult // one result per runPump
	eof     atomic.Bool
}

type pumpResult struct {
	left []byte // partial line held when interrupted
	eof  bool
}

// pumpGroup counts the pumps still copying.
type pumpGroup struct{ wg sync.WaitGroup }

// waitFor waits until every pump is done, at most d; it reports whether
// they all were.
func (g *pumpGroup) waitFor(d time.Duration) bool {
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
func (s *Supervisor) runPump(name string, p *pump) {
	p.stopped = make(chan pumpResult, 1)
	carry := p.carry
	p.carry = nil
	s.pumps.wg.Go(func() {
		left, err := p.out.PumpCarry(name, p.r, carry)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, proc.ErrInterrupted) || left != nil {
			p.stopped <- pumpResult{left: left}
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
				p.carry = r.left
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
			s.runPump(svc.Name, p)
		}
	}
}
