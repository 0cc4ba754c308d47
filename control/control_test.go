package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeHandler records calls and answers from its fields.
type fakeHandler struct {
	mu       sync.Mutex
	calls    []string
	services []ServiceStatus
	ready    bool
	err      map[string]error // verb -> error to return
	block    chan struct{}    // Start waits on it (or ctx) when non-nil
	panicOn  string
	lastSig  syscall.Signal
	// follow feeds Logs -f; followers counts the follows in progress.
	follow    chan LogLine
	followers atomic.Int32
}

func (f *fakeHandler) record(verb string, names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.TrimSpace(verb+" "+strings.Join(names, " ")))
	if verb == f.panicOn {
		panic("boom in " + verb)
	}
	for _, n := range names {
		if !slices.ContainsFunc(f.services, func(s ServiceStatus) bool { return s.Name == n }) {
			return fmt.Errorf("%w %q", ErrUnknown, n)
		}
	}
	return f.err[verb]
}

func (f *fakeHandler) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeHandler) Status(ctx context.Context, names []string) ([]ServiceStatus, error) {
	if err := f.record("status", names); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return f.services, nil
	}
	var out []ServiceStatus
	for _, s := range f.services {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeHandler) Start(ctx context.Context, names []string) error {
	if err := f.record("start", names); err != nil {
		return err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return fmt.Errorf("timed out: %w", ctx.Err())
		}
	}
	return nil
}

func (f *fakeHandler) Stop(ctx context.Context, names []string) error {
	return f.record("stop", names)
}

func (f *fakeHandler) Restart(ctx context.Context, names []string) error {
	return f.record("restart", names)
}

func (f *fakeHandler) Signal(ctx context.Context, sig syscall.Signal, names []string) error {
	f.mu.Lock()
	f.lastSig = sig
	f.mu.Unlock()
	return f.record("signal", names)
}

func (f *fakeHandler) Reload(ctx context.Context) error { return f.record("reload", nil) }

func (f *fakeHandler) Ready(ctx context.Context, names []string) (bool, error) {
	if err := f.record("ready", names); err != nil {
		return false, err
	}
	return f.ready, nil
}

func (f *fakeHandler) Reset(ctx context.Context, names []string) error {
	return f.record("reset", names)
}

func (f *fakeHandler) Reexec(ctx context.Context) error { return f.record("reexec", nil) }

func (f *fakeHandler) Scale(ctx context.Context, name string, n int) error {
	return f.record(fmt.Sprintf("scale:%d", n), []string{name})
}

// Logs sends the last req.Lines of three lines per service, then with
// Follow whatever comes on f.follow (nil: "flood" lines without end) until
// ctx ends; f.followers counts those in progress.
func (f *fakeHandler) Logs(ctx context.Context, req LogsRequest, send func(LogBatch) error) error {
	if err := f.record(fmt.Sprintf("logs -n %d -f=%v", req.Lines, req.Follow), req.Names); err != nil {
		return err
	}
	var b LogBatch
	for _, n := range req.Names {
		for i := max(0, 3-req.Lines); i < 3; i++ {
			b.Lines = append(b.Lines, LogLine{Service: n, Stream: "stdout", Text: fmt.Sprintf("%s line %d", n, i)})
		}
	}
	if err := send(b); err != nil || !req.Follow {
		return err
	}
	f.followers.Add(1)
	defer f.followers.Add(-1)
	for {
		var l LogLine
		if f.follow != nil {
			select {
			case l = <-f.follow:
			case <-ctx.Done():
				return nil
			}
		} else {
			l = LogLine{Service: req.Names[0], Text: strings.Repeat("flood ", 1000)}
		}
		if err := send(LogBatch{Lines: []LogLine{l}}); err != nil {
			return nil
		}
	}
}

func intp(i int) *int { return &i }

func strp(s string) *string { return &s }

