package signals

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// column is one mode of the signal table (docs/signals.md): the wrapper, a supervisor
// with a main process, a supervisor without one.
type column struct {
	name    string
	mode    Mode
	hasMain bool
}

var (
	wrapper    = column{"wrapper", Wrapper, true}
	withMain   = column{"supervisor with main", Supervisor, true}
	withoutAny = column{"supervisor without main", Supervisor, false}
)

// TestDecideTable walks every row of the table in every column, without
// rewrites.
func TestDecideTable(t *testing.T) {
	type want struct{ wrapper, withMain, withoutMain Verb }
	rows := []struct {
		row  string
		sigs []syscall.Signal
		want want
	}{
		{"CHLD is reaped", []syscall.Signal{unix.SIGCHLD}, want{Reap, Reap, Reap}},
		{"vigil's own are never forwarded", []syscall.Signal{unix.SIGURG, unix.SIGPIPE, unix.SIGPROF}, want{Drop, Drop, Drop}},
		{"TTIN and TTOU are never forwarded", []syscall.Signal{unix.SIGTTIN, unix.SIGTTOU}, want{Drop, Drop, Drop}},
		{"TERM and INT: forwarded, or a shutdown a second one makes a kill", []syscall.Signal{unix.SIGTERM, unix.SIGINT}, want{ForwardMain, ShutdownOrKill, ShutdownOrKill}},
		{"QUIT and PWR: forwarded, or a graceful shutdown", []syscall.Signal{unix.SIGQUIT, unix.SIGPWR}, want{ForwardMain, Shutdown, Shutdown}},
		{"WINCH and TSTP go to main only", []syscall.Signal{unix.SIGWINCH, unix.SIGTSTP}, want{ForwardMain, ForwardMain, Drop}},
		{"every other one goes to main, else to every service", []syscall.Signal{
			unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT, unix.SIGABRT,
			unix.SIGSYS, unix.SIGTRAP, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGIO, unix.SIGSTKFLT,
			// sent by a user: a fault of vigil's own is a panic, never a notification
			unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
			FirstCatchableRT, 50, RTMax,
		}, want{ForwardMain, ForwardMain, ForwardAll}},
		{"uncatchable ones never reach vigil", []syscall.Signal{unix.SIGKILL, unix.SIGSTOP, 32, 33, RTMin, 0, RTMax + 1}, want{Drop, Drop, Drop}},
	}
	for _, r := range rows {
		for _, c := range []struct {
			column
			want Verb
		}{{wrapper, r.want.wrapper}, {withMain, r.want.withMain}, {withoutAny, r.want.withoutMain}} {
			for _, sig := range r.sigs {
				got := Decide(sig, c.mode, c.hasMain, nil)
				if got.Verb != c.want {
					t.Errorf("%s: %s, %s: %v, want %v", r.row, c.name, Name(sig), got.Verb, c.want)
				}
				if got.Signal != sig {
					t.Errorf("%s: %s, %s: acts on %s", r.row, c.name, Name(sig), Name(got.Signal))
				}
				if (got.Verb == Drop) != (got.Why != "") {
					t.Errorf("%s: %s, %s: verb %v with reason %q", r.row, c.name, Name(sig), got.Verb, got.Why)
				}
			}
		}
	}
}

// TestDecideRewrite: the rewrite applies first, to every signal a user can
// send, and the rewritten signal's row decides.
func TestDecideRewrite(t *testing.T) {
	rw := Rewrite{
		unix.SIGTTIN: unix.SIGTERM, unix.SIGTTOU: unix.SIGUSR1, unix.SIGUSR1: unix.SIGUSR2,
		unix.SIGHUP: 0, unix.SIGUSR2: unix.SIGTERM, unix.SIGTERM: unix.SIGQUIT,
		unix.SIGWINCH: unix.SIGHUP, RTMax: unix.SIGTTIN,
		// a rewrite cannot name these (ParseRewrite refuses them); if one
		// slipped in, it must still not apply
		unix.SIGCHLD: unix.SIGTERM, unix.SIGURG: unix.SIGTERM,
	}
	tests := []struct {
		col  column
		sig  syscall.Signal
		verb Verb
		to   syscall.Signal
	}{
		{wrapper, unix.SIGTTIN, ForwardMain, unix.SIGTERM},
		{wrapper, unix.SIGTTOU, ForwardMain, unix.SIGUSR1},
		{wrapper, unix.SIGUSR1, ForwardMain, unix.SIGUSR2},
		{wrapper, unix.SIGHUP, Drop, unix.SIGHUP},
		{wrapper, unix.SIGTERM, ForwardMain, unix.SIGQUIT},
		{wrapper, RTMax, ForwardMain, unix.SIGTTIN},
		{wrapper, unix.SIGCHLD, Reap, unix.SIGCHLD},
		{wrapper, unix.SIGURG, Drop, unix.SIGURG},
		{wrapper, unix.SIGINT, ForwardMain, unix.SIGINT},
		{withMain, unix.SIGTTIN, ShutdownOrKill, unix.SIGTERM},
		{withMain, unix.SIGTERM, Shutdown, unix.SIGQUIT},
		{withMain, unix.SIGUSR2, ShutdownOrKill, unix.SIGTERM},
		{withMain, unix.SIGHUP, Drop, unix.SIGHUP},
		{withMain, unix.SIGWINCH, ForwardMain, unix.SIGHUP},
		{withoutAny, unix.SIGWINCH, ForwardAll, unix.SIGHUP},
		{withoutAny, unix.SIGTTOU, ForwardAll, unix.SIGUSR1},
		{withoutAny, unix.SIGUSR1, ForwardAll, unix.SIGUSR2},
		{withoutAny, unix.SIGINT, ShutdownOrKill, unix.SIGINT},
	}
	for _, tc := range tests {
		got := Decide(tc.sig, tc.col.mode, tc.col.hasMain, rw)
		if got.Verb != tc.verb || got.Signal != tc.to {
			t.Errorf("%s, %s: %v %s, want %v %s", tc.col.name, Name(tc.sig), got.Verb, Name(got.Signal), tc.verb, Name(tc.to))
		}
	}
}
