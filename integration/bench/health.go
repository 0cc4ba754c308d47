package main

// The sixth table: what health checks and the HTTP endpoint cost.
//
//   - a probe's cost: `vigil ready` as a whole command (what an exec probe
//     forks) against GET /readyz on a fresh connection (what an httpGet probe
//     does), the wall time of each and vigil's own CPU per probe;
//   - how long vigil takes to stop a service whose health check starts to
//     hang, against interval x failure_threshold + timeout;
//   - vigil's CPU and context switches with 100 services each tcp-checked
//     every second.
//
// Figures only: nothing is asserted.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type healthResult struct {
	took       time.Duration
	probes     int
	execWall   []float64 // ms
	httpWall   []float64
	execCPU    float64 // vigil's CPU per probe, ms
	httpCPU    float64
	detect     []float64 // ms from the hang to the stop signal
	bound      time.Duration
	tcpWindow  time.Duration
	tcpCPU     float64 // vigil's CPU share of one core, %
	tcpSwitch  float64 // its context switches per second
	tcpChecks  int64   // connections accepted in the window
	tcpService int
	notes      []string
}

func (r *healthResult) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// vigilCPU is the CPU time vigil's process used so far (utime + stime).
func vigilCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / clockTicks), nil
}

// getReadyz does what an httpGet probe does: a connection, one request,
// the whole response read.
func getReadyz(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /readyz HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, " 200 ") {
		return fmt.Errorf("GET /readyz: %q", strings.TrimSpace(line))
	}
	_, err = r.WriteTo(discard{})
	return err
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func healthBench(c config) (*healthResult, error) {
	res := &healthResult{probes: c.healthProbes, tcpService: c.healthServices, tcpWindow: c.idle}
	t0 := time.Now()
	dir, err := os.MkdirTemp("", "vigil-bench-health-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vigil, err := filepath.Abs(c.vigil)
	if err != nil {
		return nil, err
	}
	if err := probeCost(c, res, dir, vigil); err != nil {
		return nil, fmt.Errorf("probe cost: %w", err)
	}
	if err := detection(c, res, dir, vigil); err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	if err := tcpLoad(c, res, dir, vigil); err != nil {
		return nil, fmt.Errorf("100 tcp checks: %w", err)
	}
	res.took = time.Since(t0)
	return res, nil
}

// startHealthVigil runs vigil with the config doc and the endpoint on addr.
func startHealthVigil(dir, name, vigil, doc, addr string) (*daemon, []string, error) {
	cfg := filepath.Join(dir, name+".json")
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		return nil, nil, err
	}
	env := append(cleanEnv(), "VIGIL_SOCKET="+filepath.Join(dir, name+".sock"), "VIGIL_STATE_DIR=none")
	if addr != "" {
		env = append(env, "VIGIL_HTTP="+addr)
	}
	d, err := startDaemon("vigil", filepath.Join(dir, name+".log"), 5*time.Second, env, vigil, "-c", cfg)
	return d, env, err
}

func probeCost(c config, res *healthResult, dir, vigil string) error {
	addr, err := freeLoopback()
	if err != nil {
		return err
	}
	d, env, err := startHealthVigil(dir, "probe", vigil, string(vigilConfig(10)), addr)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := waitRunning(d, 10, 30*time.Second, func() (int, string, error) { return vigilRunning(env, vigil) }); err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	exe := &probe{label: "vigil ready", argv: []string{vigil, "ready"}, env: env, path: vigil}
	for i := 0; i < 3; i++ { // warm-up
		if _, err := timeProbe(exe, devnull); err != nil {
			return err
		}
		if err := getReadyz(addr); err != nil {
			return err
		}
	}
	// The two kinds in alternating blocks, vigil's CPU read around each.
	var execCPU, httpCPU time.Duration
	const block = 50
	for done := 0; done < c.healthProbes; done += block {
		n := min(block, c.healthProbes-done)
		before, err := vigilCPU(d.initPid)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			t, err := timeProbe(exe, devnull)
			if err != nil {
				return err
			}
			res.execWall = append(res.execWall, ms(t))
		}
		mid, _ := vigilCPU(d.initPid)
		for i := 0; i < n; i++ {
			t := time.Now()
			if err := getReadyz(addr); err != nil {
				return err
			}
			res.httpWall = append(res.httpWall, ms(time.Since(t)))
		}
		after, _ := vigilCPU(d.initPid)
		execCPU += mid - before
		httpCPU += after - mid
	}
	res.execCPU = ms(execCPU) / float64(c.healthProbes)
	res.httpCPU = ms(httpCPU) / float64(c.healthProbes)
	return nil
}

