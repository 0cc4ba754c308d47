//go:build k8s

package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The node run.sh started: its work dir and what lives in it.
var (
	work           string // VIGIL_K8S_WORK
	sock           string // containerd's socket
	manifestDir    string // the kubelet's staticPodPath
	dataRoot       string // hostPath volumes: one dir per pod
	podLogDir      string // the kubelet's podLogsDir
	node           string // the node name: static pods are called NAME-<node>
	kubeletVersion string
	events         *eventLog
)

// The images run.sh imported.
const (
	testImage    = "localhost/vigil-k8s-test:1"
	wrapperImage = "docker.io/library/vigil-wrapper:dev"
	readOnlyPods = "http://127.0.0.1:10255/pods"
)

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	work = os.Getenv("VIGIL_K8S_WORK")
	if work == "" {
		fmt.Fprintln(os.Stderr, "k8s tests: VIGIL_K8S_WORK is not set: run them with `make test-k8s` "+
			"(integration/k8s/run.sh), which starts containerd and a kubelet for them")
		return 1
	}
	sock = filepath.Join(work, "containerd.sock")
	manifestDir = filepath.Join(work, "manifests")
	dataRoot = filepath.Join(work, "data")
	podLogDir = filepath.Join(work, "pod-logs")
	kubeletVersion = os.Getenv("VIGIL_K8S_KUBELET_VERSION")
	h, err := os.Hostname()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	node = strings.ToLower(strings.TrimSpace(h))
	events, err = startEvents()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s tests:", err)
		return 1
	}
	code := m.Run()
	events.stop()
	printFigures()
	return code
}

// ---- figures: what each scenario measured, printed together at the end ----

var (
	figMu   sync.Mutex
	figures = map[string][]string{}
)

// figure records one measured value of a scenario (and logs it).
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log("figure: " + s)
	figMu.Lock()
	defer figMu.Unlock()
	figures[t.Name()] = append(figures[t.Name()], s)
}

func printFigures() {
	figMu.Lock()
	defer figMu.Unlock()
	var names []string
	for n := range figures {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("\n=== figures (kubelet %s, containerd's events, the read-only /pods, hostPath files)\n", kubeletVersion)
	for _, n := range names {
		fmt.Printf("%s\n", n)
		for _, f := range figures[n] {
			fmt.Printf("    %s\n", f)
		}
	}
}

// ---- containerd's events ----

// event is one line of `ctr events`: the topic and the fields of the task
// events the tests use.
type event struct {
	At          time.Time // containerd's timestamp
	Topic       string
	ContainerID string `json:"container_id"`
	ID          string `json:"id"` // /tasks/exit: the container's ID for its init process, else the exec ID
	ExecID      string `json:"exec_id"`
	Pid         int    `json:"pid"`
	ExitStatus  int    `json:"exit_status"`
}

type eventLog struct {
	mu   sync.Mutex
	all  []event
	cmd  *exec.Cmd
	done chan struct{}
}

// startEvents runs `ctr events` for the whole run and keeps every event.
func startEvents() (*eventLog, error) {
	l := &eventLog{done: make(chan struct{})}
	l.cmd = exec.Command("ctr", "--address", sock, "events")
	out, err := l.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	l.cmd.Stderr = os.Stderr
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ctr events: %w", err)
	}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if e, ok := parseEvent(sc.Text()); ok {
				l.mu.Lock()
				l.all = append(l.all, e)
				l.mu.Unlock()
			}
		}
	}()
	// ctr subscribes asynchronously: give it a moment before the first pod.
	time.Sleep(300 * time.Millisecond)
	return l, nil
}

// parseEvent reads "2026-01-02 15:04:05.123456789 +0000 UTC k8s.io /tasks/exit {json}".
func parseEvent(line string) (event, bool) {
	f := strings.SplitN(line, " ", 7)
	if len(f) < 6 {
		return event{}, false
	}
	var e event
	if len(f) == 7 && strings.HasPrefix(f[6], "{") {
		if json.Unmarshal([]byte(f[6]), &e) != nil {
			return event{}, false
		}
	}
	at, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", strings.Join(f[:4], " "))
	if err != nil {
		at = time.Now()
	}
	e.At, e.Topic = at, f[5]
	return e, true
}

