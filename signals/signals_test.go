package signals

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		err  bool
	}{
		{"TERM", unix.SIGTERM, false},
		{"SIGTERM", unix.SIGTERM, false},
		{"sigterm", unix.SIGTERM, false},
		{" hup ", unix.SIGHUP, false},
		{"15", unix.SIGTERM, false},
		{"64", 64, false},
		{"RTMIN", 34, false},
		{"SIGRTMIN+3", 37, false},
		{"RTMAX", 64, false},
		{"RTMAX-2", 62, false},
		{"IOT", unix.SIGABRT, false},
		{"", 0, true},
		{"0", 0, true},
		{"65", 0, true},
		{"-1", 0, true},
		{"NOPE", 0, true},
		{"RTMIN+31", 0, true},
		{"RTMIN-1", 0, true},
		{"RTMAX+1", 0, true},
		{"RTMIN+x", 0, true},
		{"RTMIN++3", 0, true},
		{"RTMIN+-0", 0, true},
		{"RTMAX--0", 0, true},
		{"+15", 0, true},
		{"ſigterm", 0, true}, // Unicode case folding would make it SIGTERM
		{"ınt", 0, true},
		{"RTMIN+03", 37, false},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRewrite(t *testing.T) {
	tests := []struct {
		in       string
		from, to syscall.Signal
		err      bool
	}{
		{"TERM:QUIT", unix.SIGTERM, unix.SIGQUIT, false},
		{"15:3", unix.SIGTERM, unix.SIGQUIT, false},
		{"SIGHUP:0", unix.SIGHUP, 0, false},
		{"TERM", 0, 0, true},
		{"TERM:", 0, 0, true},
		{":QUIT", 0, 0, true},
		{"NOPE:1", 0, 0, true},
	}
	for _, tc := range tests {
		from, to, err := ParseRewrite(tc.in)
		if (err != nil) != tc.err || from != tc.from || to != tc.to {
			t.Errorf("ParseRewrite(%q) = %v, %v, %v", tc.in, from, to, err)
		}
	}
}

func TestRewriteApply(t *testing.T) {
	r := Rewrite{unix.SIGTERM: unix.SIGQUIT, unix.SIGHUP: 0}
	if s, ok := r.Apply(unix.SIGTERM); s != unix.SIGQUIT || !ok {
		t.Errorf("TERM -> %v %v", s, ok)
	}
	if _, ok := r.Apply(unix.SIGHUP); ok {
		t.Errorf("HUP:0 not dropped")
	}
	if s, ok := r.Apply(unix.SIGUSR1); s != unix.SIGUSR1 || !ok {
		t.Errorf("USR1 changed to %v", s)
	}
	var none Rewrite
	if s, ok := none.Apply(unix.SIGINT); s != unix.SIGINT || !ok {
		t.Errorf("nil rewrite changed INT")
	}
}

func TestForwardable(t *testing.T) {
	never := []syscall.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE, unix.SIGPROF,
		unix.SIGTTIN, unix.SIGTTOU, unix.SIGKILL, unix.SIGSTOP, 32, 33, 0, 65}
	for _, s := range never {
		if Forwardable(s) {
			t.Errorf("%v forwardable", s)
		}
	}
	for _, s := range []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGTSTP, unix.SIGWINCH, unix.SIGSEGV, 35, 64} {
		if !Forwardable(s) {
			t.Errorf("%v not forwardable", s)
		}
	}
}

func TestNameRoundTrips(t *testing.T) {
	for s := syscall.Signal(1); s <= RTMax; s++ {
		if s == 32 || s == 33 {
			continue
		}
		got, err := Parse(Name(s))
		if err != nil || got != s {
			t.Errorf("Parse(Name(%d)=%q) = %v, %v", s, Name(s), got, err)
		}
	}
}

func TestCaughtExcludesRuntimeSignals(t *testing.T) {
	for _, s := range Caught() {
		switch s {
		case unix.SIGURG, unix.SIGCHLD, unix.SIGKILL, unix.SIGSTOP, unix.SIGPROF, syscall.Signal(32), syscall.Signal(33), syscall.Signal(34):
			t.Errorf("Caught() includes %v", s)
		}
	}
	if len(Caught()) != 26+RTMax-FirstCatchableRT+1 {
		t.Errorf("Caught() has %d signals", len(Caught()))
	}
}

// TestCaughtFatalFirst: the signals whose Go default ends the process are
// notified first (package early; see the comment on caught).
func TestCaughtFatalFirst(t *testing.T) {
	want := []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGABRT}
	got := Caught()[:len(want)]
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Caught() starts %v, want %v", got, want)
		}
	}
}
