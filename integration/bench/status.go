package main

// The second table: `vigil status` as a whole command (process start
// included) against `supervisorctl status`, both daemons supervising the same
// N services that each run `sleep 100000`.
//
// Each daemon runs as PID 1 of its own PID namespace, by `unshare --pid
// --fork --mount-proc --kill-child DAEMON`, in its own process group: when
// the daemon goes, the kernel kills every service it left behind, so nothing
// outlives the bench, whatever way it ends.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// daemon is vigil or supervisord running as PID 1 of a fresh PID namespace.
type daemon struct {
	name    string
	cmd     *exec.Cmd     // unshare, the leader of its own process group
	initPid int           // host pid of the daemon itself, once found
	ns      string        // its PID namespace, as /proc/PID/ns/pid reads
	grace   time.Duration // between SIGTERM and SIGKILL; 0 = SIGKILL at once
	log     string        // its stdout and stderr
	done    chan struct{}
	once    sync.Once
}

// startDaemon starts argv as PID 1 of a new PID namespace, with env, its
// output going to logPath.
func startDaemon(name, logPath string, grace time.Duration, env []string, argv ...string) (*daemon, error) {
	return startDaemonOut(name, logPath, nil, grace, env, argv...)
}

// startDaemonOut is startDaemon with the daemon's stdout going to stdout
// (nil: to logPath as well); its stderr goes to logPath.
func startDaemonOut(name, logPath string, stdout *os.File, grace time.Duration, env []string, argv ...string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(unsharePath, unshareArgs("", argv)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// Its own group, for the kill; if the bench dies, unshare dies, and
	// --kill-child takes the daemon and with it the whole namespace along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	d := &daemon{name: name, cmd: cmd, grace: grace, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if pid := childOf(cmd.Process.Pid); pid > 0 {
			d.initPid = pid
			d.ns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
			return d, nil
		}
		if d.exited() {
			break
		}
	}
	d.grace = 0
	d.stop()
	return nil, d.failure(errors.New("did not start"))
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop asks the daemon to end (SIGTERM) and gives it d.grace to do so, then
// kills it (PID 1: the kernel kills the rest of its namespace and lets it go
// only once they are all gone) and waits for unshare to see that; then kills
// the process group (unshare, and the daemon if still in it) and collects
// unshare. Safe to call more than once and from a signal handler's
// goroutine.
func (d *daemon) stop() {
	d.once.Do(func() {
		if d.initPid > 0 && d.grace > 0 && !d.exited() {
			unix.Kill(d.initPid, unix.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(d.grace):
				fmt.Fprintf(os.Stderr, "bench: %s still running %s after SIGTERM: killed\n", d.name, d.grace)
			}
		}
		if d.initPid > 0 && !d.exited() {
			unix.Kill(d.initPid, unix.SIGKILL)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
			}
		}
		unix.Kill(-d.cmd.Process.Pid, unix.SIGKILL)
		<-d.done
	})
}

// leftovers counts the processes still in the daemon's PID namespace,
// after waiting up to 5 s for them to go.
func (d *daemon) leftovers() int {
	n := d.countNS()
	for deadline := time.Now().Add(5 * time.Second); n > 0 && time.Now().Before(deadline); n = d.countNS() {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

func (d *daemon) countNS() int {
	if d.ns == "" {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && ns == d.ns {
			n++
		}
	}
	return n
}

// failure adds the end of the daemon's log to err.
func (d *daemon) failure(err error) error {
	b, _ := os.ReadFile(d.log)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return fmt.Errorf("%s: %w; its log ends: %s", d.name, err, strings.ReplaceAll(s, "\n", " / "))
	}
	return fmt.Errorf("%s: %w", d.name, err)
}

// probe is one timed command: a column of nothing, a row of the table.
type probe struct {
	label string
	argv  []string
	env   []string
	path  string // argv[0] resolved once, outside the timing
}

// timeProbe is the wall time of one whole run of p (start, reply, exit),
// stdout and stderr to /dev/null; the run must exit 0.
func timeProbe(p *probe, devnull *os.File) (time.Duration, error) {
	cmd := &exec.Cmd{Path: p.path, Args: p.argv, Env: p.env, Stdout: devnull, Stderr: devnull}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		// Once more, for the message.
		out, _ := (&exec.Cmd{Path: p.path, Args: p.argv, Env: p.env}).CombinedOutput()
		return d, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// output runs argv and returns its stdout, and stderr in the error.
func output(env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// cleanEnv is the bench's environment without vigil's and tini's settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") && !strings.HasPrefix(kv, "TINI_") {
			env = append(env, kv)
		}
	}
	return env
}

