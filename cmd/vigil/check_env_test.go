package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckShowsNamesNeverValues: `vigil check` lists each service's
// variables and their sources, and no value from env, an env file or a
// secret appears anywhere in its output.
func TestCheckShowsNamesNeverValues(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("common.env", "FROM_TOP=value-top-1\nSHARED=value-top-2\n")
	write("web.env", "export SHARED='value-web-3'\nAPI_KEY_FILE=/run/secrets/api\n")
	write("db", "value-secret-4\n")
	cfg := write("vigil.json", `{"env_file": "common.env", "services": [
		{"name": "web", "command": ["true"], "env_file": ["web.env", "none.env?"],
		 "env": {"PORT": "value-env-5"}, "secrets": {"DB_PASSWORD": "db"}}]}`)
	st, errs := load([]string{"HOME=/value-home-6", "VIGIL_LOG_LEVEL=debug"}, flagValues{config: &cfg})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var b strings.Builder
	printCheck(&b, st)
	out := b.String()
	for _, v := range []string{"value-top-1", "value-top-2", "value-web-3", "value-secret-4", "value-env-5", "value-home-6", "/run/secrets/api"} {
		if strings.Contains(out, v) {
			t.Errorf("check shows the value %q:\n%s", v, out)
		}
	}
	for _, want := range []string{
		"environment of web (1 more from vigil's environment):",
		"API_KEY_FILE  env_file " + filepath.Join(dir, "web.env"),
		"DB_PASSWORD   secret " + filepath.Join(dir, "db"),
		"FROM_TOP      env_file " + filepath.Join(dir, "common.env"),
		"PORT          env\n",
		"SHARED        env_file " + filepath.Join(dir, "web.env"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "VIGIL_LOG_LEVEL") || strings.Contains(out, "HOME") {
		t.Errorf("settings missing, or an inherited variable listed by name:\n%s", out)
	}

	t.Run("a missing env file or secret is a config problem", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "web.env")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "db")); err != nil {
			t.Fatal(err)
		}
		_, errs := load(nil, flagValues{config: &cfg})
		var all []string
		for _, e := range errs {
			all = append(all, e.Error())
		}
		got := strings.Join(all, "\n")
		if len(errs) != 2 || !strings.Contains(got, `field "env_file[0]"`) || !strings.Contains(got, "secret DB_PASSWORD") {
			t.Errorf("got %d problems:\n%s", len(errs), got)
		}
	})
}
