package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-init/vigil/control/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a supervisor with a fixed set of services.
type fakeSource struct {
	mu         sync.Mutex
	live       bool
	ready      map[string]bool
	metricsErr error
}

func newSource() *fakeSource {
	return &fakeSource{live: true, ready: map[string]bool{"web": true, "db": true}}
}

func (f *fakeSource) set(fn func(*fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeSource) Live() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

func (f *fakeSource) NotReady(name string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if name != "" {
		r, ok := f.ready[name]
		if ok && !r {
			out = append(out, name)
		}
		return out, ok
	}
	for n, r := range f.ready {
		if !r {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, true
}

func (f *fakeSource) Metrics(w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metricsErr != nil {
		return f.metricsErr
	}
	snap := metrics.Snapshot{Version: "test", Start: time.Unix(1764684583, 0)}
	names := make([]string, 0, len(f.ready))
	for n := range f.ready {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		state := "ready"
		if !f.ready[n] {
			state = "running"
		}
		snap.Services = append(snap.Services, metrics.Service{Name: n, Up: true, Ready: f.ready[n],
			State: state, States: []string{"running", "ready"}})
	}
	return metrics.Write(w, snap)
}

// start serves src on a loopback port; tweak adjusts the server's bounds
// before it serves. The server is closed at the end of the test, and Serve
// must then have returned nil.
func start(t *testing.T, src Source, tweak func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, src, nil)
	if tweak != nil {
		tweak(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, string(body)
}

func TestRoutesWithGoClient(t *testing.T) {
	src := newSource()
	_, addr := start(t, src, nil)
	client := &http.Client{Timeout: 30 * time.Second}
	tests := []struct {
		name     string
		setup    func(*fakeSource)
		method   string
		path     string
		status   int
		body     string // "" = not checked
		ctype    string // prefix; "" = text/plain
		allow    string
		noHEADCL bool
	}{
		{"livez while live", nil, "GET", "/livez", 200, "ok\n", "", "", false},
		{"livez when the main loop does not answer", func(f *fakeSource) { f.live = false }, "GET", "/livez", 503, "main loop not answering\n", "", "", false},
		{"readyz all ready", nil, "GET", "/readyz", 200, "ok\n", "", "", false},
		{"readyz lists the not-ready, one a line", func(f *fakeSource) { f.ready["db"] = false; f.ready["api"] = false }, "GET", "/readyz", 503, "api\ndb\n", "", "", false},
		{"readyz/NAME ready", func(f *fakeSource) { f.ready["db"] = false }, "GET", "/readyz/web", 200, "ok\n", "", "", false},
		{"readyz/NAME not ready", func(f *fakeSource) { f.ready["db"] = false }, "GET", "/readyz/db", 503, "db\n", "", "", false},
		{"readyz/NAME unknown", nil, "GET", "/readyz/nope", 404, "", "", "", false},
		{"readyz/NAME that cannot be a name", nil, "GET", "/readyz/a%2Fb", 404, "", "", "", false},
		{"readyz/ with no name", nil, "GET", "/readyz/", 404, "", "", "", false},
		{"query string ignored", nil, "GET", "/readyz?verbose=1", 200, "ok\n", "", "", false},
		{"escaped name", func(f *fakeSource) { f.ready["web"] = false }, "GET", "/readyz/w%65b", 503, "web\n", "", "", false},
		{"metrics", nil, "GET", "/metrics", 200, "", "text/plain; version=0.0.4", "", false},
		{"metrics failing", func(f *fakeSource) { f.metricsErr = errors.New("boom") }, "GET", "/metrics", 500, "", "", "", false},
		{"unknown path", nil, "GET", "/", 404, "", "", "", false},
		{"unknown path, other method", nil, "POST", "/nope", 404, "", "", "", false},
		{"POST on a route", nil, "POST", "/livez", 405, "", "", "GET, HEAD", false},
		{"DELETE on a route", nil, "DELETE", "/metrics", 405, "", "", "GET, HEAD", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src.set(func(f *fakeSource) {
				f.live, f.metricsErr = true, nil
				f.ready = map[string]bool{"web": true, "db": true}
				if tc.setup != nil {
					tc.setup(f)
				}
			})
			resp, body := get(t, client, tc.method, "http://"+addr+tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			wantCT := tc.ctype
			if wantCT == "" {
				wantCT = "text/plain; charset=utf-8"
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantCT) {
				t.Errorf("Content-Type %q, want %q", ct, wantCT)
			}
			if resp.Header.Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			if !resp.Close {
				t.Error("no Connection: close")
			}
			if tc.method != "GET" {
				return
			}
			head, hbody := get(t, client, "HEAD", "http://"+addr+tc.path)
			if head.StatusCode != tc.status || hbody != "" || head.ContentLength != int64(len(body)) {
				t.Errorf("HEAD: status %d, body %q, Content-Length %d; want %d, none, %d",
					head.StatusCode, hbody, head.ContentLength, tc.status, len(body))
			}
		})
	}
}

// exchange sends raw bytes, half-closes, and returns everything the server
// sent before it closed.
func exchange(t *testing.T, addr string, data []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, out)
	}
	return string(out)
}

func TestRawRequests(t *testing.T) {
	_, addr := start(t, newSource(), nil)
	big := strings.Repeat("a", MaxHead)
	tests := []struct {
		name string
		req  string
		want string // status line prefix; "" = closed without a response
	}{
		{"minimal HTTP/1.1", "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
		{"HTTP/1.0 without Host", "GET /livez HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
		{"bare LF line ends", "GET /livez HTTP/1.1\nHost: x\n\n", "HTTP/1.1 200 OK\r\n"},
		{"absolute form", "GET http://vigil:9090/readyz HTTP/1.1\r\nHost: vigil\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
		{"a body is read and dropped", "GET /livez HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK\r\n"},
		{"pipelined requests: one answer, then close", "GET /livez HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
		{"headers beyond 8 KiB", "GET /livez HTTP/1.1\r\nX: " + big + "\r\n\r\n", "HTTP/1.1 431 "},
		{"request line beyond 8 KiB", "GET /" + big + " HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"HTTP/2.0", "GET /livez HTTP/2.0\r\n\r\n", "HTTP/1.1 505 "},
		{"not HTTP", "GET /livez FTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
		{"no version", "GET /livez\r\n\r\n", "HTTP/1.1 400 "},
		{"space before colon", "GET /livez HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 "},
		{"obsolete line folding", "GET /livez HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 "},
		{"control byte in a value", "GET /livez HTTP/1.1\r\nX: a\x01b\r\n\r\n", "HTTP/1.1 400 "},
		{"lone CR", "GET /livez HTTP/1.1\r\nX: a\rb\r\n\r\n", "HTTP/1.1 400 "},
		{"relative target", "GET livez HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"bad escape", "GET /readyz/%zz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"escaped NUL", "GET /readyz/%00 HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"TLS hello answered at once", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HTTP/1.1 400 "},
		{"closed mid-request", "GET /livez HTTP/1.1\r\nHost:", "HTTP/1.1 400 "},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "},
		{"nothing sent", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := exchange(t, addr, []byte(tc.req))
			if tc.want == "" {
				if out != "" {
					t.Errorf("got %q, want no response", out)
				}
				return
			}
			if !strings.HasPrefix(out, tc.want) {
				t.Errorf("got %q, want %q...", truncate(out), tc.want)
			}
			if strings.Count(out, "HTTP/1.1 ") != 1 {
				t.Errorf("want exactly one response, got %q", out)
			}
		})
	}
}

// waitConns waits until the server tracks n live connections.
func waitConns(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s.mu.Lock()
		live := s.live
		s.mu.Unlock()
		if live == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want %d", live, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stall opens n connections that send half a request and then nothing.
func stall(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

func TestStalledClientsDoNotDelayAProbe(t *testing.T) {
	// The request bound is an hour here: a probe answered while stalled
	// clients are connected was not waiting for them to time out.
	tests := []struct {
		name    string
		stalled int
		evicted int
	}{
		{"200 stalled, under the cap", 200, 0},
		{"300 stalled, over the cap: the oldest are dropped", 300, 300 - MaxConns},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := start(t, newSource(), func(s *Server) { s.timeout = time.Hour })
			conns := stall(t, addr, tc.stalled)
			waitConns(t, s, min(tc.stalled, MaxConns))
			client := &http.Client{Timeout: 60 * time.Second}
			resp, body := get(t, client, "GET", "http://"+addr+"/livez")
			if resp.StatusCode != 200 || body != "ok\n" {
				t.Fatalf("probe: %d %q", resp.StatusCode, body)
			}
			// The dropped ones are the oldest: each sees its connection end.
			for i, c := range conns[:tc.evicted] {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
					t.Fatalf("stalled connection %d (of the oldest) still open: %v", i, err)
				}
			}
			s.mu.Lock()
			live := s.live
			s.mu.Unlock()
			if live > MaxConns {
				t.Errorf("%d live connections, cap %d", live, MaxConns)
			}
		})
	}
}

func TestSlowClientIsCutOff(t *testing.T) {
	_, addr := start(t, newSource(), func(s *Server) { s.timeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A byte at a time would keep a per-read timeout alive forever; the
	// bound is on the whole request.
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var readErr error
	for i := 0; ; i++ {
		if _, err := c.Write([]byte("G")); err != nil {
			break // the server closed: the write may see it before the read
		}
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, readErr = c.Read(make([]byte, 64))
		var ne net.Error
		if readErr != nil && !(errors.As(readErr, &ne) && ne.Timeout()) {
			break
		}
		if i > 2000 {
			t.Fatal("connection still open after 2000 slow writes")
		}
	}
	if readErr != nil && !errors.Is(readErr, io.EOF) && !strings.Contains(readErr.Error(), "reset") {
		t.Errorf("connection ended with %v", readErr)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, newSource(), nil)
	s.timeout = time.Hour
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	conns := stall(t, ln.Addr().String(), 3)
	waitConns(t, s, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("connection still open after Close")
		}
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// parseResponse checks a raw response's framing: status line, headers,
// Content-Length equal to the body's length.
func parseResponse(raw string) (int, error) {
	r := bufio.NewReader(strings.NewReader(raw))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.ContentLength != int64(len(body)) {
		return 0, fmt.Errorf("Content-Length %d, body %d", resp.ContentLength, len(body))
	}
	if rest, _ := io.ReadAll(r); len(rest) != 0 {
		return 0, fmt.Errorf("%d bytes after the response", len(rest))
	}
	return resp.StatusCode, nil
}

func TestWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install -y curl)")
	}
	src := newSource()
	src.set(func(f *fakeSource) { f.ready["db"] = false })
	_, addr := start(t, src, nil)
	tests := []struct {
		args []string
		want []string // substrings of curl's output (-i: headers and body)
	}{
		{[]string{"-i", "/livez"}, []string{"HTTP/1.1 200 OK", "Content-Length: 3", "\r\n\r\nok\n"}},
		{[]string{"-i", "/readyz"}, []string{"HTTP/1.1 503 Service Unavailable", "\r\n\r\ndb\n"}},
		{[]string{"-i", "/readyz/web"}, []string{"HTTP/1.1 200 OK"}},
		{[]string{"-i", "/readyz/ghost"}, []string{"HTTP/1.1 404 Not Found"}},
		{[]string{"-I", "/readyz"}, []string{"HTTP/1.1 503", "Content-Length: 3"}},
		{[]string{"-i", "-X", "PUT", "/livez"}, []string{"HTTP/1.1 405", "Allow: GET, HEAD"}},
		{[]string{"-i", "--http1.0", "/metrics"}, []string{"HTTP/1.1 200", "version=0.0.4", "vigil_service_ready{service=\"db\"} 0"}},
	}
	for _, tc := range tests {
		args := append([]string{"-sS", "--max-time", "30"}, tc.args[:len(tc.args)-1]...)
		args = append(args, "http://"+addr+tc.args[len(tc.args)-1])
		out, err := exec.Command(curl, args...).CombinedOutput()
		if err != nil {
			t.Errorf("curl %v: %v\n%s", args, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("curl %v: no %q in\n%s", args, w, out)
			}
		}
	}
}

func TestResponseFraming(t *testing.T) {
	for _, status := range []int{200, 400, 404, 405, 431, 500, 503, 505} {
		for _, head := range []bool{false, true} {
			raw := string(response(status, "", "", []byte("body\n"), head))
			if head {
				if !strings.HasSuffix(raw, "\r\n\r\n") || !strings.Contains(raw, "Content-Length: 5\r\n") {
					t.Errorf("HEAD %d: %q", status, raw)
				}
				continue
			}
			got, err := parseResponse(raw)
			if err != nil || got != status {
				t.Errorf("%d: %v (status %d)\n%q", status, err, got, raw)
			}
			if !strings.HasPrefix(raw, "HTTP/1.1 "+strconv.Itoa(status)+" ") {
				t.Errorf("status line of %q", raw)
			}
		}
	}
	if !bytes.Contains(response(405, "Allow: GET, HEAD\r\n", "", nil, false), []byte("\r\nAllow: GET, HEAD\r\n\r\n")) {
		t.Error("extra header not written before the blank line")
	}
}

// TestIdleServerHasNoTimer: once the last connection is gone, the request
// timer is stopped, long before its deadline, and not armed again: nothing
// wakes an idle server.
func TestIdleServerHasNoTimer(t *testing.T) {
	s, addr := start(t, newSource(), func(s *Server) { s.timeout = time.Hour })
	armed := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.armed
	}
	if armed() {
		t.Fatal("timer armed before any connection")
	}
	if out := exchange(t, addr, []byte("GET /livez HTTP/1.1\r\n\r\n")); !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("got %q", out)
	}
	// The server's side of the exchange ends after the client's read.
	deadline := time.Now().Add(60 * time.Second)
	for armed() {
		if time.Now().After(deadline) {
			t.Fatal("timer still armed a minute after the last connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.timeout = 50 * time.Millisecond
	s.mu.Unlock()
	// A stalled connection is cut by the same timer, re-armed on demand.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("stalled connection not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("stalled connection still open after a minute")
	}
}

// flakyListener fails its first Accepts the way a process out of
// descriptors does, then hands out real connections.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: errors.New("too many open files")}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(&flakyListener{Listener: ln, fails: 3}, newSource(), nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	defer func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	if out := exchange(t, ln.Addr().String(), []byte("GET /livez HTTP/1.1\r\n\r\n")); !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("after accept errors: %q", out)
	}
}

// blockingSource's Live blocks until released: a supervisor slow to answer.
type blockingSource struct {
	*fakeSource
	entered, release chan struct{}
}

func (b blockingSource) Live() bool {
	b.entered <- struct{}{}
	<-b.release
	return true
}

func TestSlowSourceDelaysNoOtherRequest(t *testing.T) {
	src := blockingSource{newSource(), make(chan struct{}, 1), make(chan struct{})}
	_, addr := start(t, src, nil)
	client := &http.Client{Timeout: 60 * time.Second}
	livez := make(chan int, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/livez")
		if err != nil {
			livez <- 0
			return
		}
		resp.Body.Close()
		livez <- resp.StatusCode
	}()
	<-src.entered
	// /livez is stuck in the Source; /readyz is answered meanwhile.
	resp, body := get(t, client, "GET", "http://"+addr+"/readyz")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("/readyz while /livez waits: %d %q", resp.StatusCode, body)
	}
	close(src.release)
	if code := <-livez; code != 200 {
		t.Errorf("/livez: %d", code)
	}
}