// vigilRunning counts the services `vigil status --json` says are running
// (state running or ready, with a pid).
func vigilRunning(env []string, vigil string) (int, string, error) {
	out, err := output(env, vigil, "status", "--json")
	if err != nil {
		return 0, out, err
	}
	var st struct {
		Services []struct {
			State string `json:"state"`
			Pid   int    `json:"pid"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return 0, out, err
	}
	n := 0
	for _, s := range st.Services {
		if (s.State == "running" || s.State == "ready") && s.Pid > 0 {
			n++
		}
	}
	return n, out, nil
}

// supervisorRunning counts the RUNNING lines of `supervisorctl status`.
func supervisorRunning(env []string, ctl, conf string) (int, string, error) {
	out, err := output(env, ctl, "-c", conf, "status")
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "RUNNING" {
			n++
		}
	}
	return n, out, err
}

// waitRunning polls count until it says want, for at most timeout.
func waitRunning(d *daemon, want int, timeout time.Duration, count func() (int, string, error)) error {
	deadline := time.Now().Add(timeout)
	var n int
	var out string
	var err error
	for time.Now().Before(deadline) {
		if d.exited() {
			return d.failure(errors.New("exited"))
		}
		if n, out, err = count(); n == want && err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(out) > 500 {
		out = out[:500] + "..."
	}
	return d.failure(fmt.Errorf("%d of %d services running after %s (last error: %v; last output: %q)", n, want, timeout, err, out))
}

func vigilConfig(n int) []byte {
	type svc struct {
		Name    string   `json:"name"`
		Command []string `json:"command"`
	}
	var c struct {
		Services []svc `json:"services"`
	}
	for i := 0; i < n; i++ {
		c.Services = append(c.Services, svc{Name: fmt.Sprintf("s%03d", i), Command: []string{"sleep", "100000"}})
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

func supervisorConfig(dir string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `[unix_http_server]
file=%[1]s/supervisor.sock

[supervisord]
nodaemon=true
user=root
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock
`, dir)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\n[program:s%03d]\ncommand=sleep 100000\n", i)
	}
	return []byte(b.String())
}

// statusResult is what statusBench measured, for statusTable.
type statusResult struct {
	probes  []*probe
	times   map[string][]float64
	ctlName string // label of the supervisorctl row
	vigilV  string
	supV    string
	python  string
	conf    string // supervisord's config, as shown in the table
	notes   []string
	took    time.Duration
}

// statusBench sets up both daemons, waits for all services to run, times the
// commands interleaved, and always stops the daemons.
func statusBench(c config) (res *statusResult, err error) {
	started := time.Now()
	res = &statusResult{times: map[string][]float64{}}
	vigil, err := filepath.Abs(c.vigil)
	if err != nil {
		return nil, err
	}
	supervisord, err := exec.LookPath("supervisord")
	if err != nil {
		return nil, fmt.Errorf("%v (apt-get install supervisor; run.sh does)", err)
	}
	ctl, err := exec.LookPath("supervisorctl")
	if err != nil {
		return nil, err
	}
	res.vigilV = version(vigil)
	res.supV = version(supervisord)
	res.python = interpreter(supervisord)

	var daemons []*daemon
	var mu sync.Mutex
	var dirs []string
	cleanup := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range daemons {
			d.stop()
		}
		for _, dir := range dirs {
			os.RemoveAll(dir)
		}
		dirs = nil
	}
	defer cleanup()
	// Ctrl-C and friends: stop the daemons, then die.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			fmt.Fprintf(os.Stderr, "bench: %v: stopping vigil and supervisord\n", s)
			cleanup()
			os.Exit(130)
		}
	}()
	mkdir := func(pattern string) (string, error) {
		dir, err := os.MkdirTemp("", pattern)
		if err == nil {
			mu.Lock()
			dirs = append(dirs, dir)
			mu.Unlock()
		}
		return dir, err
	}
	add := func(d *daemon) {
		mu.Lock()
		daemons = append(daemons, d)
		mu.Unlock()
	}

	// vigil
	vdir, err := mkdir("vigil-bench-status-*")
	if err != nil {
		return nil, err
	}
	vconf := filepath.Join(vdir, "vigil.json")
	if err := os.WriteFile(vconf, vigilConfig(c.services), 0o644); err != nil {
		return nil, err
	}
	venv := append(cleanEnv(), "VIGIL_SOCKET="+filepath.Join(vdir, "vigil.sock"))
	fmt.Fprintf(os.Stderr, "bench: status: starting vigil with %d services (%s)\n", c.services, vdir)
	vd, err := startDaemon("vigil", filepath.Join(vdir, "vigil.log"), 10*time.Second, venv, vigil, "-c", vconf)
	if err != nil {
		return nil, err
	}
	add(vd)

	// supervisord
	sdir, err := mkdir("vigil-bench-supervisor-*")
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(sdir, "logs"), 0o755); err != nil {
		return nil, err
	}
	sconf := filepath.Join(sdir, "supervisord.conf")
	res.conf = sconf
	if err := os.WriteFile(sconf, supervisorConfig(sdir, c.services), 0o644); err != nil {
		return nil, err
	}
	senv := cleanEnv()
	fmt.Fprintf(os.Stderr, "bench: status: starting supervisord with %d programs (%s)\n", c.services, sdir)
	// No SIGTERM for supervisord: its orderly stop of 100 programs takes
	// some 15 s here and is not measured; SIGKILL to it, PID 1, ends its
	// whole namespace at once.
	sd, err := startDaemon("supervisord", filepath.Join(sdir, "supervisord.out"), 0, senv, supervisord, "-c", sconf)
	if err != nil {
		return nil, err
	}
	add(sd)

	// Both report every service running (supervisord's after its startsecs,
	// 1 s by default), and vigil says it is ready.
	t0 := time.Now()
	if err := waitRunning(vd, c.services, 60*time.Second, func() (int, string, error) { return vigilRunning(venv, vigil) }); err != nil {
		return nil, err
	}
	if _, err := output(venv, vigil, "ready"); err != nil {
		return nil, vd.failure(err)
	}
	if err := waitRunning(sd, c.services, 60*time.Second, func() (int, string, error) { return supervisorRunning(senv, ctl, sconf) }); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: status: all %d services running under both in %s\n", c.services, time.Since(t0).Round(10*time.Millisecond))

	truePath, err := exec.LookPath("true")
	if err != nil {
		return nil, err
	}
	res.ctlName = "`supervisorctl -c CONF status`"
	res.probes = []*probe{
		{label: "`vigil status`", argv: []string{vigil, "status"}, env: venv, path: vigil},
		{label: "`vigil status --json`", argv: []string{vigil, "status", "--json"}, env: venv, path: vigil},
		{label: "`vigil ready`", argv: []string{vigil, "ready"}, env: venv, path: vigil},
		{label: res.ctlName, argv: []string{ctl, "-c", sconf, "status"}, env: senv, path: ctl},
		{label: "`vigil version` (vigil's start and exit, no socket)", argv: []string{vigil, "version"}, env: venv, path: vigil},
		{label: "`true` (starting any process)", argv: []string{"true"}, env: senv, path: truePath},
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()

	const warm = 3
	failed := map[string]bool{}
	fmt.Fprintf(os.Stderr, "bench: status round trip, %d rounds (+%d warm-up)\n", c.statusRounds, warm)
	for r := 0; r < c.statusRounds+warm; r++ {
		for i := range res.probes {
			p := res.probes[(r+i)%len(res.probes)]
			if failed[p.label] {
				continue
			}
			d, err := timeProbe(p, devnull)
			if err != nil {
				res.note("%s failed, left out from then on: %v", p.label, err)
				failed[p.label] = true
				continue
			}
			if r >= warm {
				res.times[p.label] = append(res.times[p.label], ms(d))
			}
		}
	}

	// Still all running at the end?
	if n, _, err := vigilRunning(venv, vigil); n != c.services || err != nil {
		res.note("after the rounds vigil reports %d of %d services running (%v)", n, c.services, err)
	}
	if n, _, err := supervisorRunning(senv, ctl, sconf); n != c.services || err != nil {
		res.note("after the rounds supervisorctl reports %d of %d services running (%v)", n, c.services, err)
	}
	for _, d := range []*daemon{vd, sd} {
		if d.exited() {
			res.note("%v", d.failure(errors.New("exited during the rounds")))
		}
	}
	cleanup()
	for _, d := range []*daemon{vd, sd} {
		if n := d.leftovers(); n > 0 {
			res.note("%d processes of %s's namespace still there after the cleanup", n, d.name)
		}
	}
	res.took = time.Since(started)
	return res, nil
}

func (r *statusResult) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	fmt.Fprintln(os.Stderr, "bench:", s)
}

// interpreter is the first line `INTERP --version` prints for the #! of a
// script, e.g. "Python 3.11.2"; "" if there is none.
func interpreter(script string) string {
	b := make([]byte, 256)
	f, err := os.Open(script)
	if err != nil {
		return ""
	}
	n, _ := f.Read(b)
	f.Close()
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	f0 := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(f0) == 0 {
		return ""
	}
	return version(f0[0])
}

// statusTable prints the second table.
func statusTable(c config, res *statusResult) {
	fmt.Printf("## `vigil status` against `supervisorctl status`, %d services\n\n", c.services)
	var u unix.Utsname
	unix.Uname(&u)
	fmt.Printf("Linux %s, %s, %d cores. ", unix.ByteSliceToString(u.Release[:]), cpuModel(), runtime.NumCPU())
	fmt.Printf("Took %s. vigil (%s) and supervisord %s (%s) each run as PID 1 of `unshare --pid --fork --mount-proc --kill-child DAEMON`, "+
		"each supervising %d services running `sleep 100000` (vigil: a generated `-c` config, argv form, `VIGIL_SOCKET` in a temp dir; "+
		"supervisord: a generated config with `nodaemon`, its `unix_http_server` socket and logs in its own temp dir, one `[program:x]` each). "+
		"Both reported all %d running before timing began. Each sample is the wall time of one whole command, process start and exit included, "+
		"stdout and stderr to /dev/null; %d rounds after 3 of warm-up, the commands interleaved, the first rotated each round.\n\n",
		res.took.Round(time.Second), res.vigilV, res.supV, res.python, c.services, c.services, c.statusRounds)
	ctl := res.times[res.ctlName]
	ctlMed, ctlP90 := median(ctl), percentile(ctl, 90)
	fmt.Println("| command | median (ms) | p90 (ms) | median / supervisorctl's | p90 / supervisorctl's |")
	fmt.Println("|---|--:|--:|--:|--:|")
	for _, p := range res.probes {
		xs := res.times[p.label]
		med, p90 := median(xs), percentile(xs, 90)
		fmt.Printf("| %s | %s | %s | %s | %s |\n", p.label, fmtMs(med), fmtMs(p90), ratio(med, ctlMed), ratio(p90, ctlP90))
	}
	fmt.Println()
	vs := res.times["`vigil status`"]
	vmed := median(vs)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	fmt.Printf("Targets of the issue, reported and not asserted: `vigil status` median under 10 ms: %s ms, %s; faster than `supervisorctl status`: %s, %s.\n",
		fmtMs(vmed), verdict(vmed < 10), ratio(vmed, ctlMed), verdict(vmed < ctlMed))
	for _, n := range res.notes {
		fmt.Println("- " + n)
	}
}

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}