func (l *eventLog) stop() {
	l.cmd.Process.Kill()
	l.cmd.Wait()
	<-l.done
}

func (l *eventLog) find(pred func(event) bool) []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event
	for _, e := range l.all {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

// wait returns the first event that satisfies pred, waiting up to timeout.
func (l *eventLog) wait(t *testing.T, timeout time.Duration, what string, pred func(event) bool) event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if es := l.find(pred); len(es) > 0 {
			return es[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no containerd event within %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// initExit: the exit of a container's own process (not of an exec in it).
func initExit(cid string) func(event) bool {
	return func(e event) bool { return e.Topic == "/tasks/exit" && e.ContainerID == cid && e.ID == cid }
}

// execExits: the exits of exec processes (probes) in a container.
func execExits(cid string) []event {
	return events.find(func(e event) bool {
		return e.Topic == "/tasks/exit" && e.ContainerID == cid && e.ID != cid
	})
}

func execStarts(cid string) []event {
	return events.find(func(e event) bool { return e.Topic == "/tasks/exec-started" && e.ContainerID == cid })
}

// initPid: the host PID of a container's own process, from /tasks/start.
func initPid(t *testing.T, cid string) int {
	t.Helper()
	e := events.wait(t, 30*time.Second, "start of "+cid, func(e event) bool {
		return e.Topic == "/tasks/start" && e.ContainerID == cid
	})
	return e.Pid
}

// ---- the kubelet's read-only /pods ----

type podList struct {
	Items []podInfo `json:"items"`
}

type podInfo struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode    int    `json:"exitCode"`
		Reason      string `json:"reason"`
		ContainerID string `json:"containerID"`
	} `json:"terminated"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
}

func (p podInfo) condition(typ string) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status == "True"
		}
	}
	return false
}

func (p podInfo) container(name string) (containerStatus, bool) {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c, true
		}
	}
	return containerStatus{}, false
}

// id is the containerd ID of a container status ("containerd://ID").
func (c containerStatus) id() string {
	_, id, _ := strings.Cut(c.ContainerID, "://")
	return id
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// pods is the kubelet's /pods by full pod name.
func pods() (map[string]podInfo, error) {
	resp, err := httpClient.Get(readOnlyPods)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /pods: %s", resp.Status)
	}
	var l podList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, err
	}
	m := map[string]podInfo{}
	for _, p := range l.Items {
		m[p.Metadata.Name] = p
	}
	return m, nil
}

// ---- static pods ----

// testPod is one static pod: its manifest, its hostPath dir, its name.
type testPod struct {
	t        *testing.T
	name     string // metadata.name in the manifest
	full     string // name-<node>, as the kubelet calls it
	data     string // W/data/<name>, mounted at /data by the tests' manifests
	manifest string
	source   string // an example's manifest (examples/kubernetes)
	written  time.Time
	deleted  time.Time
	cids     map[string]bool // every container ID seen
}

// newPod prepares a pod's hostPath dir (with the files given, e.g.
// vigil.json); the manifest is written by start.
func newPod(t *testing.T, name string, files map[string]string) *testPod {
	t.Helper()
	p := &testPod{t: t, name: name, full: name + "-" + node, data: filepath.Join(dataRoot, name),
		manifest: filepath.Join(manifestDir, name+".yaml"), cids: map[string]bool{}}
	if err := os.MkdirAll(p.data, 0o777); err != nil {
		t.Fatal(err)
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(p.data, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(p.cleanup)
	return p
}

// start writes the manifest (atomically: the kubelet skips dot files) with
// {{NAME}} and {{DATA}} filled in.
func (p *testPod) start(manifest string) {
	p.t.Helper()
	manifest = strings.NewReplacer("{{NAME}}", p.name, "{{DATA}}", p.data, "{{IMAGE}}", testImage,
		"{{WRAPPER}}", wrapperImage).Replace(manifest)
	if err := os.WriteFile(filepath.Join(p.data, "pod.yaml"), []byte(manifest), 0o644); err != nil {
		p.t.Fatal(err)
	}
	tmp := filepath.Join(manifestDir, "."+p.name+".yaml")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.manifest); err != nil {
		p.t.Fatal(err)
	}
	p.written = time.Now()
}

// remove deletes the manifest: the kubelet stops the pod (and deletes its
// log files: they are copied to W/logs/NAME.log first, for VIGIL_K8S_KEEP=1).
func (p *testPod) remove() {
	p.t.Helper()
	p.saveLogs()
	if err := os.Remove(p.manifest); err != nil {
		p.t.Fatal(err)
	}
	p.deleted = time.Now()
}

// status is the pod's /pods entry; ok is false while the kubelet lists none.
func (p *testPod) status() (podInfo, bool) {
	m, err := pods()
	if err != nil {
		p.t.Logf("/pods: %v", err)
		return podInfo{}, false
	}
	pi, ok := m[p.full]
	if ok {
		for _, c := range pi.Status.ContainerStatuses {
			if id := c.id(); id != "" {
				p.cids[id] = true
			}
		}
	}
	return pi, ok
}

// waitFor polls /pods every 100 ms until cond holds (fatal after timeout).
func (p *testPod) waitFor(timeout time.Duration, what string, cond func(podInfo) bool) podInfo {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last podInfo
	var seen bool
	for {
		pi, ok := p.status()
		if ok {
			last, seen = pi, true
			if cond(pi) {
				return pi
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last.Status, "", "  ")
			p.t.Fatalf("pod %s: no %s within %v (listed: %v); last status:\n%s", p.full, what, timeout, seen, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// container waits until the container runs and returns its status.
func (p *testPod) running(name string, timeout time.Duration) containerStatus {
	p.t.Helper()
	pi := p.waitFor(timeout, name+" running", func(pi podInfo) bool {
		c, ok := pi.container(name)
		return ok && c.State.Running != nil && c.id() != ""
	})
	c, _ := pi.container(name)
	return c
}

// cleanup removes the manifest if the test did not, waits (bounded) until
// the pod's containers are gone, and logs the pod's logs on failure.
func (p *testPod) cleanup() {
	if p.t.Failed() {
		p.t.Logf("logs of %s:\n%s", p.full, indent(p.allLogs()))
		if b, err := os.ReadFile(filepath.Join(p.data, "events")); err == nil {
			p.t.Logf("%s/events:\n%s", p.data, indent(string(b)))
		}
	}
	if _, err := os.Stat(p.manifest); err == nil {
		p.saveLogs()
		os.Remove(p.manifest)
	}
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		_, listed := p.status()
		alive := false
		for cid := range p.cids {
			if len(events.find(initExit(cid))) == 0 && taskRunning(cid) {
				alive = true
			}
		}
		if !listed && !alive {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Logf("pod %s still there 45 s after its manifest was removed", p.full)
}

func taskRunning(cid string) bool {
	out, _, _ := ctr("tasks", "ls")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == cid && f[2] == "RUNNING" {
			return true
		}
	}
	return false
}

// logs is what a container wrote (stdout and stderr), from the kubelet's
// log files: every restart's file in order, the CRI prefix cut off.
func (p *testPod) logs(container string) string {
	files, _ := filepath.Glob(filepath.Join(podLogDir, "*_"+p.full+"_*", container, "*.log"))
	sort.Slice(files, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(files[i]), ".log"))
		b, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(files[j]), ".log"))
		return a < b
	})
	var sb strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			// 2026-11-26T04:40:00.123456789Z stdout F text
			if f := strings.SplitN(l, " ", 4); len(f) == 4 {
				sb.WriteString(f[3])
				if f[2] == "F" {
					sb.WriteByte('\n')
				}
			}
		}
	}
	return sb.String()
}

func (p *testPod) saveLogs() {
	dir := filepath.Join(work, "logs")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, p.name+".log"), []byte(p.allLogs()), 0o644)
}

func (p *testPod) allLogs() string {
	dirs, _ := filepath.Glob(filepath.Join(podLogDir, "*_"+p.full+"_*", "*"))
	var sb strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&sb, "--- %s\n%s", filepath.Base(d), p.logs(filepath.Base(d)))
	}
	return sb.String()
}

// ---- what the services wrote to the hostPath: svc.sh's events ----

type svcEvent struct {
	At   time.Time
	Name string
	What string
}

// svcEvents reads DATA/events ("UPTIME NAME WHAT", see svc.sh) with each
// /proc/uptime stamp turned into wall-clock time.
func (p *testPod) svcEvents() []svcEvent {
	b, err := os.ReadFile(filepath.Join(p.data, "events"))
	if err != nil {
		return nil
	}
	now, up := time.Now(), uptime()
	var out []svcEvent
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 {
			continue
		}
		u, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out = append(out, svcEvent{At: now.Add(-time.Duration((up - u) * float64(time.Second))), Name: f[1], What: f[2]})
	}
	return out
}

// logRecord is one line of vigil's JSON log.
type logRecord struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Service string    `json:"service"`
	Signal  string    `json:"signal"`
}

// vigilLog reads DATA/vigil.log (VIGIL_LOG_FILE, VIGIL_LOG_FORMAT=json).
func vigilLog(p *testPod) []logRecord {
	var out []logRecord
	for _, l := range strings.Split(p.readFile("vigil.log"), "\n") {
		var r logRecord
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg != "" {
			out = append(out, r)
		}
	}
	return out
}

func findSvc(evs []svcEvent, name, prefix string) (svcEvent, bool) {
	for _, e := range evs {
		if e.Name == name && strings.HasPrefix(e.What, prefix) {
			return e, true
		}
	}
	return svcEvent{}, false
}

func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[0], 64)
	return u
}

func (p *testPod) readFile(name string) string {
	b, _ := os.ReadFile(filepath.Join(p.data, name))
	return string(b)
}

// ---- processes, from the host's /proc ----

type hostProc struct {
	pid, ppid int
	state     string
	comm      string
	start     uint64 // field 22: the process's identity together with its PID
	nspid     []int  // NSpid: the PID in each namespace, outermost first
	pidNS     string // the /proc/PID/ns/pid link ("" for a zombie that has none)
}

func readProc(pid int) (hostProc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return hostProc{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return hostProc{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return hostProc{}, false
	}
	p := hostProc{pid: pid, comm: s[open+1 : end], state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
				for _, x := range strings.Fields(v) {
					n, _ := strconv.Atoi(x)
					p.nspid = append(p.nspid, n)
				}
			}
		}
	}
	p.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	return p, true
}

func allProcs() []hostProc {
	ents, _ := os.ReadDir("/proc")
	var out []hostProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// inNS: the processes of a PID namespace (by its ns/pid link), with the
// zombies among their children (whose link may be gone).
func inNS(ns string) []hostProc {
	all := allProcs()
	in := map[int]bool{}
	for _, p := range all {
		if p.pidNS == ns {
			in[p.pid] = true
		}
	}
	var out []hostProc
	for _, p := range all {
		if in[p.pid] || (p.state == "Z" && in[p.ppid]) {
			out = append(out, p)
		}
	}
	return out
}

// innerPid is a process's PID in its own (innermost) namespace.
func (p hostProc) innerPid() int {
	if len(p.nspid) == 0 {
		return p.pid
	}
	return p.nspid[len(p.nspid)-1]
}

// zombieWatch samples a PID namespace every 200 ms: the zombies in it (a
// zombie child of vigil still there a second later was not reaped: leaked;
// every orphan of the namespace is vigil's child), and the orphans
// that were reparented to vigil (direct children of vigil called "sleep":
// vigil's services are shells, so a sleep under vigil lost its parent).
type zombieWatch struct {
	mu        sync.Mutex
	samples   int
	maxZ      int                // most zombies in one sample
	zombies   map[[2]uint64]bool // every zombie seen
	firstSeen map[[2]uint64]time.Time
	leaked    map[[2]uint64]string // zombies seen over more than 1 s
	orphans   map[[2]uint64]bool
	stopc     chan struct{}
	done      chan struct{}
}

func watchZombies(ns string, vigilPid int) *zombieWatch {
	w := &zombieWatch{zombies: map[[2]uint64]bool{}, firstSeen: map[[2]uint64]time.Time{},
		leaked: map[[2]uint64]string{}, orphans: map[[2]uint64]bool{},
		stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample(ns, vigilPid)
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *zombieWatch) sample(ns string, vigilPid int) {
	ps := inNS(ns)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	z := 0
	for _, p := range ps {
		k := [2]uint64{uint64(p.pid), p.start}
		if p.ppid == vigilPid && p.comm == "sleep" {
			w.orphans[k] = true
		}
		if p.state != "Z" {
			continue
		}
		z++
		w.zombies[k] = true
		if first, ok := w.firstSeen[k]; !ok {
			w.firstSeen[k] = now
		} else if now.Sub(first) > time.Second && p.ppid == vigilPid {
			w.leaked[k] = fmt.Sprintf("pid %d (%s), a zombie child of vigil for %v", p.pid, p.comm,
				now.Sub(first).Round(100*time.Millisecond))
		}
	}
	if z > w.maxZ {
		w.maxZ = z
	}
}

// stop ends the sampling; the figures stay readable.
func (w *zombieWatch) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	<-w.done
}

func (w *zombieWatch) report() (samples, seen, maxAtOnce, orphans int, leaked []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.leaked {
		leaked = append(leaked, l)
	}
	sort.Strings(leaked)
	return w.samples, len(w.zombies), w.maxZ, len(w.orphans), leaked
}

// lingeringZombies lists the zombie children of parent (vigil, the reaper
// of every orphan in its namespace) in a PID namespace that are still there
// 1.5 s later: not reaped. (A zombie seen once may be a child that exited a
// moment ago; a service's own children are its business, not vigil's.)
func lingeringZombies(ns string, parent int) []hostProc {
	first := map[[2]uint64]bool{}
	for _, p := range inNS(ns) {
		if p.state == "Z" && p.ppid == parent {
			first[[2]uint64{uint64(p.pid), p.start}] = true
		}
	}
	if len(first) == 0 {
		return nil
	}
	time.Sleep(1500 * time.Millisecond)
	var out []hostProc
	for _, p := range inNS(ns) {
		if p.state == "Z" && p.ppid == parent && first[[2]uint64{uint64(p.pid), p.start}] {
			out = append(out, p)
		}
	}
	return out
}

// ---- ctr ----

// ctr runs `ctr -n k8s.io` on the tests' containerd.
func ctr(args ...string) (stdout string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "-n", "k8s.io"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String() + errb.String(), ee.ExitCode(), nil
	}
	return out.String() + errb.String(), 0, err
}

// signal sends sig to a container's own process, as `docker kill -s` does.
func signal(t *testing.T, cid, sig string) {
	t.Helper()
	out, code, err := ctr("tasks", "kill", "--signal", sig, cid)
	if err != nil || code != 0 {
		t.Fatalf("ctr tasks kill --signal %s %s: %v %d %s", sig, cid, err, code, out)
	}
}

// execIn runs argv in a container (`kubectl exec`), as its own user.
func execIn(t *testing.T, cid string, argv ...string) (string, int) {
	t.Helper()
	id := fmt.Sprintf("test-%d", time.Now().UnixNano())
	out, code, err := ctr(append([]string{"tasks", "exec", "--exec-id", id, cid}, argv...)...)
	if err != nil {
		t.Fatalf("ctr tasks exec %v: %v", argv, err)
	}
	return out, code
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
