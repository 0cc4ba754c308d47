// Package config holds vigil's settings and the services it supervises:
// their defaults, the JSON file, the environment, and one validation that
// reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Settings are vigil's global knobs. They are layered, later wins:
// Default() < JSON file < TINI_* < VIGIL_* < flags, then validated once.
// No envDefault or required tags: envDefault would overwrite the file's
// values, and required only sees the environment, not the file.
type Settings struct {
	Config           string        `env:"CONFIG" default:"/etc/vigil/vigil.json if it exists" help:"config file"`
	Services         string        `env:"SERVICES" default:"(none)" help:"services as JSON; replaces the file's services"`
	StateDir         string        `env:"STATE_DIR" default:"/var/lib/vigil if it exists, else none" help:"state directory, a mounted volume; none = no persistence"`
	Socket           string        `env:"SOCKET" default:"/run/vigil/vigil.sock, else /dev/shm/vigil-<mnt ns>.sock" help:"control socket path; none = no socket (no verb can reach this vigil)"`
	LogLevel         string        `env:"LOG_LEVEL" default:"info (wrapper mode: warn)" help:"debug, info, warn, error"`
	LogFormat        string        `env:"LOG_FORMAT" help:"text (coloured on a terminal) or json"`
	LogFile          string        `env:"LOG_FILE" default:"(none)" help:"also append vigil's log to this file"`
	MaxRetries       int           `env:"MAX_RETRIES" help:"restarts after consecutive failed runs; -1 = unlimited"`
	BackoffInitial   time.Duration `env:"BACKOFF_INITIAL" help:"first restart delay"`
	BackoffMax       time.Duration `env:"BACKOFF_MAX" help:"longest restart delay"`
	BackoffFactor    float64       `env:"BACKOFF_FACTOR" help:"delay growth per failed run"`
	BackoffJitter    float64       `env:"BACKOFF_JITTER" help:"random +/- share of each delay"`
	StableAfter      time.Duration `env:"STABLE_AFTER" help:"a run this long resets retries and backoff"`
	StopTimeout      time.Duration `env:"STOP_TIMEOUT" help:"stop signal to SIGKILL, per service"`
	RespawnLimit     RespawnLimit  `env:"RESPAWN_LIMIT" help:"N/window restarts across all services; 0 = off"`
	ShutdownTimeout  time.Duration `env:"SHUTDOWN_TIMEOUT" help:"absolute shutdown deadline"`
	ReexecInterval   time.Duration `env:"REEXEC_INTERVAL" default:"0 (off)" help:"re-exec vigil periodically; 0 = off"`
	ResetState       bool          `env:"RESET_STATE" default:"false" help:"forget retry counts and given-up marks at start"`
	KillProcessGroup bool          `env:"KILL_PROCESS_GROUP" default:"false" help:"tini's; group forwarding is the default"`
	Subreaper        bool          `env:"SUBREAPER" default:"false" help:"tini's; subreaping is automatic when not PID 1"`
	// EnvFiles is the file's top-level env_file: a setting of the file
	// only (no env tag), applied under every service's own env files.
	EnvFiles []EnvFile
	HTTP     string `env:"HTTP" default:"(off)" help:"address of the HTTP endpoint (/livez, /readyz, /metrics), e.g. :9090"`
}

// Default is the built-in layer.
func Default() Settings {
	return Settings{
		LogLevel:        "info",
		LogFormat:       "text",
		MaxRetries:      3,
		BackoffInitial:  time.Second,
		BackoffMax:      30 * time.Second,
		BackoffFactor:   2,
		BackoffJitter:   0.2,
		StableAfter:     10 * time.Second,
		StopTimeout:     5 * time.Second,
		RespawnLimit:    RespawnLimit{N: 10, Window: time.Minute},
		ShutdownTimeout: 9 * time.Second,
	}
}

// RespawnLimit is a token bucket: N restarts across all services, refilled
// evenly over Window. N == 0 turns it off.
type RespawnLimit struct {
	N      int
	Window time.Duration
}

// UnmarshalText reads "N/window" (10/1m) or "0".
func (r *RespawnLimit) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*r = RespawnLimit{}
		return nil
	}
	ns, ws, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("respawn limit %q: want N/window, e.g. 10/1m, or 0", s)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 {
		return fmt.Errorf("respawn limit %q: count must be a whole number >= 0", s)
	}
	w, err := time.ParseDuration(ws)
	if err != nil || w <= 0 {
		return fmt.Errorf("respawn limit %q: window must be a positive duration", s)
	}
	// A token's refill time of 0 would be no limit at all (and NaN in the
	// bucket's arithmetic).
	if n > 0 && w/time.Duration(n) < time.Microsecond {
		return fmt.Errorf("respawn limit %q: window must allow at least 1µs per restart", s)
	}
	*r = RespawnLimit{N: n, Window: w}
	return nil
}

