package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRewriteJobControl: -r applies to every signal a user can send, TTIN
// and TTOU included (dumb-init's job-control rewrites), before forwarding.
func TestRewriteJobControl(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			rec := filepath.Join(t.TempDir(), "rec")
			v := start(t, m, opts{}, "-r", "TTOU:USR1", "-r", "TTIN:TERM", "--", testProg, "record", rec)
			waitReady(t, rec)
			v.signal(unix.SIGTTOU)
			waitForLine(t, rec, "SIGUSR1", 1)
			v.signal(unix.SIGTTIN)
			// testprog exits 0 on the TERM the TTIN became.
			if code := v.wait(15 * time.Second); code != 0 {
				t.Errorf("exit %d after TTIN rewritten to TERM, want 0", code)
			}
			got := lines(rec)
			if count(got, "SIGTERM") != 1 || count(got, "SIGTTIN")+count(got, "SIGTTOU") != 0 {
				t.Errorf("main recorded %q, want SIGUSR1 and SIGTERM only", got)
			}
		})
	}
}

// TestRewriteOfVigilsOwnSignalIsAUsageError: CHLD, URG, PIPE and PROF never
// come from a user; a rule for one could never apply.
func TestRewriteOfVigilsOwnSignalIsAUsageError(t *testing.T) {
	for _, spec := range []string{"CHLD:TERM", "URG:0", "PIPE:USR1", "PROF:TERM"} {
		t.Run(spec, func(t *testing.T) {
			t.Parallel()
			code, stderr := run(t, modes[1], opts{}, "-r", spec, "--", "true")
			if code != 2 {
				t.Errorf("exit %d, want 2 (usage error)", code)
			}
			if want := "cannot be rewritten"; !strings.Contains(stderr, want) {
				t.Errorf("stderr %q does not say %q", stderr, want)
			}
		})
	}
}
