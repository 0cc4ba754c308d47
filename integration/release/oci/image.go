package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Media types of the OCI image spec (v1.1).
const (
	MediaIndex    = "application/vnd.oci.image.index.v1+json"
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// DefaultPath is the PATH that `docker build` gives an image that sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Platform is an image's os/architecture[/variant], as in `docker build --platform`.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// elfMachines is what an executable built for each Go architecture says it
// is: a COPY of the wrong architecture's binary fails the build.
var elfMachines = map[string]struct {
	machine elf.Machine
	class   elf.Class
	order   string
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64, "LittleEndian"},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64, "LittleEndian"},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32, "LittleEndian"},
	"386":     {elf.EM_386, elf.ELFCLASS32, "LittleEndian"},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64, "LittleEndian"},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64, "BigEndian"},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64, "LittleEndian"},
}

// ParsePlatform reads "linux/arm64" or "linux/arm/v7".
func ParsePlatform(s string) (Platform, error) {
	f := strings.Split(s, "/")
	if len(f) < 2 || len(f) > 3 || f[0] != "linux" {
		return Platform{}, fmt.Errorf("platform %q: want linux/ARCH[/VARIANT]", s)
	}
	p := Platform{OS: f[0], Architecture: f[1]}
	if len(f) == 3 {
		p.Variant = f[2]
	}
	if _, ok := elfMachines[p.Architecture]; !ok {
		return Platform{}, fmt.Errorf("platform %q: unknown architecture %q", s, p.Architecture)
	}
	return p, nil
}

// File is the content of one COPY source.
type File struct {
	Data []byte
	Mode fs.FileMode // permission bits, as Docker keeps them
}

// Options say what to build.
type Options struct {
	Recipe   *Recipe
	Files    map[string]File // by Copy.Src
	Platform Platform
	Name     string    // image name, e.g. vigil
	Tag      string    // e.g. the version from git describe
	Created  time.Time // every timestamp in the image: SOURCE_DATE_EPOCH
}