func (r RespawnLimit) String() string {
	if r.N == 0 {
		return "0"
	}
	w := r.Window.String()
	// 1m0s reads better as 1m.
	for strings.HasSuffix(w, "m0s") || strings.HasSuffix(w, "h0m") {
		w = w[:len(w)-2]
	}
	return fmt.Sprintf("%d/%s", r.N, w)
}

// environment is environ as a map without empty values: a variable set to ""
// counts as unset.
func environment(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			m[k] = v
		}
	}
	return m
}

// Env layers tini's and vigil's variables over s (TINI_* first, then
// VIGIL_*) and returns every bad value.
func (s *Settings) Env(environ []string) []error {
	vars := environment(environ)
	var errs []error
	// tini's variables: set at all means on.
	if _, ok := vars["TINI_SUBREAPER"]; ok {
		s.Subreaper = true
	}
	if _, ok := vars["TINI_KILL_PROCESS_GROUP"]; ok {
		s.KillProcessGroup = true
	}
	if v, ok := vars["TINI_VERBOSITY"]; ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("TINI_VERBOSITY=%q: want a number", v))
		case n <= 0:
			s.LogLevel = "error"
		case n >= 3:
			s.LogLevel = "debug"
		}
	}
	// Without a VIGIL_ variable (set and not empty) the parse would change
	// nothing: there are no envDefault or required tags. A plain
	// `vigil -- CMD` has none, and skips the reflection over every field.
	if !anyPrefixed(vars, "VIGIL_") {
		return errs
	}
	if err := env.ParseWithOptions(s, env.Options{Prefix: "VIGIL_", Environment: vars}); err != nil {
		errs = append(errs, envErrors(err)...)
	}
	return errs
}

func anyPrefixed(vars map[string]string, prefix string) bool {
	for k := range vars {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// envErrors splits caarlos0/env's aggregate error so each bad variable is
// reported on its own line.
func envErrors(err error) []error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{err}
	}
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeFor[Settings]().FieldByName(pe.Name); ok {
				e = fmt.Errorf("VIGIL_%s: %w", f.Tag.Get("env"), pe.Err)
			}
		}
		out = append(out, e)
	}
	return out
}

// Validate checks the settings once all layers are in.
func (s Settings) Validate() []error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("VIGIL_LOG_LEVEL", "%q is not one of debug, info, warn, error", s.LogLevel)
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		bad("VIGIL_LOG_FORMAT", "%q is not one of text, json", s.LogFormat)
	}
	if s.MaxRetries < -1 {
		bad("VIGIL_MAX_RETRIES", "%d: want -1 (unlimited) or more", s.MaxRetries)
	}
	for name, d := range map[string]time.Duration{
		"VIGIL_BACKOFF_INITIAL": s.BackoffInitial, "VIGIL_BACKOFF_MAX": s.BackoffMax,
		"VIGIL_STABLE_AFTER": s.StableAfter, "VIGIL_STOP_TIMEOUT": s.StopTimeout,
		"VIGIL_SHUTDOWN_TIMEOUT": s.ShutdownTimeout, "VIGIL_REEXEC_INTERVAL": s.ReexecInterval,
	} {
		if d < 0 {
			bad(name, "%s: a duration cannot be negative", d)
		}
	}
	if s.BackoffFactor < 1 {
		bad("VIGIL_BACKOFF_FACTOR", "%g: want 1 or more", s.BackoffFactor)
	}
	if s.BackoffJitter < 0 || s.BackoffJitter > 1 {
		bad("VIGIL_BACKOFF_JITTER", "%g: want 0..1", s.BackoffJitter)
	}
	if s.HTTP != "" {
		if err := listenAddr(s.HTTP); err != nil {
			bad("VIGIL_HTTP", "%q: %v", s.HTTP, err)
		}
	}
	return errs
}

// listenAddr checks an address to listen on: [host]:port, the port a number
// (a service name would depend on /etc/services, absent from most images).
func listenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want [host]:port, e.g. :9090 or 127.0.0.1:9090")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want a number 1..65535", port)
	}
	return nil
}

// Doc is one line of --help: a variable, its default and meaning.
type Doc struct{ Var, Default, Help string }

// Docs lists every VIGIL_* variable from the struct tags, with its
// default: the field's "default" tag, else the value Default() gives it.
func Docs() []Doc {
	params, err := env.GetFieldParams(&Settings{})
	if err != nil {
		return nil
	}
	def := reflect.ValueOf(Default())
	t := def.Type()
	var docs []Doc
	for _, p := range params {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Tag.Get("env") != p.OwnKey {
				continue
			}
			// A default that depends on the machine (a path if it
			// exists) or is "nothing" says so in its tag.
			d := f.Tag.Get("default")
			if d == "" {
				d = fmt.Sprint(def.Field(i).Interface())
			}
			docs = append(docs, Doc{Var: "VIGIL_" + p.Key, Default: d, Help: f.Tag.Get("help")})
		}
	}
	return docs
}
