package control

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

func TestLogsClient(t *testing.T) {
	h := newFake()
	srv, _ := serve(t, h)
	tests := []struct {
		name   string
		args   []string
		code   int
		out    string
		errs   string
		called string
	}{
		{"default 100", []string{"web"}, 0, "web line 0\nweb line 1\nweb line 2\n", "", "logs -n 100 -f=false web"},
		{"-n 2", []string{"-n", "2", "web"}, 0, "web line 1\nweb line 2\n", "", "logs -n 2 -f=false web"},
		{"-n=1", []string{"-n=1", "web"}, 0, "web line 2\n", "", "logs -n 1 -f=false web"},
		{"several are prefixed", []string{"-n", "1", "web", "db"}, 0, "web | web line 2\ndb | db line 2\n", "", "logs -n 1 -f=false web db"},
		{"unknown name", []string{"nope"}, 1, "", `unknown service "nope"`, "logs -n 100 -f=false nope"},
		{"no name", nil, 2, "", "missing service name", ""},
		{"bad count", []string{"-n", "x", "web"}, 2, "", "want a number of lines", ""},
		{"negative count", []string{"-n", "-3", "web"}, 2, "", "want a number of lines", ""},
		{"-n without a number", []string{"web", "-n"}, 2, "", "needs a number", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.lastCall()
			code, out, errs := run(srv.Path(), "logs", tt.args...)
			if code != tt.code || out != tt.out || !strings.Contains(errs, tt.errs) || (tt.errs == "" && errs != "") {
				t.Errorf("exit %d, out %q, stderr %q; want %d, %q, %q", code, out, errs, tt.code, tt.out, tt.errs)
			}
			if got := h.lastCall(); tt.called != "" && got != tt.called || tt.called == "" && got != before {
				t.Errorf("handler called as %q, want %q", got, tt.called)
			}
		})
	}
}

// dialLogs sends a logs request on a fresh connection.
func dialLogs(t *testing.T, path, req string) (*net.UnixConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn), bufio.NewReader(c)
}

func readReply(t *testing.T, br *bufio.Reader) reply {
	t.Helper()
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return rep
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A follower gets the last lines, then new ones as they come, until it
// hangs up: then the handler returns and its slot is free.
func TestLogsFollow(t *testing.T) {
	h := newFake()
	h.follow = make(chan LogLine)
	srv, _ := serve(t, h)
	c, br := dialLogs(t, srv.Path(), `{"v":1,"verb":"logs","names":["web"],"lines":1,"follow":true}`)
	if rep := readReply(t, br); !rep.OK || !rep.More || len(rep.Logs) != 1 || rep.Logs[0].Text != "web line 2" {
		t.Fatalf("first reply %+v", rep)
	}
	for i := range 3 {
		h.follow <- LogLine{Service: "web", Text: "new " + string(rune('a'+i))}
		if rep := readReply(t, br); !rep.OK || !rep.More || len(rep.Logs) != 1 || rep.Logs[0].Text != "new "+string(rune('a'+i)) {
			t.Fatalf("reply %d: %+v", i, rep)
		}
	}
	if h.followers.Load() != 1 {
		t.Fatalf("%d followers, want 1", h.followers.Load())
	}
	c.Close()
	waitUntil(t, "the follower to end after the client hung up", func() bool { return h.followers.Load() == 0 })
}

// Followers have slots of their own: a full set of them keeps neither
// another verb out nor lets one more follower in.
func TestLogsFollowersBounded(t *testing.T) {
	h := newFake()
	h.follow = make(chan LogLine)
	srv, _ := serve(t, h)
	for range maxFollowers {
		_, br := dialLogs(t, srv.Path(), `{"v":1,"verb":"logs","names":["web"],"follow":true}`)
		if rep := readReply(t, br); !rep.OK {
			t.Fatalf("follower refused: %+v", rep)
		}
	}
	_, br := dialLogs(t, srv.Path(), `{"v":1,"verb":"logs","names":["web"],"follow":true}`)
	if rep := readReply(t, br); rep.OK || !strings.Contains(rep.Error, "busy") {
		t.Fatalf("one follower too many: %+v", rep)
	}
	if code, out, errs := run(srv.Path(), "logs", "-n", "1", "web"); code != 0 || out != "web line 2\n" {
		t.Fatalf("logs without -f beside the followers: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := run(srv.Path(), "status"); code != 0 {
		t.Fatalf("status beside the followers: exit %d, %q", code, errs)
	}
}

// A follower that stops reading is dropped once a reply cannot be written
// in replyTimeout: it does not hold its slot and its goroutine for ever.
func TestLogsFollowerNotReading(t *testing.T) {
	old := replyTimeout
	replyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { replyTimeout = old })
	h := newFake() // follow nil: Logs floods
	srv, _ := serve(t, h)
	c, _ := dialLogs(t, srv.Path(), `{"v":1,"verb":"logs","names":["web"],"follow":true}`)
	waitUntil(t, "the follower to start", func() bool { return h.followers.Load() == 1 })
	// The client reads nothing: the socket's buffers fill, a write waits.
	waitUntil(t, "the stalled follower to be dropped", func() bool { return h.followers.Load() == 0 })
	c.Close()
}

// After a reconnection the server sends again the lines at the time of the
// last one printed (lines of one read share their time): those printed
// are skipped, the others printed.
func TestLogPrinterResume(t *testing.T) {
	t0 := time.Unix(100, 0)
	l := func(svc string, sec int, text string) LogLine {
		return LogLine{Service: svc, Time: t0.Add(time.Duration(sec) * time.Second), Stream: "stdout", Text: text}
	}
	var p logPrinter
	var printed []string
	show := func(lines ...LogLine) {
		for _, x := range lines {
			if !p.seen(x) {
				printed = append(printed, x.Service+":"+x.Text)
			}
		}
	}
	show(l("a", 1, "x"), l("a", 2, "y1"), l("b", 2, "z1"), l("a", 2, "y2"))
	p.resume()
	// The new image sends everything from time 2 on, merged otherwise.
	show(l("a", 2, "y1"), l("a", 2, "y2"), l("a", 2, "y3"), l("b", 2, "z1"), l("b", 3, "w"))
	// A second loss right away.
	p.resume()
	show(l("b", 3, "w"), l("a", 4, "v"))
	want := "a:x a:y1 b:z1 a:y2 a:y3 b:w a:v"
	if got := strings.Join(printed, " "); got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}
