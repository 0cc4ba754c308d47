// Package manifests checks the Kubernetes examples against the official API
// types. It is a module of its own so k8s.io/api never reaches vigil's
// go.mod.
package manifests

import (
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
				if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil {
					continue
				}
				vigil++
				cmd := strings.Join(c.ReadinessProbe.Exec.Command, " ")
				if !strings.HasSuffix(cmd, "vigil ready") {
					t.Errorf("container %s: readiness probe %q is not vigil ready", c.Name, cmd)
				}
				if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
					t.Errorf("container %s: no exec liveness probe", c.Name)
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