func newFake() *fakeHandler {
	return &fakeHandler{
		services: []ServiceStatus{
			{Name: "web", State: "ready", Pid: 42, Started: time.Now().Add(-192 * time.Second), Restarts: 2, Retries: 1, LastExit: intp(143), Ready: true,
				Health: strp(HealthHealthy), HealthFailures: 1, LastCheckFailure: "status 503\tService Unavailable"},
			{Name: "db", State: "stopped"},
			{Name: "job", State: "scheduled", LastExit: intp(0), Ready: true, Schedule: "@hourly",
				NextRun: time.Now().Add(45*time.Second + 500*time.Millisecond), LastRun: time.Now().Add(-125 * time.Second)},
		},
		ready: true,
		err:   map[string]error{},
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts a server for h on a socket in a fresh temporary directory.
func serve(t *testing.T, h Handler) (*Server, *syncBuffer) {
	t.Helper()
	return serveAt(t, h, t.TempDir()+"/v.sock")
}

func serveAt(t *testing.T, h Handler, path string) (*Server, *syncBuffer) {
	t.Helper()
	srv, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(h, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return srv, logs
}

func run(socket, verb string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(verb, args, socket, &out, &errb)
	return code, out.String(), errb.String()
}

// raw sends data on a fresh connection and returns the reply line.
func raw(t *testing.T, path string, data string) reply {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, data)
	if !strings.HasSuffix(data, "\n") {
		c.(*net.UnixConn).CloseWrite() // the end of the request is EOF
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading reply to %.40q: %v", data, err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return rep
}

func TestStatusTable(t *testing.T) {
	srv, _ := serve(t, newFake())
	code, out, errs := run(srv.Path(), "status")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		"NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST-EXIT\tREADY\tNEXT\tLAST\tHEALTH\tLAST-CHECK-FAILURE",
		"web\tready\t42\t3m12s\t2\t143\tyes\t-\t-\thealthy\tstatus 503 Service Unavailable",
		"db\tstopped\t-\t-\t0\t-\tno\t-\t-\t-\t-",
		"job\tscheduled\t-\t-\t0\t0\tyes\tin 45s\t2m5s ago\t-\t-",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %q", out)
	}
	for i := range want {
		// the uptime may have ticked one second
		if lines[i] != want[i] && strings.Replace(lines[i], "3m13s", "3m12s", 1) != want[i] {
			t.Errorf("line %d: got %q, want %q", i, lines[i], want[i])
		}
	}
}

func TestStatusTableAligned(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, newFake().services, time.Now(), true)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 || strings.Contains(b.String(), "\t") {
		t.Fatalf("got %q", b.String())
	}
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if l[col-2:col] != "  " || l[col] == ' ' {
			t.Errorf("STATE column not aligned at %d: %q", col, l)
		}
	}
}

func TestStatusNamesAndUnknown(t *testing.T) {
	h := newFake()
	srv, _ := serve(t, h)
	code, out, _ := run(srv.Path(), "status", "db")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.HasPrefix(strings.Split(out, "\n")[1], "db\t") {
		t.Fatalf("exit %d, out %q", code, out)
	}
	code, _, errs := run(srv.Path(), "status", "nope")
	if code != 1 || !strings.Contains(errs, `unknown service "nope"`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if rep := raw(t, srv.Path(), `{"v":1,"verb":"status","names":["nope"]}`+"\n"); rep.OK || !rep.Unknown {
		t.Errorf("reply %+v, want unknown", rep)
	}
}

func TestStatusJSON(t *testing.T) {
	srv, _ := serve(t, newFake())
	code, out, _ := run(srv.Path(), "status", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string][]map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value: %q", out)
	}
	svcs := doc["services"]
	if len(svcs) != 3 {
		t.Fatalf("got %q", out)
	}
	for _, k := range []string{"next_run", "last_run", "schedule"} {
		if _, ok := svcs[0][k]; ok {
			t.Errorf("an unscheduled service has %q: %v", k, svcs[0])
		}
		v, ok := svcs[2][k].(string)
		if !ok {
			t.Fatalf("the scheduled service has no %q: %v", k, svcs[2])
		}
		if _, err := time.Parse(time.RFC3339, v); err != nil && k != "schedule" {
			t.Errorf("%s %q is not RFC 3339: %v", k, v, err)
		}
	}
	for _, k := range []string{"name", "state", "pid", "started", "restarts", "retries", "last_exit", "ready"} {
		if _, ok := svcs[0][k]; !ok {
			t.Errorf("field %q missing: %v", k, svcs[0])
		}
	}
	if svcs[0]["last_exit"] != 143.0 || svcs[1]["last_exit"] != nil || svcs[0]["retries"] != 1.0 {
		t.Errorf("got %v", svcs)
	}

	empty := newFake()
	empty.services = nil
	srv2, _ := serve(t, empty)
	if _, out, _ := run(srv2.Path(), "status", "--json"); out != `{"services":[]}`+"\n" {
		t.Errorf("empty: got %q", out)
	}
}

