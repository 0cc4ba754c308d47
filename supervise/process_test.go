package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	tests := []struct {
		name, file, path, dir string
		want                  string
		code                  int
	}{
		{"found in PATH", "tool", "/nonexistent:" + dir, "", exe, 0},
		{"missing is 127", "nope", dir, "", "", 127},
		{"in PATH but not executable is 126", "plain", dir, "", "", 126},
		{"a directory is 126", dir, "", "", "", 126},
		{"absolute path", exe, "", "", exe, 0},
		{"missing absolute path is 127", "/no/such/file", "", "", "", 127},
		{"relative to dir", "./tool", "", dir, "./tool", 0},
		{"default PATH finds sh", "sh", "", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LookPath(tc.file, tc.path, tc.dir)
			if tc.code != 0 {
				var se *StartError
				if !errors.As(err, &se) || se.Code != tc.code {
					t.Fatalf("err %v, want code %d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCleanEnv(t *testing.T) {
	got := CleanEnv([]string{"PATH=/bin", "VIGIL_CONFIG=/x", "TINI_SUBREAPER=1", "HOME=/root", "VIGILANT=1"})
	want := []string{"PATH=/bin", "HOME=/root", "VIGILANT=1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
}

func TestDescendantsFindsGrandchildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 100 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var grandchild int
	if _, err := fmt.Fscan(out, &grandchild); err != nil {
		t.Fatal(err)
	}
	got := Descendants(os.Getpid())
	if !slices.Contains(got, cmd.Process.Pid) || !slices.Contains(got, grandchild) {
		t.Errorf("Descendants = %v, want %d and %d", got, cmd.Process.Pid, grandchild)
	}
	syscall.Kill(grandchild, syscall.SIGKILL)
	if ppid, ok := parentOf(os.Getpid()); !ok || ppid != os.Getppid() {
		t.Errorf("parentOf(self) = %d, %v; want %d", ppid, ok, os.Getppid())
	}
}
