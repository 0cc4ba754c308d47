package oci

import (
	"archive/tar"
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDockerfile(t *testing.T) {
	tests := []struct {
		name, in string
		want     *Recipe
		err      string
	}{
		{name: "vigil's", in: "# a comment\nFROM scratch\nCOPY bin/vigil /vigil\nENTRYPOINT [\"/vigil\"]\n",
			want: &Recipe{Copies: []Copy{{"bin/vigil", "/vigil"}}, Entrypoint: []string{"/vigil"}, Labels: map[string]string{}}},
		{name: "everything", in: "from scratch\nCOPY a/b /sbin/\nCOPY c \\\n  /etc/c.json\nENV A=1 B=\"two words\"\nENV A=3\n" +
			"LABEL org.x=y\nWORKDIR /w/\nUSER 65534:65534\nENTRYPOINT [\"/sbin/b\", \"--\"]\nCMD [\"sh\"]\n",
			want: &Recipe{Copies: []Copy{{"a/b", "/sbin/b"}, {"c", "/etc/c.json"}}, Env: []string{"A=3", "B=two words"},
				Labels: map[string]string{"org.x": "y"}, WorkingDir: "/w", User: "65534:65534",
				Entrypoint: []string{"/sbin/b", "--"}, Cmd: []string{"sh"}}},
		{name: "entrypoint resets cmd", in: "FROM scratch\nCOPY a /a\nCMD [\"x\"]\nENTRYPOINT [\"/a\"]\n",
			want: &Recipe{Copies: []Copy{{"a", "/a"}}, Entrypoint: []string{"/a"}, Labels: map[string]string{}}},
		{name: "not scratch", in: "FROM debian\nCOPY a /a\n", err: "only FROM scratch"},
		{name: "multi-stage", in: "FROM scratch\nFROM scratch\n", err: "second FROM"},
		{name: "no from", in: "COPY a /a\n", err: "before FROM"},
		{name: "run", in: "FROM scratch\nRUN true\n", err: "RUN is not supported"},
		{name: "arg", in: "FROM scratch\nARG X\n", err: "ARG is not supported"},
		{name: "shell form", in: "FROM scratch\nCOPY a /a\nENTRYPOINT /a\n", err: "exec form"},
		{name: "copy flag", in: "FROM scratch\nCOPY --chown=1 a /a\n", err: "COPY SRC DST"},
		{name: "copy outside", in: "FROM scratch\nCOPY ../a /a\n", err: "inside the build context"},
		{name: "copy glob", in: "FROM scratch\nCOPY *.go /a\n", err: "inside the build context"},
		{name: "relative dst", in: "FROM scratch\nCOPY a a\n", err: "absolute"},
		{name: "variable", in: "FROM scratch\nCOPY a /a\nENV A=$B\n", err: "not expanded"},
		{name: "legacy env", in: "FROM scratch\nCOPY a /a\nENV A 1\n", err: "KEY=VALUE"},
		{name: "nothing copied", in: "FROM scratch\n", err: "copies nothing"},
		{name: "dangling continuation", in: "FROM scratch\nCOPY a \\\n", err: "continuation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDockerfile(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The repository's own Dockerfile stays within what this package builds.
func TestRepositoryDockerfile(t *testing.T) {
	f, err := os.Open("../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := ParseDockerfile(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Copies) != 1 || rc.Copies[0] != (Copy{"bin/vigil", "/vigil"}) || !reflect.DeepEqual(rc.Entrypoint, []string{"/vigil"}) {
		t.Fatalf("the Dockerfile changed: %+v; `make release` passes -replace bin/vigil=...", rc)
	}
}

func vigilOptions(t *testing.T, arch string, data []byte) Options {
	t.Helper()
	rc, err := ParseDockerfile(strings.NewReader("FROM scratch\nCOPY bin/vigil /vigil\nCOPY cfg /etc/vigil/vigil.json\nENTRYPOINT [\"/vigil\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePlatform(arch)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Recipe: rc, Platform: p, Name: "vigil", Tag: "v1.2.3-4-gabcdef0",
		Created: time.Unix(1767225600, 0),
		Files:   map[string]File{"bin/vigil": {Data: data, Mode: 0o755}, "cfg": {Data: []byte(`{"services":[]}`), Mode: 0o644}}}
}

func TestWriteRead(t *testing.T) {
	o := vigilOptions(t, "linux/arm/v7", []byte("not an ELF file"))
	var a, b bytes.Buffer
	if err := Write(&a, o); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds of the same image differ")
	}
	img, err := Read(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if img.Platform != (Platform{"linux", "arm", "v7"}) {
		t.Errorf("platform %v", img.Platform)
	}
	if img.Name != "docker.io/library/vigil:v1.2.3-4-gabcdef0" || img.Ref != "v1.2.3-4-gabcdef0" ||
		!reflect.DeepEqual(img.RepoTags, []string{"vigil:v1.2.3-4-gabcdef0"}) {
		t.Errorf("names %q %q %q", img.Name, img.Ref, img.RepoTags)
	}
	c := img.Config.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/vigil"}) || c.Cmd != nil || !reflect.DeepEqual(c.Env, []string{DefaultPath}) ||
		c.Labels["org.opencontainers.image.version"] != "v1.2.3-4-gabcdef0" {
		t.Errorf("config %+v", c)
	}
	if img.Config.Created != "2026-01-01T00:00:00Z" {
		t.Errorf("created %q", img.Config.Created)
	}
	if f := img.Files["vigil"]; string(f.Data) != "not an ELF file" || f.Mode != 0o755 {
		t.Errorf("/vigil: %q %v", f.Data, f.Mode)
	}
	if f := img.Files["etc/vigil/vigil.json"]; string(f.Data) != `{"services":[]}` || f.Mode != 0o644 {
		t.Errorf("/etc/vigil/vigil.json: %q %v", f.Data, f.Mode)
	}
	if !reflect.DeepEqual(img.Dirs, []string{"etc", "etc/vigil"}) {
		t.Errorf("dirs %q", img.Dirs)
	}
	// Every entry of the tarball carries the one timestamp.
	tr := tar.NewReader(bytes.NewReader(a.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if !h.ModTime.Equal(o.Created) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %v %d:%d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}

	// Another input, other bytes: the layer really holds the file.
	o.Files["bin/vigil"] = File{Data: []byte("another binary"), Mode: 0o755}
	var c2 bytes.Buffer
	if err := Write(&c2, o); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c2.Bytes()) {
		t.Fatal("different binaries gave the same image")
	}
}

func TestELFArchitecture(t *testing.T) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		platform string
		ok       bool
	}{{"linux/amd64", true}, {"linux/arm64", false}, {"linux/s390x", false}, {"linux/386", false}}
	if !bytes.Equal(self[18:20], []byte{62, 0}) { // EM_X86_64, little-endian
		t.Skip("the test binary is not amd64")
	}
	for _, tt := range tests {
		o := vigilOptions(t, tt.platform, self)
		var err error
		if tt.ok {
			// Not through Write: gzipping a race-enabled test binary is slow.
			err = checkMachine(self, o.Platform)
		} else {
			err = Write(&bytes.Buffer{}, o)
		}
		if tt.ok != (err == nil) {
			t.Errorf("%s: error %v", tt.platform, err)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	var good bytes.Buffer
	if err := Write(&good, vigilOptions(t, "linux/arm64", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	// rewrite copies the tarball, changing one entry's content.
	rewrite := func(name string, change func([]byte) []byte) []byte {
		var out bytes.Buffer
		tr, tw := tar.NewReader(bytes.NewReader(good.Bytes())), tar.NewWriter(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			var data bytes.Buffer
			data.ReadFrom(tr)
			b := data.Bytes()
			if h.Name == name || (strings.HasPrefix(name, "blob:") && strings.HasPrefix(h.Name, "blobs/sha256/") && bytes.Contains(b, []byte(name[5:]))) {
				b = change(b)
			}
			h.Size = int64(len(b))
			tw.WriteHeader(h)
			tw.Write(b)
		}
		tw.Close()
		return out.Bytes()
	}
	tests := []struct {
		name string
		tar  []byte
		err  string
	}{
		{"layout version", rewrite("oci-layout", func([]byte) []byte { return []byte(`{"imageLayoutVersion":"2"}`) }), "oci-layout"},
		{"config edited", rewrite("blob:diff_ids", func(b []byte) []byte { return bytes.Replace(b, []byte("arm64"), []byte("amd64"), 1) }), "content is"},
		{"manifest.json off", rewrite("manifest.json", func(b []byte) []byte { return bytes.Replace(b, []byte("Layers"), []byte("Layerz"), 1) }), "disagrees"},
		{"not a tarball", []byte("hello"), "tarball"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.tar))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one with %q", err, tt.err)
			}
		})
	}
	if _, err := Read(bytes.NewReader(good.Bytes())); err != nil {
		t.Fatalf("the untouched image: %v", err)
	}
}

func TestFullName(t *testing.T) {
	for in, want := range map[string]string{
		"vigil": "docker.io/library/vigil", "me/vigil": "docker.io/me/vigil",
		"ghcr.io/me/vigil": "ghcr.io/me/vigil", "localhost/vigil": "localhost/vigil", "reg:5000/v": "reg:5000/v",
	} {
		if got := fullName(in); got != want {
			t.Errorf("fullName(%q) = %q, want %q", in, got, want)
		}
	}
}
