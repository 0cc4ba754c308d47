// Package httpd is vigil's HTTP endpoint (/livez, /readyz, /metrics) and the
// client of http readiness and health checks, on package net alone: net/http
// would add some 4 MB to a binary that stays under 3 MB.
//
// The responder speaks just enough HTTP/1.1 for probes and scrapers: GET and
// HEAD, one request per connection (every response says Connection: close,
// which keeps each connection's life bounded by one request), a head of at
// most 8 KiB read within 5 s. Each connection has its own goroutine, so a
// slow or hostile client never delays another; when the connection cap is
// reached the oldest connection is dropped, as a stalled one is the one that
// lives longest. An idle server is one goroutine blocked in Accept: no timer,
// no wake-up.
package httpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-init/vigil/control/metrics"
)

// Bounds of a request.
const (
	// MaxHead bounds the request line plus headers.
	MaxHead = 8 << 10
	// RequestTimeout bounds a connection's whole life: reading the request
	// and writing the response.
	RequestTimeout = 5 * time.Second
	// MaxConns is the number of connections served at once; the oldest is
	// closed to make room for a new one.
	MaxConns = 256
	// lingerMax bounds what is read and dropped after the response, so the
	// close does not turn into a reset that loses the response.
	lingerMax = 64 << 10
)

// Source answers for the supervisor. Each method is called from a
// connection's goroutine, any number at once; each must return promptly
// (Live within about a second) whatever the supervisor is doing.
type Source interface {
	// Live reports whether the supervisor's main loop answered within 1 s.
	Live() bool
	// NotReady lists the services that are not ready: all of them for
	// name "", else only name. known is false for a name that is no service.
	NotReady(name string) (notReady []string, known bool)
	// Metrics writes the metrics in the Prometheus text format 0.0.4.
	Metrics(w io.Writer) error
}

// Server serves one listener.
type Server struct {
	ln       net.Listener
	src      Source
	log      *slog.Logger
	timeout  time.Duration
	maxConns int

	mu      sync.Mutex
	closed  bool
	conns   map[*conn]struct{}
	live    int // conns not yet told to close
	seq     uint64
	timer   *time.Timer    // the request bound; nil until the first connection
	armed   bool           // timer will fire
	running sync.WaitGroup // Serve and the connection goroutines
}

type conn struct {
	net.Conn
	seq      uint64    // accept order: the lowest is the oldest
	deadline time.Time // the whole exchange ends by then
	// evicted: the server closed it (cap reached or deadline passed) and
	// no longer counts it in live; its goroutine still has to untrack it.
	evicted bool
}

// New returns a server for ln; Serve starts it. log may be nil.
func New(ln net.Listener, src Source, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{ln: ln, src: src, log: log, timeout: RequestTimeout, maxConns: MaxConns,
		conns: map[*conn]struct{}{}}
}

// Serve accepts connections until Close, then returns nil.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.running.Add(1)
	s.mu.Unlock()
	defer s.running.Done()

	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait and try again rather
			// than spin or give the endpoint up for good.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("http endpoint: accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.track(nc)
		if c == nil {
			continue
		}
		go s.serveConn(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers a new connection, making room by closing the oldest one
// when the cap is reached. It returns nil if the server is closed.
func (s *Server) track(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return nil
	}
	if s.live >= s.maxConns {
		var oldest *conn
		for c := range s.conns {
			if !c.evicted && (oldest == nil || c.seq < oldest.seq) {
				oldest = c
			}
		}
		if oldest != nil {
			oldest.evicted = true
			s.live--
			// Close unblocks its goroutine, which then untracks it.
			oldest.Close()
		}
	}
	s.seq++
	c := &conn{Conn: nc, seq: s.seq, deadline: time.Now().Add(s.timeout)}
	s.conns[c] = struct{}{}
	s.live++
	s.running.Add(1)
	// Deadlines only grow, so an armed timer already fires no later than
	// this one's.
	if !s.armed {
		s.armed = true
		if s.timer == nil {
			s.timer = time.AfterFunc(s.timeout, s.expire)
		} else {
			s.timer.Reset(s.timeout)
		}
	}
	return c
}

// expire closes the connections past their deadline and re-arms the timer
// for the oldest one left, if any.
func (s *Server) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if s.closed {
		return
	}
	now := time.Now()
	var next time.Time
	for c := range s.conns {
		switch {
		case c.evicted:
		case !c.deadline.After(now):
			c.evicted = true
			s.live--
			c.Close() // its goroutine sees the error and untracks it
		case next.IsZero() || c.deadline.Before(next):
			next = c.deadline
		}
	}
	if !next.IsZero() {
		s.armed = true
		s.timer.Reset(next.Sub(now))
	}
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if !c.evicted {
		s.live--
	}
	// The last connection gone, the bound has nothing left to bound:
	// stopped now rather than left to fire, so an idle vigil does not run
	// expire for nothing a few seconds after every probe.
	if len(s.conns) == 0 && s.armed {
		s.armed = false
		s.timer.Stop()
	}
	s.running.Done()
}

