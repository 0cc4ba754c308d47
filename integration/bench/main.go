// Command bench compares vigil with the inits it replaces (tini, tini-static,
// dumb-init, catatonit), each run as PID 1 of a fresh PID namespace by
// `unshare --pid --fork --mount-proc --kill-child INIT -- CHILD`. Every
// scenario is run round robin over the inits, one run each per round, with
// the starting init rotated, so that the noise of the machine falls on all of
// them alike. It prints a markdown table of figures: nothing is asserted.
//
// A second table (status.go) times `vigil status`, `vigil status --json` and
// `vigil ready` as whole commands against `supervisorctl status`, vigil and
// supervisord each supervising the same 100 services.
//
// A third (reexec.go) times the pause of `vigil reexec` with 10 and 1000
// services, and a fourth (statewrites.go) counts the writes of state.json
// while services crash in a loop.
//
// A fifth (supervisors.go) sets vigil against supervisord, runit and s6, each
// supervising the same services: start of 100 and 1000, memory and context
// switches of the tree idle, restart latency; vigil's `log: prefix`
// throughput against `log: inherit`, and with a `log_file`; and vigil's
// memory with 100 services whose log rings are full.
//
// A sixth (schedules.go) times the lateness of `@every 1s` jobs against
// supercronic running the same jobs, counts the wake-ups of both idle with
// 100 hourly jobs, and times the start of 1000 copies of one service
// against 1000 definitions.
//
// A seventh (health.go) prices health checks and the HTTP endpoint: an exec
// probe (`vigil ready`) against GET /readyz, the detection of a hung
// service, vigil with 100 services tcp-checked every second.
//
// Run it through integration/bench/run.sh (`make bench`), which builds it and
// its child (child/child.c) and installs the other inits and supervisor.
package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// anchor is one init under test, a column of the table.
type anchor struct {
	name    string
	path    string // as given
	orig    string // symlinks resolved
	real    string // what runs: orig, or the copy of it that copyTo made
	version string
	static  bool
	env     []string // added to the bench's environment
}

type config struct {
	vigil, child string
	floor        string // the Go floor (integration/bench/floor), "" for none
	also         string // more columns, NAME=PATH,...: another build of vigil
	only         string

	startups  int // rounds of start-up
	orphans   int // zombies per orphan storm
	storms    int // rounds of orphan storm
	signals   int // rounds of signal round trip
	shutdowns int // rounds of shutdown
	idle      time.Duration
	settle    time.Duration

	tables       string // which tables: inits, status, reexec, statewrites
	services     int    // services under vigil and supervisord
	statusRounds int    // rounds of the status round trip

	reexecServices []int  // N of each re-exec row
	reexecState    []bool // without and/or with a state dir
	reexecRounds   int
	reexecSettle   time.Duration

	crashServices int
	crashWarm     time.Duration
	crashDuration time.Duration

	supKinds        string // the supervisors table's columns
	supServices     []int  // N of each start row
	supRounds       []int  // rounds of each start row
	supTimeout      time.Duration
	supIdleServices int
	restartWindow   time.Duration
	restartVigil    time.Duration
	logBytes        int64
	logRounds       int

	healthProbes   int           // probes of each kind for the health table
	healthRounds   int           // hangs detected
	healthServices int           // services tcp-checked every second
	schedJobs      int           // @every 1s jobs for the tick lateness
	schedDuration  time.Duration // how long they run
	schedStart     int           // copies against definitions in the start rows
	schedRounds    int
	schedSettle    time.Duration // idle schedulers left to settle before the count
	supercronic    string        // its binary, "" = no supercronic column
}

