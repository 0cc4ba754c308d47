package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzHandler accepts every request and remembers the one call it got.
type fuzzHandler struct {
	mu    sync.Mutex
	verb  string
	names []string
	sig   syscall.Signal
	count int
	calls int
}

func (h *fuzzHandler) note(verb string, names []string, sig syscall.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verb, h.names, h.sig = verb, names, sig
	h.calls++
}

func (h *fuzzHandler) Status(_ context.Context, names []string) ([]ServiceStatus, error) {
	h.note(verbStatus, names, 0)
	out := []ServiceStatus{}
	for _, n := range names {
		out = append(out, ServiceStatus{Name: n, State: "ready"})
	}
	return out, nil
}
func (h *fuzzHandler) Start(_ context.Context, names []string) error {
	h.note(verbStart, names, 0)
	return nil
}
func (h *fuzzHandler) Stop(_ context.Context, names []string) error {
	h.note(verbStop, names, 0)
	return nil
}
func (h *fuzzHandler) Restart(_ context.Context, names []string) error {
	h.note(verbRestart, names, 0)
	return nil
}
func (h *fuzzHandler) Signal(_ context.Context, sig syscall.Signal, names []string) error {
	h.note(verbSignal, names, sig)
	return nil
}
func (h *fuzzHandler) Reload(context.Context) error { h.note(verbReload, nil, 0); return nil }
func (h *fuzzHandler) Ready(_ context.Context, names []string) (bool, error) {
	h.note(verbReady, names, 0)
	return true, nil
}
func (h *fuzzHandler) Reset(_ context.Context, names []string) error {
	h.note(verbReset, names, 0)
	return nil
}
func (h *fuzzHandler) Reexec(context.Context) error { h.note(verbReexec, nil, 0); return nil }
func (h *fuzzHandler) Scale(_ context.Context, name string, n int) error {
	h.note(verbScale, []string{name}, 0)
	h.count = n
	return nil
}

func (h *fuzzHandler) Logs(_ context.Context, req LogsRequest, _ func(LogBatch) error) error {
	h.note(verbLogs, req.Names, 0)
	return nil
}

// bytesConn is a net.Conn that reads data and collects what is written.
type bytesConn struct {
	r   *bytes.Reader
	out bytes.Buffer
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// checkReply reads what writeReply wrote: exactly one line of JSON, version
// 1, an error whenever ok is false.
func checkReply(t *testing.T, what string, line []byte) reply {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("%s: reply is not one line: %q", what, line)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("%s: reply %q: %v", what, line, err)
	}
	if rep.V != Version || (!rep.OK && rep.Error == "") || (rep.OK && rep.Error != "") {
		t.Fatalf("%s: reply %+v", what, rep)
	}
	return rep
}

// FuzzRequest feeds bytes to the server's request path (readRequest, then
// dispatch with a Handler that accepts everything, then writeReply): no
// panic; a request the server acts on has a known verb, the arguments that
// verb needs, a signal in 1..64, and reaches the Handler once, unchanged;
// anything else gets one error line and never reaches the Handler. Seeds:
// testdata/fuzz/FuzzRequest.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"verb":"status"}` + "\n", `{"verb":"status","future":true}`, `{"v":1,"verb":"start","names":["web","db"]}` + "\n",
		`{"v":1,"verb":"signal","names":["web"],"signal":10}` + "\n", `{"v":1,"verb":"signal","names":["web"],"signal":65}`,
		`{"v":2,"verb":"status"}`, `{"v":1,"verb":"frob"}`, `{"v":1,"verb":"reload","names":["x"]}`, `{"v":1,"verb":"stop","names":[""]}`,
		`{"v":1,"verb":"reexec"}` + "\n" + `{"v":1,"verb":"stop","names":["a"]}`, "", "\n", "hello\n", "[1,2]\n", `{"verb":42}`,
		"\x00\xff\xfe garbage\n", `{"v":1,"verb":"status"} trailing` + "\n", `{"v":-1,"verb":"ready","names":null}`,
		`{"v":1,"verb":"status","names":["\u0000","\ud800"]}`, `{"v":1e400,"verb":"status"}`, `{"V":1,"VERB":"STATUS"}`,
	} {
		f.Add([]byte(s))
	}
	srv := &Server{ctx: context.Background()}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &fuzzHandler{}
		c := &bytesConn{r: bytes.NewReader(data)}
		req, err := readRequest(c)
		var rep reply
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: empty error", data)
			}
			rep = reply{Error: "bad request: " + err.Error()}
		} else {
			rep = srv.dispatch(h, req, log)
		}
		writeReply(c, rep)
		got := checkReply(t, "request "+strings.ToValidUTF8(string(data[:min(len(data), 80)]), "?"), c.out.Bytes())
		if !got.OK {
			if h.calls != 0 {
				t.Fatalf("%q: refused (%s) but the Handler was called", data, got.Error)
			}
			if err == nil && req.V != 0 && req.V != Version && !strings.Contains(got.Error, "version") {
				t.Fatalf("%q: version %d refused with %q", data, req.V, got.Error)
			}
			return
		}
		if h.calls != 1 || h.verb != req.Verb || !slices.Contains(Verbs, req.Verb) {
			t.Fatalf("%q: ok, Handler called %d times with %q", data, h.calls, h.verb)
		}
		if !slices.Equal(h.names, req.Names) || slices.Contains(req.Names, "") {
			t.Fatalf("%q: names %q reached the Handler as %q", data, req.Names, h.names)
		}
		switch req.Verb {
		case verbStart, verbStop, verbRestart, verbSignal:
			if len(req.Names) == 0 {
				t.Fatalf("%q: %s without a name accepted", data, req.Verb)
			}
		case verbReload, verbReexec:
			if len(req.Names) != 0 {
				t.Fatalf("%q: %s with names accepted", data, req.Verb)
			}
		case verbScale:
			if len(req.Names) != 1 || h.count < 1 || h.count != req.Count {
				t.Fatalf("%q: scale of %q to %d accepted as %d", data, req.Names, req.Count, h.count)
			}
		}
		if req.Verb == verbSignal && (h.sig < 1 || h.sig > 64 || int(h.sig) != req.Signal) {
			t.Fatalf("%q: signal %d accepted as %d", data, req.Signal, h.sig)
		}
		if req.V != 0 && req.V != Version {
			t.Fatalf("%q: version %d accepted", data, req.V)
		}
	})
}

