package main

// The state-writes table (-tables statewrites): how often vigil writes
// VIGIL_STATE_DIR/state.json while services crash as fast as they can.
//
// vigil runs as PID 1 of `unshare --pid --fork --mount-proc --kill-child`
// with N services each `"command": "exit 1"`, `"max_retries": -1` and a
// 1 ms backoff without jitter, no respawn limit, and its state dir in a temp
// dir. The bench watches the state dir with inotify: the store writes a temp
// file and renames it onto state.json, so each write is one IN_MOVED_TO
// named state.json; the file's size is read right after each event. vigil's
// event rate is the sum of the services' restarts in `vigil status --json`
// (asked over the socket) at both ends of the window.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stateWrite is one rename onto state.json.
type stateWrite struct {
	at   time.Time
	size int64 // -1 if the stat failed
}

// stateWatcher counts the renames onto dir/state.json.
type stateWatcher struct {
	fd       int
	dir      string
	mu       sync.Mutex
	writes   []stateWrite
	overflow bool
	quit     chan struct{}
	done     chan struct{}
}

func watchState(dir string) (*stateWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	w := &stateWatcher{fd: fd, dir: dir, quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *stateWatcher) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	path := filepath.Join(w.dir, "state.json")
	for {
		select {
		case <-w.quit:
			return
		default:
		}
		if err := pollIn(w.fd, 50*time.Millisecond); err != nil {
			continue // timed out: look at quit again
		}
		n, err := unix.Read(w.fd, buf)
		if err != nil || n <= 0 {
			continue // EAGAIN, EINTR
		}
		now := time.Now()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			if mask&unix.IN_Q_OVERFLOW != 0 {
				w.mu.Lock()
				w.overflow = true
				w.mu.Unlock()
			}
			if mask&unix.IN_MOVED_TO == 0 || name != "state.json" {
				continue
			}
			size := int64(-1)
			if fi, err := os.Stat(path); err == nil {
				size = fi.Size()
			}
			w.mu.Lock()
			w.writes = append(w.writes, stateWrite{at: now, size: size})
			w.mu.Unlock()
		}
	}
}

// between is the writes seen in [from, to).
func (w *stateWatcher) between(from, to time.Time) []stateWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []stateWrite
	for _, x := range w.writes {
		if !x.at.Before(from) && x.at.Before(to) {
			out = append(out, x)
		}
	}
	return out
}

func (w *stateWatcher) close() {
	close(w.quit)
	<-w.done
	unix.Close(w.fd)
}

// stateResult is what the crash loop measured.
type stateResult struct {
	services   int
	window     time.Duration // between the two status replies
	restarts   int
	writes     []stateWrite
	sizeKnown  int
	bytes      int64
	peak       int // most writes in any 1 s
	gaps       []float64
	cpu        float64 // vigil's own CPU seconds over the window
	logBytes   int64   // vigil's log written over the window
	finalSvcs  int     // services in state.json at the end
	finalValid bool
	vigilV     string
	took       time.Duration
	load       string
	notes      []string
}

func (r *stateResult) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	fmt.Fprintln(os.Stderr, "bench: statewrites:", s)
}

