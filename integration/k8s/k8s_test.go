//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Generous bounds: the machine has 2 cores shared with other work.
const (
	startTimeout = 120 * time.Second // manifest written -> container running / pod Ready
	exitTimeout  = 60 * time.Second  // manifest removed -> the container's exit
)

// The tests' own pods: the test image, the hostPath at /data, host network
// (no CNI on this node).
const podHead = `apiVersion: v1
kind: Pod
metadata:
  name: {{NAME}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 10
`

const dataVolume = `  volumes:
    - name: data
      hostPath:
        path: {{DATA}}
        type: Directory
`

// vigilPod is a pod of one container, vigil with /data/vigil.json, with the
// probes given (YAML at the container's indentation).
func vigilPod(probes string) string {
	return podHead + `  containers:
    - name: app
      image: {{IMAGE}}
      imagePullPolicy: Never
      args: ["-c", "/data/vigil.json"]
      env:
        - name: VIGIL_STATE_DIR
          value: none
        - name: VIGIL_LOG_FORMAT
          value: json
        - name: VIGIL_LOG_FILE
          value: /data/vigil.log
` + probes + `      volumeMounts:
        - name: data
          mountPath: /data
` + dataVolume
}

const vigilReadyProbes = `      startupProbe:
        exec:
          command: ["/vigil", "ready"]
        periodSeconds: 1
        timeoutSeconds: 2
        failureThreshold: 120
      readinessProbe:
        exec:
          command: ["/vigil", "ready"]
        periodSeconds: 1
        timeoutSeconds: 2
        failureThreshold: 1
`

// waitReady waits until the pod's Ready condition is True and returns when
// that was first seen.
func waitReady(p *testPod) time.Time {
	p.t.Helper()
	p.waitFor(startTimeout, "Ready condition", func(pi podInfo) bool { return pi.condition("Ready") })
	return time.Now()
}

// waitExit waits for the exit of a container's own process (containerd's
// event) and returns it.
func waitExit(t *testing.T, cid string, timeout time.Duration) event {
	t.Helper()
	return events.wait(t, timeout, "exit of container "+cid, initExit(cid))
}

// pidNS is the ns/pid link of a host PID.
func pidNS(t *testing.T, pid int) string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatalf("pid namespace of %d: %v", pid, err)
	}
	return ns
}

