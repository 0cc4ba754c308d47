package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// EnvFile is one env_file entry: a dotenv file read at start, reload and
// re-exec.
type EnvFile struct {
	Path     string // absolute, or relative to vigil's working directory
	Optional bool   // written with a trailing '?': a missing file is no error
	TopLevel bool   // from the top-level env_file, not the service's own
}

// Secret is one secrets entry: Var gets the contents of the file at Path.
type Secret struct {
	Var  string
	Path string
}

// LogFile is where a service's lines are also written, rotated by size.
type LogFile struct {
	Path     string
	MaxSize  int64 // bytes; the file is rotated before it would grow past it
	MaxFiles int   // rotated files kept (PATH.1 .. PATH.N); 0 = none
}

// Log file defaults and bounds.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 5
	minLogMaxSize      = 4 << 10 // smaller would rotate at every burst
	maxLogMaxFiles     = 1000
)

var logFileKeys = []string{"path", "max_size", "max_files"}

// path reads a file path of the config. A relative one is taken from the
// config file's directory, as docker compose does, so a config and its env
// files move together; in VIGIL_SERVICES it stays relative to vigil's
// working directory.
func (d *decoder) path(sc scope, field string, n *jnode) (string, bool) {
	p, ok := d.word(sc, field, n)
	if !ok {
		return "", false
	}
	return d.fromConfig(p), true
}

func (d *decoder) fromConfig(p string) string {
	if filepath.IsAbs(p) || d.src == ServicesVar || d.src == "" {
		return p
	}
	return filepath.Join(filepath.Dir(d.src), p)
}

// envFiles reads env_file: one path or a list of them, each optionally
// ending in '?'.
func (d *decoder) envFiles(sc scope, n *jnode, fields map[string]Pos, top bool) []EnvFile {
	one := func(field string, e *jnode) (EnvFile, bool) {
		p, ok := d.word(sc, field, e)
		if !ok {
			return EnvFile{}, false
		}
		f := EnvFile{TopLevel: top}
		p, f.Optional = strings.CutSuffix(p, "?")
		if p == "" {
			d.bad(sc, field, e.off, `"?" alone: want a path, with "?" at its end if it may be missing`)
			return EnvFile{}, false
		}
		f.Path = d.fromConfig(p)
		return f, true
	}
	switch n.kind {
	case jString:
		if f, ok := one("env_file", n); ok {
			return []EnvFile{f}
		}
	case jArray:
		var out []EnvFile
		for i, e := range n.elems {
			field := indexed("env_file", i)
			if fields != nil {
				fields[field] = d.pos(e.off)
			}
			if f, ok := one(field, e); ok {
				out = append(out, f)
			}
		}
		return out
	default:
		d.bad(sc, "env_file", n.off, "want a path or an array of paths, got %s", n.kind)
	}
	return nil
}

// secrets reads {"VAR": "/path", ...}, sorted by variable.
func (d *decoder) secrets(sc scope, v *jnode, r *RawService) {
	if v.kind != jObject {
		d.bad(sc, "secrets", v.off, `want an object such as {"DB_PASSWORD": "/run/secrets/db"}, got %s`, v.kind)
		return
	}
	for _, m := range d.members(sc, "secrets", v) {
		f := "secrets." + m.key
		r.Fields[f] = d.pos(m.keyOff)
		if !d.varName(sc, f, m) {
			continue
		}
		if p, ok := d.path(sc, f, m.val); ok {
			r.Secrets = append(r.Secrets, Secret{Var: m.key, Path: p})
		}
	}
	sort.Slice(r.Secrets, func(i, j int) bool { return r.Secrets[i].Var < r.Secrets[j].Var })
}

// logFile reads log_file: a path, or {"path", "max_size", "max_files"}.
func (d *decoder) logFile(sc scope, v *jnode, r *RawService) {
	lf := LogFile{MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles}
	switch v.kind {
	case jString:
		p, ok := d.path(sc, "log_file", v)
		if !ok {
			return
		}
		lf.Path = p
	case jObject:
		ok := true
		for _, m := range d.members(sc, "log_file", v) {
			f := "log_file." + m.key
			good := true
			switch m.key {
			case "path":
				lf.Path, good = d.path(sc, f, m.val)
			case "max_size":
				lf.MaxSize, good = d.size(sc, f, m.val)
				if good && lf.MaxSize < minLogMaxSize {
					d.bad(sc, f, m.val.off, "%s: want 4KiB or more", m.val.str)
					good = false
				}
			case "max_files":
				lf.MaxFiles, good = d.intIn(sc, f, m.val, 0, maxLogMaxFiles, "0 (no rotated files kept) to 1000")
			default:
				d.bad(sc, f, m.keyOff, "unknown field%s", suggest(m.key, logFileKeys))
				ok = false
				continue
			}
			r.Fields[f] = d.pos(m.keyOff)
			ok = ok && good
		}
		if _, given := r.Fields["log_file.path"]; !given {
			d.bad(sc, "log_file", v.off, "missing: a log_file needs a path")
			ok = false
		}
		if !ok {
			return
		}
	default:
		d.bad(sc, "log_file", v.off, `want a path or {"path", "max_size", "max_files"}, got %s`, v.kind)
		return
	}
	r.LogFile = &lf
}

// size reads a byte count: a whole number, or a string such as "10MiB",
// "512KiB", "1GB" (KiB/MiB/GiB and K/M/G are powers of 1024, KB/MB/GB of
// 1000, B or nothing is bytes).
func (d *decoder) size(sc scope, field string, n *jnode) (int64, bool) {
	if n.kind != jString && n.kind != jNumber {
		d.bad(sc, field, n.off, `want a size such as "10MiB", got %s`, n.kind)
		return 0, false
	}
	v, err := ParseSize(n.str)
	if err != nil {
		d.bad(sc, field, n.off, "%v", err)
		return 0, false
	}
	return v, true
}

// ParseSize reads "10MiB", "512K", "1GB", "4096" as a number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
	}[strings.ToLower(unit)]
	if num == "" || mult == 0 {
		return 0, fmt.Errorf(`bad size %q (write e.g. "10MiB", "512KiB", "1GB")`, s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return n * mult, nil
}
