package proc

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree starts a real process tree under the test process and returns the
// PIDs it printed, by name: a sh (top) with a sleep (child) and a second sh
// (mid) that has a sleep of its own (grand), and an orphan: a sleep whose
// parent exited, adopted by the test process as a child subreaper (on
// whichever of its threads the kernel chose).
func tree(t *testing.T) (top *exec.Cmd, pids map[string]int) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	// The orphan's parent exits before top prints anything: by then the
	// orphan is the test process's.
	orphan := exec.Command("sh", "-c", "sleep 100 </dev/null >/dev/null 2>&1 & echo $!")
	out, err := orphan.Output()
	if err != nil {
		t.Fatal(err)
	}
	opid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("orphan: %q", out)
	}
	t.Cleanup(func() {
		unix.Kill(opid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(opid, &ws, 0, nil)
	})
	top = exec.Command("sh", "-c", `sleep 100 & echo child $!
sh -c 'sleep 100 & echo grand $!; wait' & echo mid $!
wait`)
	stdout, err := top.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	top.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := top.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(-top.Process.Pid, unix.SIGKILL); top.Wait() })
	pids = map[string]int{"top": top.Process.Pid, "orphan": opid}
	sc := bufio.NewScanner(stdout)
	for len(pids) < 5 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("tree said %q", sc.Text())
		}
		pids[f[0]], _ = strconv.Atoi(f[1])
	}
	if len(pids) < 5 {
		t.Fatalf("tree said only %v", pids)
	}
	// mid prints grand's PID as soon as grand is forked; its parent is
	// mid by then. Wait until each process has exec'd past sh's fork
	// (its parent is what the tree says), with a generous bound.
	want := map[string]string{"child": "top", "mid": "top", "grand": "mid"}
	deadline := time.Now().Add(10 * time.Second)
	for name, parent := range want {
		for {
			if ppid, ok := parentOf(pids[name]); ok && ppid == pids[parent] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s (%d) never had %s (%d) as parent", name, pids[name], parent, pids[parent])
			}
			time.Sleep(time.Millisecond)
		}
	}
	return top, pids
}

func TestDescendantsOfARealTree(t *testing.T) {
	_, pids := tree(t)
	self := os.Getpid()
	tests := []struct {
		name string
		root int
		want []string // in the output
		not  []string // never
	}{
		{"vigil's own tree holds the adopted orphan", self, []string{"top", "child", "mid", "grand", "orphan"}, nil},
		{"a service's tree is its own", pids["top"], []string{"child", "mid", "grand"}, []string{"top", "orphan"}},
		{"a leaf has none", pids["grand"], nil, []string{"top", "child", "mid", "grand", "orphan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Descendants(tt.root)
			for _, n := range tt.want {
				if !slices.Contains(got, pids[n]) {
					t.Errorf("Descendants(%d) = %v: no %s (%d)", tt.root, got, n, pids[n])
				}
			}
			for _, n := range tt.not {
				if slices.Contains(got, pids[n]) {
					t.Errorf("Descendants(%d) = %v holds %s (%d)", tt.root, got, n, pids[n])
				}
			}
			// Parents before children: grand after mid, mid after top.
			if at := slices.Index(got, pids["grand"]); at >= 0 && at < slices.Index(got, pids["mid"]) {
				t.Errorf("Descendants(%d) = %v: grand before mid", tt.root, got)
			}
			if at := slices.Index(got, pids["mid"]); at >= 0 && slices.Contains(got, pids["top"]) && at < slices.Index(got, pids["top"]) {
				t.Errorf("Descendants(%d) = %v: mid before top", tt.root, got)
			}
			// The walk of every /proc/PID/stat finds the same tree:
			// compare on the tree's processes (the test binary's own
			// other children, if any, come and go).
			scan := descendantsByScan(tt.root)
			for n, pid := range pids {
				if slices.Contains(got, pid) != slices.Contains(scan, pid) {
					t.Errorf("%s (%d): children walk %v, /proc scan %v", n, pid, got, scan)
				}
			}
		})
	}
}

func TestDescendantsOfAGoneProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got, ok := descendantsByChildren(cmd.Process.Pid); !ok || len(got) != 0 {
		t.Errorf("descendantsByChildren(gone) = %v, %v; want none, true", got, ok)
	}
}

func TestReadNumbers(t *testing.T) {
	tests := []struct {
		text string
		want []int
	}{
		{"", nil},
		{"12 345 6 ", []int{12, 345, 6}},
		{"7", []int{7}},
		{"  99\n100", []int{99, 100}},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "children")
		os.WriteFile(path, []byte(tt.text), 0o644)
		// Every buffer size: a number cut between two reads is one.
		for size := 1; size <= len(tt.text)+1; size++ {
			var got []int
			if err := readNumbers(path, make([]byte, size), func(n int) { got = append(got, n) }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%q with a %d-byte buffer: %v, want %v", tt.text, size, got, tt.want)
			}
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink("/proc/self/stat", link)
	if err := readNumbers(link, make([]byte, 64), func(int) {}); err == nil {
		t.Error("readNumbers followed a symlink")
	}
}

func TestReadDirNumbers(t *testing.T) {
	dir := t.TempDir()
	var want []int
	for i := 0; i < 500; i++ { // more than one getdents of a small buffer
		os.WriteFile(filepath.Join(dir, strconv.Itoa(i*7)), nil, 0o644)
		want = append(want, i*7)
	}
	for _, name := range []string{"x", "12a", "1234567890", ""} {
		if name != "" {
			os.WriteFile(filepath.Join(dir, name), nil, 0o644)
		}
	}
	var got []int
	if err := readDirNumbers(dir, make([]byte, 512), func(n int) { got = append(got, n) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got %d numbers, want %d: %v", len(got), len(want), got)
	}
}

// BenchmarkDescendants compares the walk of vigil's own tree with the scan
// of every /proc/PID/stat, for the test process (its threads, no children):
// go test -run '^$' -bench Descendants ./proc/
func BenchmarkDescendants(b *testing.B) {
	self := os.Getpid()
	b.Run("children", func(b *testing.B) {
		for b.Loop() {
			if _, ok := descendantsByChildren(self); !ok {
				b.Skip("no children files")
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			descendantsByScan(self)
		}
	})
}
