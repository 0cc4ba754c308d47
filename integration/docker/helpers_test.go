//go:build docker

package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	repoRoot string // the repository: ../.. of this package
	vigilBin string // the static vigil built for this run
	busybox  string // a static busybox ($BUSYBOX, default /bin/busybox)
	runID    string // names and labels everything this run creates
	label    string // vigil-docker-test=<runID>
)

// cmdTimeout bounds any single docker command but builds and waits.
const cmdTimeout = 60 * time.Second

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	b := make([]byte, 4)
	rand.Read(b)
	runID = hex.EncodeToString(b)
	label = "vigil-docker-test=" + runID

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker tests: no Docker engine answers `docker info` (%v):\n%s\n"+
			"start dockerd (see .ci/run) or leave out -tags docker\n", err, out)
		return 1
	}
	fmt.Printf("docker engine %s, run id %s\n", strings.TrimSpace(string(out)), runID)

	repoRoot, err = filepath.Abs("../..")
	if err == nil {
		_, err = os.Stat(filepath.Join(repoRoot, "go.mod"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker tests: cannot find the repository root: %v\n", err)
		return 1
	}
	busybox = os.Getenv("BUSYBOX")
	if busybox == "" {
		busybox = "/bin/busybox"
	}
	if err := checkStatic(busybox); err != nil {
		fmt.Fprintf(os.Stderr, "docker tests: %v (apt-get install busybox-static)\n", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "vigil-docker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// A fresh static binary from this tree: the images never hold a stale bin/vigil.
	vigilBin = filepath.Join(tmp, "vigil")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-s -w -X main.version=docker-test", "-o", vigilBin, "./cmd/vigil")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "docker tests: go build: %v\n%s", err, out)
		return 1
	}

	code := m.Run()
	cleanupAll()
	return code
}

// checkStatic fails unless path is an executable ELF file without an
// interpreter: a FROM scratch image has no dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; a FROM scratch image needs a static one", path)
		}
	}
	return nil
}

