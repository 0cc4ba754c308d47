package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPrometheusScrapes runs a real Prometheus server against the endpoint
// and waits until it has stored a sample, then lints the exposition with
// promtool. Both come with Debian's prometheus package; without them the test
// skips.
func TestPrometheusScrapes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install -y prometheus): real scrape not tested")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install -y prometheus): lint not tested")
	}
	src := newSource()
	src.set(func(f *fakeSource) { f.ready["db"] = false })
	_, addr := start(t, src, nil)

	// promtool on what the endpoint serves.
	resp, body := get(t, &http.Client{Timeout: 30 * time.Second}, "GET", "http://"+addr+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = bytes.NewReader([]byte(body))
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ['%s']
`, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	web := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web)
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

	client := &http.Client{Timeout: 10 * time.Second}
	query := func(q string) ([]json.RawMessage, error) {
		r, err := client.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer r.Body.Close()
		var out struct {
			Status string
			Data   struct{ Result []json.RawMessage }
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%v: %s", err, b)
		}
		return out.Data.Result, nil
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := query(`vigil_service_ready{service="db"} == 0 and on() vigil_build_info{version="test"} == 1`)
		if err == nil && len(res) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scraped sample after 2 minutes (last: %v %s)", err, res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The target is healthy: Prometheus parsed every scrape.
	res, err := query(`up{job="vigil"} == 1`)
	if err != nil || len(res) != 1 {
		t.Errorf("up: %v %s", err, res)
	}
	res, err = query(`scrape_samples_scraped{job="vigil"}`)
	if err != nil || len(res) != 1 {
		t.Errorf("scrape_samples_scraped: %v %s", err, res)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
