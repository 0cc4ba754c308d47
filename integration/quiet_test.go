package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestWrapperIsQuietOnACleanRun: like tini, a wrapper logs warnings and
// errors only, unless -v or VIGIL_LOG_LEVEL asks for more.
func TestWrapperIsQuietOnACleanRun(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want []string // "" = nothing at all on stderr
	}{
		{"clean run", nil, []string{"--", "true"}, nil},
		{"a failing main is no vigil problem", nil, []string{"--", "sh", "-c", "exit 3"}, nil},
		{"-v logs", nil, []string{"-v", "--", "true"}, []string{"started service=main", "exited service=main"}},
		{"VIGIL_LOG_LEVEL=info logs", []string{"VIGIL_LOG_LEVEL=info"}, []string{"--", "true"}, []string{"started service=main", "exited service=main"}},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				// A socket of its own: another vigil on the default path
				// would be worth a warning.
				env := append([]string{"VIGIL_SOCKET=" + filepath.Join(t.TempDir(), "vigil.sock")}, tc.env...)
				code, stderr := run(t, m, opts{env: env}, tc.args...)
				if code != 0 && code != 3 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if tc.want == nil && stderr != "" {
					t.Errorf("stderr %q, want nothing", stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q does not say %q", stderr, w)
					}
				}
			})
		}
	}
}