// detection: the bench serves the service's /healthz itself, and hangs it.
func detection(c config, res *healthResult, dir, vigil string) error {
	var hang atomic.Bool
	release := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	defer close(release)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if hang.Load() {
					select {
					case <-release:
					case <-time.After(time.Minute):
					}
					return
				}
				buf := make([]byte, 4096)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				conn.Read(buf)
				conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"))
			}()
		}
	}()
	const (
		interval  = time.Second
		timeout   = 500 * time.Millisecond
		threshold = 3
	)
	res.bound = interval*threshold + timeout
	stamp := filepath.Join(dir, "stopped")
	doc, _ := json.Marshal(map[string]any{"services": []any{map[string]any{
		"name": "web", "command": []string{"/bin/sh", "-c", `trap 'date +%s%N >> ` + stamp + `; exit 0' TERM; while :; do sleep 1 & wait; done`},
		"backoff": map[string]any{"initial": "50ms"}, "max_retries": -1,
		"health": map[string]any{"http": "http://" + l.Addr().String() + "/healthz", "interval": interval.String(),
			"timeout": timeout.String(), "failure_threshold": threshold},
	}}})
	d, env, err := startHealthVigil(dir, "detect", vigil, string(doc), "")
	if err != nil {
		return err
	}
	defer d.stop()
	for round := 0; round < c.healthRounds; round++ {
		if err := waitRunning(d, 1, 30*time.Second, func() (int, string, error) { return vigilRunning(env, vigil) }); err != nil {
			return err
		}
		// A whole interval healthy, so the hang starts at any phase of it.
		time.Sleep(interval + time.Duration(round)*interval/time.Duration(c.healthRounds))
		before := len(readLines(stamp))
		hung := time.Now()
		hang.Store(true)
		deadline := time.Now().Add(30 * time.Second)
		for len(readLines(stamp)) == before {
			if time.Now().After(deadline) {
				return d.failure(fmt.Errorf("round %d: not stopped 30 s after the hang", round))
			}
			time.Sleep(5 * time.Millisecond)
		}
		ls := readLines(stamp)
		ns, _ := strconv.ParseInt(ls[len(ls)-1], 10, 64)
		res.detect = append(res.detect, ms(time.Unix(0, ns).Sub(hung)))
		hang.Store(false)
	}
	return nil
}

