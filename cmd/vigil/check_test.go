package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckListsCopiesAndSchedules loads a config as `vigil check` does and
// looks for each copy and each schedule in what it prints.
func TestCheckListsCopiesAndSchedules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.json")
	doc := `{"services": [
	  {"name": "w", "command": ["true"], "instances": 2},
	  {"name": "lb", "command": ["true"], "depends_on": ["w"]},
	  {"name": "backup", "command": ["true"], "schedule": "30 2 * * *", "timezone": "Europe/Berlin", "starting_deadline": "1h"}
	]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	st, errs := load([]string{"VIGIL_STATE_DIR=none"}, flagValues{config: &path})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out strings.Builder
	printCheck(&out, st)
	got := out.String()
	for _, want := range []string{
		"services: 4\n",
		"w-1 (w 1/2)", "w-2 (w 2/2)",
		"after w-1,w-2",
		`at "30 2 * * *" Europe/Berlin, forbid, deadline 1h0m0s`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}

// TestCheckHidesEnvValues: check runs in image builds whose logs are kept;
// a service's env values (secrets) must never appear, their names may.
func TestCheckHidesEnvValues(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		file    string
	}{
		{"VIGIL_SERVICES", []string{`VIGIL_SERVICES=[{"name":"a","command":"true","env":{"DB_PASSWORD":"hunter2"}}]`}, ""},
		{"config file", nil, `{"services":[{"name":"a","command":["true"],"env":{"DB_PASSWORD":"hunter2"}}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			environ := append([]string{"VIGIL_STATE_DIR=none"}, tc.environ...)
			var args []string
			if tc.file != "" {
				p := filepath.Join(t.TempDir(), "vigil.json")
				if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{"-c", p}
			}
			var out, errOut strings.Builder
			if code := check(args, environ, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if strings.Contains(out.String()+errOut.String(), "hunter2") {
				t.Errorf("an env value is printed:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "DB_PASSWORD") {
				t.Errorf("the env name is not listed:\n%s", out.String())
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"status"}, exitUsage, `"status"`},
		{[]string{"-c", "/nonexistent.json", "reload"}, exitUsage, `"reload"`},
		{[]string{"sleep", "1"}, exitUsage, `"sleep"`},
		{[]string{"--", "sleep"}, exitUsage, `"sleep"`},
		{[]string{"--version"}, exitUsage, "--version"},
		{[]string{"--nope"}, exitUsage, "--nope"},
		{nil, 0, ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut strings.Builder
			code := check(tc.args, []string{"VIGIL_STATE_DIR=none"}, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.code, tc.want)
			}
		})
	}
}

// TestCheckRunnable: what the config cannot know but every spawn would
// trip on is a problem with its line:column, exit 78.
func TestCheckRunnable(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		services string
		nonRoot  bool   // only meaningful when the test is not root
		want     string // "" = no problem
	}{
		{"missing dir", `[{"name":"a","command":"true",` + "\n" + `"dir":"/nonexistent/dir"}]`, false, `VIGIL_SERVICES:2:1: service "a": field "dir"`},
		{"dir is a file", `[{"name":"a","command":"true","dir":"` + notDir + `"}]`, false, "not a directory"},
		{"existing dir", `[{"name":"a","command":"true","dir":"/"}]`, false, ""},
		{"unknown user", `[{"name":"a","command":"true","user":"no-such-user-x"}]`, false, `field "user"`},
		{"another group", `[{"name":"a","command":"true","user":"` + itoa(os.Geteuid()) + `:` + itoa(os.Getegid()+1) + `"}]`, true, "cannot switch"},
		{"another user", `[{"name":"a","command":"true","user":"` + itoa(os.Geteuid()+1) + `"}]`, true, "cannot switch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.nonRoot && os.Geteuid() == 0 {
				t.Skip("root may switch to any user")
			}
			var out, errOut strings.Builder
			code := check(nil, []string{"VIGIL_STATE_DIR=none", "VIGIL_SERVICES=" + tc.services}, &out, &errOut)
			if tc.want == "" {
				if code != 0 {
					t.Errorf("exit %d: %s", code, errOut.String())
				}
				return
			}
			if code != exitConfig || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitConfig, tc.want)
			}
		})
	}
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestUsageListsDefaults: every variable's line in --help shows its
// default, including those that depend on what exists.
func TestUsageListsDefaults(t *testing.T) {
	want := map[string]string{
		"VIGIL_CONFIG":             "/etc/vigil/vigil.json if it exists",
		"VIGIL_SERVICES":           "(none)",
		"VIGIL_STATE_DIR":          "/var/lib/vigil if it exists",
		"VIGIL_SOCKET":             "/run/vigil/vigil.sock",
		"VIGIL_LOG_LEVEL":          "info",
		"VIGIL_LOG_FORMAT":         "text",
		"VIGIL_LOG_FILE":           "(none)",
		"VIGIL_MAX_RETRIES":        "3",
		"VIGIL_BACKOFF_INITIAL":    "1s",
		"VIGIL_BACKOFF_MAX":        "30s",
		"VIGIL_BACKOFF_FACTOR":     "2",
		"VIGIL_BACKOFF_JITTER":     "0.2",
		"VIGIL_STABLE_AFTER":       "10s",
		"VIGIL_STOP_TIMEOUT":       "5s",
		"VIGIL_RESPAWN_LIMIT":      "10/1m",
		"VIGIL_SHUTDOWN_TIMEOUT":   "9s",
		"VIGIL_REEXEC_INTERVAL":    "0",
		"VIGIL_RESET_STATE":        "false",
		"VIGIL_KILL_PROCESS_GROUP": "false",
		"VIGIL_SUBREAPER":          "false",
		"VIGIL_HTTP":               "(off)",
	}
	var b strings.Builder
	printUsage(&b)
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "VIGIL_") {
			continue
		}
		seen[f[0]] = true
		def, ok := want[f[0]]
		if !ok {
			t.Errorf("%s: not in this test's list", f[0])
			continue
		}
		if !strings.Contains(sc.Text(), "  "+def) {
			t.Errorf("line %q does not show the default %q", sc.Text(), def)
		}
	}
	for v := range want {
		if !seen[v] {
			t.Errorf("%s: no line in --help", v)
		}
	}
}
