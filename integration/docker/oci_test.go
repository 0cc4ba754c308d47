//go:build docker

package docker

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-init/vigil/integration/release/oci"
)

// TestOCIImageLoad: the image `make release` writes without an engine (an
// OCI layout tarball from the Dockerfile, integration/release/oci) loads
// into a real engine with its name and platform, and runs: for this
// machine's architecture only, built here from this run's binary.
func TestOCIImageLoad(t *testing.T) {
	platform, err := oci.ParsePlatform("linux/" + runtime.GOARCH)
	if err != nil {
		t.Skipf("no release image for %s: %v", runtime.GOARCH, err)
	}
	df, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := oci.ParseDockerfile(df)
	df.Close()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(vigilBin)
	if err != nil {
		t.Fatal(err)
	}
	name := "vigil-test-oci"
	tag := name + ":" + runID
	imageMu.Lock()
	imageTags["oci"] = tag
	imageMu.Unlock()
	var buf bytes.Buffer
	err = oci.Write(&buf, oci.Options{Recipe: rc, Platform: platform, Name: name, Tag: runID,
		Created: time.Unix(1767225600, 0), Files: map[string]oci.File{"bin/vigil": {Data: bin, Mode: 0o755}}})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "vigil.oci.tar")
	if err := os.WriteFile(tarball, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	out := must(t, "load", "-i", tarball)
	if !strings.Contains(out, tag) {
		t.Fatalf("docker load: %q, want the image %s", out, tag)
	}
	t.Logf("docker load of a %d-byte OCI tarball: %s", buf.Len(), strings.TrimSpace(out))
	if got := inspect(t, tag, "{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}} {{.Created}}"); !strings.HasPrefix(got, "linux/"+runtime.GOARCH+` ["/vigil"] 2026-01-01T00:00:00`) {
		t.Errorf("docker inspect: %q", got)
	}
	if code, r := runForeground(t, cmdTimeout, tag, "version"); code != 0 || !strings.Contains(r.stdout, "vigil docker-test") {
		t.Errorf("vigil version in the loaded image: %s", r)
	}
	// Wrapper mode: vigil runs itself as the main process and passes its status on.
	if code, r := runForeground(t, cmdTimeout, tag, "--", "/vigil", "check", "-c", "/nonexistent"); code == 0 {
		t.Errorf("vigil -- /vigil check of a missing file: want a failure passed through, got %s", r)
	}
}