// Image config, manifest and index, as the OCI image spec has them. Struct
// fields (not maps) keep the JSON in one fixed order.
type (
	descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Platform    *Platform         `json:"platform,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	runConfig struct {
		User       string            `json:"User,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	}
	history struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}
	rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	// ImageConfig is the image's config blob.
	ImageConfig struct {
		Created      string    `json:"created"`
		Architecture string    `json:"architecture"`
		Variant      string    `json:"variant,omitempty"`
		OS           string    `json:"os"`
		Config       runConfig `json:"config"`
		RootFS       rootFS    `json:"rootfs"`
		History      []history `json:"history"`
	}
	manifest struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        descriptor        `json:"config"`
		Layers        []descriptor      `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}
	index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
	// dockerManifest is one entry of manifest.json, the `docker save`
	// format that engines before Docker 25 need to `docker load` a tarball.
	dockerManifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
)

// Write writes the image as an OCI image layout tarball (with manifest.json
// as well, for `docker load`). The same Options give the same bytes.
func Write(w io.Writer, o Options) error {
	if o.Recipe == nil {
		return fmt.Errorf("no recipe")
	}
	if o.Name == "" || o.Tag == "" || strings.ContainsAny(o.Tag, ":/@ ") {
		return fmt.Errorf("image name %q and tag %q: both needed, the tag without : / @", o.Name, o.Tag)
	}
	created := o.Created.UTC().Truncate(time.Second)
	stamp := created.Format(time.RFC3339)

	layer, diffID, err := buildLayer(o, created)
	if err != nil {
		return err
	}
	env := o.Recipe.Env
	if !hasKey(env, "PATH") {
		env = append([]string{DefaultPath}, env...)
	}
	labels := map[string]string{}
	for k, v := range o.Recipe.Labels {
		labels[k] = v
	}
	if _, ok := labels["org.opencontainers.image.version"]; !ok {
		labels["org.opencontainers.image.version"] = o.Tag
	}
	cfg := ImageConfig{
		Created:      stamp,
		Architecture: o.Platform.Architecture,
		Variant:      o.Platform.Variant,
		OS:           o.Platform.OS,
		Config: runConfig{User: o.Recipe.User, Env: env, Entrypoint: o.Recipe.Entrypoint, Cmd: o.Recipe.Cmd,
			WorkingDir: o.Recipe.WorkingDir, Labels: labels},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{diffID}},
		History: []history{{Created: stamp, CreatedBy: copiesText(o.Recipe)}},
	}
	cfgBlob, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	cfgDesc := describe(MediaConfig, cfgBlob)
	layerDesc := describe(MediaLayer, layer)
	mf := manifest{SchemaVersion: 2, MediaType: MediaManifest, Config: cfgDesc, Layers: []descriptor{layerDesc},
		Annotations: map[string]string{
			"org.opencontainers.image.created": stamp,
			"org.opencontainers.image.version": o.Tag,
		}}
	mfBlob, err := json.Marshal(mf)
	if err != nil {
		return fmt.Errorf("image manifest: %w", err)
	}
	mfDesc := describe(MediaManifest, mfBlob)
	plat := o.Platform
	mfDesc.Platform = &plat
	mfDesc.Annotations = map[string]string{
		"io.containerd.image.name":          fullName(o.Name) + ":" + o.Tag,
		"org.opencontainers.image.ref.name": o.Tag,
	}
	idx, err := json.Marshal(index{SchemaVersion: 2, MediaType: MediaIndex, Manifests: []descriptor{mfDesc}})
	if err != nil {
		return fmt.Errorf("image index: %w", err)
	}
	dm, err := json.Marshal([]dockerManifest{{
		Config:   blobPath(cfgDesc.Digest),
		RepoTags: []string{o.Name + ":" + o.Tag},
		Layers:   []string{blobPath(layerDesc.Digest)},
	}})
	if err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}

	blobs := map[string][]byte{cfgDesc.Digest: cfgBlob, layerDesc.Digest: layer, mfDesc.Digest: mfBlob}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if strings.HasSuffix(name, "/") {
			h.Mode, h.Size, h.Typeflag = 0o755, 0, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("image tarball: %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("image tarball: %s: %w", name, err)
		}
		return nil
	}
	if err := put("blobs/", nil); err != nil {
		return err
	}
	if err := put("blobs/sha256/", nil); err != nil {
		return err
	}
	for _, d := range digests {
		if err := put(blobPath(d), blobs[d]); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"index.json", idx}, {"manifest.json", dm}, {"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}} {
		if err := put(f.name, f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image tarball: %w", err)
	}
	return nil
}

// buildLayer makes the one layer of a FROM scratch image: every COPY, with
// the directories above it, owned by root, stamped with created; returns the
// gzipped layer and the digest of its uncompressed tar (the diff_id).
func buildLayer(o Options, created time.Time) ([]byte, string, error) {
	files := map[string]File{} // image path -> content; a later COPY wins
	dirs := map[string]bool{}
	for _, c := range o.Recipe.Copies {
		f, ok := o.Files[c.Src]
		if !ok {
			return nil, "", fmt.Errorf("COPY %s: no such file given", c.Src)
		}
		if err := checkMachine(f.Data, o.Platform); err != nil {
			return nil, "", fmt.Errorf("COPY %s: %w", c.Src, err)
		}
		name := strings.TrimPrefix(c.Dst, "/")
		if name == "" || dirs[name] {
			return nil, "", fmt.Errorf("COPY %s %s: the destination is a directory", c.Src, c.Dst)
		}
		files[name] = f
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, clash := files[d]; clash {
				return nil, "", fmt.Errorf("COPY %s %s: %s is a file", c.Src, c.Dst, d)
			}
			dirs[d] = true
		}
	}
	names := make([]string, 0, len(files)+len(dirs))
	for n := range files {
		names = append(names, n)
	}
	for d := range dirs {
		names = append(names, d+"/")
	}
	sort.Strings(names)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		h := &tar.Header{Name: n, ModTime: created, Format: tar.FormatUSTAR}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		} else {
			f := files[n]
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, int64(f.Mode.Perm()), int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", fmt.Errorf("layer: %s: %w", n, err)
		}
		if !strings.HasSuffix(n, "/") {
			if _, err := tw.Write(files[n].Data); err != nil {
				return nil, "", fmt.Errorf("layer: %s: %w", n, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("layer: %w", err)
	}
	diffID := digest(raw.Bytes())

	var gz bytes.Buffer
	// No name and a zero time in the gzip header: the bytes depend on the
	// content only (and on compress/flate, which changes seldom between Go
	// releases).
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", fmt.Errorf("layer: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("layer: gzip: %w", err)
	}
	return gz.Bytes(), diffID, nil
}

// checkMachine refuses an ELF file built for another architecture than the
// image's; other files pass.
func checkMachine(data []byte, p Platform) error {
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		return nil
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a valid ELF file: %w", err)
	}
	want, ok := elfMachines[p.Architecture]
	if !ok {
		return fmt.Errorf("unknown architecture %q", p.Architecture)
	}
	if f.Machine != want.machine || f.Class != want.class || fmt.Sprint(f.ByteOrder) != want.order {
		return fmt.Errorf("an ELF file for %v (%v, %v), not for %s", f.Machine, f.Class, f.ByteOrder, p)
	}
	return nil
}

func describe(mediaType string, blob []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: digest(blob), Size: int64(len(blob))}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// fullName is the name as containerd stores it: vigil is
// docker.io/library/vigil, me/vigil is docker.io/me/vigil.
func fullName(name string) string {
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		return "docker.io/library/" + name
	case strings.ContainsAny(first, ".:") || first == "localhost":
		return name
	default:
		return "docker.io/" + name
	}
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func copiesText(rc *Recipe) string {
	var parts []string
	for _, c := range rc.Copies {
		parts = append(parts, "COPY "+c.Src+" "+c.Dst)
	}
	return strings.Join(parts, "; ")
}
