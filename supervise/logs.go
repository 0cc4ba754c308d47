package supervise

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/supervise/svclog"
)

// logBatchMax is the most lines one reply of `vigil logs` carries, so a
// full ring of short lines goes out in replies of bounded size.
const logBatchMax = 1000

// Logs is `vigil logs` (docs/logs.md): the last req.Lines of each named
// service's ring, oldest first across them all, then with req.Follow the
// new lines as they come until ctx ends or every named service is removed.
// A service whose output does not pass through vigil keeps no lines: a
// note says so, and if no named service keeps any, that is the error.
// The rings are read off the supervisor's goroutine: a slow client never
// holds up the loop, and never the services either (a follower is only a
// position in a ring: lines it was too slow for are counted in a note).
func (s *Supervisor) Logs(ctx context.Context, req control.LogsRequest, send func(control.LogBatch) error) error {
	type source struct {
		name string
		f    *svclog.Follower
	}
	var sources []source
	var notes []string
	var lerr error
	err := s.call(ctx, func() {
		var list []*service
		if list, lerr = s.lookup(req.Names); lerr != nil {
			return
		}
		for _, svc := range list {
			if svc.log == nil {
				notes = append(notes, svc.Name+": its output does not pass through vigil (log: inherit and no log_file): no lines kept")
				continue
			}
			// Positioned on the loop: no line appended from here on is
			// missed by a follower, none is sent twice.
			sources = append(sources, source{svc.Name, svc.log.ring.Follow(req.Lines)})
		}
	})
	if err != nil {
		return err
	}
	if lerr != nil {
		return lerr
	}
	if len(sources) == 0 {
		return errors.New(strings.Join(notes, "; "))
	}

	// The lines held now, merged by time.
	now, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	each := make([][]control.LogLine, len(sources))
	for i, src := range sources {
		for {
			lines, _, err := src.f.Next(now, 0)
			if err != nil || len(lines) == 0 {
				break
			}
			each[i] = appendLines(each[i], src.name, lines, req)
		}
	}
	held := merge(each)
	for first := true; first || len(held) > 0; first = false {
		n := min(len(held), logBatchMax)
		b := control.LogBatch{Lines: held[:n]}
		if first {
			b.Notes = notes
		}
		if err := send(b); err != nil {
			return nil
		}
		held = held[n:]
	}
	if !req.Follow {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type got struct {
		lines []control.LogLine
		note  string
		ended bool
	}
	ch := make(chan got)
	for _, src := range sources {
		go func() {
			for {
				lines, lost, err := src.f.Next(ctx, logBatchMax)
				var g got
				if lost > 0 {
					g.note = fmt.Sprintf("%s: %d lines dropped: they came faster than they could be sent", src.name, lost)
				}
				switch {
				case errors.Is(err, svclog.ErrClosed):
					g.note, g.ended = src.name+": removed by a reload", true
				case err != nil:
					return
				}
				g.lines = appendLines(nil, src.name, lines, req)
				select {
				case ch <- g:
				case <-ctx.Done():
					return
				}
				if g.ended {
					return
				}
			}
		}()
	}
	for left := len(sources); left > 0; {
		var g got
		select {
		case g = <-ch:
		case <-ctx.Done():
			return nil
		}
		b := control.LogBatch{Lines: g.lines}
		if g.note != "" {
			b.Notes = []string{g.note}
		}
		if g.ended {
			left--
		}
		if err := send(b); err != nil {
			return nil
		}
	}
	return nil
}

// merge merges lists of lines by time, each list kept in its own order: a
// ring's order is the order its lines came in, and the lines of its two
// streams, each timed by its own pump's reads, need not be in time order.
func merge(lists [][]control.LogLine) []control.LogLine {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]control.LogLine, 0, n)
	for len(out) < n {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].Time.Before(lists[best][0].Time)) {
				best = i
			}
		}
		out = append(out, lists[best][0])
		lists[best] = lists[best][1:]
	}
	return out
}

// appendLines appends a ring's lines as name's to out, less those up to
// req.Since.
func appendLines(out []control.LogLine, name string, lines []svclog.Line, req control.LogsRequest) []control.LogLine {
	for _, l := range lines {
		if !req.Since.IsZero() && !l.Time.After(req.Since) {
			continue
		}
		out = append(out, control.LogLine{Service: name, Time: l.Time, Stream: l.Stream.String(), Text: l.Text})
	}
	return out
}