func main() {
	var c config
	quick := flag.Bool("quick", false, "fewer rounds and a shorter idle period: done in well under a minute")
	flag.StringVar(&c.vigil, "vigil", "bin/vigil", "the vigil binary")
	flag.StringVar(&c.child, "child", "", "the bench child, built from integration/bench/child/child.c (required)")
	flag.StringVar(&c.floor, "floor", "", "the Go floor, built from integration/bench/floor: a column of the inits table named floor")
	flag.StringVar(&c.also, "also", "", "more columns of the inits table, NAME=PATH,... (another build of vigil, to compare before and after in one run)")
	flag.StringVar(&c.only, "inits", "vigil,vigil-nosock,floor,tini,tini-static,dumb-init,catatonit", "the inits to compare, those not installed left out (vigil-nosock: vigil with VIGIL_SOCKET=none)")
	flag.IntVar(&c.startups, "startups", 300, "rounds of start-up (INIT -- /bin/true)")
	flag.IntVar(&c.orphans, "orphans", 2000, "zombies in one orphan storm")
	flag.IntVar(&c.storms, "storms", 30, "rounds of orphan storm")
	flag.IntVar(&c.signals, "signals", 1000, "rounds of signal round trip")
	flag.IntVar(&c.shutdowns, "shutdowns", 100, "rounds of shutdown")
	flag.DurationVar(&c.idle, "idle", 10*time.Second, "idle period for the context switch count")
	flag.DurationVar(&c.settle, "settle", time.Second, "time an idle init is left to settle before it is measured")
	flag.StringVar(&c.tables, "tables", "inits,status,reexec,statewrites,supervisors,schedules,health", "the tables to make: inits (vigil against the C inits), status (vigil status against supervisorctl status), "+
		"reexec (the pause of vigil reexec), statewrites (state.json writes under a crash loop), supervisors (vigil against supervisord, runit and s6; log prefix throughput), "+
		"schedules (tick lateness, idle wake-ups with hourly jobs, start of instances), health (probe cost exec against http, detection of a hung service, 100 tcp checks a second)")
	flag.IntVar(&c.services, "services", 100, "services under vigil and supervisord for the status table")
	flag.IntVar(&c.statusRounds, "status-rounds", 200, "rounds of the status round trip (each times every command once)")
	reexecServices := flag.String("reexec-services", "10,1000", "services under vigil for the reexec table, one row (or two, see -reexec-state) each")
	reexecState := flag.String("reexec-state", "none,dir", "reexec table: none (VIGIL_STATE_DIR=none), dir (a state dir in a temp dir), or both")
	flag.IntVar(&c.reexecRounds, "reexec-rounds", 20, "re-execs per row of the reexec table")
	flag.DurationVar(&c.reexecSettle, "reexec-settle", 300*time.Millisecond, "pause before each re-exec")
	flag.IntVar(&c.crashServices, "crash-services", 20, "crashing services for the statewrites table")
	flag.DurationVar(&c.crashWarm, "crash-warm", time.Second, "crash loop before the statewrites window opens")
	flag.DurationVar(&c.crashDuration, "crash-duration", 10*time.Second, "statewrites window")
	flag.StringVar(&c.supKinds, "supervisors", "vigil,supervisord,runit,s6", "supervisors table: the columns, those not installed left out")
	supServices := flag.String("sup-services", "100,1000", "supervisors table: services of each start row")
	supRounds := flag.String("sup-rounds", "3,1", "supervisors table: rounds of start for each of -sup-services (the last one for any more)")
	flag.DurationVar(&c.supTimeout, "sup-timeout", 30*time.Second, "supervisors table: a start not done by then is reported as more than that")
	flag.IntVar(&c.supIdleServices, "sup-idle-services", 100, "supervisors table: services under each for memory and idle context switches (the idle period is -idle)")
	flag.DurationVar(&c.restartWindow, "restart-window", 8*time.Second, "supervisors table: how long the restart loops of supervisord, runit and s6 run")
	flag.DurationVar(&c.restartVigil, "restart-vigil", 2*time.Second, "supervisors table: how long each of vigil's two restart loops runs (inside the window)")
	flag.Int64Var(&c.logBytes, "log-bytes", 200_000_000, "supervisors table: bytes the log throughput service writes")
	flag.IntVar(&c.logRounds, "log-rounds", 3, "supervisors table: runs of each log mode")
	flag.IntVar(&c.healthProbes, "health-probes", 500, "health table: probes of each kind (vigil ready, GET /readyz)")
	flag.IntVar(&c.healthRounds, "health-rounds", 5, "health table: hangs of a service to detect")
	flag.IntVar(&c.healthServices, "health-services", 100, "health table: services tcp-checked every second (measured over -idle)")
	flag.IntVar(&c.schedJobs, "sched-jobs", 10, "schedules table: @every 1s jobs for the tick lateness")
	flag.DurationVar(&c.schedDuration, "sched-duration", 20*time.Second, "schedules table: how long the @every 1s jobs run")
	schedLong := flag.Bool("sched-long", false, "schedules table: the long form of the tick lateness, -sched-duration 10m unless given")
	flag.IntVar(&c.schedStart, "sched-start", 1000, "schedules table: services started as instances and as definitions")
	flag.IntVar(&c.schedRounds, "sched-rounds", 3, "schedules table: rounds of each start")
	// 7 s: each status request leaves vigil's Go runtime one wake-up 5 s
	// later (the request deadline's timer, stopped but still in the timer
	// heap); the bench's own status requests at the start must not fall in
	// the idle count.
	flag.DurationVar(&c.schedSettle, "sched-settle", 7*time.Second, "schedules table: time an idle scheduler is left to settle before its wake-ups are counted (more than 5 s: see the table)")
	flag.StringVar(&c.supercronic, "supercronic", "", "schedules table: the supercronic binary, a second column (run.sh builds it from tools/supercronic); \"\" leaves it out")
	flag.Parse()
	if *schedLong {
		set := false
		flag.Visit(func(f *flag.Flag) { set = set || f.Name == "sched-duration" })
		if !set {
			c.schedDuration = 10 * time.Minute
		}
	}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{
			"startups": "60", "storms": "5", "signals": "200", "shutdowns": "20",
			"idle": "3s", "settle": "500ms", "status-rounds": "30",
			"reexec-rounds": "5", "crash-duration": "5s",
			"sup-rounds": "1", "sup-timeout": "5s", "restart-window": "4s", "restart-vigil": "1s", "log-bytes": "20000000", "log-rounds": "1",
			"health-probes": "100", "health-rounds": "2",
			"sched-duration": "5s", "sched-rounds": "1",
		} {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}
	tables := map[string]bool{}
	for _, t := range strings.Split(c.tables, ",") {
		tables[strings.TrimSpace(t)] = true
	}
	bad := false
	for _, f := range strings.Split(*reexecServices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		bad = bad || err != nil || n < 1
		c.reexecServices = append(c.reexecServices, n)
	}
	for _, f := range strings.Split(*reexecState, ",") {
		switch strings.TrimSpace(f) {
		case "none":
			c.reexecState = append(c.reexecState, false)
		case "dir":
			c.reexecState = append(c.reexecState, true)
		default:
			bad = true
		}
	}
	for _, f := range strings.Split(*supServices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		bad = bad || err != nil || n < 1
		c.supServices = append(c.supServices, n)
	}
	for _, f := range strings.Split(*supRounds, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		bad = bad || err != nil || n < 1
		c.supRounds = append(c.supRounds, n)
	}
	for t := range tables {
		bad = bad || !slices.Contains([]string{"inits", "status", "reexec", "statewrites", "supervisors", "schedules", "health"}, t)
	}
	if bad || ((tables["inits"] || tables["supervisors"] || tables["schedules"]) && c.child == "") || c.schedJobs < 1 ||
		c.schedDuration <= 0 || c.schedSettle < 0 || c.schedStart < 1 || c.schedRounds < 1 || c.supTimeout <= 0 || c.supIdleServices < 1 ||
		c.restartWindow <= c.restartVigil*2 || c.logBytes < 100 || c.logRounds < 1 || flag.NArg() > 0 || c.services < 1 || c.statusRounds < 1 ||
		c.reexecRounds < 1 || c.crashServices < 1 || c.crashDuration <= 0 || c.healthProbes < 1 || c.healthRounds < 1 || c.healthServices < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(c, tables); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config, tables map[string]bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (unshare --pid)")
	}
	var err error
	if unsharePath, err = exec.LookPath("unshare"); err != nil {
		return err
	}
	printed := false
	gap := func() {
		if printed {
			fmt.Println()
		}
		printed = true
	}
	if tables["inits"] {
		if err := runInits(c); err != nil {
			return err
		}
		printed = true
	}
	if tables["status"] {
		res, err := statusBench(c)
		if err != nil {
			return fmt.Errorf("status table: %w", err)
		}
		gap()
		statusTable(c, res)
	}
	if tables["reexec"] {
		res, err := reexecBench(c)
		if err != nil {
			return fmt.Errorf("reexec table: %w", err)
		}
		gap()
		reexecTable(res)
	}
	if tables["statewrites"] {
		res, err := stateWritesBench(c)
		if err != nil {
			return fmt.Errorf("statewrites table: %w", err)
		}
		gap()
		stateTable(c, res)
	}
	if tables["supervisors"] {
		res, err := supervisorsBench(c)
		if err != nil {
			return fmt.Errorf("supervisors table: %w", err)
		}
		gap()
		supTable(c, res)
	}
	if tables["schedules"] {
		res, err := schedulesBench(c)
		if err != nil {
			return fmt.Errorf("schedules table: %w", err)
		}
		gap()
		schedTable(c, res)
	}
	if tables["health"] {
		res, err := healthBench(c)
		if err != nil {
			return fmt.Errorf("health table: %w", err)
		}
		gap()
		healthTable(c, res)
	}
	return nil
}

