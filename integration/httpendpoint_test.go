package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// httpGet does one request with Go's client and returns the status and
// body.
func httpGet(t *testing.T, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// curl does one request with curl and returns the status and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-s", "-m", "10", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return code, s[:i]
}

// scrape reads /metrics into "name{labels}" -> value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	m, err := tryScrape(base)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tryScrape(base string) (map[string]float64, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %d %s %v", resp.StatusCode, b, err)
	}
	body := string(b)
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", l, err)
		}
		m[l[:i]] = v
	}
	return m, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestHTTPEndpoint: the routes answer with the codes and bodies of the
// docs, to Go's client and to curl; the metrics are what status says.
func TestHTTPEndpoint(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	addr := freeAddr(t)
	base := "http://" + addr
	cfg := config(t, dir, `{"http": "`+addr+`", "services": [
		{"name": "web", "command": ["$T", "orphans", "3", "$D/web"]},
		{"name": "slow", "command": ["sleep", "1000"], "ready": {"file": "$D/slow-ready"}},
		{"name": "crash", "command": ["$T", "exit", "3"], "max_retries": 1, "backoff": {"initial": "10ms"}}
	]}`)
	start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "web"))
	waitFor(t, 15*time.Second, "crash given up", func() bool { return healthStatus(t, sock)["crash"].State == "given-up" })

	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/livez", 200, "ok\n"},
		{"GET", "/readyz", 503, "slow\ncrash\n"},
		{"GET", "/readyz/web", 200, "ok\n"},
		{"GET", "/readyz/slow", 503, "slow\n"},
		{"GET", "/readyz/nope", 404, ""},
		{"HEAD", "/readyz", 503, ""},
		{"POST", "/livez", 405, ""},
		{"GET", "/nope", 404, ""},
		{"GET", "/livez?x=1", 200, "ok\n"},
	} {
		code, body := httpGet(t, tc.method, base+tc.path)
		if code != tc.code || (tc.body != "" && body != tc.body) || (tc.method == "HEAD" && body != "") {
			t.Errorf("go %s %s: %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
		args := []string{"-X", tc.method, base + tc.path}
		if tc.method == "HEAD" {
			args = []string{"-I", base + tc.path}
		}
		code, body = curl(t, args...)
		if code != tc.code || (tc.body != "" && tc.method != "HEAD" && body != tc.body) {
			t.Errorf("curl %s %s: %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	if c, _, _ := ctl(t, sock, "ready"); c != 3 {
		t.Errorf("vigil ready: %d, want 3 as /readyz says", c)
	}

	// The metrics are the values status shows.
	m := scrape(t, base)
	for name, s := range healthStatus(t, sock) {
		l := `{service="` + name + `"}`
		for metric, want := range map[string]float64{
			"vigil_service_up":                    b2f(s.Pid != 0),
			"vigil_service_ready":                 b2f(s.Ready),
			"vigil_service_restarts_total":        float64(s.Restarts),
			"vigil_service_failed_runs":           float64(s.Retries),
			"vigil_service_health_failures_total": 0,
		} {
			if got, ok := m[metric+l]; !ok || got != want {
				t.Errorf("%s%s = %v (present %v), status says %v", metric, l, got, ok, want)
			}
		}
		if got := m[`vigil_service_state{service="`+name+`",state="`+s.State+`"}`]; got != 1 {
			t.Errorf("%s: state %s is not 1 in the metrics", name, s.State)
		}
		if s.LastExit != nil && m["vigil_service_last_exit_code"+l] != float64(*s.LastExit) {
			t.Errorf("%s: last exit %v, status %d", name, m["vigil_service_last_exit_code"+l], *s.LastExit)
		}
	}
	if m[`vigil_service_restarts_total{service="crash"}`] != 1 || m[`vigil_service_last_exit_code{service="crash"}`] != 3 {
		t.Errorf("crash: %v restarts, last exit %v", m[`vigil_service_restarts_total{service="crash"}`], m[`vigil_service_last_exit_code{service="crash"}`])
	}
	if m["vigil_orphans_reaped_total"] < 3 || m[`vigil_build_info{version="`+binVersion(t)+`"}`] != 1 {
		t.Errorf("orphans %v, build info %v", m["vigil_orphans_reaped_total"], m)
	}
	if st := m["vigil_start_time_seconds"]; st < float64(time.Now().Add(-time.Minute).Unix()) || st > float64(time.Now().Unix()+1) {
		t.Errorf("start time %v", st)
	}

	os.WriteFile(filepath.Join(dir, "slow-ready"), nil, 0o644)
	waitFor(t, 15*time.Second, "/readyz/slow 200", func() bool { c, _ := httpGet(t, "GET", base+"/readyz/slow"); return c == 200 })
}

// binVersion is what `vigil --version` says, after "vigil ".
func binVersion(t *testing.T) string {
	out, err := exec.Command(vigilBin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "vigil ")
}

// TestHTTPStalledClients: 200 connections that never send a request do
// not delay `vigil ready` nor a GET /readyz.
func TestHTTPStalledClients(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	addr := freeAddr(t)
	cfg := config(t, dir, `{"http": "`+addr+`", "services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitFor(t, 15*time.Second, "/readyz 200", func() bool {
		c, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		c.Body.Close()
		return c.StatusCode == 200
	})
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /readyz HTTP/1.1\r\n")) // and never the rest
		stalled = append(stalled, c)
	}
	// The stalled clients hold their connections for the 5 s request
	// bound: an answer within 2 s is one they did not wait behind.
	client := &http.Client{Timeout: 2 * time.Second}
	for i := range 5 {
		began := time.Now()
		resp, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz %d with 200 stalled clients: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /readyz: %d", resp.StatusCode)
		}
		t.Logf("GET /readyz with 200 stalled clients: %s", time.Since(began).Round(time.Microsecond))
		began = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cmd := exec.CommandContext(ctx, vigilBin, "ready")
		cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+sock)
		err = cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("vigil ready with 200 stalled clients: %v", err)
		}
		t.Logf("vigil ready with 200 stalled clients: %s", time.Since(began).Round(time.Microsecond))
	}
}

// TestHTTPWrapperMode: vigil -- CMD serves the same for main, and counts
// the signals it forwards.
func TestHTTPWrapperMode(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	rec := filepath.Join(dir, "main")
	v := start(t, modes[0], opts{}, "--http", addr, "--", testProg, "record", rec)
	waitReady(t, rec)
	waitFor(t, 15*time.Second, "/readyz 200", func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(base + "/readyz/main")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	v.signal(unix.SIGUSR1)
	waitForLine(t, rec, "SIGUSR1", 1)
	m := scrape(t, base)
	for metric, want := range map[string]float64{
		`vigil_service_up{service="main"}`:                  1,
		`vigil_service_ready{service="main"}`:               1,
		`vigil_service_state{service="main",state="ready"}`: 1,
		`vigil_signals_forwarded_total`:                     1,
		`vigil_reexecs_total`:                               0,
	} {
		if got, ok := m[metric]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", metric, got, ok, want)
		}
	}
	if c, body := httpGet(t, "GET", base+"/livez"); c != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", c, body)
	}
	v.signal(unix.SIGTERM)
	if code := v.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestHTTPIdleNoWakeups: an idle vigil with the endpoint on (and no
// check) does not wake up: within three 10 s windows after the last request
// (the first may hold the expiry of its 5 s bound) one has no context
// switch at all.
func TestHTTPIdleNoWakeups(t *testing.T) {
	if testing.Short() {
		t.Skip("watches vigil idle for 10 s or more")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := config(t, dir, `{"http": "`+addr+`", "services": [{"name": "a", "command": ["sleep", "1000"]}]}`)
	v := start(t, modes[0], opts{}, "-c", cfg)
	waitFor(t, 15*time.Second, "/livez 200", func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	pid := v.pid()
	var seen []int64
	for range 3 {
		before := switches(t, pid)
		<-time.After(10 * time.Second) // the window measured, not a wait for an event
		n := switches(t, pid) - before
		seen = append(seen, n)
		if n == 0 {
			t.Logf("context switches per 10 s window: %v", seen)
			return
		}
	}
	t.Errorf("context switches per 10 s window: %v, want a window with none", seen)
}

// switches sums the context switches of every thread of pid.
func switches(t *testing.T, pid int) int64 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range ents {
		st, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range bytes.Split(st, []byte("\n")) {
			k, v, ok := bytes.Cut(l, []byte(":"))
			if ok && (string(k) == "voluntary_ctxt_switches" || string(k) == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// TestHTTPPrometheusScrape: a real Prometheus scrapes vigil's /metrics
// and sees its services (skipped where Prometheus is not installed).
func TestHTTPPrometheusScrape(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install -y prometheus)")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := config(t, dir, `{"http": "`+addr+`", "services": [
		{"name": "a", "command": ["sleep", "1000"]},
		{"name": "b", "command": ["sleep", "1000"], "ready": {"file": "$D/never"}}]}`)
	start(t, modes[0], opts{}, "-c", cfg)
	if promtool, err := exec.LookPath("promtool"); err == nil {
		waitFor(t, 15*time.Second, "/metrics", func() bool {
			resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			lint := exec.Command(promtool, "check", "metrics")
			lint.Stdin = bytes.NewReader(body)
			if out, err := lint.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
			return true
		})
	}
	pcfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(pcfg, []byte(fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: vigil\n    static_configs: [{targets: ['%s']}]\n", addr)), 0o600)
	web := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file="+pcfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	}()
	q := `vigil_service_ready{service="a"} == 1 and on() vigil_service_ready{service="b"} == 0 and on() vigil_service_state{service="b",state="running"} == 1`
	waitFor(t, 2*time.Minute, "Prometheus to scrape vigil", func() bool {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return bytes.Contains(b, []byte(`"status":"success"`)) && bytes.Contains(b, []byte(`"result":[{`))
	})
}

// TestHTTPAcrossReexec: after `vigil reexec` the new image listens again,
// and the counters carry over: re-execs, orphans, forwarded signals,
// health failures; a failing health check goes on counting.
func TestHTTPAcrossReexec(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	addr := freeAddr(t)
	base := "http://" + addr
	cfg := config(t, dir, `{"http": "`+addr+`", "services": [
		{"name": "o", "command": ["$T", "orphans", "3", "$D/o"]},
		{"name": "h", "command": ["$T", "record", "$D/h"],
		 "health": {"exec": ["false"], "interval": "200ms", "timeout": "100ms", "failure_threshold": 1000000}}]}`)
	v := start(t, modes[0], opts{env: []string{"VIGIL_SOCKET=" + sock}}, "-c", cfg)
	waitReady(t, filepath.Join(dir, "o"))
	v.signal(unix.SIGUSR1)
	waitForLine(t, filepath.Join(dir, "o"), "SIGUSR1", 1)
	var before map[string]float64
	waitFor(t, 30*time.Second, "3 orphans, 3 health failures", func() bool {
		before = scrape(t, base)
		return before["vigil_orphans_reaped_total"] >= 3 && before[`vigil_service_health_failures_total{service="h"}`] >= 3
	})
	if code, _, errs := ctl(t, sock, "reexec"); code != 0 {
		t.Fatalf("reexec: %d %s", code, errs)
	}
	var after map[string]float64
	// A request in the gap of the exec is refused or cut: retried.
	waitFor(t, 30*time.Second, "the endpoint after the re-exec", func() bool {
		var err error
		after, err = tryScrape(base)
		return err == nil && after["vigil_reexecs_total"] == 1
	})
	for _, m := range []string{"vigil_orphans_reaped_total", "vigil_signals_forwarded_total", `vigil_service_health_failures_total{service="h"}`,
		"vigil_start_time_seconds"} {
		if after[m] < before[m] || before[m] == 0 {
			t.Errorf("%s: %v before the re-exec, %v after", m, before[m], after[m])
		}
	}
	// The same to the kernel's clock tick (10 ms), give or take one.
	if d := after["vigil_start_time_seconds"] - before["vigil_start_time_seconds"]; d < -0.015 || d > 0.015 {
		t.Errorf("start time %v -> %v", before["vigil_start_time_seconds"], after["vigil_start_time_seconds"])
	}
	n := after[`vigil_service_health_failures_total{service="h"}`]
	waitFor(t, 30*time.Second, "the health check to go on after the re-exec", func() bool {
		return scrape(t, base)[`vigil_service_health_failures_total{service="h"}`] > n
	})
}