// cleanupAll removes whatever this run left behind: containers and volumes by
// label, images by the tags it built. Each test already cleans up after
// itself; this is the net under a crash or a timeout of a test.
func cleanupAll() {
	if ids := lines(quiet("ps", "-aq", "--filter", "label="+label)); len(ids) > 0 {
		quiet(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	if vols := lines(quiet("volume", "ls", "-q", "--filter", "label="+label)); len(vols) > 0 {
		quiet(append([]string{"volume", "rm", "-f"}, vols...)...)
	}
	imageMu.Lock()
	var tags []string
	for _, tag := range imageTags {
		tags = append(tags, tag)
	}
	imageMu.Unlock()
	if len(tags) > 0 {
		quiet(append([]string{"rmi", "-f"}, tags...)...)
	}
}

// result is one docker command's outcome.
type result struct {
	stdout, stderr string
	code           int // the exit status of the docker client
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, indentText(r.stdout), indentText(r.stderr))
}

// docker runs the docker client with a deadline. Only a failure to run the
// client at all (or the deadline) is an error; a non-zero exit is a result.
func docker(timeout time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("docker %s: no answer within %v", strings.Join(args, " "), timeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// dockerT is docker for a test: a client that cannot run is fatal.
func dockerT(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	r, err := docker(timeout, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return r
}

// must runs docker and returns its stdout; a non-zero exit is fatal.
func must(t testing.TB, args ...string) string {
	t.Helper()
	r := dockerT(t, cmdTimeout, args...)
	if r.code != 0 {
		t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// quiet runs docker for cleanup: errors are only printed.
func quiet(args ...string) string {
	r, err := docker(cmdTimeout, args...)
	if err != nil || r.code != 0 {
		fmt.Fprintf(os.Stderr, "cleanup: docker %s: %v %s\n", strings.Join(args, " "), err, strings.TrimSpace(r.stderr))
	}
	return r.stdout
}

// exec in a container: docker exec [opts] id argv...
func dexec(t testing.TB, id string, argv ...string) result {
	t.Helper()
	return dockerT(t, cmdTimeout, append([]string{"exec", id}, argv...)...)
}

var (
	imageMu   sync.Mutex
	imageTags = map[string]string{} // key -> tag
)

// exampleImage builds examples/<dir> (once per run) the way
// examples/build-image.sh does: the example's files plus vigil and busybox
// in a temporary context.
func exampleImage(t testing.TB, dir string) string {
	t.Helper()
	return cachedImage(t, "example-"+dir, func(ctx string) error {
		return copyTree(filepath.Join(repoRoot, "examples", dir), ctx)
	})
}

// customImage builds an image from a Dockerfile text (once per key); the
// context also holds vigil and busybox.
func customImage(t testing.TB, key, dockerfile string) string {
	t.Helper()
	return cachedImage(t, key, func(ctx string) error {
		return os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644)
	})
}

func cachedImage(t testing.TB, key string, fill func(ctx string) error) string {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	if tag, ok := imageTags[key]; ok {
		return tag
	}
	tag := "vigil-test-" + key + ":" + runID
	ctx := t.TempDir()
	for src, dst := range map[string]string{vigilBin: "vigil", busybox: "busybox"} {
		if err := copyFile(src, filepath.Join(ctx, dst), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill(ctx); err != nil {
		t.Fatal(err)
	}
	buildContext(t, tag, ctx)
	imageTags[key] = tag
	return tag
}

// buildContext runs docker build on a context directory.
func buildContext(t testing.TB, tag, ctx string) {
	t.Helper()
	start := time.Now()
	r := dockerT(t, 5*time.Minute, "build", "-q", "--label", label, "-t", tag, ctx)
	if r.code != 0 {
		t.Fatalf("docker build %s: %s", tag, r)
	}
	t.Logf("built %s in %v", tag, time.Since(start).Round(time.Millisecond))
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(p, target, fi.Mode().Perm())
	})
}

// runDetached starts a container (docker run -d) and removes it, with its
// anonymous volumes, when the test ends; on failure its logs go to the test
// log first.
func runDetached(t testing.TB, args ...string) string {
	t.Helper()
	out := must(t, append([]string{"run", "-d", "--label", label}, args...)...)
	id := strings.TrimSpace(out)
	if len(id) > 12 {
		id = id[:12]
	}
	t.Cleanup(func() { removeContainer(t, id) })
	return id
}

func removeContainer(t testing.TB, id string) {
	if t.Failed() {
		if r, err := docker(cmdTimeout, "logs", "-t", id); err == nil {
			t.Logf("logs of %s:\nstdout:\n%s\nstderr:\n%s", id, indentText(r.stdout), indentText(r.stderr))
		}
	}
	quiet("rm", "-f", "-v", id)
}

// runForeground is `docker run` of a container that ends by itself: it
// returns the container's exit status as Docker recorded it (not the
// client's, which has codes of its own) and its output.
func runForeground(t testing.TB, timeout time.Duration, args ...string) (int, result) {
	t.Helper()
	name := "vigil-test-" + runID + "-" + randHex(4)
	t.Cleanup(func() { removeContainer(t, name) })
	r := dockerT(t, timeout, append([]string{"run", "--name", name, "--label", label}, args...)...)
	code := inspectInt(t, name, "{{.State.ExitCode}}")
	if r.code != code {
		t.Errorf("docker run exited %d, the container %d", r.code, code)
	}
	return code, r
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func inspect(t testing.TB, id, format string) string {
	t.Helper()
	return strings.TrimSpace(must(t, "inspect", "-f", format, id))
}

func inspectInt(t testing.TB, id, format string) int {
	t.Helper()
	s := inspect(t, id, format)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("inspect %s %s: %q", id, format, s)
	}
	return n
}

// waitExit waits for a container to end and returns its exit status.
func waitExit(t testing.TB, id string, timeout time.Duration) int {
	t.Helper()
	r := dockerT(t, timeout, "wait", id)
	if r.code != 0 {
		t.Fatalf("docker wait %s: %s", id, r)
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("docker wait %s: %q", id, r.stdout)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes (fatal).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logs returns a container's stdout and stderr as docker logs keeps them.
func logs(t testing.TB, id string) (stdout, stderr string) {
	t.Helper()
	r := dockerT(t, cmdTimeout, "logs", id)
	return r.stdout, r.stderr
}

// logRecord is one line of vigil's log in VIGIL_LOG_FORMAT=json.
type logRecord map[string]any

func (r logRecord) str(k string) string {
	s, _ := r[k].(string)
	return s
}

func (r logRecord) num(k string) (int, bool) {
	f, ok := r[k].(float64)
	return int(f), ok
}

// vigilLog parses vigil's JSON log lines out of a container's stderr.
func vigilLog(stderr string) []logRecord {
	var recs []logRecord
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var r logRecord
		if json.Unmarshal([]byte(l), &r) == nil && r["msg"] != nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// find returns the log records with that message (and service, if given).
func find(recs []logRecord, msg, service string) []logRecord {
	var out []logRecord
	for _, r := range recs {
		if r.str("msg") == msg && (service == "" || r.str("service") == service) {
			out = append(out, r)
		}
	}
	return out
}

// status is `vigil status --json` as the control protocol has it.
type status struct {
	Services []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Pid      int    `json:"pid"`
		Restarts int    `json:"restarts"`
		Retries  int    `json:"retries"`
		LastExit *int   `json:"last_exit"`
		Ready    bool   `json:"ready"`
	} `json:"services"`
}

func (s status) state(name string) string {
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc.State
		}
	}
	return ""
}

func (s status) String() string {
	var parts []string
	for _, svc := range s.Services {
		parts = append(parts, svc.Name+"="+svc.State)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// statusJSON runs `vigil status --json` in the container; ok is false while
// vigil does not answer yet.
func statusJSON(t testing.TB, id string, execOpts ...string) (status, bool) {
	t.Helper()
	args := append([]string{"exec"}, execOpts...)
	r := dockerT(t, cmdTimeout, append(args, id, "/vigil", "status", "--json")...)
	var st status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		return st, false
	}
	return st, true
}

// waitReady waits until `vigil ready` exits 0 in the container.
func waitReady(t testing.TB, id string, timeout time.Duration, execOpts ...string) {
	t.Helper()
	args := append(append([]string{"exec"}, execOpts...), id, "/vigil", "ready")
	var last result
	deadline := time.Now().Add(timeout)
	for {
		last = dockerT(t, cmdTimeout, args...)
		if last.code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v: vigil ready: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// proc is one process of a container, from /proc/PID/stat.
type proc struct {
	pid, ppid int
	comm      string
	state     string
}

// procs lists a container's processes by reading every /proc/PID/stat in it
// with busybox cat (processes gone between the glob and the read are
// skipped).
func procs(t testing.TB, id string) []proc {
	t.Helper()
	r := dexec(t, id, "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true")
	if r.code != 0 {
		t.Fatalf("reading /proc: %s", r)
	}
	var out []proc
	for _, l := range strings.Split(r.stdout, "\n") {
		open, end := strings.IndexByte(l, '('), strings.LastIndexByte(l, ')')
		if open < 0 || end < open {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(l[:open]))
		f := strings.Fields(l[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, proc{pid: pid, ppid: ppid, comm: l[open+1 : end], state: f[0]})
	}
	return out
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func indentText(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