// runInits makes the first table: vigil against the C inits.
func runInits(c config) error {
	var err error
	if c.child, err = filepath.Abs(c.child); err != nil {
		return err
	}
	inits, err := findInits(c)
	if err != nil {
		return err
	}
	// Every init runs from a copy written with write(2): a file the Go
	// linker has just written (through mmap) sits in the page cache in a
	// layout that cost a freshly built vigil 0.66 ms of start-up and 0.25
	// ms of shutdown against a copy of itself (2026-12-02, 300 rounds), and
	// no image or package installs a binary that way.
	dir, err := os.MkdirTemp("", "vigil-bench-inits-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i := range inits {
		if err := inits[i].copyTo(dir); err != nil {
			return err
		}
	}
	names := make([]string, len(inits))
	for i, a := range inits {
		names[i] = a.name
	}
	b := &bench{c: c, inits: inits, notes: map[string]bool{}}
	started := time.Now()

	rows := []row{b.sizes()}
	for _, scenario := range []func() []row{b.startup, b.hostStartup, b.orphanStorm, b.signalRoundTrip, b.shutdown, b.idle} {
		t0 := time.Now()
		rows = append(rows, scenario()...)
		fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(t0).Round(100*time.Millisecond))
	}

	header(c, inits, time.Since(started))
	writeTable(os.Stdout, names, [][2]string{{"vigil", "floor"}, {"vigil-nosock", "floor"}, {"vigil", "tini"}, {"vigil", "tini-static"}, {"floor", "tini"}}, rows)
	fmt.Println()
	fmt.Println("Medians unless said otherwise; the ratio columns divide vigil's figure by the other's (for the rate, higher is better; for every other row, lower is).")
	for _, n := range b.noteList {
		fmt.Println("- " + n)
	}
	return nil
}