func TestVerbs(t *testing.T) {
	h := newFake()
	h.err["reload"] = errors.New("config problems:\n  vigil.json:3:5: services.web.restart: bad value \"sometimes\"")
	srv, _ := serve(t, h)
	p := srv.Path()
	tests := []struct {
		args     []string
		code     int
		call     string
		stderr   string
		setupErr error // error of the verb's handler for this case
	}{
		{args: []string{"start", "web"}, code: 0, call: "start web"},
		{args: []string{"start", "web", "db"}, code: 0, call: "start web db"},
		{args: []string{"start", "web"}, code: 1, call: "start web", stderr: "vigil start web: given up after 4 runs\n",
			setupErr: errors.New("web: given up after 4 runs")},
		{args: []string{"start", "web", "db"}, code: 1, stderr: "vigil start web db: db: blocked\n", setupErr: errors.New("db: blocked")},
		{args: []string{"start", "nope"}, code: 1, stderr: `vigil start nope: unknown service "nope"` + "\n"},
		{args: []string{"stop", "web"}, code: 0, call: "stop web"},
		{args: []string{"stop", "ghost"}, code: 1, stderr: "unknown service"},
		{args: []string{"restart", "db"}, code: 0, call: "restart db"},
		{args: []string{"signal", "TERM", "web"}, code: 0, call: "signal web"},
		{args: []string{"signal", "-HUP", "web", "db"}, code: 0, call: "signal web db"},
		{args: []string{"signal", "usr1", "nope"}, code: 1, stderr: "unknown service"},
		{args: []string{"reload"}, code: 1, call: "reload", stderr: "vigil reload: config problems:\n  vigil.json:3:5"},
		{args: []string{"ready"}, code: 0, call: "ready"},
		{args: []string{"ready", "web"}, code: 0, call: "ready web"},
		{args: []string{"ready", "nope"}, code: 1, stderr: "unknown service"},
		{args: []string{"reset"}, code: 0, call: "reset"},
		{args: []string{"reset", "web", "db"}, code: 0, call: "reset web db"},
		{args: []string{"reset", "zzz"}, code: 1},
		{args: []string{"reexec"}, code: 0, call: "reexec"},
		{args: []string{"restart", "--", "web"}, code: 0, call: "restart web"},
		{args: []string{"scale", "web", "3"}, code: 0, call: "scale:3 web"},
		{args: []string{"scale", "web"}, code: 2, stderr: "want a service name and a number of copies"},
		{args: []string{"scale", "web", "0"}, code: 2, stderr: `number of copies "0"`},
		{args: []string{"scale", "web", "db", "2"}, code: 2},
		{args: []string{"scale", "nope", "2"}, code: 1, stderr: "unknown service"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			verb := tc.args[0]
			if tc.setupErr != nil {
				h.mu.Lock()
				old := h.err[verb]
				h.err[verb] = tc.setupErr
				h.mu.Unlock()
				defer func() { h.mu.Lock(); h.err[verb] = old; h.mu.Unlock() }()
			}
			code, out, errs := run(p, verb, tc.args[1:]...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errs)
			}
			if out != "" {
				t.Errorf("stdout %q, want none", out)
			}
			if tc.stderr != "" && !strings.HasPrefix(errs, tc.stderr) && !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q, want %q", errs, tc.stderr)
			}
			if tc.code == 0 && errs != "" {
				t.Errorf("stderr %q on success", errs)
			}
			if tc.call != "" && h.lastCall() != tc.call {
				t.Errorf("handler got %q, want %q", h.lastCall(), tc.call)
			}
		})
	}
	h.mu.Lock()
	sig := h.lastSig
	h.mu.Unlock()
	if sig != syscall.SIGUSR1 {
		t.Errorf("last signal %v, want USR1", sig)
	}
}

