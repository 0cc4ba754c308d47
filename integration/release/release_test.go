//go:build release

package release

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-init/vigil/integration/release/oci"
)

// arch is one release build and how to run it on this amd64 machine.
type arch struct {
	goarch   string
	platform oci.Platform
	machine  elf.Machine
	qemu     string // the emulator; empty: runs natively
}

var archs = []arch{
	{"amd64", oci.Platform{OS: "linux", Architecture: "amd64"}, elf.EM_X86_64, ""},
	{"arm64", oci.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, elf.EM_AARCH64, "qemu-aarch64-static"},
	{"arm", oci.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, elf.EM_ARM, "qemu-arm-static"},
	{"386", oci.Platform{OS: "linux", Architecture: "386"}, elf.EM_386, ""},
	{"ppc64le", oci.Platform{OS: "linux", Architecture: "ppc64le"}, elf.EM_PPC64, "qemu-ppc64le-static"},
	{"s390x", oci.Platform{OS: "linux", Architecture: "s390x"}, elf.EM_S390, "qemu-s390x-static"},
	{"riscv64", oci.Platform{OS: "linux", Architecture: "riscv64"}, elf.EM_RISCV, "qemu-riscv64-static"},
}

var (
	repoRoot string
	dist     string // dist/ as `make release` left it
	version  string // what the amd64 binary's `vigil version` says
)

func TestMain(m *testing.M) {
	var err error
	repoRoot, err = filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dist = os.Getenv("VIGIL_DIST")
	if dist == "" {
		dist = filepath.Join(repoRoot, "dist")
	}
	out, err := exec.Command(filepath.Join(dist, "vigil-linux-amd64"), "version").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "release tests: %s/vigil-linux-amd64 version: %v (run make test-release, which builds dist/ first)\n", dist, err)
		os.Exit(1)
	}
	version = strings.TrimPrefix(strings.TrimSpace(string(out)), "vigil ")
	os.Exit(m.Run())
}

func (a arch) bin() string { return filepath.Join(dist, "vigil-linux-"+a.goarch) }

// command runs this architecture's vigil with args, through qemu if needed.
func (a arch) command(args ...string) []string {
	if a.qemu == "" {
		return append([]string{a.bin()}, args...)
	}
	return append([]string{a.qemu, a.bin()}, args...)
}

// The version is `git describe`'s, as the Makefile says.
func TestVersion(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot, ".git")); err != nil {
		t.Skip("not a git checkout")
	}
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	if want := strings.TrimSpace(string(out)); version != want {
		t.Fatalf("vigil version says %q, git describe %q", version, want)
	}
	t.Logf("version %s", version)
}

func TestChecksums(t *testing.T) {
	f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS line %q: want the sha256sum format", sc.Text())
		}
		listed[name] = sum
	}
	var want []string
	for _, a := range archs {
		want = append(want, "vigil-linux-"+a.goarch, "vigil-linux-"+a.goarch+".oci.tar")
	}
	sort.Strings(want)
	var got []string
	for name := range listed {
		got = append(got, name)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("SHA256SUMS lists %q, want %q", got, want)
	}
	for name, sum := range listed {
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, h, sum)
		}
	}
}

// TestStatic: no interpreter, no dynamic section (by debug/elf and by
// readelf, in case the two ever disagree), the right machine, and the build
// settings the Makefile promises.
func TestStatic(t *testing.T) {
	// The check itself must see a dynamic binary for what it is.
	if sh, err := filepath.EvalSymlinks("/bin/sh"); err == nil {
		if len(dynamicParts(t, sh)) == 0 {
			t.Fatalf("%s passes for static: the check is broken", sh)
		}
	}
	for _, a := range archs {
		t.Run(a.goarch, func(t *testing.T) {
			f, err := elf.Open(a.bin())
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != a.machine || f.Type != elf.ET_EXEC {
				t.Errorf("ELF %v %v, want %v ET_EXEC", f.Machine, f.Type, a.machine)
			}
			for _, p := range dynamicParts(t, a.bin()) {
				t.Errorf("%s: not a static binary", p)
			}
			bi, err := buildinfo.ReadFile(a.bin())
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			want := map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": a.goarch}
			if a.goarch == "arm" {
				want["GOARM"] = "7"
			}
			for k, v := range want {
				if settings[k] != v {
					t.Errorf("build setting %s=%q, want %q", k, settings[k], v)
				}
			}
			if _, ok := settings["vcs.revision"]; ok {
				t.Errorf("a VCS stamp: the bytes would depend on the checkout")
			}
			fi, _ := os.Stat(a.bin())
			t.Logf("%s: %d bytes, %s", filepath.Base(a.bin()), fi.Size(), bi.GoVersion)
		})
	}
}