func readLines(file string) []string {
	b, _ := os.ReadFile(file)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// tcpLoad: N services, each with a tcp health check every second against
// one listener of the bench, measured over a window.
func tcpLoad(c config, res *healthResult, dir, vigil string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	type svc struct {
		Name    string         `json:"name"`
		Command []string       `json:"command"`
		Health  map[string]any `json:"health"`
	}
	var doc struct {
		Services []svc `json:"services"`
	}
	for i := 0; i < c.healthServices; i++ {
		doc.Services = append(doc.Services, svc{Name: fmt.Sprintf("s%03d", i), Command: []string{"sleep", "100000"},
			Health: map[string]any{"tcp": l.Addr().String(), "interval": "1s", "timeout": "500ms"}})
	}
	b, _ := json.Marshal(doc)
	d, env, err := startHealthVigil(dir, "tcp", vigil, string(b), "")
	if err != nil {
		return err
	}
	defer d.stop()
	if err := waitRunning(d, c.healthServices, 60*time.Second, func() (int, string, error) { return vigilRunning(env, vigil) }); err != nil {
		return err
	}
	time.Sleep(c.settle + time.Second)
	cpu0, err := vigilCPU(d.initPid)
	if err != nil {
		return err
	}
	sw0, err := taskSwitches(d.initPid)
	if err != nil {
		return err
	}
	acc0 := accepted.Load()
	t0 := time.Now()
	time.Sleep(c.idle)
	elapsed := time.Since(t0)
	cpu1, _ := vigilCPU(d.initPid)
	sw1, _ := taskSwitches(d.initPid)
	res.tcpChecks = accepted.Load() - acc0
	res.tcpCPU = 100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	res.tcpSwitch = float64(switchesBetween(sw0, sw1)) / elapsed.Seconds()
	if out, err := output(env, vigil, "status"); err == nil && strings.Contains(out, "unhealthy") {
		res.note("some service was unhealthy during the window")
	}
	return nil
}

func healthTable(c config, res *healthResult) {
	fmt.Printf("## Health checks and the HTTP endpoint\n\n")
	fmt.Printf("Took %s. vigil (%s) as PID 1 of `unshare --pid --fork --mount-proc --kill-child`. Figures, never asserted.\n\n",
		res.took.Round(time.Second), c.vigil)
	fmt.Printf("Probe cost, vigil supervising 10 services (`sleep`), %d probes of each kind in alternating blocks of 50 after 3 of warm-up: "+
		"`vigil ready` as a whole command (fork, exec, the control socket: what an exec probe runs) against GET /readyz on a new connection "+
		"(what a kubelet httpGet probe does). vigil's CPU is its utime+stime across each block, per probe (10 ms ticks: an average).\n\n", res.probes)
	fmt.Println("| probe | median (ms) | p90 (ms) | vigil's CPU per probe (ms) |")
	fmt.Println("|---|--:|--:|--:|")
	fmt.Printf("| `vigil ready` (exec) | %s | %s | %.3f |\n", fmtMs(median(res.execWall)), fmtMs(percentile(res.execWall, 90)), res.execCPU)
	fmt.Printf("| GET /readyz (http) | %s | %s | %.3f |\n\n", fmtMs(median(res.httpWall)), fmtMs(percentile(res.httpWall, 90)), res.httpCPU)
	fmt.Printf("Detection of a hung service: an http health check (interval 1s, timeout 500ms, failure_threshold 3) against a /healthz "+
		"that stops answering; from the hang to the stop signal's arrival in the service, %d rounds, the hang starting at a different phase of the interval each round. "+
		"Expected: at most interval x threshold + timeout = %s (the first failing attempt within an interval of the hang, "+
		"the threshold's last one two intervals later, then its timeout), plus the stop signal's delivery.\n\n", len(res.detect), res.bound)
	fmt.Println("| median (ms) | min (ms) | max (ms) | interval x threshold + timeout (ms) |")
	fmt.Println("|--:|--:|--:|--:|")
	lo, hi := res.detect[0], res.detect[0]
	for _, x := range res.detect {
		lo, hi = min(lo, x), max(hi, x)
	}
	fmt.Printf("| %s | %s | %s | %s |\n\n", fmtMs(median(res.detect)), fmtMs(lo), fmtMs(hi), fmtMs(ms(res.bound)))
	fmt.Printf("Load: %d services (`sleep`), each with a tcp health check every 1s against one loopback listener of the bench, measured over %s.\n\n",
		res.tcpService, res.tcpWindow)
	fmt.Println("| checks accepted per second | vigil's CPU (% of a core) | vigil's context switches per second |")
	fmt.Println("|--:|--:|--:|")
	fmt.Printf("| %.0f | %.2f | %.0f |\n", float64(res.tcpChecks)/res.tcpWindow.Seconds(), res.tcpCPU, res.tcpSwitch)
	for _, n := range res.notes {
		fmt.Println("- " + n)
	}
}
