package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Image is what Read found in an image tarball, every digest checked.
type Image struct {
	Platform Platform
	Config   ImageConfig
	Ref      string          // index.json's org.opencontainers.image.ref.name
	Name     string          // index.json's io.containerd.image.name
	RepoTags []string        // manifest.json's
	Files    map[string]File // the layer's regular files, by path without the leading /
	Dirs     []string        // the layer's directories
}

// maxImage bounds what Read takes in: vigil's images are a few MiB.
const maxImage = 256 << 20

// Read checks an image tarball as Write makes it: an OCI layout with one
// image, every blob's digest and size as its descriptor says, the layer's
// diff_id as the config says, no blob that nothing refers to, and a
// manifest.json that agrees with index.json.
func Read(r io.Reader) (*Image, error) {
	entries := map[string][]byte{}
	total := int64(0)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("image tarball: %w", err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("image tarball: %s is neither a file nor a directory", h.Name)
		}
		if total += h.Size; total > maxImage {
			return nil, fmt.Errorf("image tarball larger than %d bytes", maxImage)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("image tarball: %s: %w", h.Name, err)
		}
		if _, dup := entries[h.Name]; dup {
			return nil, fmt.Errorf("image tarball: %s twice", h.Name)
		}
		entries[h.Name] = b
	}
	used := map[string]bool{"index.json": true, "manifest.json": true, "oci-layout": true}
	blob := func(d descriptor, mediaType string) ([]byte, error) {
		if d.MediaType != mediaType {
			return nil, fmt.Errorf("%s: media type %q, want %q", d.Digest, d.MediaType, mediaType)
		}
		p := blobPath(d.Digest)
		b, ok := entries[p]
		if !ok {
			return nil, fmt.Errorf("blob %s missing", d.Digest)
		}
		if digest(b) != d.Digest || int64(len(b)) != d.Size {
			return nil, fmt.Errorf("blob %s: content is %s, %d bytes; its descriptor says %d bytes", d.Digest, digest(b), len(b), d.Size)
		}
		used[p] = true
		return b, nil
	}

	var layout struct{ ImageLayoutVersion string }
	if err := json.Unmarshal(entries["oci-layout"], &layout); err != nil || layout.ImageLayoutVersion != "1.0.0" {
		return nil, fmt.Errorf("oci-layout missing or not version 1.0.0 (%v)", err)
	}
	var idx index
	if err := json.Unmarshal(entries["index.json"], &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != MediaIndex || len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("index.json: want schema 2, %s, one manifest; got %d, %q, %d", MediaIndex, idx.SchemaVersion, idx.MediaType, len(idx.Manifests))
	}
	mfDesc := idx.Manifests[0]
	if mfDesc.Platform == nil {
		return nil, fmt.Errorf("index.json: the manifest has no platform")
	}
	mfBlob, err := blob(mfDesc, MediaManifest)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var mf manifest
	if err := json.Unmarshal(mfBlob, &mf); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cfgBlob, err := blob(mf.Config, MediaConfig)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	img := &Image{Platform: *mfDesc.Platform, Ref: mfDesc.Annotations["org.opencontainers.image.ref.name"],
		Name: mfDesc.Annotations["io.containerd.image.name"], Files: map[string]File{}}
	if err := json.Unmarshal(cfgBlob, &img.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := img.Config
	if c.OS != img.Platform.OS || c.Architecture != img.Platform.Architecture || c.Variant != img.Platform.Variant {
		return nil, fmt.Errorf("config says %s/%s/%s, index.json %s", c.OS, c.Architecture, c.Variant, img.Platform)
	}
	if len(mf.Layers) != len(c.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%d layers, %d diff_ids", len(mf.Layers), len(c.RootFS.DiffIDs))
	}
	for i, ld := range mf.Layers {
		gz, err := blob(ld, MediaLayer)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if err := img.readLayer(gz, c.RootFS.DiffIDs[i]); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}

	var dms []dockerManifest
	if err := json.Unmarshal(entries["manifest.json"], &dms); err != nil || len(dms) != 1 {
		return nil, fmt.Errorf("manifest.json: want one image (%v)", err)
	}
	dm := dms[0]
	if dm.Config != blobPath(mf.Config.Digest) || len(dm.Layers) != len(mf.Layers) {
		return nil, fmt.Errorf("manifest.json disagrees with index.json")
	}
	for i, l := range dm.Layers {
		if l != blobPath(mf.Layers[i].Digest) {
			return nil, fmt.Errorf("manifest.json: layer %d is %s, the OCI manifest's %s", i, l, mf.Layers[i].Digest)
		}
	}
	img.RepoTags = dm.RepoTags
	for name := range entries {
		if !used[name] {
			return nil, fmt.Errorf("image tarball: %s is not referred to", name)
		}
	}
	return img, nil
}

func (img *Image) readLayer(gz []byte, diffID string) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxImage+1))
	if err != nil {
		return fmt.Errorf("gunzip: %w", err)
	}
	if len(raw) > maxImage {
		return fmt.Errorf("larger than %d bytes unpacked", maxImage)
	}
	if digest(raw) != diffID {
		return fmt.Errorf("diff_id is %s, the config says %s", digest(raw), diffID)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Uid != 0 || h.Gid != 0 {
			return fmt.Errorf("%s owned by %d:%d, not root", h.Name, h.Uid, h.Gid)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			img.Dirs = append(img.Dirs, strings.TrimSuffix(h.Name, "/"))
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			img.Files[h.Name] = File{Data: b, Mode: h.FileInfo().Mode().Perm()}
		default:
			return fmt.Errorf("%s: type %c, neither a file nor a directory", h.Name, h.Typeflag)
		}
	}
}
