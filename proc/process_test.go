package proc

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

func TestParseStat(t *testing.T) {
	const rest = " S 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 2441216 223 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	tests := []struct {
		name, text string
		ppid       int
		start      uint64
		ok         bool
	}{
		{"plain", "42 (sleep)" + rest, 1, 123456, true},
		{"a name with spaces and parentheses", "42 (a) b (c)" + rest, 1, 123456, true},
		{"cut before the start time", "42 (sleep) S 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 1234", 0, 0, false},
		{"cut right after the start time", "42 (sleep) S 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456\n", 1, 123456, true},
		{"no name", "42 sleep" + rest, 0, 0, false},
		{"not a number", "42 (sleep) S x 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 0\n", 0, 0, false},
	}
	for _, tc := range tests {
		ppid, start, err := parseStat([]byte(tc.text))
		if (err == nil) != tc.ok || ppid != tc.ppid || start != tc.start {
			t.Errorf("%s: parseStat = %d, %d, %v; want %d, %d, ok %v", tc.name, ppid, start, err, tc.ppid, tc.start, tc.ok)
		}
	}
}

func TestProcStatSelf(t *testing.T) {
	ppid, start, err := ProcStat(os.Getpid())
	if err != nil || ppid != os.Getppid() || start == 0 {
		t.Fatalf("ProcStat(self) = %d, %d, %v; want ppid %d and a start time", ppid, start, err, os.Getppid())
	}
	if _, _, err := ProcStat(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ProcStat of no process: %v, want not exist", err)
	}
}

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name  string
		lists [][]string
		want  []string
	}{
		{"the later list wins, in the first place seen", [][]string{{"A=1", "B=2"}, {"B=3"}}, []string{"A=1", "B=3"}},
		{"a name twice in one list is once", [][]string{{"A=1", "A=2"}}, []string{"A=2"}},
		{"HOME of the user over vigil's", [][]string{{"HOME=/root", "PATH=/bin"}, {"HOME=/home/app"}, {"X=y"}}, []string{"HOME=/home/app", "PATH=/bin", "X=y"}},
		{"an entry without = is a name", [][]string{{"WEIRD"}, {"WEIRD=v"}}, []string{"WEIRD=v"}},
		{"empty values count", [][]string{{"A=1"}, {"A="}}, []string{"A="}},
		{"nothing", nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MergeEnv(tc.lists...); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChildCredential(t *testing.T) {
	own := &syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{}}
	other := &syscall.Credential{Uid: 1000, Gid: 0, Groups: []uint32{}}
	tests := []struct {
		name       string
		cred       *syscall.Credential
		euid, egid int
		want       *syscall.Credential
	}{
		{"none", nil, 1000, 1000, nil},
		{"non-root as itself sets nothing", own, 1000, 1000, nil},
		{"non-root to another group is tried (and fails)", other, 1000, 1000, other},
		{"root sets it all", own, 0, 0, own},
	}
	for _, tc := range tests {
		if got := credential(tc.cred, tc.euid, tc.egid); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
