// Command ociimage builds one architecture's vigil image from the Dockerfile
// without a container engine, as an OCI image layout tarball (`make release`):
//
//	ociimage -platform linux/arm/v7 -replace bin/vigil=dist/vigil-linux-arm \
//	         -tag v1.2.0 -created 1767225600 -o dist/vigil-linux-arm.oci.tar
//
// -replace swaps a COPY source for another file (each architecture's binary
// for the bin/vigil of the Dockerfile); every other source is read from
// -context. Same inputs, same bytes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-init/vigil/integration/release/oci"
	"golang.org/x/sys/unix"
)

// maxFile bounds a COPY source: vigil is a few MiB.
const maxFile = 256 << 20

type replaces map[string]string

func (r replaces) String() string { return fmt.Sprint(map[string]string(r)) }

func (r replaces) Set(s string) error {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("%q: want SRC=FILE", s)
	}
	r[filepath.ToSlash(filepath.Clean(from))] = to
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	dockerfile := fl.String("f", "Dockerfile", "the Dockerfile")
	context := fl.String("context", ".", "the build context: where COPY sources are")
	platform := fl.String("platform", "", "linux/ARCH[/VARIANT]")
	name := fl.String("name", "vigil", "image name")
	tag := fl.String("tag", "", "image tag (the version)")
	created := fl.String("created", "", "seconds since 1970 for every timestamp (SOURCE_DATE_EPOCH)")
	out := fl.String("o", "", "the image tarball to write")
	repl := replaces{}
	fl.Var(repl, "replace", "SRC=FILE: take FILE for the COPY source SRC (repeatable)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 || *platform == "" || *tag == "" || *created == "" || *out == "" {
		return fmt.Errorf("usage: ociimage -platform P -tag T -created EPOCH -o OUT [-f Dockerfile] [-context DIR] [-replace SRC=FILE]")
	}
	plat, err := oci.ParsePlatform(*platform)
	if err != nil {
		return err
	}
	epoch, err := strconv.ParseInt(*created, 10, 64)
	if err != nil || epoch < 0 {
		return fmt.Errorf("-created %q: want seconds since 1970", *created)
	}
	df, err := readFile(*dockerfile)
	if err != nil {
		return err
	}
	rc, err := oci.ParseDockerfile(bytes.NewReader(df.Data))
	if err != nil {
		return fmt.Errorf("%s: %w", *dockerfile, err)
	}
	files := map[string]oci.File{}
	for _, c := range rc.Copies {
		p, ok := repl[c.Src]
		if !ok {
			p = filepath.Join(*context, filepath.FromSlash(c.Src))
		}
		if files[c.Src], err = readFile(p); err != nil {
			return fmt.Errorf("COPY %s: %w", c.Src, err)
		}
	}
	for src := range repl {
		if _, ok := files[src]; !ok {
			return fmt.Errorf("-replace %s: the Dockerfile copies no such file", src)
		}
	}

	var buf bytes.Buffer
	err = oci.Write(&buf, oci.Options{Recipe: rc, Files: files, Platform: plat, Name: *name, Tag: *tag,
		Created: time.Unix(epoch, 0)})
	if err != nil {
		return err
	}
	// Write beside the target and rename: a failed run leaves no half image.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".ociimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return os.Rename(tmp.Name(), *out)
}

// readFile reads a regular file without following a symlink, bounded.
func readFile(p string) (oci.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return oci.File{}, fmt.Errorf("open %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return oci.File{}, err
	}
	if !st.Mode().IsRegular() {
		return oci.File{}, fmt.Errorf("%s is not a regular file", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return oci.File{}, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > maxFile {
		return oci.File{}, fmt.Errorf("%s is larger than %d bytes", p, maxFile)
	}
	// Only the executable bit counts, as in git: the image does not change
	// with the umask of whoever built the binary.
	mode := os.FileMode(0o644)
	if st.Mode().Perm()&0o111 != 0 {
		mode = 0o755
	}
	return oci.File{Data: data, Mode: mode}, nil
}
