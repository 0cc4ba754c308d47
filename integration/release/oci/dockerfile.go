// Package oci writes an OCI image layout tarball from a Dockerfile of the
// kind vigil ships (FROM scratch, COPY, ENTRYPOINT, ...) without a container
// engine, byte for byte the same on every run: `make release` uses it to turn
// one Dockerfile and each architecture's binary into one image per
// architecture, which `docker load`, `podman load` and `skopeo copy
// oci-archive:` all read.
//
// Only what a FROM scratch image can mean is accepted; any other instruction
// (RUN, ARG, ADD, ...) is an error rather than silently left out, so a
// Dockerfile that grows beyond this tool fails the release loudly.
package oci

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
)

// Recipe is what a Dockerfile asks for.
type Recipe struct {
	Copies     []Copy
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE, in order of appearance
	Labels     map[string]string
	WorkingDir string
	User       string
}

// Copy is one COPY: Src relative to the build context, Dst absolute in the image.
type Copy struct {
	Src, Dst string
}

// maxDockerfile bounds what ParseDockerfile reads: vigil's is under 1 KiB.
const maxDockerfile = 1 << 20

// ParseDockerfile reads a Dockerfile that builds FROM scratch.
func ParseDockerfile(r io.Reader) (*Recipe, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDockerfile+1))
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if len(data) > maxDockerfile {
		return nil, fmt.Errorf("Dockerfile larger than %d bytes", maxDockerfile)
	}
	rc := &Recipe{Labels: map[string]string{}}
	from := false
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 64*1024), maxDockerfile)
	lineNo, logical, startLine := 0, "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if logical == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if logical == "" {
			startLine = lineNo
		}
		if strings.HasSuffix(line, `\`) {
			logical += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		logical += line
		if err := rc.instruction(logical, &from); err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", startLine, err)
		}
		logical = ""
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if logical != "" {
		return nil, fmt.Errorf("Dockerfile line %d: continuation at the end of the file", startLine)
	}
	if !from {
		return nil, fmt.Errorf("Dockerfile has no FROM")
	}
	if len(rc.Copies) == 0 {
		return nil, fmt.Errorf("Dockerfile copies nothing into the image")
	}
	return rc, nil
}

func (rc *Recipe) instruction(s string, from *bool) error {
	word, rest, _ := strings.Cut(s, " ")
	word = strings.ToUpper(word)
	rest = strings.TrimSpace(rest)
	if !*from && word != "FROM" {
		return fmt.Errorf("%s before FROM", word)
	}
	switch word {
	case "FROM":
		if *from {
			return fmt.Errorf("a second FROM (multi-stage builds need a container engine)")
		}
		if rest != "scratch" {
			return fmt.Errorf("FROM %s: only FROM scratch can be built without a container engine", rest)
		}
		*from = true
	case "COPY":
		f := strings.Fields(rest)
		if len(f) != 2 || strings.HasPrefix(f[0], "--") || strings.HasPrefix(rest, "[") {
			return fmt.Errorf("COPY %s: only the form COPY SRC DST is supported", rest)
		}
		src := path.Clean(f[0])
		if path.IsAbs(src) || src == ".." || strings.HasPrefix(src, "../") || strings.ContainsAny(src, "*?[") {
			return fmt.Errorf("COPY %s: the source must be one file inside the build context", f[0])
		}
		dst := f[1]
		if !path.IsAbs(dst) {
			return fmt.Errorf("COPY %s: the destination must be absolute", dst)
		}
		if strings.HasSuffix(dst, "/") {
			dst += path.Base(src)
		}
		rc.Copies = append(rc.Copies, Copy{Src: src, Dst: path.Clean(dst)})
	case "ENTRYPOINT", "CMD":
		var argv []string
		if err := json.Unmarshal([]byte(rest), &argv); err != nil {
			// The shell form needs /bin/sh, which a scratch image lacks.
			return fmt.Errorf("%s %s: only the exec form [\"prog\", \"arg\"] works in a scratch image", word, rest)
		}
		if word == "ENTRYPOINT" {
			rc.Entrypoint = argv
			rc.Cmd = nil // as Docker: a new ENTRYPOINT drops an earlier CMD
		} else {
			rc.Cmd = argv
		}
	case "ENV":
		kvs, err := pairs(rest)
		if err != nil {
			return fmt.Errorf("ENV: %w", err)
		}
		for _, kv := range kvs {
			rc.setEnv(kv[0], kv[1])
		}
	case "LABEL":
		kvs, err := pairs(rest)
		if err != nil {
			return fmt.Errorf("LABEL: %w", err)
		}
		for _, kv := range kvs {
			rc.Labels[kv[0]] = kv[1]
		}
	case "WORKDIR":
		if !path.IsAbs(rest) {
			return fmt.Errorf("WORKDIR %s: must be absolute", rest)
		}
		rc.WorkingDir = path.Clean(rest)
	case "USER":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return fmt.Errorf("USER %q: one user[:group]", rest)
		}
		rc.User = rest
	default:
		return fmt.Errorf("%s is not supported without a container engine", word)
	}
	return nil
}

func (rc *Recipe) setEnv(k, v string) {
	for i, kv := range rc.Env {
		if strings.HasPrefix(kv, k+"=") {
			rc.Env[i] = k + "=" + v
			return
		}
	}
	rc.Env = append(rc.Env, k+"="+v)
}

// pairs parses KEY=VALUE KEY2="VALUE 2": the form of ENV and LABEL that
// vigil's Dockerfile may use. Values in double quotes may hold spaces; no
// variable is expanded.
func pairs(s string) ([][2]string, error) {
	var out [][2]string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \t\"") {
			return nil, fmt.Errorf("%q: want KEY=VALUE", s)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("%s: unterminated quote", key)
			}
			val, s = s[1:end+1], s[end+2:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return nil, fmt.Errorf("%s: text after the closing quote", key)
			}
		} else {
			val, s, _ = strings.Cut(s, " ")
		}
		if strings.ContainsAny(val, "$") {
			return nil, fmt.Errorf("%s: variables are not expanded here", key)
		}
		out = append(out, [2]string{key, val})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nothing to set")
	}
	return out, nil
}