func TestReadyNotReady(t *testing.T) {
	h := newFake()
	h.ready = false
	srv, _ := serve(t, h)
	code, out, errs := run(srv.Path(), "ready", "web")
	if code != ExitNotReady || out != "" || errs != "vigil ready web: not ready\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestUsage(t *testing.T) {
	h := newFake()
	srv, _ := serve(t, h)
	for _, args := range [][]string{
		{"start"}, {"stop"}, {"restart"}, {"restart", "--"},
		{"signal"}, {"signal", "TERM"}, {"signal", "NOPE", "web"}, {"signal", "99", "web"}, {"signal", "-h0", "web"},
		{"status", "--yaml"}, {"start", "-x", "web"}, {"ready", "--json"},
		{"reload", "web"}, {"reexec", "now"}, {"start", ""},
		{"frobnicate"},
	} {
		code, out, errs := run(srv.Path(), args[0], args[1:]...)
		if code != ExitUsage || out != "" || errs == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 with a message", args, code, out, errs)
		}
	}
	if len(h.calls) != 0 {
		t.Errorf("usage errors reached the server: %q", h.calls)
	}
	code, out, _ := run(srv.Path(), "signal", "--help")
	if code != 0 || !strings.Contains(out, "vigil signal SIG NAME...") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

func TestNoVigil(t *testing.T) {
	dir := t.TempDir()
	missing := dir + "/missing.sock"
	code, out, errs := run(missing, "status")
	if code != ExitNoVigil || out != "" || !strings.Contains(errs, "no vigil running") || !strings.Contains(errs, missing) {
		t.Errorf("missing socket: exit %d, stderr %q", code, errs)
	}

	// A stale socket file: bound once, nothing listening now.
	stale := dir + "/stale.sock"
	makeStale(t, stale)
	for _, verb := range []string{"status", "ready", "reset", "reexec"} {
		code, _, errs = run(stale, verb)
		if code != ExitNoVigil || !strings.Contains(errs, stale) {
			t.Errorf("%s on a stale socket: exit %d, stderr %q", verb, code, errs)
		}
	}
}

func makeStale(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket: %v", err)
	}
}

