package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// defaultLogLines is how many lines `vigil logs` shows of each service
// without -n.
const defaultLogLines = 100

// followRetry is how long `vigil logs -f` tries to reach vigil again after
// its connection was lost: a re-exec takes well under a second.
const followRetry = 10 * time.Second

// logs is `vigil logs`: it prints the lines as they come, each prefixed
// by its service's name when several are named. With -f it follows until
// interrupted (exit 0). If vigil re-executes meanwhile, it goes on with the
// new image from the last line it printed.
func (c Client) logs(req request) int {
	ctx := context.Background()
	if req.Follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer stop()
	}
	out := bufio.NewWriter(c.Stdout)
	defer out.Flush()
	p := logPrinter{out: out, stderr: c.Stderr, names: len(req.Names) > 1}
	var lostAt time.Time
	started := time.Now()
	for {
		err := connect(c.Socket, clientTimeout(verbLogs), func(conn *net.UnixConn, deadline time.Time) error {
			return p.stream(ctx, conn, req, deadline)
		})
		if ctx.Err() != nil {
			return ExitOK
		}
		var nr *notRunningError
		switch {
		case err == nil:
			return ExitOK
		case errors.Is(err, errRefused):
			return ExitFailed
		case lostReply(err) || errors.As(err, &nr) && !lostAt.IsZero():
			// vigil re-executing: ask the new image for the rest.
			if lostAt.IsZero() {
				lostAt = time.Now()
			}
			if time.Since(lostAt) > followRetry {
				fmt.Fprintf(c.Stderr, "vigil logs: %v\n", err)
				return ExitFailed
			}
			// From the time of the last line printed, that time included:
			// the lines of one read share their time, and some of them may
			// not have been sent yet. Those that were are skipped.
			switch {
			case !p.last.IsZero():
				req.Since, req.Lines = p.last.Add(-time.Nanosecond), 1<<30
				p.resume()
			case req.Follow:
				// Nothing printed yet: whatever came since we asked.
				req.Since, req.Lines = started, 1<<30
			}
			select {
			case <-ctx.Done():
				return ExitOK
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case errors.As(err, &nr):
			fmt.Fprintf(c.Stderr, "vigil logs: %v\n", err)
			return ExitNoVigil
		default:
			fmt.Fprintf(c.Stderr, "vigil logs: %v\n", err)
			return ExitFailed
		}
	}
}

// errRefused: vigil answered the logs request with an error (printed).
var errRefused = errors.New("refused")

type logPrinter struct {
	out    *bufio.Writer
	stderr io.Writer
	names  bool      // prefix each line with its service's name
	last   time.Time // of the last line printed
	// atLast are the lines printed with the time last, by service, in
	// order; skip, after a reconnection, those of them still to be seen
	// again.
	atLast map[string][]string
	skip   map[string][]string
}

// resume prepares for the lines a new connection sends again: those
// printed at the last time.
func (p *logPrinter) resume() {
	p.skip = map[string][]string{}
	for k, v := range p.atLast {
		p.skip[k] = append([]string(nil), v...)
	}
}

// seen reports whether l was printed before a reconnection, and keeps
// track of the lines at the last time.
func (p *logPrinter) seen(l LogLine) bool {
	key := l.Stream + " " + l.Text
	if p.skip != nil && l.Time.Equal(p.last) {
		if q := p.skip[l.Service]; len(q) > 0 && q[0] == key {
			p.skip[l.Service] = q[1:]
			return true
		}
	}
	switch {
	case l.Time.After(p.last):
		p.last, p.atLast, p.skip = l.Time, map[string][]string{}, nil
	case l.Time.Before(p.last):
		// Another service's older line: printed, not asked for again.
		return false
	}
	if p.atLast == nil {
		p.atLast = map[string][]string{}
	}
	p.atLast[l.Service] = append(p.atLast[l.Service], key)
	return false
}

// stream sends req on conn and prints the replies until the last one.
func (p *logPrinter) stream(ctx context.Context, conn *net.UnixConn, req request, deadline time.Time) error {
	conn.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sending the request: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(conn, 64<<10)
	for first := true; ; first = false {
		line, err := readLine(br, maxReply)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
				return errNoReply
			case errors.As(err, &ne) && ne.Timeout():
				return fmt.Errorf("no reply from vigil in time")
			}
			return fmt.Errorf("reading the reply: %w", err)
		}
		var rep reply
		if err := json.Unmarshal(line, &rep); err != nil {
			return fmt.Errorf("garbled reply from vigil: %v", err)
		}
		if first && req.Follow {
			// Answered: from now on the stream lasts as long as the user
			// wants it.
			conn.SetDeadline(time.Time{})
		}
		for _, n := range rep.Notes {
			fmt.Fprintf(p.stderr, "vigil logs: %s\n", n)
		}
		if !rep.OK {
			if rep.Error == "" {
				rep.Error = "failed (no reason given)"
			}
			fmt.Fprintf(p.stderr, "%s: %s\n", prefix(verbLogs, req.Names), trimName(rep.Error, req.Names))
			return errRefused
		}
		for _, l := range rep.Logs {
			if p.seen(l) {
				continue
			}
			if p.names {
				p.out.WriteString(l.Service)
				p.out.WriteString(" | ")
			}
			p.out.WriteString(l.Text)
			p.out.WriteByte('\n')
		}
		if err := p.out.Flush(); err != nil {
			// Whoever reads our output is gone (| head): done.
			return nil
		}
		if !rep.More {
			return nil
		}
	}
}

// readLine reads one reply line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > max {
			return nil, fmt.Errorf("reply longer than %d bytes", max)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			// A line cut by the end of the connection is a reply lost.
			return nil, err
		}
	}
}
