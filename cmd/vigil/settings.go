package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
)

// defaultConfig is read when no config is named and it exists.
const defaultConfig = "/etc/vigil/vigil.json"

// setup is everything a run needs from defaults, the config file, the
// environment and the flags, layered in that order (later wins).
type setup struct {
	settings   config.Settings
	services   []config.Service
	configPath string // "" when there is no file
	supervisor bool   // a config file or VIGIL_SERVICES is in use
	// source says where each setting came from, by variable name: only
	// vigil check shows it, so only check fills it in (whereFrom): its
	// reflection over every setting is no part of a start.
	source map[string]string
	// layers are the settings after the defaults, the file and the
	// environment, and vars the environment, for whereFrom.
	layers [3]config.Settings
	vars   map[string]string
	// envs is each service's environment (index for index with
	// services): env files and secrets read, layered over vigil's own.
	envs []config.ServiceEnv
}

// load builds the setup and returns every problem found, all at once.
// Wrapper mode costs one stat of the default config path, nothing more.
func load(environ []string, f flagValues) (setup, []error) {
	vars := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			vars[k] = v
		}
	}
	var st setup
	var errs []error
	problems := func(ps []config.Problem) {
		for _, p := range ps {
			errs = append(errs, p)
		}
	}
	switch {
	case f.config != nil:
		st.configPath = *f.config
	case vars["VIGIL_CONFIG"] != "":
		st.configPath = vars["VIGIL_CONFIG"]
	default:
		if _, err := os.Stat(defaultConfig); err == nil {
			st.configPath = defaultConfig
		}
	}

	s := config.Default()
	// A wrapper is as quiet as tini on a clean run: warnings and errors
	// only, unless the file, a variable or -v asks for more.
	st.supervisor = st.configPath != "" || vars[config.ServicesVar] != ""
	if !st.supervisor {
		s.LogLevel = "warn"
	}
	layers := []config.Settings{s}
	var raw []config.RawService
	if st.configPath != "" {
		data, err := os.ReadFile(st.configPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("config file: %w", err))
		} else {
			var ps []config.Problem
			raw, ps = config.Decode(data, st.configPath, &s)
			problems(ps)
		}
	}
	layers = append(layers, s)
	errs = append(errs, s.Env(environ)...)
	layers = append(layers, s)
	s.Config = st.configPath
	if f.logFormat != nil {
		s.LogFormat = *f.logFormat
	}
	if f.stateDir != nil {
		s.StateDir = *f.stateDir
	}
	if f.socket != nil {
		s.Socket = *f.socket
	}
	if f.http != nil {
		s.HTTP = *f.http
	}
	if f.verbose > 0 {
		s.LogLevel = "debug"
	}
	if f.subreaper {
		s.Subreaper = true
	}
	if f.group {
		s.KillProcessGroup = true
	}
	errs = append(errs, s.Validate()...)
	st.layers, st.vars = [3]config.Settings(layers), vars

	if v := vars[config.ServicesVar]; v != "" {
		var scratch config.Settings
		var ps []config.Problem
		raw, ps = config.Decode([]byte(v), config.ServicesVar, &scratch)
		problems(ps)
	}
	if st.supervisor {
		var ps []config.Problem
		st.services, ps = config.Resolve(raw, s)
		problems(ps)
		st.envs, ps = config.ServiceEnvs(proc.CleanEnv(environ), st.services)
		problems(ps)
		// A service's own layers (env files, secrets, env) go with it;
		// vigil's environment is laid under them at each spawn, with the
		// user's HOME between the two.
		for i := range st.services {
			if i >= len(st.envs) {
				break
			}
			var own []string
			for j, v := range st.envs[i].Vars {
				if v.Source != config.SourceEnvironment {
					own = append(own, st.envs[i].Env[j])
				}
			}
			st.services[i].Env = own
		}
		errs = append(errs, checkRunnable(raw, st.services)...)
	}
	st.settings = s
	return st, errs
}

// checkRunnable finds what the config cannot know: a dir that is no
// directory, users that do not exist or that a non-root vigil cannot switch
// to, and a missing /bin/sh. Each problem points at the field in raw, the
// services as written.
func checkRunnable(raw []config.RawService, services []config.Service) []error {
	at := make(map[string]*config.RawService, len(raw))
	for i := range raw {
		if _, dup := at[raw[i].Name]; !dup {
			at[raw[i].Name] = &raw[i]
		}
	}
	var errs []error
	bad := func(svc config.Service, field, format string, a ...any) {
		p := config.Problem{Service: svc.Name, Field: field, Msg: fmt.Sprintf(format, a...)}
		if r := at[svc.Name]; r != nil {
			pos := r.Fields[field]
			p.Source, p.Line, p.Col = r.Source, pos.Line, pos.Col
		}
		errs = append(errs, p)
	}
	shChecked := false
	for _, svc := range services {
		if svc.Shell && !shChecked {
			shChecked = true
			if _, err := os.Stat("/bin/sh"); err != nil {
				bad(svc, "command", "a string command needs /bin/sh: %v", err)
			}
		}
		if svc.Dir != "" {
			// Every spawn would fail with 127 otherwise.
			if fi, err := os.Stat(svc.Dir); err != nil {
				bad(svc, "dir", "%v", err)
			} else if !fi.IsDir() {
				bad(svc, "dir", "%s is not a directory", svc.Dir)
			}
		}
		if svc.User == "" {
			continue
		}
		cred, _, err := proc.Credential("/", svc.User)
		if err != nil {
			bad(svc, "user", "%v", err)
			continue
		}
		// Only root may change its uid, gid or groups: a non-root vigil
		// runs a service as itself or not at all.
		uid, gid := os.Geteuid(), os.Getegid()
		if uid != 0 && (cred.Uid != uint32(uid) || cred.Gid != uint32(gid)) {
			bad(svc, "user", "vigil runs as %d:%d and cannot switch to %q (%d:%d)", uid, gid, svc.User, cred.Uid, cred.Gid)
		}
	}
	return errs
}

// whereFrom fills in st.source.
func (st *setup) whereFrom() {
	st.source = sources(st.layers[0], st.layers[1], st.layers[2], st.settings, st.vars)
}

// sources names where each setting's value came from: a flag, a variable,
// the file, or the default.
func sources(def, file, env, final config.Settings, vars map[string]string) map[string]string {
	out := make(map[string]string)
	t := reflect.TypeFor[config.Settings]()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("env")
		if tag == "" {
			continue // a file-only setting (env_file), shown per service
		}
		name := "VIGIL_" + tag
		field := func(s config.Settings) any { return reflect.ValueOf(s).Field(i).Interface() }
		switch {
		case !reflect.DeepEqual(field(final), field(env)):
			out[name] = "flag"
		case vars[name] != "":
			out[name] = "environment"
		case !reflect.DeepEqual(field(env), field(file)):
			out[name] = "environment (TINI_*)"
		case !reflect.DeepEqual(field(file), field(def)):
			out[name] = "file"
		default:
			out[name] = "default"
		}
	}
	return out
}

// joinErrors is errs as one error, nil when there are none.
func joinErrors(errs []error) error { return errors.Join(errs...) }