// dynamicParts lists what makes an ELF file dynamically linked: a PT_INTERP
// or PT_DYNAMIC program header or a .dynamic section (debug/elf), and the
// INTERP and DYNAMIC lines of `readelf -lW` where readelf is installed.
func dynamicParts(t *testing.T, path string) []string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var parts []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			parts = append(parts, "program header "+p.Type.String())
		}
	}
	if f.Section(".dynamic") != nil {
		parts = append(parts, "section .dynamic")
	}
	if readelf, err := exec.LookPath("readelf"); err == nil {
		out, err := exec.Command(readelf, "-lW", path).CombinedOutput()
		if err != nil {
			t.Fatalf("readelf %s: %v\n%s", path, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if fs := strings.Fields(line); len(fs) > 0 && (fs[0] == "INTERP" || fs[0] == "DYNAMIC") {
				parts = append(parts, "readelf: "+strings.Join(fs, " "))
			}
		}
	}
	return parts
}

func TestImages(t *testing.T) {
	for _, a := range archs {
		t.Run(a.goarch, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dist, "vigil-linux-"+a.goarch+".oci.tar"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := oci.Read(f)
			if err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(a.bin())
			if err != nil {
				t.Fatal(err)
			}
			if img.Platform != a.platform {
				t.Errorf("platform %v, want %v", img.Platform, a.platform)
			}
			if len(img.Files) != 1 || !bytes.Equal(img.Files["vigil"].Data, bin) || img.Files["vigil"].Mode != 0o755 {
				t.Errorf("the layer holds %d files; /vigil the release binary: %v, mode %v", len(img.Files),
					bytes.Equal(img.Files["vigil"].Data, bin), img.Files["vigil"].Mode)
			}
			if ep := img.Config.Config.Entrypoint; len(ep) != 1 || ep[0] != "/vigil" {
				t.Errorf("entrypoint %q", ep)
			}
			// One tag per architecture: a docker load of another's keeps this one.
			tag := strings.ReplaceAll(version, "+", "_") + "-" + a.goarch
			if img.Ref != tag || len(img.RepoTags) != 1 || img.RepoTags[0] != "vigil:"+tag {
				t.Errorf("tag %q, repo tags %q; want %q", img.Ref, img.RepoTags, tag)
			}
		})
	}
}

// TestReproducible builds the release again from a copy of the tree in
// another directory, with the version and timestamp of the first build, and
// wants the same SHA256SUMS. The Go build cache is shared (a cold build of
// seven architectures takes minutes), so this proves the link and the images
// reproducible and independent of the checkout's path; the compiler's own
// determinism is Go's promise.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	f, err := os.Open(filepath.Join(dist, "vigil-linux-amd64.oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := oci.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	created, err := time.Parse(time.RFC3339, img.Config.Created)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "elsewhere", "vigil")
	files := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	files.Dir = repoRoot
	list, err := files.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src := filepath.Join(repoRoot, name)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	again := filepath.Join(tree, "dist")
	cmd := exec.Command("make", "release", "DIST="+again, "VERSION="+version,
		"SOURCE_DATE_EPOCH="+strconv.FormatInt(created.Unix(), 10))
	cmd.Dir = tree
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release in %s: %v\n%s", tree, err, out)
	}
	t.Logf("second make release, in %s: %v", tree, time.Since(start).Round(100*time.Millisecond))
	first, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(filepath.Join(again, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("a second build differs:\nfirst:\n%s\nsecond:\n%s", first, second)
	}
}

// TestRun runs every binary as PID 1 of a PID namespace: the foreign ones
// under qemu-user-static, qemu being the process the kernel sees as PID 1
// (it passes wait4, kill and prctl of vigil on to the kernel).
func TestRun(t *testing.T) {
	for _, a := range archs {
		t.Run(a.goarch, func(t *testing.T) {
			if a.qemu != "" {
				if _, err := exec.LookPath(a.qemu); err != nil {
					t.Fatalf("%s: %v (apt-get install qemu-user-static)", a.qemu, err)
				}
			}
			out, err := exec.Command(a.command("version")[0], a.command("version")[1:]...).CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != "vigil "+version {
				t.Fatalf("vigil version: %q, %v; want %q", got, err, "vigil "+version)
			}
			t.Run("wrapper", func(t *testing.T) { wrapper(t, a) })
			t.Run("supervisor", func(t *testing.T) { supervisor(t, a) })
		})
	}
}

// wrapper: the main process's status comes back, vigil is PID 1, and USR1
// then TERM reach the main process.
func wrapper(t *testing.T, a arch) {
	dir := t.TempDir()
	v := startPID1(t, a, nil, "--", "sh", "-c", `echo $PPID >`+dir+`/ppid; exit 7`)
	if code := v.wait(t); code != 7 {
		t.Fatalf("exit status %d, want 7", code)
	}
	if b, _ := os.ReadFile(dir + "/ppid"); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("the main process's parent is %q, want 1 (vigil as PID 1)", b)
	}
	t.Logf("exit status 7 passed through, vigil is PID 1")

	log := dir + "/signals"
	script := `trap 'echo USR1 >>` + log + `' USR1; trap 'echo TERM >>` + log + `; exit 42' TERM; ` +
		`echo ready >` + dir + `/ready; while :; do sleep 0.05; done`
	v = startPID1(t, a, nil, "--", "sh", "-c", script)
	waitFor(t, "the main process ready", func() bool { return fileHas(dir+"/ready", "ready") })
	v.signal(t, syscall.SIGUSR1)
	waitFor(t, "USR1 forwarded", func() bool { return fileHas(log, "USR1") })
	v.signal(t, syscall.SIGTERM)
	if code := v.wait(t); code != 42 {
		t.Fatalf("exit status %d after TERM, want 42 (the main process's trap)", code)
	}
	if b, _ := os.ReadFile(log); string(b) != "USR1\nTERM\n" {
		t.Fatalf("the main process got %q, want USR1 then TERM", b)
	}
	t.Logf("USR1 and TERM forwarded, exit status 42 passed through")
}