// crashConfig is n services that exit 1 at once, restarted without end
// after 1 ms, no respawn limit.
func crashConfig(n int) []byte {
	type backoff struct {
		Initial string  `json:"initial"`
		Max     string  `json:"max"`
		Jitter  float64 `json:"jitter"`
	}
	type svc struct {
		Name       string  `json:"name"`
		Command    string  `json:"command"`
		MaxRetries int     `json:"max_retries"`
		Backoff    backoff `json:"backoff"`
	}
	var c struct {
		RespawnLimit string `json:"respawn_limit"`
		Services     []svc  `json:"services"`
	}
	c.RespawnLimit = "0"
	for i := 0; i < n; i++ {
		c.Services = append(c.Services, svc{Name: fmt.Sprintf("crash%02d", i), Command: "exit 1", MaxRetries: -1,
			Backoff: backoff{Initial: "1ms", Max: "1ms", Jitter: 0}})
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

// cpuTicks is utime+stime of pid (its own threads, not its reaped
// children), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

const clockTicks = 100 // USER_HZ on Linux

func sumRestarts(list []wireService) int {
	n := 0
	for _, s := range list {
		n += s.Restarts
	}
	return n
}

func stateWritesBench(c config) (res *stateResult, err error) {
	started := time.Now()
	res = &stateResult{services: c.crashServices}
	load0 := machineLoad()
	j := newJanitor("statewrites")
	defer j.close()
	dir, err := j.mkdir("vigil-bench-statewrites-*")
	if err != nil {
		return nil, err
	}
	vigil, err := pinVigil(c.vigil, dir)
	if err != nil {
		return nil, err
	}
	res.vigilV = version(vigil)
	conf := filepath.Join(dir, "vigil.json")
	if err := os.WriteFile(conf, crashConfig(c.crashServices), 0o644); err != nil {
		return nil, err
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		return nil, err
	}
	w, err := watchState(stateDir)
	if err != nil {
		return nil, err
	}
	defer w.close()
	sock := filepath.Join(dir, "vigil.sock")
	env := append(cleanEnv(), "VIGIL_SOCKET="+sock, "VIGIL_LOG_FORMAT=json", "VIGIL_STATE_DIR="+stateDir)
	logPath := filepath.Join(dir, "vigil.log")
	fmt.Fprintf(os.Stderr, "bench: statewrites: starting vigil with %d crashing services (%s)\n", c.crashServices, dir)
	d, err := startDaemon("vigil", logPath, 15*time.Second, env, vigil, "-c", conf)
	if err != nil {
		return nil, err
	}
	j.add(d)
	// The socket answers, then the loop gets going.
	var list []wireService
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if d.exited() {
			return nil, d.failure(fmt.Errorf("exited"))
		}
		if list, err = wireStatus(sock, 5*time.Second); err == nil && len(list) == c.crashServices {
			break
		}
		if time.Now().After(deadline) {
			return nil, d.failure(fmt.Errorf("no status with %d services in 30 s: %v", c.crashServices, err))
		}
	}
	time.Sleep(c.crashWarm)
	fmt.Fprintf(os.Stderr, "bench: statewrites: counting for %s\n", c.crashDuration)

	cpu0, err := cpuTicks(d.initPid)
	if err != nil {
		return nil, d.failure(err)
	}
	log0 := fileSize(logPath)
	t0 := time.Now()
	if list, err = wireStatus(sock, 10*time.Second); err != nil {
		return nil, d.failure(err)
	}
	r0 := sumRestarts(list)
	time.Sleep(c.crashDuration)
	if list, err = wireStatus(sock, 10*time.Second); err != nil {
		return nil, d.failure(err)
	}
	t2 := time.Now()
	r1 := sumRestarts(list)
	cpu1, _ := cpuTicks(d.initPid)
	log1 := fileSize(logPath)
	// The window runs from the first status request to the second reply:
	// the restarts counted lie within it, and so do the writes counted.
	res.window = t2.Sub(t0)
	res.restarts = r1 - r0
	res.cpu = float64(cpu1-cpu0) / clockTicks
	res.logBytes = log1 - log0
	res.writes = w.between(t0, t2)
	for i, x := range res.writes {
		if x.size >= 0 {
			res.sizeKnown++
			res.bytes += x.size
		}
		if i > 0 {
			res.gaps = append(res.gaps, ms(x.at.Sub(res.writes[i-1].at)))
		}
		n := 0
		for _, y := range res.writes[i:] {
			if y.at.Sub(x.at) >= time.Second {
				break
			}
			n++
		}
		res.peak = max(res.peak, n)
	}
	w.mu.Lock()
	if w.overflow {
		res.note("the inotify queue overflowed: writes were missed")
	}
	w.mu.Unlock()
	if res.sizeKnown < len(res.writes) {
		res.note("%d of %d writes: state.json gone before its size was read", len(res.writes)-res.sizeKnown, len(res.writes))
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, "state.json")); err != nil {
		res.note("reading state.json: %v", err)
	} else {
		var f struct {
			Services map[string]json.RawMessage `json:"services"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			res.note("state.json does not parse: %v", err)
		} else {
			res.finalValid = true
			res.finalSvcs = len(f.Services)
		}
	}
	if d.exited() {
		return nil, d.failure(fmt.Errorf("exited during the window"))
	}
	res.load = fmt.Sprintf("at the start %s; at the end of the window %s", load0, machineLoad())
	j.cleanup()
	res.took = time.Since(started)
	return res, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// stateTable prints the state-writes table.
func stateTable(c config, res *stateResult) {
	var u unix.Utsname
	unix.Uname(&u)
	secs := res.window.Seconds()
	fmt.Printf("## state.json writes under a crash loop, %d services\n\n", res.services)
	fmt.Printf("Linux %s, %s, %d cores. Took %s. %s as PID 1 of `unshare --pid --fork --mount-proc --kill-child vigil -c FILE`, "+
		"`VIGIL_LOG_FORMAT=json` (its log to a file), `VIGIL_STATE_DIR` an empty dir in a temp dir; %d services each "+
		"`\"command\": \"exit 1\"`, `\"max_retries\": -1`, `\"backoff\": {\"initial\": \"1ms\", \"max\": \"1ms\", \"jitter\": 0}`, "+
		"and `\"respawn_limit\": \"0\"`. After %s of crash loop, a window of %.2f s (status request to status reply): "+
		"writes are the inotify IN_MOVED_TO events named state.json in the state dir (the store writes a temp file and renames it), "+
		"the size read by stat right after each; restarts are the sum of the services' `restarts` in the status verb's reply at both ends.\n\n",
		unix.ByteSliceToString(u.Release[:]), cpuModel(), runtime.NumCPU(), res.took.Round(time.Second), res.vigilV,
		res.services, c.crashWarm, secs)
	fmt.Printf("Machine load, %s.\n\n", res.load)
	n := len(res.writes)
	meanSize := 0.0
	if res.sizeKnown > 0 {
		meanSize = float64(res.bytes) / float64(res.sizeKnown)
	}
	// Bytes per second: the sizes read, scaled up for any not read.
	bytesPerSec := meanSize * float64(n) / secs
	gaps := slices.Clone(res.gaps)
	slices.Sort(gaps)
	minGap := "n/a"
	if len(gaps) > 0 {
		minGap = fmt.Sprintf("%.1f", gaps[0])
	}
	fmt.Println("| measure | value |")
	fmt.Println("|---|--:|")
	fmt.Printf("| window (s) | %.2f |\n", secs)
	fmt.Printf("| restarts in the window | %d |\n", res.restarts)
	fmt.Printf("| vigil's event rate (restarts/s) | %.0f |\n", float64(res.restarts)/secs)
	fmt.Printf("| state.json writes in the window | %d |\n", n)
	fmt.Printf("| state writes/s | %.2f |\n", float64(n)/secs)
	fmt.Printf("| most writes in any 1 s | %d |\n", res.peak)
	fmt.Printf("| gap between writes: shortest / median / p90 (ms) | %s / %s / %s |\n", minGap, fmtMs(median(gaps)), fmtMs(percentile(gaps, 90)))
	fmt.Printf("| state.json size, mean (bytes) | %.0f |\n", meanSize)
	fmt.Printf("| bytes written to state.json per s | %.0f |\n", bytesPerSec)
	fmt.Printf("| restarts per state write | %.0f |\n", float64(res.restarts)/max(float64(n), 1))
	fmt.Printf("| vigil's own CPU over the window (%% of one core) | %.0f |\n", 100*res.cpu/secs)
	fmt.Printf("| vigil's log written per s (KiB; JSON, to a file) | %.0f |\n", float64(res.logBytes)/1024/secs)
	fmt.Println()
	verdict := "met"
	if float64(n)/secs > 10 || res.peak > 10 {
		verdict = "not met"
	}
	fmt.Printf("Target of the issue, reported and not asserted: at most 10 state writes per second whatever the event rate: %.2f/s on average, at most %d in any 1 s: %s.\n",
		float64(n)/secs, res.peak, verdict)
	if res.finalValid {
		fmt.Printf("- state.json at the end parses and holds %d services.\n", res.finalSvcs)
	}
	for _, s := range res.notes {
		fmt.Println("- " + s)
	}
}