// findInits resolves the inits asked for; vigil must exist, a missing other
// one is left out with a word on stderr.
func findInits(c config) ([]anchor, error) {
	var out []anchor
	extra := map[string]string{}
	names := strings.Split(c.only, ",")
	if c.also != "" {
		for _, kv := range strings.Split(c.also, ",") {
			name, path, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				return nil, fmt.Errorf("-also %q: want NAME=PATH", kv)
			}
			extra[name] = path
			names = append(names, name)
		}
	}
	for _, name := range names {
		name = strings.TrimSpace(name)
		path := "/usr/bin/" + name
		if p, ok := extra[name]; ok {
			path = p
		} else if name == "vigil" || name == "vigil-nosock" {
			path = c.vigil
		} else if name == "floor" {
			if c.floor == "" {
				continue
			}
			path = c.floor
		} else if p, err := exec.LookPath(name); err == nil {
			path = p
		}
		abs, err := filepath.Abs(path)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			if name == "vigil" {
				return nil, fmt.Errorf("vigil: %v (run make build)", err)
			}
			fmt.Fprintf(os.Stderr, "bench: %s not found, left out\n", name)
			continue
		}
		a := anchor{name: name, path: path, orig: abs, real: abs, static: isStatic(abs)}
		if name == "vigil-nosock" {
			// The leanest wrapper: no control socket.
			a.env = []string{"VIGIL_SOCKET=none"}
		}
		a.version = version(abs)
		out = append(out, a)
	}
	return out, nil
}

