// Package manifests checks the Kubernetes examples against the official API
// types. It is a module of its own so k8s.io/api never reaches vigil's
// go.mod.
package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestExamplePodsDecodeStrictly decodes every manifest in examples/kubernetes
// into a core/v1 Pod, refusing unknown or duplicate fields, and checks what
// the README promises of them.
func TestExamplePodsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("../../examples/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(b, &pod); err != nil {
				t.Fatalf("not a valid Pod: %v", err)
			}
			if pod.Kind != "Pod" || pod.APIVersion != "v1" {
				t.Errorf("kind %q apiVersion %q", pod.Kind, pod.APIVersion)
			}
			grace := pod.Spec.TerminationGracePeriodSeconds
			if grace == nil || *grace <= 9 {
				t.Errorf("terminationGracePeriodSeconds %v must exceed VIGIL_SHUTDOWN_TIMEOUT's default 9s", grace)
			}
			vigil := 0
			for _, c := range pod.Spec.Containers {
				if c.ReadinessProbe == nil || (c.ReadinessProbe.Exec == nil && c.ReadinessProbe.HTTPGet == nil) {
					continue
				}
				vigil++
				if c.ReadinessProbe.HTTPGet != nil {
					checkHTTPProbes(t, c)
				} else {
					cmd := strings.Join(c.ReadinessProbe.Exec.Command, " ")
					if !strings.HasSuffix(cmd, "vigil ready") {
						t.Errorf("container %s: readiness probe %q is not vigil ready", c.Name, cmd)
					}
					if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
						t.Errorf("container %s: no exec liveness probe", c.Name)
					}
				}
				for _, e := range c.Env {
					if e.Name == "VIGIL_SHUTDOWN_TIMEOUT" && grace != nil {
						d, err := time.ParseDuration(e.Value)
						if err != nil || d >= time.Duration(*grace)*time.Second {
							t.Errorf("VIGIL_SHUTDOWN_TIMEOUT %q does not fit the %ds grace period", e.Value, *grace)
						}
					}
				}
				state := false
				for _, m := range c.VolumeMounts {
					state = state || m.MountPath == "/var/lib/vigil"
				}
				if !state {
					t.Errorf("container %s: no state volume at /var/lib/vigil", c.Name)
				}
			}
			if vigil == 0 {
				t.Errorf("no container probed with vigil ready")
			}
			if strings.Contains(f, "shared-pid") && (pod.Spec.ShareProcessNamespace == nil || !*pod.Spec.ShareProcessNamespace) {
				t.Errorf("shareProcessNamespace is not true")
			}
		})
	}
}

// checkHTTPProbes: probes over vigil's HTTP endpoint GET /readyz (startup,
// readiness) and /livez (liveness) on the port VIGIL_HTTP opens.
func checkHTTPProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	addr := ""
	for _, e := range c.Env {
		if e.Name == "VIGIL_HTTP" {
			addr = e.Value
		}
	}
	if addr == "" {
		t.Errorf("container %s: httpGet probes without VIGIL_HTTP", c.Name)
		return
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/readyz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/livez"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container %s: no httpGet %s probe", c.Name, p.kind)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("container %s: %s probe GETs %q, want %q", c.Name, p.kind, g.Path, p.path)
		}
		got := g.Port.String()
		for _, cp := range c.Ports {
			if cp.Name == got {
				got = fmt.Sprint(cp.ContainerPort)
			}
		}
		if got != port {
			t.Errorf("container %s: %s probe on port %s, VIGIL_HTTP is %q", c.Name, p.kind, got, addr)
		}
	}
}