// Close stops accepting, closes every connection and waits until Serve and
// every connection's goroutine have returned.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.running.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("http endpoint: close: %w", err)
	}
	return nil
}

// serveConn answers one request and closes the connection.
func (s *Server) serveConn(c *conn) {
	defer s.untrack(c)
	defer c.Close()
	buf := make([]byte, MaxHead)
	req, status, ok := readRequest(c, buf)
	if !ok {
		return // nothing to answer: the client left or took too long
	}
	resp := s.respond(req, status)
	if _, err := c.Write(resp); err != nil {
		return
	}
	// Half-close, then read what the client may still send (a body, a
	// pipelined request) until it closes: closing with unread data would
	// reset the connection, and the client could lose the response.
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		discard(c, lingerMax)
	}
}

// discard reads and drops up to limit bytes, until EOF or an error. A plain
// loop rather than io.CopyN to io.Discard: io.Copy's ReaderFrom and WriterTo
// checks keep every Reader's splice and sendfile paths in the binary (some
// 80 KB).
func discard(r io.Reader, limit int64) {
	var buf [4 << 10]byte
	for limit > 0 {
		n, err := r.Read(buf[:min(int64(len(buf)), limit)])
		limit -= int64(n)
		if err != nil {
			return
		}
	}
}

// readRequest reads a request head into buf. It returns ok=false when the
// connection should just be closed (nothing was sent, or it was closed for
// its deadline).
// A status other than 0 is the error to answer.
func readRequest(c net.Conn, buf []byte) (request, int, bool) {
	have := 0
	for {
		n, err := c.Read(buf[have:])
		scanFrom := max(0, have-2)
		have += n
		if end := headerEnd(buf[scanFrom:have]); end >= 0 {
			req, status := parseRequest(buf[:scanFrom+end])
			return req, status, true
		}
		if badStart(buf[:have]) {
			return request{}, 400, true
		}
		if have == len(buf) {
			if bytes.IndexByte(buf, '\n') < 0 {
				return request{}, 400, true // the request line alone is too long
			}
			return request{}, 431, true
		}
		if err != nil {
			var ne net.Error
			if have == 0 || (errors.As(err, &ne) && ne.Timeout()) || !errors.Is(err, io.EOF) {
				return request{}, 0, false
			}
			return request{}, 400, true // the client closed mid-request
		}
	}
}

var statusText = map[int]string{
	200: "OK",
	400: "Bad Request",
	404: "Not Found",
	405: "Method Not Allowed",
	431: "Request Header Fields Too Large",
	500: "Internal Server Error",
	503: "Service Unavailable",
	505: "HTTP Version Not Supported",
}

// respond builds the whole response to req (or to a parse error status).
func (s *Server) respond(req request, status int) []byte {
	if status != 0 {
		return response(status, "", "", []byte(statusText[status]+"\n"), false)
	}
	route, name, found := route(req.path)
	if !found {
		return response(404, "", "", []byte("404 page not found\n"), false)
	}
	head := req.method == "HEAD"
	if req.method != "GET" && !head {
		return response(405, "Allow: GET, HEAD\r\n", "", []byte("405 method not allowed: GET or HEAD\n"), false)
	}
	switch route {
	case "livez":
		if s.src.Live() {
			return response(200, "", "", []byte("ok\n"), head)
		}
		return response(503, "", "", []byte("main loop not answering\n"), head)
	case "readyz":
		if name != "" && !validServiceName(name) {
			return response(404, "", "", []byte("no such service\n"), head)
		}
		notReady, known := s.src.NotReady(name)
		if !known {
			return response(404, "", "", []byte("no such service\n"), head)
		}
		if len(notReady) == 0 {
			return response(200, "", "", []byte("ok\n"), head)
		}
		var b bytes.Buffer
		for _, n := range notReady {
			b.WriteString(n)
			b.WriteByte('\n')
		}
		return response(503, "", "", b.Bytes(), head)
	default: // metrics
		var b bytes.Buffer
		if err := s.src.Metrics(&b); err != nil {
			s.log.Warn("http endpoint: metrics", "err", err)
			return response(500, "", "", []byte("metrics unavailable\n"), head)
		}
		return response(200, "", metrics.ContentType, b.Bytes(), head)
	}
}

// route maps a path to "livez", "readyz" (name "" for all services) or
// "metrics".
func route(path string) (route, name string, found bool) {
	switch path {
	case "/livez":
		return "livez", "", true
	case "/readyz":
		return "readyz", "", true
	case "/metrics":
		return "metrics", "", true
	}
	if len(path) > len("/readyz/") && path[:len("/readyz/")] == "/readyz/" {
		return "readyz", path[len("/readyz/"):], true
	}
	return "", "", false
}

// response formats a response. A HEAD response has the headers of the GET
// one, Content-Length included, and no body.
func response(status int, extra, contentType string, body []byte, head bool) []byte {
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	b := make([]byte, 0, 192+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, statusText[status]...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"...)
	b = append(b, extra...)
	b = append(b, "\r\n"...)
	if !head {
		b = append(b, body...)
	}
	return b
}