// 1. A multi-service pod with vigil as PID 1 is Ready only once `vigil ready`
// says so (startup, readiness and liveness exec probes); after 100 probe runs,
// some leaving orphans and some killed on their timeout, no zombie is left.
func TestReadyAndProbeZombies(t *testing.T) {
	t.Parallel()
	p := newPod(t, "s1-ready", map[string]string{"vigil.json": `{"services": [
  {"name": "db", "command": ["/svc.sh", "db"]},
  {"name": "web", "command": ["/svc.sh", "web", "4"], "depends_on": ["db"],
   "ready": {"file": "/data/web.ready", "timeout": "60s"}, "critical": true},
  {"name": "worker", "command": ["/svc.sh", "worker"], "depends_on": ["web"]}
]}`})
	// The liveness probe leaves an orphan every run (sleep 2 &), and one run
	// in ten sleeps past its 1 s timeout: containerd SIGKILLs the probe's
	// shell, and its sleep is orphaned too. Orphans go to PID 1: vigil.
	p.start(vigilPod(vigilReadyProbes + `      livenessProbe:
        exec:
          command: ["/bin/sh", "-c", "sleep 2 & case $(( $(cut -d. -f1 /proc/uptime) % 10 )) in 0) sleep 3;; esac; exec /vigil ready web"]
        periodSeconds: 1
        timeoutSeconds: 1
        failureThreshold: 5
`))
	c := p.running("app", startTimeout)
	cid := c.id()
	vigil := initPid(t, cid)
	if pr, ok := readProc(vigil); !ok || pr.innerPid() != 1 {
		t.Fatalf("vigil (host pid %d) is not PID 1 of its container: %+v", vigil, pr)
	}
	ns := pidNS(t, vigil)
	zw := watchZombies(ns, vigil)
	defer zw.stop()

	readyAt := waitReady(p)
	toReady := readyAt.Sub(p.written)
	webReady, ok := findSvc(p.svcEvents(), "web", "ready")
	if !ok {
		t.Fatalf("the pod is Ready but web never noted it was ready:\n%v", p.svcEvents())
	}
	if readyAt.Before(webReady.At) {
		t.Errorf("the pod was Ready at %s, before web (4 s to get ready) was, at %s",
			readyAt.Format(time.StampMilli), webReady.At.Format(time.StampMilli))
	}
	// Every probe before the first success said "not ready" (3); the first
	// success came after web was ready (10 ms: /proc/uptime's resolution).
	var before, firstOK []event
	for _, e := range execExits(cid) {
		if e.ExitStatus == 0 {
			firstOK = append(firstOK, e)
			break
		}
		before = append(before, e)
	}
	if len(firstOK) == 0 {
		t.Fatalf("the pod is Ready but containerd saw no exec exit 0")
	}
	for _, e := range before {
		// 3: not ready; 69: no vigil answers yet (a probe before its socket).
		if e.ExitStatus != 3 && e.ExitStatus != 69 {
			t.Errorf("a probe before the first success exited %d, want 3 (not ready) or 69 (no vigil yet)", e.ExitStatus)
		}
	}
	if firstOK[0].At.Before(webReady.At.Add(-20 * time.Millisecond)) {
		t.Errorf("`vigil ready` exited 0 at %s, before web was ready at %s",
			firstOK[0].At.Format(time.StampMilli), webReady.At.Format(time.StampMilli))
	}
	figure(t, "time to Ready: %s from the manifest (web ready after %s; pod Ready %s after web; %d probes said 3 or 69 before)",
		ms(toReady), ms(webReady.At.Sub(p.written)), ms(readyAt.Sub(webReady.At)), len(before))

	// 100 probe runs.
	deadline := time.Now().Add(3 * time.Minute)
	for len(execStarts(cid)) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d probe runs in 3 minutes", len(execStarts(cid)))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The last orphans (sleep 2, sleep 3) end and are reaped.
	time.Sleep(3500 * time.Millisecond)
	zw.stop()
	samples, seen, maxZ, orphans, leaked := zw.report()
	if len(leaked) > 0 {
		t.Errorf("zombies not reaped within 1 s:\n  %s", strings.Join(leaked, "\n  "))
	}
	atEnd := lingeringZombies(ns, vigil)
	if len(atEnd) > 0 {
		t.Errorf("zombies at the end, not reaped by vigil: %+v", atEnd)
	}
	if orphans == 0 {
		t.Errorf("no probe orphan was ever seen under vigil: the test proves nothing")
	}
	runs, codes := len(execStarts(cid)), map[int]int{}
	for _, e := range execExits(cid) {
		codes[e.ExitStatus]++
	}
	pi := p.waitFor(10*time.Second, "still Ready", func(pi podInfo) bool { return pi.condition("Ready") })
	if cs, _ := pi.container("app"); cs.RestartCount != 0 {
		t.Errorf("restartCount %d, want 0", cs.RestartCount)
	}
	figure(t, "probes: %d runs (exit statuses %v; 137 = killed on timeout); %d orphans reparented to vigil", runs, codes, orphans)
	figure(t, "zombies: %d seen in %d samples (at most %d at once), %d not reaped within 1 s, %d at the end",
		seen, samples, maxZ, len(leaked), len(atEnd))

	p.remove()
	e := waitExit(t, cid, exitTimeout)
	if e.ExitStatus != 0 {
		t.Errorf("vigil exited %d after the manifest was removed, want 0", e.ExitStatus)
	}
	figure(t, "shutdown: %s from the manifest's removal to vigil's exit %d", ms(e.At.Sub(p.deleted)), e.ExitStatus)
}

