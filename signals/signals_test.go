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
		{"TTIN:TERM", unix.SIGTTIN, unix.SIGTERM, false},
		{"TTOU:0", unix.SIGTTOU, 0, false},
		{"USR1:PIPE", unix.SIGUSR1, unix.SIGPIPE, false},
		{"CHLD:TERM", 0, 0, true},
		{"URG:TERM", 0, 0, true},
		{"PIPE:0", 0, 0, true},
		{"PROF:USR1", 0, 0, true},
		{"KILL:TERM", 0, 0, true},
		{"STOP:TERM", 0, 0, true},
		{"RTMIN:TERM", 0, 0, true},
		{"33:TERM", 0, 0, true},
		{"RTMIN+1:TERM", 35, unix.SIGTERM, false},
	}
	for _, tc := range tests {
		from, to, err := ParseRewrite(tc.in)
		if (err != nil) != tc.err || from != tc.from || to != tc.to {
			t.Errorf("ParseRewrite(%q) = %v, %v, %v", tc.in, from, to, err)
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
