package config

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strings"

	"github.com/vigil-init/vigil/config/dotenv"
)

// MaxSecretSize bounds a secret file. The kernel refuses an exec whose one
// "NAME=value" string is over 128 KiB (E2BIG), so a bigger secret could
// never reach the service; a certificate chain fits in 64 KiB.
const MaxSecretSize = 64 << 10

// Sources of a variable, as ServiceEnv.Vars names them.
const (
	SourceEnvironment = "vigil's environment"
	SourceEnv         = "env"
)

// EnvVar is a variable's name and where its value came from: "env",
// "env_file PATH", "secret PATH" or SourceEnvironment. Never its value.
type EnvVar struct {
	Name   string
	Source string
}

// ServiceEnv is the environment a service's processes get.
type ServiceEnv struct {
	Name string
	// Env is the environment, "NAME=value" sorted by name: base, then
	// the top-level env files, the service's env files, its secrets and
	// its env, each name once, the later layer winning. (A name in both
	// secrets and env is a config problem, so their order never shows.)
	Env []string
	// Vars lists every name Env holds and where its value came from,
	// sorted by name.
	Vars []EnvVar
	// Fingerprint is a hash of Env: a reload restarts a service whose
	// fingerprint changed, and only those. It is a hash of secrets: keep
	// it in memory and in the handoff, never in the state file or a log.
	// FNV-128a, not SHA-256: it detects changes, it resists no attacker
	// (who writes the env files needs no collision), and crypto/sha256
	// would add 225 KB to the binary.
	Fingerprint [16]byte
}

// ServiceEnvs reads every service's env files and secrets, once each
// however many services use them, and layers them over base (vigil's own
// environment, already cleaned of VIGIL_* and TINI_*). Call it at start and
// at each reload: the result is index for index with services. A missing
// env file (unless optional) or secret, or one that cannot be read or
// parsed, is a problem naming the file and the service's field, never a
// value; a top-level env file's problem is reported once.
func ServiceEnvs(base []string, services []Service) ([]ServiceEnv, []Problem) {
	l := envLoader{files: map[string]fileVars{}, secrets: map[string]secretValue{}, reported: map[string]bool{}}
	out := make([]ServiceEnv, len(services))
	for i := range services {
		out[i] = l.service(base, &services[i])
	}
	return out, l.probs
}

type fileVars struct {
	vars []dotenv.Var
	err  error
}

type secretValue struct {
	val string
	err error
}

type envLoader struct {
	files    map[string]fileVars
	secrets  map[string]secretValue
	reported map[string]bool // top-level problems already given
	probs    []Problem
}

func (l *envLoader) file(path string) fileVars {
	if fv, ok := l.files[path]; ok {
		return fv
	}
	vars, err := dotenv.ReadFile(path)
	fv := fileVars{vars, err}
	l.files[path] = fv
	return fv
}

func (l *envLoader) secret(path string) secretValue {
	if sv, ok := l.secrets[path]; ok {
		return sv
	}
	var sv secretValue
	data, err := dotenv.ReadRegular(path, MaxSecretSize)
	switch {
	case err != nil:
		sv.err = err
	default:
		s := string(data)
		if t, ok := strings.CutSuffix(s, "\n"); ok {
			s = strings.TrimSuffix(t, "\r")
		}
		if strings.IndexByte(s, 0) >= 0 {
			sv.err = fmt.Errorf("%s: contains a NUL byte, which no environment variable can hold", path)
		}
		sv.val = s
	}
	l.secrets[path] = sv
	return sv
}

func (l *envLoader) service(base []string, svc *Service) ServiceEnv {
	type entry struct{ val, source string }
	m := make(map[string]entry, len(base)+len(svc.Env)+len(svc.Secrets))
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = entry{v, SourceEnvironment}
		}
	}
	top, own := 0, 0
	for _, f := range svc.EnvFiles {
		var field string
		if f.TopLevel {
			field = indexed("env_file", top)
			top++
		} else {
			field = indexed("env_file", own)
			own++
		}
		fv := l.file(f.Path)
		if fv.err != nil {
			if f.Optional && errors.Is(fv.err, fs.ErrNotExist) {
				continue
			}
			l.problem(svc.Name, f, field, fv.err)
			continue
		}
		for _, v := range fv.vars {
			m[v.Key] = entry{v.Value, "env_file " + f.Path}
		}
	}
	for _, s := range svc.Secrets {
		sv := l.secret(s.Path)
		if sv.err != nil {
			l.probs = append(l.probs, Problem{Service: svc.Name, Field: "secrets." + s.Var,
				Msg: fmt.Sprintf("secret %s: %v", s.Var, sv.err)})
			continue
		}
		m[s.Var] = entry{sv.val, "secret " + s.Path}
	}
	for _, kv := range svc.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = entry{v, SourceEnv}
		}
	}
	se := ServiceEnv{Name: svc.Name, Env: make([]string, 0, len(m)), Vars: make([]EnvVar, 0, len(m))}
	for k, e := range m {
		se.Vars = append(se.Vars, EnvVar{k, e.source})
	}
	sort.Slice(se.Vars, func(i, j int) bool { return se.Vars[i].Name < se.Vars[j].Name })
	h := fnv.New128a()
	for _, v := range se.Vars {
		kv := v.Name + "=" + m[v.Name].val
		se.Env = append(se.Env, kv)
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	h.Sum(se.Fingerprint[:0])
	return se
}

// problem reports an env file that cannot be used; a top-level one once.
func (l *envLoader) problem(service string, f EnvFile, field string, err error) {
	if f.TopLevel {
		if l.reported[f.Path] {
			return
		}
		l.reported[f.Path] = true
		service = ""
	}
	msg := fmt.Sprintf("env file: %v", err)
	if errors.Is(err, fs.ErrNotExist) {
		msg += ` (end the path with "?" if the file may be missing)`
	}
	l.probs = append(l.probs, Problem{Service: service, Field: field, Msg: msg})
}
