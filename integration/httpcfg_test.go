package integration

import (
	"strings"
	"testing"
)

// TestHTTPConfigErrors: health, ready.http and the endpoint's address are
// checked by `vigil check` and by the run verb alike, each problem located.
func TestHTTPConfigErrors(t *testing.T) {
	cfg := config(t, t.TempDir(), `{"http": "localhost",
 "services": [
  {"name": "web", "command": ["true"],
   "ready": {"http": "https://127.0.0.1:8080/ready", "interval": "5s"},
   "health": {"tcp": "127.0.0.1:8080", "http": "http://127.0.0.1:8080/healthz"}},
  {"name": "db", "command": ["true"],
   "health": {"exec": ["true"], "interval": "1s", "timeout": "1s", "failure_threshold": 0}}
]}`)
	for _, args := range [][]string{{"-c", cfg}, {"check", "-c", cfg}} {
		code, stderr := run(t, modes[1], opts{}, args...)
		if code != 78 {
			t.Errorf("vigil %v: exit %d, want 78", args[0], code)
		}
		for _, want := range []string{
			`:1:10: field "http"`,
			`:4:22: service "web": field "ready.http"`, `only http://`,
			`:5:40: service "web": field "health.http": health takes one check only`,
			`:7:62: service "db": field "health.timeout": 1s is not shorter than the interval`,
			`:7:89: service "db": field "health.failure_threshold": 0: want 1 or more`,
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("vigil %v: stderr lacks %q:\n%s", args[0], want, stderr)
			}
		}
	}
	good := config(t, t.TempDir(), `{"http": "127.0.0.1:9090", "services": [{"name": "a", "command": ["true"],
  "ready": {"http": "http://127.0.0.1:8080/", "interval": "1s", "failure_threshold": 2},
  "health": {"http": "http://127.0.0.1:8080/healthz", "interval": "5s", "timeout": "1s"}}]}`)
	if code, stderr := run(t, modes[1], opts{}, "check", "-c", good); code != 0 {
		t.Errorf("check of a good config: exit %d\n%s", code, stderr)
	}
	if code, stderr := run(t, modes[1], opts{}, "--http", "9090", "--", "true"); code != 78 || !strings.Contains(stderr, "VIGIL_HTTP") {
		t.Errorf("--http 9090: exit %d, want 78 naming VIGIL_HTTP\n%s", code, stderr)
	}
}