// copyTo copies the init's binary into dir with plain writes and runs it
// from there.
func (a *anchor) copyTo(dir string) error {
	b, err := os.ReadFile(a.orig)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, a.name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return err
	}
	a.real = dst
	return nil
}

// version is the first line an init prints for --version.
func version(path string) string {
	out, _ := exec.Command(path, "--version").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// isStatic says whether the ELF file at path has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// header prints what the figures were taken on.
func header(c config, inits []anchor, took time.Duration) {
	var u unix.Utsname
	unix.Uname(&u)
	fmt.Printf("## vigil bench, %s\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Printf("Linux %s, %s, %d cores; took %s.\n", unix.ByteSliceToString(u.Release[:]), cpuModel(), runtime.NumCPU(), took.Round(time.Second))
	fmt.Printf("Each init runs from a copy in a temporary directory, as PID 1 of `unshare --pid --fork --mount-proc --kill-child INIT -- CMD`; rounds: start-up %d, orphan storm %d x %d zombies, signal %d, shutdown %d; idle %s after %s to settle.\n\n",
		c.startups, c.storms, c.orphans, c.signals, c.shutdowns, c.idle, c.settle)
	for _, a := range inits {
		link := "dynamic"
		if a.static {
			link = "static"
		}
		fmt.Printf("- %s: `%s` (%s), %s\n", a.name, a.orig, link, a.version)
	}
	fmt.Println()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// bench runs the scenarios and keeps the notes for below the table.
type bench struct {
	c        config
	inits    []anchor
	notes    map[string]bool
	noteList []string
}

// note records a remark (once) and tells it on stderr at once.
func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !b.notes[s] {
		b.notes[s] = true
		b.noteList = append(b.noteList, s)
		fmt.Fprintln(os.Stderr, "bench:", s)
	}
}

// rounds calls one(a) for every init, rounds times, round robin, starting
// each round one init further on.
func (b *bench) rounds(what string, n int, one func(a anchor)) {
	fmt.Fprintf(os.Stderr, "bench: %s, %d rounds\n", what, n)
	for r := 0; r < n; r++ {
		for i := range b.inits {
			one(b.inits[(r+i)%len(b.inits)])
		}
	}
}

func (b *bench) sizes() row {
	r := row{label: "binary size on disk (KiB; a dynamic one without its libc)", format: "%.0f", values: map[string]float64{}}
	for _, a := range b.inits {
		if st, err := os.Stat(a.real); err == nil {
			r.values[a.name] = float64(st.Size()) / 1024
		}
	}
	return r
}

// startup times `INIT -- /bin/true`, and /bin/true alone as PID 1.
func (b *bench) startup() []row {
	const bare = "\x00bare" // not a column
	all := append([]anchor{{name: bare}}, b.inits...)
	times := map[string][]float64{}
	fmt.Fprintf(os.Stderr, "bench: start-up, %d rounds\n", b.c.startups)
	for r := 0; r < b.c.startups; r++ {
		for i := range all {
			a := all[(r+i)%len(all)]
			d, err := timeRun(a, "/bin/true")
			if err != nil {
				b.note("start-up of %s: %v", a.name, err)
				continue
			}
			times[a.name] = append(times[a.name], ms(d))
		}
	}
	base := median(times[bare])
	abs := row{label: fmt.Sprintf("start-up, `INIT -- /bin/true` (ms; bare `/bin/true` %.2f)", base), format: "%.2f", values: map[string]float64{}}
	over := row{label: "start-up over bare `/bin/true` (ms)", format: "%.2f", values: map[string]float64{}}
	for _, a := range b.inits {
		if t := times[a.name]; len(t) > 0 {
			abs.values[a.name] = median(t)
			over.values[a.name] = median(t) - base
		}
	}
	return []row{abs, over}
}

// hostStartup times `INIT -- /bin/true` run straight from the bench, not as
// PID 1 (an init inside a container that has one already, or a test
// harness): no namespace to make, and the init is a child subreaper.
func (b *bench) hostStartup() []row {
	times := map[string][]float64{}
	b.rounds("start-up on the host", b.c.startups, func(a anchor) {
		cmd := exec.Command(a.real, "--", "/bin/true")
		cmd.Env = append(os.Environ(), a.env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			b.note("start-up on the host of %s: %v", a.name, err)
			return
		}
		times[a.name] = append(times[a.name], ms(d))
	})
	r := row{label: "start-up on the host, not PID 1 (ms)", format: "%.2f", values: map[string]float64{}}
	for name, xs := range times {
		r.values[name] = median(xs)
	}
	return []row{r}
}

// orphanStorm: the child makes N zombies whose parent then exits, so the
// init inherits N zombies at once; the child times their disappearance from
// /proc, which only the init's reaping brings about.
func (b *bench) orphanStorm() []row {
	times := map[string][]float64{}
	n := strconv.Itoa(b.c.orphans)
	b.rounds("orphan storm", b.c.storms, func(a anchor) {
		ns, err := b.storm(a, n)
		if err != nil {
			b.note("orphan storm under %s: %v", a.name, err)
			return
		}
		times[a.name] = append(times[a.name], float64(ns)/1e6)
	})
	t := row{label: fmt.Sprintf("orphan storm: %d zombies inherited at once, all reaped (ms)", b.c.orphans), format: "%.2f", values: map[string]float64{}}
	rate := row{label: "orphan reaping rate (orphans/s)", format: "%.0f", values: map[string]float64{}}
	for name, xs := range times {
		t.values[name] = median(xs)
		rate.values[name] = float64(b.c.orphans) / (median(xs) / 1e3)
	}
	return []row{t, rate}
}

func (b *bench) storm(a anchor, n string) (int64, error) {
	in, err := launch(a, b.c.child, "orphans", n)
	if err != nil {
		return 0, err
	}
	defer in.stop()
	if line, err := in.readLine(60 * time.Second); err != nil {
		return 0, err
	} else if line != "ready" {
		return 0, in.failure(fmt.Errorf("child said %q, want ready", line))
	}
	line, err := in.readLine(60 * time.Second)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "orphans" || f[1] != n {
		return 0, in.failure(fmt.Errorf("child said %q", line))
	}
	return strconv.ParseInt(f[2], 10, 64)
}

// signalRoundTrip: every init runs the child in ack mode at the same time;
// each sample is kill(init, SIGUSR1) until the child's byte arrives.
func (b *bench) signalRoundTrip() []row {
	fmt.Fprintln(os.Stderr, "bench: signal round trip: starting every init")
	ins := map[string]*instance{}
	for _, a := range b.inits {
		in, err := launch(a, b.c.child, "ack")
		if err == nil {
			if err = in.ready(); err != nil {
				in.stop()
			}
		}
		if err != nil {
			b.note("signal round trip under %s: %v", a.name, err)
			continue
		}
		defer in.stop()
		ins[a.name] = in
	}
	time.Sleep(b.c.settle)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	lat := map[string][]float64{}
	warm := 20
	b.rounds("signal round trip", b.c.signals+warm, func(a anchor) {
		in := ins[a.name]
		if in == nil {
			return
		}
		time.Sleep(time.Millisecond) // everyone back to sleep
		t0 := time.Now()
		if err := unix.Kill(in.pid, unix.SIGUSR1); err != nil {
			b.note("signal round trip under %s: kill: %v", a.name, err)
			return
		}
		if err := readByte(in.out, 5*time.Second); err != nil {
			b.note("signal round trip under %s: no ack: %v", a.name, err)
			delete(ins, a.name)
			return
		}
		lat[a.name] = append(lat[a.name], us(time.Since(t0)))
	})
	med := row{label: "signal round trip, kill(init, USR1) to the child's ack (µs)", format: "%.0f", values: map[string]float64{}}
	p99 := row{label: "signal round trip p99 (µs)", format: "%.0f", values: map[string]float64{}}
	for name, xs := range lat {
		if len(xs) > warm {
			xs = xs[warm:]
		}
		med.values[name] = median(xs)
		p99.values[name] = percentile(xs, 99)
	}
	return []row{med, p99}
}

// shutdown: SIGTERM to the init while its child sleeps (default disposition,
// so TERM kills it) until the init has exited (its pidfd turns readable).
func (b *bench) shutdown() []row {
	lat := map[string][]float64{}
	b.rounds("shutdown", b.c.shutdowns, func(a anchor) {
		d, err := b.shutdownOnce(a)
		if err != nil {
			b.note("shutdown of %s: %v", a.name, err)
			return
		}
		lat[a.name] = append(lat[a.name], ms(d))
	})
	r := row{label: "shutdown, SIGTERM to the init until it has exited (ms)", format: "%.3f", values: map[string]float64{}}
	for name, xs := range lat {
		r.values[name] = median(xs)
	}
	return []row{r}
}

func (b *bench) shutdownOnce(a anchor) (time.Duration, error) {
	in, err := launch(a, b.c.child, "wait")
	if err != nil {
		return 0, err
	}
	defer in.stop()
	if err := in.ready(); err != nil {
		return 0, err
	}
	pidfd, err := unix.PidfdOpen(in.pid, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(pidfd)
	time.Sleep(10 * time.Millisecond) // let the init go idle
	t0 := time.Now()
	if err := unix.Kill(in.pid, unix.SIGTERM); err != nil {
		return 0, err
	}
	if err := pollIn(pidfd, 10*time.Second); err != nil {
		return 0, in.failure(fmt.Errorf("still running: %v", err))
	}
	d := time.Since(t0)
	err = in.wait()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 143 {
		b.note("shutdown of %s: unshare ended with %v (exit status 143 expected)", a.name, err)
	}
	return d, nil
}

// idle: every init runs `sleep` at the same time; after settling, count the
// init's context switches (every thread) over the idle period, then read its
// memory.
func (b *bench) idle() []row {
	fmt.Fprintf(os.Stderr, "bench: idle, %s to settle and %s idle\n", b.c.settle, b.c.idle)
	ins := map[string]*instance{}
	for _, a := range b.inits {
		in, err := launch(a, "/bin/sleep", "3600")
		if err == nil {
			if err = in.findInit(); err != nil {
				in.stop()
			}
		}
		if err != nil {
			b.note("idle %s: %v", a.name, err)
			continue
		}
		defer in.stop()
		ins[a.name] = in
	}
	time.Sleep(b.c.settle)
	before := map[string]map[int]int64{}
	for name, in := range ins {
		if m, err := taskSwitches(in.pid); err == nil {
			before[name] = m
		}
	}
	time.Sleep(b.c.idle)
	secs := b.c.idle.Seconds()
	rss := row{label: "RSS, idle with one child (KiB)", format: "%.0f", values: map[string]float64{}}
	pss := row{label: "PSS, idle with one child (KiB)", format: "%.0f", values: map[string]float64{}}
	anon := row{label: "  of which private anonymous: heap, stacks, data (KiB; the rest is the binary's clean pages)", format: "%.0f", values: map[string]float64{}}
	thr := row{label: "threads, idle", format: "%.0f", values: map[string]float64{}}
	cs := row{label: fmt.Sprintf("context switches in %s idle (all threads)", fmtSecs(secs)), format: "%.0f", values: map[string]float64{}}
	for name, in := range ins {
		if after, err := taskSwitches(in.pid); err == nil && before[name] != nil {
			cs.values[name] = float64(switchesBetween(before[name], after))
		}
		if r, p, err := memory(in.pid); err == nil {
			rss.values[name], pss.values[name] = r, p
		} else {
			b.note("memory of %s: %v", name, err)
		}
		if a, err := anonymous(in.pid); err == nil {
			anon.values[name] = a
		}
		thr.values[name] = float64(threads(in.pid))
	}
	return []row{rss, pss, anon, thr, cs}
}

func fmtSecs(s float64) string {
	if s == math.Trunc(s) {
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
