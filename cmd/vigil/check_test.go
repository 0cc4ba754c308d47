package main

import (
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