// 2. Removing the manifest: every service gets its own stop signal, in
// reverse dependency order, and vigil exits 0 well inside the grace period.
func TestShutdownOnDelete(t *testing.T) {
	t.Parallel()
	p := newPod(t, "s2-shutdown", map[string]string{"vigil.json": `{"services": [
  {"name": "db", "command": ["/svc.sh", "db", "0", "0.3"], "stop_signal": "SIGINT"},
  {"name": "web", "command": ["/svc.sh", "web", "1", "0.3"], "depends_on": ["db"],
   "ready": {"file": "/data/web.ready", "timeout": "60s"}},
  {"name": "worker", "command": ["/svc.sh", "worker", "0", "0.3"], "depends_on": ["web"], "stop_signal": "SIGQUIT"}
], "shutdown_timeout": "9s"}`})
	p.start(vigilPod(vigilReadyProbes))
	c := p.running("app", startTimeout)
	cid := c.id()
	readyAt := waitReady(p)
	figure(t, "time to Ready: %s from the manifest", ms(readyAt.Sub(p.written)))

	p.remove()
	e := waitExit(t, cid, exitTimeout)
	took := e.At.Sub(p.deleted)
	if e.ExitStatus != 0 {
		t.Errorf("vigil exited %d, want 0 (137 would be the kubelet's SIGKILL)", e.ExitStatus)
	}
	const grace = 10 * time.Second
	if took > grace/2 {
		t.Errorf("shutdown took %v: not well inside the grace period of %v", took, grace)
	}
	evs := p.svcEvents()
	want := []struct{ name, sig string }{{"worker", "QUIT"}, {"web", "TERM"}, {"db", "INT"}}
	var prev time.Time
	var first svcEvent
	for i, w := range want {
		got, ok := findSvc(evs, w.name, "got ")
		if !ok {
			t.Errorf("%s got no stop signal", w.name)
			continue
		}
		if got.What != "got "+w.sig {
			t.Errorf("%s: %s, want got %s", w.name, got.What, w.sig)
		}
		if _, ok := findSvc(evs, w.name, "exit"); !ok {
			t.Errorf("%s did not finish its stop handler (killed?)", w.name)
		}
		if i == 0 {
			first = got
		} else if got.At.Before(prev) {
			t.Errorf("%s was signalled before the service that depends on it had exited", w.name)
		}
		if ex, ok := findSvc(evs, w.name, "exit"); ok {
			prev = ex.At
		}
	}
	// vigil's own log (VIGIL_LOG_FILE on the hostPath): when the kubelet's
	// SIGTERM arrived, and what vigil sent to whom.
	var termAt time.Time
	var stops []string
	for _, r := range vigilLog(p) {
		switch r.Msg {
		case "shutting down":
			if termAt.IsZero() {
				termAt = r.Time
			}
		case "stopping":
			stops = append(stops, r.Service+" "+r.Signal)
		}
	}
	if termAt.IsZero() {
		t.Errorf("vigil logged no \"shutting down\"")
		termAt = first.At
	}
	if got := strings.Join(stops, ", "); got != "worker SIGQUIT, web SIGTERM, db SIGINT" {
		t.Errorf("vigil's stops: %s; want worker SIGQUIT, web SIGTERM, db SIGINT", got)
	}
	figure(t, "shutdown: %s from the manifest's removal to vigil's exit %d (grace period %v): the kubelet's part (removal -> vigil's \"shutting down\") %s, vigil's (-> exit; worker QUIT -> web TERM -> db INT, each 0.3 s to finish) %s; first service signalled %s after vigil's \"shutting down\"",
		ms(took), e.ExitStatus, grace, ms(termAt.Sub(p.deleted)), ms(e.At.Sub(termAt)), ms(first.At.Sub(termAt)))
}