func TestConcurrentStatus(t *testing.T) {
	srv, _ := serve(t, newFake())
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Go(func() {
			code, out, stderr := run(srv.Path(), "status", "--json")
			if code != 0 || !strings.HasPrefix(out, `{"services":[{"name":"web"`) {
				errs <- fmt.Sprintf("exit %d, out %q, stderr %q", code, out, stderr)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestBadRequests(t *testing.T) {
	srv, logs := serve(t, newFake())
	for _, req := range []string{
		"hello\n",
		"\n",
		"[1,2]\n",
		`{"verb":42}` + "\n",
		"\x00\xff\xfe garbage\n",
		`{"v":1,"verb":"status"} trailing` + "\n",
		`{"v":1,"verb":"frob"}` + "\n",
		`{"v":2,"verb":"status"}` + "\n",
		`{"v":1,"verb":"start"}` + "\n",
		`{"v":1,"verb":"signal","names":["web"]}` + "\n",
		`{"v":1,"verb":"signal","names":["web"],"signal":65}` + "\n",
		`{"v":1,"verb":"reload","names":["web"]}` + "\n",
		`{"v":1,"verb":"stop","names":[""]}` + "\n",
	} {
		if rep := raw(t, srv.Path(), req); rep.OK || rep.Error == "" || rep.V != Version {
			t.Errorf("%q: reply %+v, want an error", req, rep)
		}
	}
	if rep := raw(t, srv.Path(), `{"v":2,"verb":"status"}`+"\n"); !strings.Contains(rep.Error, "version 2") {
		t.Errorf("version error %q", rep.Error)
	}
	// Unknown fields are ignored, a missing v is 1, a last line without \n is fine.
	if rep := raw(t, srv.Path(), `{"verb":"status","future":true}`); !rep.OK || len(rep.Services) != 3 {
		t.Errorf("lenient request: %+v", rep)
	}
	if code, _, _ := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status after garbage: exit %d", code)
	}
	if !strings.Contains(logs.String(), "bad request") {
		t.Errorf("no log line for bad requests: %q", logs.String())
	}
}

func TestHalfWrittenRequest(t *testing.T) {
	old := requestTimeout
	requestTimeout = 300 * time.Millisecond
	defer func() { requestTimeout = old }()
	srv, _ := serve(t, newFake())

	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"v":1,"verb":"sta`)

	// Others are served meanwhile, at once.
	start := time.Now()
	if code, _, errs := run(srv.Path(), "status"); code != 0 {
		t.Fatalf("status while a request hangs: exit %d %q", code, errs)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("status took %s while another request hung", d)
	}

	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no reply to a half-written request: %v", err)
	}
	if !strings.Contains(string(line), "no complete request") {
		t.Errorf("reply %q", line)
	}
	if code, _, _ := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status after: exit %d", code)
	}
}

func TestOversizedRequest(t *testing.T) {
	srv, _ := serve(t, newFake())
	for _, tail := range []string{"", "\n"} {
		c, err := net.Dial("unix", srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		big := `{"v":1,"verb":"status","names":["` + strings.Repeat("a", 2<<20) + `"]}` + tail
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, big) // fails once the server closes: fine
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadBytes('\n')
		if len(line) > 0 && !strings.Contains(string(line), "larger than") {
			t.Errorf("reply %q", line)
		}
		c.Close()
		<-done
	}
	// Exactly at the limit is fine.
	req := `{"v":1,"verb":"status","names":["web"]}`
	req += strings.Repeat(" ", MaxRequest-len(req)-1) + "\n"
	if rep := raw(t, srv.Path(), req); !rep.OK {
		t.Errorf("request of MaxRequest bytes: %+v", rep)
	}
	if code, _, _ := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status after an oversized request: exit %d", code)
	}
}

func TestBusy(t *testing.T) {
	old := maxConns
	maxConns = 2
	defer func() { maxConns = old }()
	h := newFake()
	h.block = make(chan struct{})
	srv, logs := serve(t, h)

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if code, _, errs := run(srv.Path(), "start", "web"); code != 0 {
				t.Errorf("blocked start: exit %d %q", code, errs)
			}
		})
	}
	waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.calls) == 2 })
	code, _, errs := run(srv.Path(), "stop", "web")
	if code != 1 || !strings.Contains(errs, "busy") {
		t.Errorf("third connection: exit %d, stderr %q", code, errs)
	}
	// Probes have slots of their own.
	if code, _, errs := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status while every other slot is taken: exit %d %q", code, errs)
	}
	close(h.block)
	wg.Wait()
	if code, _, _ := run(srv.Path(), "stop", "web"); code != 0 {
		t.Errorf("after the blocked ones: exit %d", code)
	}
	if !strings.Contains(logs.String(), "too many connections") {
		t.Errorf("log %q", logs.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

func TestHandlerPanic(t *testing.T) {
	h := newFake()
	h.panicOn = "restart"
	srv, logs := serve(t, h)
	var got any
	srv.OnPanic = func(v any, stack []byte) { got = v }
	code, _, errs := run(srv.Path(), "restart", "web")
	if code != 1 || !strings.Contains(errs, "internal error: boom in restart") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if got != "boom in restart" || !strings.Contains(logs.String(), "panic") {
		t.Errorf("OnPanic got %v, log %q", got, logs.String())
	}
	if code, _, _ := run(srv.Path(), "status"); code != 0 {
		t.Errorf("status after a panic: exit %d", code)
	}
}

// TestCloseCancelsInFlight: Close, and Leave (Close on the way out of the
// process) with a request in flight, cancel it, so its client gets a
// reply, remove the socket file and answer nothing more.
func TestCloseCancelsInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(*Server) error
	}{{"Close", (*Server).Close}, {"Leave", (*Server).Leave}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFake()
			h.block = make(chan struct{})
			srv, _ := serve(t, h)
			res := make(chan string, 1)
			go func() {
				code, _, errs := run(srv.Path(), "start", "web")
				res <- fmt.Sprintf("%d %s", code, errs)
			}()
			waitFor(t, func() bool { return h.lastCall() == "start web" })
			start := time.Now()
			tc.close(srv)
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s took %s", tc.name, d)
			}
			select {
			case r := <-res:
				if !strings.HasPrefix(r, "1 vigil start web: timed out: context canceled") {
					t.Errorf("in-flight start got %q", r)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the request in flight was neither cancelled nor answered")
			}
			if _, err := os.Lstat(srv.Path()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket left behind: %v", err)
			}
			if code, _, _ := run(srv.Path(), "status"); code != ExitNoVigil {
				t.Errorf("status after %s: exit %d", tc.name, code)
			}
		})
	}
}