// supervisor: a service that fails once is restarted; `vigil status`
// (this architecture's client, over the socket) shows it ready with one
// restart; an orphan is reaped; TERM stops it all with status 0.
func supervisor(t *testing.T, a arch) {
	dir := t.TempDir()
	sock := dir + "/vigil.sock"
	services := fmt.Sprintf(`[
		{"name": "flaky", "command": "if [ -e %[1]s/ran ]; then exec sleep 1000; fi; touch %[1]s/ran; exit 3", "backoff": {"initial": "100ms"}},
		{"name": "orphaner", "command": "(sh -c 'while [ ! -e %[1]s/go ]; do sleep 0.05; done' vigil-orphan &); exec sleep 1000"}
	]`, dir)
	env := []string{"VIGIL_SERVICES=" + services, "VIGIL_SOCKET=" + sock, "VIGIL_STATE_DIR=none"}
	v := startPID1(t, a, env)

	var st struct {
		Services []struct {
			Name     string
			State    string
			Restarts int
			LastExit *int `json:"last_exit"`
		}
	}
	waitFor(t, "flaky ready after one restart", func() bool {
		out, err := client(a, sock, "status", "--json", "flaky")
		if err != nil || json.Unmarshal(out, &st) != nil || len(st.Services) != 1 {
			return false
		}
		s := st.Services[0]
		return s.State == "ready" && s.Restarts == 1 && s.LastExit != nil && *s.LastExit == 3
	})
	table, err := client(a, sock, "status")
	if err != nil || !strings.HasPrefix(string(table), "NAME\tSTATE\tPID") || !strings.Contains(string(table), "flaky\tready\t") {
		t.Fatalf("vigil status: %v\n%s", err, table)
	}
	t.Logf("vigil status:\n%s", table)

	// The orphaner's grandchild is reparented to PID 1: vigil (qemu) must reap it.
	var orphan int
	waitFor(t, "the orphan reparented to vigil", func() bool {
		for _, c := range children(v.pid(t)) {
			if args := cmdline(c); len(args) > 0 && args[len(args)-1] == "vigil-orphan" {
				orphan = c
				return true
			}
		}
		return false
	})
	os.WriteFile(dir+"/go", nil, 0o644)
	waitFor(t, "the orphan reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
		return os.IsNotExist(err)
	})
	t.Logf("orphan reaped")

	v.signal(t, syscall.SIGTERM)
	if code := v.wait(t); code != 0 {
		t.Fatalf("exit status %d after TERM, want 0", code)
	}
}

// timeout for any one event: generous, qemu translates code as it first runs.
const timeout = 60 * time.Second

type run struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     sync.Mutex
	done   chan struct{}
	code   int
	vpid   int
}

// startPID1 starts vigil (under qemu for a foreign architecture) as PID 1 of a
// new PID namespace.
func startPID1(t *testing.T, a arch, env []string, args ...string) *run {
	t.Helper()
	argv := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child"}, a.command(args...)...)
	cmd := exec.Command("unshare", argv...)
	cmd.Env = append(os.Environ(), env...)
	r := &run{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &r.mu, w: r.stderr}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	go func() {
		cmd.Wait()
		r.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Signal(syscall.SIGKILL) // --kill-child takes the namespace down with it
			<-r.done
		}
		if t.Failed() {
			r.mu.Lock()
			t.Logf("vigil's stderr:\n%s", r.stderr)
			r.mu.Unlock()
		}
	})
	return r
}

// pid is vigil's (qemu's) PID as this test sees it: unshare's one child.
func (r *run) pid(t *testing.T) int {
	t.Helper()
	if r.vpid == 0 {
		waitFor(t, "unshare's child", func() bool {
			if kids := children(r.cmd.Process.Pid); len(kids) == 1 {
				r.vpid = kids[0]
			}
			return r.vpid != 0
		})
	}
	return r.vpid
}

func (r *run) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(r.pid(t), sig); err != nil {
		t.Fatalf("kill %v: %v", sig, err)
	}
}

func (r *run) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(timeout):
		t.Fatalf("vigil still running after %v", timeout)
		return -1
	}
}

// client runs a client verb of this architecture's vigil.
func client(a arch, sock string, args ...string) ([]byte, error) {
	argv := a.command(args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
	return cmd.Output()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileHas(path, line string) bool {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, p)
			}
		}
	}
	return out
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}