// 3. A critical service that gives up makes vigil exit non-zero; the kubelet
// restarts the container; the state on a hostPath shows the retry counts and
// given-up marks carried over (docs/state-and-reexec.md).
func TestGiveUpRestartState(t *testing.T) {
	t.Parallel()
	p := newPod(t, "s3-giveup", map[string]string{"vigil.json": `{"services": [
  {"name": "flaky", "command": ["/bin/sh", "-c", "echo run >> /data/flaky.runs; exit 1"],
   "restart": "on-failure", "max_retries": 0},
  {"name": "steady", "command": ["/svc.sh", "steady"]},
  {"name": "crit", "command": ["/bin/sh", "-c", "echo run >> /data/crit.runs; sleep 1; exit 3"],
   "restart": "on-failure", "max_retries": 2, "critical": true,
   "backoff": {"initial": "200ms", "factor": 1, "jitter": 0}}
]}`})
	if err := os.MkdirAll(filepath.Join(p.data, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	p.start(podHead + `  containers:
    - name: app
      image: {{IMAGE}}
      imagePullPolicy: Never
      args: ["-c", "/data/vigil.json"]
      env:
        - name: VIGIL_STATE_DIR
          value: /state
        - name: VIGIL_LOG_FORMAT
          value: json
      volumeMounts:
        - name: data
          mountPath: /data
        - name: state
          mountPath: /state
` + dataVolume + `    - name: state
      hostPath:
        path: {{DATA}}/state
        type: Directory
`)
	// The first two runs of the container: their IDs and exits.
	var exits []event
	seen := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(exits) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d container exits in 2 minutes, want 2", len(exits))
		}
		if pi, ok := p.status(); ok {
			if cs, ok := pi.container("app"); ok {
				for _, id := range []string{cs.id(), termID(cs.LastState)} {
					if id != "" && !seen[id] {
						if es := events.find(initExit(id)); len(es) > 0 {
							seen[id] = true
							exits = append(exits, es[0])
						}
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if exits[1].At.Before(exits[0].At) {
		exits[0], exits[1] = exits[1], exits[0]
	}
	for i, e := range exits {
		if e.ExitStatus != 3 {
			t.Errorf("run %d of the container: vigil exited %d, want 3 (crit's status)", i+1, e.ExitStatus)
		}
	}
	if n := strings.Count(p.readFile("crit.runs"), "run"); n != 4 {
		t.Errorf("crit ran %d times, want 4: 1 + max_retries 2 in the first container, 1 in the second", n)
	}
	if n := strings.Count(p.readFile("flaky.runs"), "run"); n != 1 {
		t.Errorf("flaky ran %d times, want 1: given up in the first container, kept down in the second", n)
	}
	if evs := p.svcEvents(); len(evs) > 0 {
		if _, ok := findSvc(evs, "steady", "got TERM"); !ok {
			t.Errorf("steady was not stopped with TERM when crit gave up: %v", evs)
		}
	}
	var st struct {
		Services map[string]struct {
			Retries  int  `json:"retries"`
			GivenUp  bool `json:"given_up"`
			LastExit *int `json:"last_exit"`
		} `json:"services"`
	}
	raw, err := os.ReadFile(filepath.Join(p.data, "state", "state.json"))
	if err != nil {
		t.Fatalf("state.json on the hostPath: %v", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("state.json: %v\n%s", err, raw)
	}
	crit, flaky := st.Services["crit"], st.Services["flaky"]
	if crit.Retries != 4 || !crit.GivenUp {
		t.Errorf("state: crit retries %d given_up %v, want 4 (3 carried over + 1) and true\n%s", crit.Retries, crit.GivenUp, raw)
	}
	if flaky.Retries != 1 || !flaky.GivenUp {
		t.Errorf("state: flaky retries %d given_up %v, want 1 and true\n%s", flaky.Retries, flaky.GivenUp, raw)
	}
	pi := p.waitFor(30*time.Second, "restartCount >= 1 and the last exit 3", func(pi podInfo) bool {
		cs, ok := pi.container("app")
		return ok && cs.RestartCount >= 1 && cs.LastState.Terminated != nil && cs.LastState.Terminated.ExitCode == 3
	})
	cs, _ := pi.container("app")
	figure(t, "vigil exits %d then %d; kubelet restartCount %d, lastState exit %d; the second container started %s after the first exited",
		exits[0].ExitStatus, exits[1].ExitStatus, cs.RestartCount, cs.LastState.Terminated.ExitCode,
		ms(startAfter(exits)))
	figure(t, "state.json after 2 containers: crit retries %d given_up %v, flaky retries %d given_up %v; runs: crit %d, flaky %d",
		crit.Retries, crit.GivenUp, flaky.Retries, flaky.GivenUp,
		strings.Count(p.readFile("crit.runs"), "run"), strings.Count(p.readFile("flaky.runs"), "run"))
}

func termID(s containerState) string {
	if s.Terminated == nil {
		return ""
	}
	_, id, _ := strings.Cut(s.Terminated.ContainerID, "://")
	return id
}

// startAfter: from the first container's exit to the second one's start.
func startAfter(exits []event) time.Duration {
	es := events.find(func(e event) bool { return e.Topic == "/tasks/start" && e.ContainerID == exits[1].ContainerID })
	if len(es) == 0 {
		return 0
	}
	return es[0].At.Sub(exits[0].At)
}

// 4. shareProcessNamespace: pause is PID 1, vigil is not; vigil's services'
// orphans still come to vigil (a child subreaper) and are reaped; shutdown
// still works.
func TestSharedPIDNamespace(t *testing.T) {
	t.Parallel()
	p := newPod(t, "s4-shared-pid", map[string]string{"vigil.json": `{"services": [
  {"name": "spawner", "command": ["/bin/sh", "-c", "while :; do (sleep 1 &); sleep 0.3 & wait $!; done"]},
  {"name": "a", "command": ["/svc.sh", "a", "0", "0.2"]}
]}`})
	p.start(strings.Replace(vigilPod(vigilReadyProbes), "  hostNetwork: true\n",
		"  hostNetwork: true\n  shareProcessNamespace: true\n", 1))
	c := p.running("app", startTimeout)
	cid := c.id()
	vigil := initPid(t, cid)
	readyAt := waitReady(p)
	ns := pidNS(t, vigil)
	vp, _ := readProc(vigil)
	var pid1 hostProc
	for _, pr := range inNS(ns) {
		if pr.innerPid() == 1 {
			pid1 = pr
		}
	}
	if vp.innerPid() == 1 {
		t.Fatalf("vigil is PID 1 in a pod with shareProcessNamespace")
	}
	if pid1.comm != "catatonit" {
		t.Errorf("PID 1 of the pod is %q, want the pause container (catatonit)", pid1.comm)
	}
	zw := watchZombies(ns, vigil)
	time.Sleep(8 * time.Second)
	zw.stop()
	samples, seen, maxZ, orphans, leaked := zw.report()
	if orphans < 5 {
		t.Errorf("only %d orphans were reparented to vigil in 8 s (one every 0.3 s expected)", orphans)
	}
	if len(leaked) > 0 {
		t.Errorf("zombies not reaped within 1 s:\n  %s", strings.Join(leaked, "\n  "))
	}
	figure(t, "vigil is PID %d of the pod, PID 1 is %s; time to Ready %s", vp.innerPid(), pid1.comm, ms(readyAt.Sub(p.written)))
	figure(t, "orphans reparented to vigil in 8 s: %d; zombies: %d seen in %d samples (at most %d at once), %d not reaped within 1 s",
		orphans, seen, samples, maxZ, len(leaked))

	p.remove()
	e := waitExit(t, cid, exitTimeout)
	if e.ExitStatus != 0 {
		t.Errorf("vigil exited %d, want 0", e.ExitStatus)
	}
	evs := p.svcEvents()
	if _, ok := findSvc(evs, "a", "got TERM"); !ok {
		t.Errorf("service a got no SIGTERM: %v", evs)
	}
	if _, ok := findSvc(evs, "a", "exit"); !ok {
		t.Errorf("service a did not finish its stop handler: %v", evs)
	}
	figure(t, "shutdown: %s from the manifest's removal to vigil's exit %d", ms(e.At.Sub(p.deleted)), e.ExitStatus)
}

// 5. Wrapper mode in a pod, as a drop-in for tini: exit codes, forwarded
// signals and the exit on the kubelet's SIGTERM as under Docker
// (integration/docker TestExitCodes, TestDockerKill).
func TestWrapperMode(t *testing.T) {
	t.Parallel()
	t.Run("exit codes", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			name    string
			command string // YAML, "" = the image's ENTRYPOINT ["/vigil", "--"]
			args    string // YAML; the kubelet expands $(VAR) in it, so $$ is a $
			want    int
		}{
			{"exit0", "", `["sh", "-c", "exit 0"]`, 0},
			{"exit3", "", `["sh", "-c", "exit 3"]`, 3},
			{"kill9", "", `["sh", "-c", "kill -9 $$$$"]`, 137},
			{"killterm", "", `["sh", "-c", "kill -TERM $$$$"]`, 143},
			{"notfound", "", `["/no/such/command"]`, 127},
			{"notexec", "", `["/dev/null"]`, 126},
			{"e143", `["/vigil", "-e", "143", "--"]`, `["sh", "-c", "kill -TERM $$$$"]`, 0},
		}
		p := newPod(t, "s5-exit-codes", nil)
		var y strings.Builder
		y.WriteString(strings.Replace(podHead, "spec:\n", "spec:\n  restartPolicy: Never\n", 1))
		y.WriteString("  containers:\n")
		for _, c := range cases {
			fmt.Fprintf(&y, "    - name: %s\n      image: {{WRAPPER}}\n      imagePullPolicy: Never\n", c.name)
			if c.command != "" {
				fmt.Fprintf(&y, "      command: %s\n", c.command)
			}
			fmt.Fprintf(&y, "      args: %s\n", c.args)
		}
		p.start(y.String())
		pi := p.waitFor(startTimeout, "every container terminated", func(pi podInfo) bool {
			n := 0
			for _, cs := range pi.Status.ContainerStatuses {
				if cs.State.Terminated != nil {
					n++
				}
			}
			return n == len(cases)
		})
		var got []string
		for _, c := range cases {
			cs, _ := pi.container(c.name)
			code := cs.State.Terminated.ExitCode
			ev := waitExit(t, cs.id(), 10*time.Second)
			if code != c.want || ev.ExitStatus != c.want {
				t.Errorf("%s: the kubelet says exit %d, containerd %d; want %d", c.name, code, ev.ExitStatus, c.want)
			}
			got = append(got, fmt.Sprintf("%s=%d", c.name, code))
		}
		figure(t, "exit codes (kubelet = containerd = Docker's): %s; pod phase %s", strings.Join(got, " "), pi.Status.Phase)
	})
	t.Run("signals", func(t *testing.T) {
		t.Parallel()
		p := newPod(t, "s5-signals", nil)
		p.start(podHead + `  containers:
    - name: app
      image: {{WRAPPER}}
      imagePullPolicy: Never
`)
		c := p.running("app", startTimeout)
		cid := c.id()
		vigil := initPid(t, cid)
		ns := pidNS(t, vigil)
		waitLog(t, p, "app", "my parent is vigil", 30*time.Second)
		time.Sleep(500 * time.Millisecond) // app.sh sets its traps after that line
		for _, sig := range []string{"SIGUSR1", "SIGHUP"} {
			signal(t, cid, sig)
			waitLog(t, p, "app", "got "+sig+" (forwarded by vigil)", 15*time.Second)
		}
		// app.sh's five orphans (sleep 0.5) were reaped by vigil.
		if z := lingeringZombies(ns, vigil); len(z) > 0 {
			t.Errorf("zombies not reaped by vigil: %+v", z)
		}
		p.remove()
		e := waitExit(t, cid, exitTimeout)
		if e.ExitStatus != 143 {
			t.Errorf("exit %d after the kubelet's SIGTERM, want 143 (as tini: sh dies of the forwarded TERM)", e.ExitStatus)
		}
		figure(t, "USR1 and HUP forwarded to the main process; stop: exit %d, %s from the manifest's removal",
			e.ExitStatus, ms(e.At.Sub(p.deleted)))
	})
}

// waitLog waits until a container's log holds text.
func waitLog(t *testing.T, p *testPod, container, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.logs(container), text) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in %s's log within %v:\n%s", text, container, timeout, indent(p.logs(container)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 6. The example manifests of examples/kubernetes run unchanged but for
// hostNetwork (this node has no CNI). The images keep their names
// (vigil-demo:dev); run.sh imported them under exactly those names.
func TestExampleManifests(t *testing.T) {
	t.Parallel()
	// One after the other: both serve :8080 on the host's network.
	t.Run("pod.yaml", func(t *testing.T) {
		p := examplePod(t, "pod.yaml", "vigil-demo")
		portFree := portIsFree("127.0.0.1:8080")
		p.start(p.readExample())
		c := p.running("app", startTimeout)
		cid := c.id()
		vigil := initPid(t, cid)
		if pr, _ := readProc(vigil); pr.innerPid() != 1 {
			t.Errorf("vigil is PID %d of its container, want 1", pr.innerPid())
		}
		readyAt := waitReady(p)
		figure(t, "time to Ready: %s from the manifest (startup probe every 1 s)", ms(readyAt.Sub(p.written)))
		log := p.logs("app")
		for _, want := range []string{"migrate | schema is at version 3", "worker | worker started"} {
			if !strings.Contains(log, want) {
				t.Errorf("%q not in the log:\n%s", want, indent(log))
			}
		}
		if portFree {
			body, err := httpGet("http://127.0.0.1:8080/")
			if err != nil || len(body) == 0 {
				t.Errorf("GET :8080 (web, host network): %v", err)
			}
		} else {
			t.Log("127.0.0.1:8080 was taken before the pod started: web's page not checked")
		}
		time.Sleep(6 * time.Second) // a few readiness and liveness probe runs
		ns := pidNS(t, vigil)
		if z := lingeringZombies(ns, vigil); len(z) > 0 {
			t.Errorf("zombies not reaped by vigil: %+v", z)
		}
		// The probes are httpGet on vigil's endpoint (VIGIL_HTTP :9090):
		// the kubelet forks nothing in the container.
		if n := len(execStarts(cid)); n != 0 {
			t.Errorf("%d exec probe runs, want none (httpGet probes)", n)
		}
		probes := 0
		if body, err := httpGet("http://127.0.0.1:9090/readyz"); err != nil || string(body) != "ok\n" {
			t.Errorf("GET :9090/readyz (vigil, host network): %q %v", body, err)
		}
		p.remove()
		e := waitExit(t, cid, exitTimeout)
		if e.ExitStatus != 0 {
			t.Errorf("vigil exited %d, want 0", e.ExitStatus)
		}
		if took := e.At.Sub(p.deleted); took > 9*time.Second {
			t.Errorf("shutdown took %v, past VIGIL_SHUTDOWN_TIMEOUT 9s", took)
		}
		waitLog(t, p, "app", "got SIGQUIT: finishing job", 10*time.Second)
		figure(t, "%d exec probe runs (httpGet probes), 0 zombies; shutdown: %s from the manifest's removal to vigil's exit %d (grace 15 s)",
			probes, ms(e.At.Sub(p.deleted)), e.ExitStatus)
	})
	t.Run("pod-shared-pid.yaml", func(t *testing.T) {
		p := examplePod(t, "pod-shared-pid.yaml", "vigil-demo-shared-pid")
		p.start(p.readExample())
		app := p.running("app", startTimeout)
		status := p.running("status", startTimeout)
		readyAt := waitReady(p)
		figure(t, "time to Ready: %s from the manifest", ms(readyAt.Sub(p.written)))
		vigil := initPid(t, app.id())
		if pr, _ := readProc(vigil); pr.innerPid() == 1 {
			t.Errorf("vigil is PID 1 with shareProcessNamespace")
		} else {
			figure(t, "vigil is PID %d of the pod", pr.innerPid())
		}
		// The sidecar reaches vigil through the socket on the shared volume
		// (`kubectl exec vigil-demo-shared-pid -c status -- /vigil status`).
		out, code := execIn(t, status.id(), "/vigil", "status")
		if code != 0 || !strings.Contains(out, "worker") {
			t.Errorf("vigil status in the sidecar: exit %d\n%s", code, indent(out))
		}
		p.remove()
		for _, c := range []containerStatus{app, status} {
			e := waitExit(t, c.id(), exitTimeout)
			if e.ExitStatus != 0 {
				t.Errorf("%s exited %d, want 0", c.Name, e.ExitStatus)
			}
			figure(t, "shutdown: %s exited %d, %s after the manifest's removal", c.Name, e.ExitStatus, ms(e.At.Sub(p.deleted)))
		}
	})
}

// examplePod is a pod whose manifest is examples/kubernetes/FILE.
func examplePod(t *testing.T, file, name string) *testPod {
	p := newPod(t, name, nil)
	p.source = filepath.Join("..", "..", "examples", "kubernetes", file)
	return p
}

// readExample is the example manifest with hostNetwork: true added to its
// spec, the only change (no CNI here).
func (p *testPod) readExample() string {
	p.t.Helper()
	b, err := os.ReadFile(p.source)
	if err != nil {
		p.t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "\nspec:\n") || strings.Contains(s, "hostNetwork") {
		p.t.Fatalf("%s: no top-level spec, or hostNetwork set already", p.source)
	}
	return strings.Replace(s, "\nspec:\n", "\nspec:\n  hostNetwork: true\n", 1)
}

func portIsFree(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func httpGet(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// 7. Probes over vigil's HTTP endpoint: a service whose health check fails
// (a hang) is restarted by vigil and the kubelet never restarts the
// container (/livez stays 200); the pod's Ready condition follows /readyz,
// which follows a readiness check with an interval, without any restart.
func TestHTTPProbes(t *testing.T) {
	t.Parallel()
	const addr = "127.0.0.1:19097" // host network: a port of this test's own
	p := newPod(t, "s7-http", map[string]string{"gate.open": "", "vigil.json": `{"http": "` + addr + `", "services": [
  {"name": "web", "command": ["/svc.sh", "web"], "backoff": {"initial": "100ms"},
   "health": {"exec": ["/bin/sh", "-c", "test ! -e /data/hang"], "interval": "1s", "timeout": "500ms", "failure_threshold": 2}},
  {"name": "gate", "command": ["/svc.sh", "gate"], "ready": {"file": "/data/gate.open", "interval": "500ms"}}
]}`})
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	p.start(vigilPod(`      startupProbe:
        httpGet: {path: /readyz, port: ` + port + `}
        periodSeconds: 1
        failureThreshold: 120
      readinessProbe:
        httpGet: {path: /readyz, port: ` + port + `}
        periodSeconds: 1
        failureThreshold: 1
      livenessProbe:
        httpGet: {path: /livez, port: ` + port + `}
        periodSeconds: 1
        failureThreshold: 2
`))
	c := p.running("app", startTimeout)
	cid := c.id()
	readyAt := waitReady(p)
	figure(t, "httpGet probes: time to Ready %s from the manifest", ms(readyAt.Sub(p.written)))

	// Readiness follows /readyz: the gate closes and opens again.
	gate := filepath.Join(p.data, "gate.open")
	for round := 0; round < 2; round++ {
		os.Remove(gate)
		p.waitFor(startTimeout, "Ready condition False", func(pi podInfo) bool { return !pi.condition("Ready") })
		if body, err := httpGet("http://" + addr + "/readyz"); err == nil {
			t.Errorf("GET /readyz with the gate closed: 200 %q", body)
		}
		os.WriteFile(gate, nil, 0o644)
		waitReady(p)
	}
	if _, ok := findSvc(p.svcEvents(), "gate", "got "); ok {
		t.Error("the gate service was signalled: not ready must not restart it")
	}

	// A hang: vigil finds web unhealthy, stops it with SIGTERM and starts
	// it again; the container is never restarted.
	hangAt := time.Now()
	os.WriteFile(filepath.Join(p.data, "hang"), nil, 0o644)
	deadline := time.Now().Add(startTimeout)
	for {
		if got, ok := findSvc(p.svcEvents(), "web", "got "); ok {
			if got.What != "got TERM" {
				t.Errorf("web: %s, want got TERM", got.What)
			}
			figure(t, "unhealthy web stopped %s after the hang (interval 1 s x threshold 2 + timeout)", ms(got.At.Sub(hangAt)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web was never stopped for its health:\n%s", indent(p.allLogs()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.Remove(filepath.Join(p.data, "hang"))
	p.waitFor(startTimeout, "web started again", func(podInfo) bool {
		n := 0
		for _, e := range p.svcEvents() {
			if e.Name == "web" && strings.HasPrefix(e.What, "start ") {
				n++
			}
		}
		return n >= 2
	})
	pi := waitReadyInfo(p)
	if st, ok := pi.container("app"); !ok || st.RestartCount != 0 || st.id() != cid {
		t.Errorf("the container was restarted (restartCount %d, id %s, was %s)", st.RestartCount, st.id(), cid)
	}
	if body, err := httpGet("http://" + addr + "/metrics"); err != nil ||
		!strings.Contains(string(body), `vigil_service_restarts_total{service="web"} 1`) {
		t.Errorf("metrics: %v\n%s", err, body)
	}
	p.remove()
	if e := waitExit(t, cid, exitTimeout); e.ExitStatus != 0 {
		t.Errorf("vigil exited %d, want 0", e.ExitStatus)
	}
}

// waitReadyInfo waits for the Ready condition and returns the pod's status.
func waitReadyInfo(p *testPod) podInfo {
	p.t.Helper()
	return p.waitFor(startTimeout, "Ready condition", func(pi podInfo) bool { return pi.condition("Ready") })
}