func TestCloseLeavesOthersSocket(t *testing.T) {
	path := t.TempDir() + "/v.sock"
	srv, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaced the file (a new vigil after a re-exec, say).
	os.Remove(path)
	makeStale(t, path)
	srv.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a socket it did not make: %v", err)
	}
}

// TestStatusJSONHealth: --json carries ready, health (null without a
// check) and the consecutive health failures of each service.
func TestStatusJSONHealth(t *testing.T) {
	srv, _ := serve(t, newFake())
	code, out, errs := run(srv.Path(), "status", "--json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var got struct {
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Services) != 3 {
		t.Fatalf("%q: %v", out, err)
	}
	web, db := got.Services[0], got.Services[1]
	if web["ready"] != true || web["health"] != "healthy" || web["health_failures"] != 1.0 ||
		web["last_check_failure"] != "status 503\tService Unavailable" {
		t.Errorf("web: %v", web)
	}
	if h, ok := db["health"]; !ok || h != nil || db["ready"] != false || db["health_failures"] != 0.0 {
		t.Errorf("db: %v", db)
	}
}

// TestPauseWaitsForServe: Pause returns only once the Serve loop has
// returned, and a second Serve never runs beside a first: a failed
// re-exec's Resume and new Serve leave one loop accepting, not two.
func TestPauseWaitsForServe(t *testing.T) {
	for round := range 10 {
		path := t.TempDir() + "/v.sock"
		srv, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			srv.Serve(newFake(), nil)
			close(done)
		}()
		// The loop runs once it has answered.
		if rep := raw(t, path, `{"v":1,"verb":"status"}`+"\n"); !rep.OK {
			t.Fatalf("round %d: %+v", round, rep)
		}
		srv.Pause()
		select {
		case <-done:
		default:
			t.Fatalf("round %d: Pause returned while Serve still ran", round)
		}
		srv.Resume()
		again := make(chan error, 2)
		go func() { again <- srv.Serve(newFake(), nil) }()
		go func() { again <- srv.Serve(newFake(), nil) }()
		if err := <-again; err == nil {
			t.Errorf("round %d: a second Serve ran beside the first", round)
		}
		srv.Close()
		<-again
	}
}

// TestLeave: with nothing in flight, Leave only removes the socket file, so
// that no client finds a dead socket, and admits nothing more
// (TestCloseCancelsInFlight has it with a request in flight).
func TestLeave(t *testing.T) {
	srv, _ := serve(t, newFake())
	if code, _, errs := run(srv.Path(), "status"); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	srv.Leave()
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if code, _, _ := run(srv.Path(), "status"); code != ExitNoVigil {
		t.Errorf("status after Leave: exit %d", code)
	}
}