// FuzzClientArgs checks that client and server agree: whatever command
// line the client turns into a request, the server accepts and hands to
// the Handler with the same verb, names and signal. Seeds:
// testdata/fuzz/FuzzClientArgs.
func FuzzClientArgs(f *testing.F) {
	f.Add(uint8(0), "--json\nweb")
	f.Add(uint8(4), "-HUP\nweb")
	f.Add(uint8(4), "RTMIN+3\n--\n-x")
	f.Add(uint8(1), "--\n-web")
	f.Add(uint8(5), "")
	f.Add(uint8(8), "x")
	f.Add(uint8(3), "\xff\xfe")
	f.Add(uint8(2), "a\n\nb")
	f.Fuzz(func(t *testing.T, v uint8, argLines string) {
		verb := Verbs[int(v)%len(Verbs)]
		var args []string
		if argLines != "" {
			args = strings.Split(argLines, "\n")
		}
		req, _, help, err := parseArgs(verb, args)
		if err != nil || help {
			if err != nil && err.Error() == "" {
				t.Fatalf("%s %q: empty error", verb, args)
			}
			return
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%s %q: marshal: %v", verb, args, err)
		}
		c := &bytesConn{r: bytes.NewReader(append(b, '\n'))}
		got, err := readRequest(c)
		if err != nil {
			t.Fatalf("%s %q: the server cannot read the client's request %s: %v", verb, args, b, err)
		}
		h := &fuzzHandler{}
		rep := (&Server{ctx: context.Background()}).dispatch(h, got, slog.New(slog.DiscardHandler))
		if !rep.OK {
			t.Fatalf("%s %q: the client sent %s, the server refused it: %s", verb, args, b, rep.Error)
		}
		if h.verb != verb || int(h.sig) != req.Signal || h.count != req.Count {
			t.Fatalf("%s %q: Handler got %s signal %d", verb, args, h.verb, h.sig)
		}
		valid := true
		for _, n := range req.Names {
			valid = valid && utf8.ValidString(n)
		}
		if valid && !slices.Equal(h.names, req.Names) {
			t.Fatalf("%s %q: names %q arrived as %q", verb, args, req.Names, h.names)
		}
	})
}

// FuzzServerConn sends bytes to a real server on a socket: whatever comes,
// one JSON reply line (or, for a request over the size limit, a closed
// connection), and the server keeps answering. Seeds:
// testdata/fuzz/FuzzServerConn.
func FuzzServerConn(f *testing.F) {
	f.Add([]byte(`{"v":1,"verb":"status"}` + "\n"))
	f.Add([]byte(`{"v":1,"verb":"signal","names":["a"],"signal":64}`))
	f.Add([]byte("garbage"))
	f.Add([]byte(""))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte(`{"v":1,"verb":"stop","names":["a"]}` + "\n" + "more after the request"))
	dir, err := os.MkdirTemp("", "vigil-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "v.sock")
	srv, err := Listen(path)
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(&fuzzHandler{}, nil) }()
	f.Cleanup(func() {
		srv.Close()
		<-done
		os.RemoveAll(dir)
	})
	exchange := func(t *testing.T, data []byte) ([]byte, error) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(data) // may fail once the server has replied and closed: fine
			c.(*net.UnixConn).CloseWrite()
		}()
		return bufio.NewReader(c).ReadBytes('\n')
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		line, err := exchange(t, data)
		if err != nil && len(data) <= MaxRequest {
			t.Fatalf("%q: no reply line: %v (%q)", data, err, line)
		}
		if err == nil {
			checkReply(t, "server", line)
		}
		line, err = exchange(t, []byte(`{"v":1,"verb":"status","names":["x"]}`+"\n"))
		if err != nil {
			t.Fatalf("after %q the server stopped answering: %v", data, err)
		}
		if rep := checkReply(t, "status after", line); !rep.OK || len(rep.Services) != 1 {
			t.Fatalf("after %q: status %+v", data, rep)
		}
	})
}
