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
	carry   []byte          // partial line to start with (after a re-exec)
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
		if errors.Is(err, os.ErrDeadlineExceeded) || left != nil {
			p.stopped <- pumpResult{left: left}
			return
		}
		p.eof.Store(true)
		p.r.Close()
		p.stopped <- pumpResult{eof: true}
	})
}

// stopPumps interrupts every pump at a line boundary and keeps its partial
// line; the read ends stay open. Pumps that reached EOF are dropped.
func (s *Supervisor) stopPumps() {
	for _, svc := range s.order {
		for _, p := range svc.pumps {
			p.r.SetReadDeadline(time.Now())
		}
	}
	for _, svc := range s.order {
		live := svc.pumps[:0]
		for _, p := range svc.pumps {
			if r := <-p.stopped; !r.eof {
				p.carry = r.left
				live = append(live, p)
			}
		}
		svc.pumps = live
	}
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
