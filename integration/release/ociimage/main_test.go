package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-init/vigil/integration/release/oci"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // whatever the umask
	}
	write("Dockerfile", "FROM scratch\nCOPY bin/vigil /vigil\nENTRYPOINT [\"/vigil\"]\n", 0o644)
	write("bin/vigil", "the host's binary", 0o755)
	write("arm64", "the arm64 binary", 0o700) // a umask of 077: still 0755 in the image
	os.Symlink(filepath.Join(dir, "arm64"), filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)

	base := []string{"-f", filepath.Join(dir, "Dockerfile"), "-context", dir, "-platform", "linux/arm64", "-tag", "v1-arm64", "-created", "1767225600"}
	tests := []struct {
		name  string
		args  []string
		vigil string // /vigil in the image; empty: an error with err
		err   string
	}{
		{"from the context", []string{}, "the host's binary", ""},
		{"replaced", []string{"-replace", "bin/vigil=" + filepath.Join(dir, "arm64")}, "the arm64 binary", ""},
		{"symlink refused", []string{"-replace", "bin/vigil=" + filepath.Join(dir, "link")}, "", "symbolic link"},
		{"directory refused", []string{"-replace", "bin/vigil=" + filepath.Join(dir, "adir")}, "", "not a regular file"},
		{"replace of nothing", []string{"-replace", "bin/other=" + filepath.Join(dir, "arm64")}, "", "copies no such file"},
		{"bad platform", []string{"-platform", "linux/mips"}, "", "unknown architecture"},
		{"bad epoch", []string{"-created", "yesterday"}, "", "seconds since 1970"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out", strings.Repeat("x", i+1)+".tar")
			os.MkdirAll(filepath.Dir(out), 0o755)
			err := run(append(append(append([]string{}, base...), "-o", out), tt.args...))
			if tt.vigil == "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Fatalf("a failed run left %s", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			img, err := oci.Read(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if f := img.Files["vigil"]; string(f.Data) != tt.vigil || f.Mode != 0o755 {
				t.Fatalf("/vigil: %q, mode %v; want %q, 0755", f.Data, f.Mode, tt.vigil)
			}
		})
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "out", ".ociimage-*"))
	if len(leftovers) > 0 {
		t.Fatalf("temporary files left: %q", leftovers)
	}
}
