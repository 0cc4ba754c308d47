package config

import (
	"encoding"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/control/httpd"
	"github.com/vigil-init/vigil/signals"
	"github.com/vigil-init/vigil/supervise/schedule"
)

// ServicesVar is the environment variable that holds services as JSON. Pass it
// as Decode's source for that variable's value: Decode then accepts services
// only. Top-level settings in it (e.g. {"max_retries": 5, "services": [...]})
// are problems, not silently ignored: every setting already has its own
// VIGIL_* variable, and the message names it.
const ServicesVar = "VIGIL_SERVICES"

// Pos is a 1-based line and column in a config document. Columns count
// characters (a tab is one).
type Pos struct{ Line, Col int }

// RawService is one service as written in a config document, before
// defaulting. A field that was absent, or whose value was a problem, holds its
// zero value (nil for the optional numbers and durations), so Resolve fills it
// in from the Settings.
type RawService struct {
	Index  int    // 0-based position in the document's services array
	Source string // Decode's source
	At     Pos    // the service object's opening brace
	// Fields has the position of every known field present in the
	// document, valid or not, under its dotted path as in Problem.Field:
	// the key for object members ("name", "backoff", "backoff.initial",
	// "ready.tcp", "env.PORT") and the value for array elements
	// ("depends_on[1]", "command[0]").
	Fields map[string]Pos

	Name        string // as written, even if not a valid name
	Argv        []string
	Shell       bool
	Dir         string
	Env         []string // "K=V", sorted by key
	User        string
	Restart     string // "" = not given
	MaxRetries  *int
	Backoff     RawBackoff
	StableAfter *time.Duration
	StopSignal  syscall.Signal // 0 = not given
	StopTimeout *time.Duration
	Critical    bool
	// DependsOn keeps the document's indices: an element that was a
	// problem is "".
	DependsOn []string
	Ready     *Ready
	Health    *Health // defaults filled in: no global setting applies
	Oneshot   bool
	Log       string // "" = not given
	EnvFiles  []EnvFile
	Secrets   []Secret // sorted by Var
	LogFile   *LogFile // defaults filled in

	Schedule         string // "" = not scheduled
	Timezone         string
	Concurrency      string // "" = not given
	StartingDeadline *time.Duration
	Instances        int // 0 = not given: a service of its own
}

// RawBackoff is a service's backoff object; nil = not given.
type RawBackoff struct {
	Initial, Max   *time.Duration
	Factor, Jitter *float64
}

// String formats a problem as
// `FILE:LINE:COL: service "web": field "backoff.initial": bad duration "5x"`,
// leaving out the parts that are empty.
func (p Problem) String() string {
	var parts []string
	loc := p.Source
	if p.Line > 0 {
		if loc != "" {
			loc += ":"
		}
		loc += fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	if loc != "" {
		parts = append(parts, loc)
	}
	if p.Service != "" {
		parts = append(parts, fmt.Sprintf("service %q", p.Service))
	}
	if p.Field != "" {
		parts = append(parts, fmt.Sprintf("field %q", p.Field))
	}
	if p.Msg != "" {
		parts = append(parts, p.Msg)
	}
	return strings.Join(parts, ": ")
}

// Error makes a Problem usable as an error (errors.Join and the like).
func (p Problem) Error() string { return p.String() }

// fileSetting is one top-level setting of the file, derived from the env tags
// of Settings: the key is the tag in lower case.
type fileSetting struct {
	key   string
	env   string // the tag, e.g. MAX_RETRIES
	index int    // field index in Settings
}

var (
	fileSettings = func() map[string]fileSetting {
		m := map[string]fileSetting{}
		t := reflect.TypeFor[Settings]()
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
			if tag == "" || tag == "CONFIG" || tag == "SERVICES" {
				continue
			}
			key := strings.ToLower(tag)
			m[key] = fileSetting{key: key, env: tag, index: i}
		}
		return m
	}()
	topKeys = func() []string {
		keys := []string{"services", "env_file"}
		for k := range fileSettings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}()
	serviceKeys = []string{"name", "command", "dir", "env", "user", "restart", "max_retries",
		"backoff", "stable_after", "stop_signal", "stop_timeout", "critical", "depends_on",
		"ready", "health", "oneshot", "log", "env_file", "secrets", "log_file", "schedule", "timezone", "concurrency",
		"starting_deadline", "instances"}
	backoffKeys = []string{"initial", "max", "factor", "jitter"}
	readyKeys   = []string{"tcp", "exec", "file", "notify_fd", "http", "timeout", "interval", "failure_threshold"}
	readyKinds  = []string{"tcp", "exec", "file", "notify_fd", "http"}
	healthKeys  = []string{"exec", "tcp", "http", "interval", "timeout", "start_period", "failure_threshold"}
	healthKinds = []string{"exec", "tcp", "http"}
)

// Decode reads one config document (either form of docs/configuration.md) from
// data. source names it in problems (a file path, or ServicesVar).
// Top-level settings found in the document are applied onto s (the file
// layer: it sits between Default() and the environment); a setting whose
// value is a problem is left as it was, and s may be nil. It returns the
// services as written (not yet defaulted) plus every problem found, each with
// line:column, in document order.
//
// The plain array form accepts every service field, not only name and
// command. A missing "services" in the object form means no services. After
// a JSON syntax error nothing else is checked, and nothing is applied.
func Decode(data []byte, source string, s *Settings) ([]RawService, []Problem) {
	d := &decoder{src: source, lines: newLineIndex(data)}
	root, err := parseJSON(data)
	if err != nil {
		d.add("", "", err.off, "invalid JSON: %s", err.msg)
		return nil, d.probs
	}
	var list *jnode
	switch root.kind {
	case jArray:
		list = root
	case jObject:
		for _, m := range d.members(scope{}, "", root) {
			fs, isSetting := fileSettings[m.key]
			switch {
			case m.key == "services":
				list = m.val
			case m.key == "env_file" && source == ServicesVar:
				d.add("", m.key, m.keyOff, "%s holds services only: give env_file in each service", ServicesVar)
			case m.key == "env_file":
				if files := d.envFiles(scope{}, m.val, nil, true); s != nil {
					s.EnvFiles = files
				}
			case isSetting && source == ServicesVar:
				d.add("", m.key, m.keyOff, "%s holds services only: set VIGIL_%s instead", ServicesVar, fs.env)
			case isSetting:
				d.setting(fs, m.val, s)
			default:
				d.add("", m.key, m.keyOff, "unknown field%s", suggest(m.key, topKeys))
			}
		}
	default:
		d.add("", "", root.off, `want an array of services or an object with "services", got %s`, root.kind)
	}
	var out []RawService
	if list != nil {
		if list.kind != jArray {
			d.add("", "services", list.off, "want an array of services, got %s", list.kind)
		} else {
			out = make([]RawService, 0, len(list.elems))
			for i, e := range list.elems {
				if r, ok := d.service(i, e); ok {
					out = append(out, r)
				}
			}
		}
	}
	sortProblems(d.probs)
	return out, d.probs
}

// decoder collects problems while it walks a parsed document.
type decoder struct {
	src   string
	lines lineIndex
	probs []Problem
}

func (d *decoder) pos(off int) Pos { return d.lines.pos(off) }

func (d *decoder) add(service, field string, off int, format string, a ...any) {
	p := d.pos(off)
	d.probs = append(d.probs, Problem{
		Service: service, Field: field, Line: p.Line, Col: p.Col, Source: d.src,
		Msg: fmt.Sprintf(format, a...),
	})
}

// scope is where a value sits: its service (by name) and, for a service
// without a usable name, the prefix "services[i]." of its field paths.
type scope struct{ service, prefix string }

func (d *decoder) bad(sc scope, field string, off int, format string, a ...any) {
	d.add(sc.service, sc.prefix+field, off, format, a...)
}

// badAt is bad for a position already resolved (one kept in Fields).
func (d *decoder) badAt(sc scope, field string, p Pos, format string, a ...any) {
	d.probs = append(d.probs, Problem{
		Service: sc.service, Field: sc.prefix + field, Line: p.Line, Col: p.Col, Source: d.src,
		Msg: fmt.Sprintf(format, a...),
	})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// members returns an object's members without repeated keys: a repeated key
// is a problem, and its first value is the one used.
func (d *decoder) members(sc scope, path string, n *jnode) []jmember {
	if len(n.members) <= 16 && !repeatedKey(n.members) {
		return n.members
	}
	seen := make(map[string]int, len(n.members))
	out := make([]jmember, 0, len(n.members))
	for _, m := range n.members {
		if first, ok := seen[m.key]; ok {
			fp := d.pos(first)
			d.bad(sc, join(path, m.key), m.keyOff, "duplicate key (first at %d:%d)", fp.Line, fp.Col)
			continue
		}
		seen[m.key] = m.keyOff
		out = append(out, m)
	}
	return out
}

// repeatedKey reports whether a key occurs twice: for the few members of a
// service, a scan costs less than the map members needs otherwise.
func repeatedKey(ms []jmember) bool {
	for i := 1; i < len(ms); i++ {
		for j := range i {
			if ms[i].key == ms[j].key {
				return true
			}
		}
	}
	return false
}

// indexed is the path of an array element: field[i].
func indexed(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

// setting decodes a top-level setting, checks it with the same rules as
// Settings.Validate (so a new rule there is enforced here too, with a
// position), and applies it onto s if it passes.
func (d *decoder) setting(fs fileSetting, n *jnode, s *Settings) {
	trial := Default()
	fv := reflect.ValueOf(&trial).Elem().Field(fs.index)
	if !d.assign(scope{}, fs.key, n, fv) {
		return
	}
	prefix := "VIGIL_" + fs.env + ": "
	ok := true
	for _, err := range trial.Validate() {
		if msg, found := strings.CutPrefix(err.Error(), prefix); found {
			d.add("", fs.key, n.off, "%s", msg)
			ok = false
		}
	}
	if ok && s != nil {
		reflect.ValueOf(s).Elem().Field(fs.index).Set(fv)
	}
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// assign decodes n into fv by fv's type.
func (d *decoder) assign(sc scope, field string, n *jnode, fv reflect.Value) bool {
	switch {
	case fv.Type() == durationType:
		v, ok := d.duration(sc, field, n)
		if ok {
			fv.SetInt(int64(v))
		}
		return ok
	case reflect.PointerTo(fv.Type()).Implements(unmarshalerType):
		if n.kind != jString && n.kind != jNumber {
			d.bad(sc, field, n.off, "want a string, got %s", n.kind)
			return false
		}
		u := fv.Addr().Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(n.str)); err != nil {
			d.bad(sc, field, n.off, "%v", err)
			return false
		}
		return true
	}
	switch fv.Kind() {
	case reflect.String:
		v, ok := d.str(sc, field, n)
		if ok {
			fv.SetString(v)
		}
		return ok
	case reflect.Bool:
		v, ok := d.boolean(sc, field, n)
		if ok {
			fv.SetBool(v)
		}
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, ok := d.integer(sc, field, n)
		if ok && fv.OverflowInt(v) {
			d.bad(sc, field, n.off, "%d is out of range", v)
			return false
		}
		if ok {
			fv.SetInt(v)
		}
		return ok
	case reflect.Float32, reflect.Float64:
		v, ok := d.float(sc, field, n)
		if ok && fv.OverflowFloat(v) {
			d.bad(sc, field, n.off, "%g is out of range", v)
			return false
		}
		if ok {
			fv.SetFloat(v)
		}
		return ok
	}
	d.bad(sc, field, n.off, "this setting cannot be set in the file (type %s)", fv.Type())
	return false
}

// Typed readers: each reports a wrong type or value and returns ok=false.

func (d *decoder) str(sc scope, field string, n *jnode) (string, bool) {
	if n.kind != jString {
		d.bad(sc, field, n.off, "want a string, got %s", n.kind)
		return "", false
	}
	return n.str, true
}

// word is a string that goes to the kernel: not empty, no NUL byte.
func (d *decoder) word(sc scope, field string, n *jnode) (string, bool) {
	v, ok := d.str(sc, field, n)
	switch {
	case !ok:
	case v == "":
		d.bad(sc, field, n.off, "empty string")
		ok = false
	case strings.IndexByte(v, 0) >= 0:
		d.bad(sc, field, n.off, "contains a NUL byte")
		ok = false
	}
	return v, ok
}

func (d *decoder) boolean(sc scope, field string, n *jnode) (bool, bool) {
	if n.kind != jBool {
		d.bad(sc, field, n.off, "want true or false, got %s", n.kind)
		return false, false
	}
	return n.b, true
}

func (d *decoder) integer(sc scope, field string, n *jnode) (int64, bool) {
	if n.kind != jNumber {
		d.bad(sc, field, n.off, "want a whole number, got %s", n.kind)
		return 0, false
	}
	v, err := strconv.ParseInt(n.str, 10, 64)
	if err != nil {
		if ne, _ := err.(*strconv.NumError); ne != nil && ne.Err == strconv.ErrRange {
			d.bad(sc, field, n.off, "%s is out of range", n.str)
		} else {
			d.bad(sc, field, n.off, "want a whole number, got %s", n.str)
		}
		return 0, false
	}
	return v, true
}

// intIn reads a whole number in [lo, hi].
func (d *decoder) intIn(sc scope, field string, n *jnode, lo, hi int64, want string) (int, bool) {
	v, ok := d.integer(sc, field, n)
	if ok && (v < lo || v > hi) {
		d.bad(sc, field, n.off, "%d: want %s", v, want)
		ok = false
	}
	return int(v), ok
}

func (d *decoder) float(sc scope, field string, n *jnode) (float64, bool) {
	if n.kind != jNumber {
		d.bad(sc, field, n.off, "want a number, got %s", n.kind)
		return 0, false
	}
	v, err := strconv.ParseFloat(n.str, 64)
	if err != nil {
		d.bad(sc, field, n.off, "%s is out of range", n.str)
		return 0, false
	}
	return v, true
}

func (d *decoder) duration(sc scope, field string, n *jnode) (time.Duration, bool) {
	if n.kind != jString {
		d.bad(sc, field, n.off, `want a duration string such as "500ms" or "1m", got %s`, n.kind)
		return 0, false
	}
	v, err := time.ParseDuration(n.str)
	switch {
	case err != nil:
		d.bad(sc, field, n.off, `bad duration %q (write e.g. "500ms", "10s", "1m30s")`, n.str)
		return 0, false
	case v < 0:
		d.bad(sc, field, n.off, "negative duration %q", n.str)
		return 0, false
	}
	return v, true
}

// argv reads a non-empty array of strings whose first is not empty.
func (d *decoder) argv(sc scope, field string, n *jnode, fields map[string]Pos) ([]string, bool) {
	if len(n.elems) == 0 {
		d.bad(sc, field, n.off, "empty command")
		return nil, false
	}
	out := make([]string, len(n.elems))
	ok := true
	for i, e := range n.elems {
		f := indexed(field, i)
		fields[f] = d.pos(e.off)
		v, good := d.str(sc, f, e)
		switch {
		case !good:
		case i == 0 && v == "":
			d.bad(sc, f, e.off, "empty program name")
			good = false
		case strings.IndexByte(v, 0) >= 0:
			d.bad(sc, f, e.off, "contains a NUL byte")
			good = false
		}
		ok = ok && good
		out[i] = v
	}
	return out, ok
}

func (d *decoder) oneOf(sc scope, field string, n *jnode, allowed ...string) (string, bool) {
	v, ok := d.str(sc, field, n)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if v == a {
			return v, true
		}
	}
	d.bad(sc, field, n.off, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return "", false
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// service decodes one element of the services array.
func (d *decoder) service(idx int, n *jnode) (RawService, bool) {
	if n.kind != jObject {
		d.add("", indexed("services", idx), n.off, "want a service object, got %s", n.kind)
		return RawService{}, false
	}
	r := RawService{Index: idx, Source: d.src, At: d.pos(n.off), Fields: map[string]Pos{}}
	var sc scope
	for _, m := range n.members {
		if m.key == "name" {
			if m.val.kind == jString && m.val.str != "" {
				sc = scope{service: m.val.str}
			}
			break
		}
	}
	if sc.service == "" {
		sc.prefix = indexed("services", idx) + "."
	}
	oneshotFalse := false
	for _, m := range d.members(sc, "", n) {
		v := m.val
		known := true
		switch m.key {
		case "name":
			if name, ok := d.str(sc, "name", v); ok {
				switch {
				case name == "":
					d.bad(sc, "name", v.off, "empty name")
				case !validName(name):
					d.bad(sc, "name", v.off, "%q: a name is a letter or digit, then letters, digits, '_', '.' or '-'", name)
				}
				r.Name = name
			}
		case "command":
			d.command(sc, v, &r)
		case "dir":
			r.Dir, _ = d.word(sc, "dir", v)
		case "env":
			d.env(sc, v, &r)
		case "user":
			if u, ok := d.word(sc, "user", v); ok {
				if a, b, colon := strings.Cut(u, ":"); colon && (a == "" || b == "") {
					d.bad(sc, "user", v.off, "%q: want a name or uid:gid", u)
				} else {
					r.User = u
				}
			}
		case "restart":
			r.Restart, _ = d.oneOf(sc, "restart", v, RestartAlways, RestartOnFailure, RestartNever)
		case "max_retries":
			if n, ok := d.intIn(sc, "max_retries", v, -1, 1<<31-1, "-1 (unlimited) or more"); ok {
				r.MaxRetries = &n
			}
		case "backoff":
			d.backoff(sc, v, &r)
		case "stable_after":
			if t, ok := d.duration(sc, "stable_after", v); ok {
				r.StableAfter = &t
			}
		case "stop_timeout":
			if t, ok := d.duration(sc, "stop_timeout", v); ok {
				r.StopTimeout = &t
			}
		case "stop_signal":
			if v.kind != jString && v.kind != jNumber {
				d.bad(sc, "stop_signal", v.off, "want a signal name or number, got %s", v.kind)
			} else if sig, err := signals.Parse(v.str); err != nil {
				d.bad(sc, "stop_signal", v.off, "bad signal: %v", err)
			} else {
				r.StopSignal = sig
			}
		case "critical":
			r.Critical, _ = d.boolean(sc, "critical", v)
		case "oneshot":
			var ok bool
			r.Oneshot, ok = d.boolean(sc, "oneshot", v)
			oneshotFalse = ok && !r.Oneshot
		case "depends_on":
			d.dependsOn(sc, v, &r)
		case "ready":
			d.ready(sc, v, &r)
		case "health":
			d.health(sc, v, &r)
		case "log":
			r.Log, _ = d.oneOf(sc, "log", v, LogInherit, LogPrefix)
		case "env_file":
			r.EnvFiles = d.envFiles(sc, v, r.Fields, false)
		case "secrets":
			d.secrets(sc, v, &r)
		case "log_file":
			d.logFile(sc, v, &r)
		case "schedule":
			if expr, ok := d.str(sc, "schedule", v); ok {
				// The zone changes when a schedule fires, never
				// whether it parses: check the syntax in UTC.
				if _, err := schedule.Parse(expr, "UTC"); err != nil {
					d.bad(sc, "schedule", v.off, "%v", err)
				} else {
					r.Schedule = expr
				}
			}
		case "timezone":
			if tz, ok := d.word(sc, "timezone", v); ok {
				if err := checkZone(tz, time.LoadLocation); err != nil {
					d.bad(sc, "timezone", v.off, "%v", err)
				} else {
					r.Timezone = tz
				}
			}
		case "concurrency":
			r.Concurrency, _ = d.oneOf(sc, "concurrency", v, ConcurrencyForbid, ConcurrencyAllow, ConcurrencyReplace)
		case "starting_deadline":
			if t, ok := d.duration(sc, "starting_deadline", v); ok {
				r.StartingDeadline = &t
			}
		case "instances":
			r.Instances, _ = d.intIn(sc, "instances", v, 1, MaxInstances, fmt.Sprintf("1..%d", MaxInstances))
		default:
			known = false
			d.bad(sc, m.key, m.keyOff, "unknown field%s", suggest(m.key, serviceKeys))
		}
		if known {
			r.Fields[m.key] = d.pos(m.keyOff)
		}
	}
	// A variable in both would need a rule for which one wins; asking the
	// user is clearer than any rule.
	for _, sec := range r.Secrets {
		if ep, both := r.Fields["env."+sec.Var]; both {
			p := r.Fields["secrets."+sec.Var]
			d.probs = append(d.probs, Problem{Service: sc.service, Field: sc.prefix + "secrets." + sec.Var,
				Line: p.Line, Col: p.Col, Source: d.src,
				Msg: fmt.Sprintf("also set in env (at %d:%d): give it in one place", ep.Line, ep.Col)})
		}
	}
	for _, req := range []string{"name", "command"} {
		if _, ok := r.Fields[req]; !ok {
			d.bad(sc, req, n.off, "missing: every service needs a %s", req)
		}
	}
	d.scheduleRules(sc, &r, oneshotFalse)
	if r.Instances > 0 {
		for _, v := range []string{InstanceVar, InstancesVar} {
			if p, set := r.Fields["env."+v]; set {
				d.badAt(sc, "env."+v, p, "vigil sets %s in each copy of a service with instances", v)
			}
		}
	}
	return r, true
}

// scheduleRules checks what a schedule forbids or needs among the other
// fields of its service. Fields whose own value was a problem are left out:
// one mistake, one message.
func (d *decoder) scheduleRules(sc scope, r *RawService, oneshotFalse bool) {
	if _, given := r.Fields["schedule"]; !given {
		for _, f := range []string{"timezone", "concurrency", "starting_deadline"} {
			if p, set := r.Fields[f]; set {
				d.badAt(sc, f, p, "applies to a scheduled service only: add a schedule")
			}
		}
		return
	}
	if r.Schedule == "" {
		return
	}
	if r.Critical {
		d.badAt(sc, "critical", r.Fields["critical"],
			"a scheduled service never ends the container: critical cannot go with schedule")
	}
	// Each tick starts one run that is meant to end: a scheduled service
	// is a oneshot, and saying otherwise is a contradiction, not a
	// preference to honour.
	if oneshotFalse {
		d.badAt(sc, "oneshot", r.Fields["oneshot"],
			"a scheduled service is a oneshot (each tick starts one run): remove oneshot: false")
	}
	// One service is one record with one process: a second run beside the
	// first would have no PID, status, exit or stop of its own. Refused
	// rather than run as forbid or replace under another name.
	if r.Concurrency == ConcurrencyAllow {
		d.badAt(sc, "concurrency", r.Fields["concurrency"],
			`"allow" is not supported yet (a service tracks one run at a time): use "forbid" (the default) or "replace", or instances for runs side by side`)
	}
	if r.Restart == RestartAlways {
		d.badAt(sc, "restart", r.Fields["restart"],
			`"always" would rerun a scheduled service as soon as it ends: use "on-failure" (the default) or "never"`)
	}
}

// checkZone loads an IANA zone name. When the image has no zone database
// at all the message says so: the fix is not in the name. load is
// time.LoadLocation but in tests.
func checkZone(tz string, load func(string) (*time.Location, error)) error {
	if _, err := load(tz); err != nil {
		if _, none := load("Etc/UTC"); none != nil {
			return fmt.Errorf("unknown time zone %q: this system has no time zone database "+
				"(install tzdata, mount /usr/share/zoneinfo, or set ZONEINFO)", tz)
		}
		return fmt.Errorf("unknown time zone %q", tz)
	}
	return nil
}

func (d *decoder) command(sc scope, v *jnode, r *RawService) {
	switch v.kind {
	case jString:
		switch {
		case strings.TrimSpace(v.str) == "":
			d.bad(sc, "command", v.off, "empty command")
		case strings.IndexByte(v.str, 0) >= 0:
			d.bad(sc, "command", v.off, "contains a NUL byte")
		default:
			r.Argv, r.Shell = []string{"/bin/sh", "-c", v.str}, true
		}
	case jArray:
		if argv, ok := d.argv(sc, "command", v, r.Fields); ok {
			r.Argv = argv
		}
	default:
		d.bad(sc, "command", v.off, "want an argv array or a shell string, got %s", v.kind)
	}
}

// varName checks the key of member m as an environment variable's name
// (of env or secrets), reporting a bad one at field f.
func (d *decoder) varName(sc scope, f string, m jmember) bool {
	switch {
	case m.key == "":
		d.bad(sc, f, m.keyOff, "empty variable name")
		return false
	case strings.ContainsAny(m.key, "=\x00"):
		d.bad(sc, f, m.keyOff, "a variable name cannot contain '=' or a NUL byte")
		return false
	}
	return true
}

func (d *decoder) env(sc scope, v *jnode, r *RawService) {
	if v.kind != jObject {
		d.bad(sc, "env", v.off, "want an object of strings, got %s", v.kind)
		return
	}
	var kv []string
	for _, m := range d.members(sc, "env", v) {
		f := "env." + m.key
		r.Fields[f] = d.pos(m.keyOff)
		if !d.varName(sc, f, m) {
			continue
		}
		val, ok := d.str(sc, f, m.val)
		if ok && strings.IndexByte(val, 0) >= 0 {
			d.bad(sc, f, m.val.off, "contains a NUL byte")
			ok = false
		}
		if ok {
			kv = append(kv, m.key+"="+val)
		}
	}
	// Keys hold no '=', so sorting "K=V" sorts by key.
	sort.Slice(kv, func(i, j int) bool {
		ki, _, _ := strings.Cut(kv[i], "=")
		kj, _, _ := strings.Cut(kv[j], "=")
		return ki < kj
	})
	r.Env = kv
}

func (d *decoder) backoff(sc scope, v *jnode, r *RawService) {
	if v.kind != jObject {
		d.bad(sc, "backoff", v.off, "want an object with initial, max, factor, jitter; got %s", v.kind)
		return
	}
	for _, m := range d.members(sc, "backoff", v) {
		f := "backoff." + m.key
		switch m.key {
		case "initial", "max":
			if t, ok := d.duration(sc, f, m.val); ok {
				if m.key == "initial" {
					r.Backoff.Initial = &t
				} else {
					r.Backoff.Max = &t
				}
			}
		case "factor":
			if x, ok := d.float(sc, f, m.val); ok {
				if x < 1 {
					d.bad(sc, f, m.val.off, "%s: want 1 or more", m.val.str)
				} else {
					r.Backoff.Factor = &x
				}
			}
		case "jitter":
			if x, ok := d.float(sc, f, m.val); ok {
				if x < 0 || x > 1 {
					d.bad(sc, f, m.val.off, "%s: want 0..1", m.val.str)
				} else {
					r.Backoff.Jitter = &x
				}
			}
		default:
			d.bad(sc, f, m.keyOff, "unknown field%s", suggest(m.key, backoffKeys))
			continue
		}
		r.Fields[f] = d.pos(m.keyOff)
	}
}

func (d *decoder) dependsOn(sc scope, v *jnode, r *RawService) {
	if v.kind != jArray {
		d.bad(sc, "depends_on", v.off, "want an array of service names, got %s", v.kind)
		return
	}
	r.DependsOn = make([]string, len(v.elems))
	seen := map[string]int{}
	for i, e := range v.elems {
		f := indexed("depends_on", i)
		r.Fields[f] = d.pos(e.off)
		name, ok := d.str(sc, f, e)
		switch {
		case !ok:
			continue
		case name == "":
			d.bad(sc, f, e.off, "empty name")
			continue
		}
		if j, dup := seen[name]; dup {
			d.bad(sc, f, e.off, "%q is already listed as depends_on[%d]", name, j)
			continue
		}
		seen[name] = i
		r.DependsOn[i] = name
	}
}

func (d *decoder) ready(sc scope, v *jnode, r *RawService) {
	if v.kind != jObject {
		d.bad(sc, "ready", v.off, "want an object with one of %s; got %s", strings.Join(readyKinds, ", "), v.kind)
		return
	}
	rd := &Ready{}
	kind, kindOff := "", 0
	var interval, threshold *jmember
	ok := true
	for _, m := range d.members(sc, "ready", v) {
		f := "ready." + m.key
		mv := m.val
		switch m.key {
		case "tcp", "exec", "file", "notify_fd", "http":
			r.Fields[f] = d.pos(m.keyOff)
			if kind != "" {
				p := d.pos(kindOff)
				d.bad(sc, f, m.keyOff, "ready takes one check only, and %s is given at %d:%d", kind, p.Line, p.Col)
				ok = false
				continue
			}
			kind, kindOff = m.key, m.keyOff
		case "timeout":
			r.Fields[f] = d.pos(m.keyOff)
			t, good := d.duration(sc, f, mv)
			rd.Timeout, ok = t, ok && good
			continue
		case "interval":
			r.Fields[f] = d.pos(m.keyOff)
			interval = &m
			t, good := d.interval(sc, f, mv)
			rd.Interval, ok = t, ok && good
			continue
		case "failure_threshold":
			r.Fields[f] = d.pos(m.keyOff)
			threshold = &m
			n, good := d.intIn(sc, f, mv, 1, 1<<31-1, "1 or more")
			rd.FailureThreshold, ok = n, ok && good
			continue
		default:
			d.bad(sc, f, m.keyOff, "unknown field%s", suggest(m.key, readyKeys))
			ok = false
			continue
		}
		good := false
		switch m.key {
		case "tcp", "exec", "http":
			good = d.checkKind(sc, f, m.key, mv, r.Fields, &rd.TCP, &rd.Exec, &rd.HTTP)
		case "file":
			rd.File, good = d.word(sc, f, mv)
		case "notify_fd":
			rd.NotifyFD, good = d.intIn(sc, f, mv, 3, 1<<31-1, "3 or more (0, 1 and 2 are stdio)")
		}
		ok = ok && good
	}
	if kind == "" {
		d.bad(sc, "ready", v.off, "want one of %s", strings.Join(readyKinds, ", "))
		ok = false
	}
	if threshold != nil && interval == nil {
		d.bad(sc, "ready.failure_threshold", threshold.keyOff,
			"needs ready.interval: without it the check stops once the service is ready")
		ok = false
	}
	if interval != nil && kind == "notify_fd" {
		d.bad(sc, "ready.interval", interval.keyOff, "a notify_fd check is read once and cannot be repeated")
		ok = false
	}
	if ok {
		r.Ready = rd
	}
}

// health decodes a liveness check, defaults filled in.
func (d *decoder) health(sc scope, v *jnode, r *RawService) {
	if v.kind != jObject {
		d.bad(sc, "health", v.off, "want an object with one of %s; got %s", strings.Join(healthKinds, ", "), v.kind)
		return
	}
	h := &Health{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout,
		FailureThreshold: DefaultHealthThreshold}
	kind, kindOff := "", 0
	var interval, timeout *jmember
	ok, timesOK := true, true // timesOK: interval and timeout each valid
	for _, m := range d.members(sc, "health", v) {
		f := "health." + m.key
		mv := m.val
		r.Fields[f] = d.pos(m.keyOff)
		good := false
		switch m.key {
		case "tcp", "exec", "http":
			if kind != "" {
				p := d.pos(kindOff)
				d.bad(sc, f, m.keyOff, "health takes one check only, and %s is given at %d:%d", kind, p.Line, p.Col)
				break
			}
			kind, kindOff = m.key, m.keyOff
			good = d.checkKind(sc, f, m.key, mv, r.Fields, &h.TCP, &h.Exec, &h.HTTP)
		case "interval":
			interval = &m
			h.Interval, good = d.interval(sc, f, mv)
			timesOK = timesOK && good
		case "timeout":
			timeout = &m
			h.Timeout, good = d.duration(sc, f, mv)
			if good && h.Timeout == 0 {
				d.bad(sc, f, mv.off, "a check needs a timeout above 0")
				good = false
			}
			timesOK = timesOK && good
		case "start_period":
			h.StartPeriod, good = d.duration(sc, f, mv)
		case "failure_threshold":
			h.FailureThreshold, good = d.intIn(sc, f, mv, 1, 1<<31-1, "1 or more")
		default:
			delete(r.Fields, f)
			d.bad(sc, f, m.keyOff, "unknown field%s", suggest(m.key, healthKeys))
		}
		ok = ok && good
	}
	if kind == "" {
		d.bad(sc, "health", v.off, "want one of %s", strings.Join(healthKinds, ", "))
		ok = false
	}
	// An attempt must end before the next is due: one in flight at most.
	if timesOK && h.Timeout >= h.Interval {
		switch {
		case timeout != nil:
			d.bad(sc, "health.timeout", timeout.val.off, "%s is not shorter than the interval (%s)", h.Timeout, h.Interval)
		default:
			d.bad(sc, "health.interval", interval.val.off, "%s is not longer than the timeout (%s by default): set a shorter timeout", h.Interval, h.Timeout)
		}
		ok = false
	}
	if ok {
		r.Health = h
	}
}

// interval reads a check's interval: a duration of at least
// MinCheckInterval.
func (d *decoder) interval(sc scope, field string, n *jnode) (time.Duration, bool) {
	t, ok := d.duration(sc, field, n)
	if ok && t < MinCheckInterval {
		d.bad(sc, field, n.off, "%q is under the %s minimum", n.str, MinCheckInterval)
		ok = false
	}
	return t, ok
}

// checkKind decodes the value of a tcp, exec or http check into its field.
func (d *decoder) checkKind(sc scope, f, kind string, mv *jnode, fields map[string]Pos, tcp *string, exec *[]string, url *string) bool {
	switch kind {
	case "tcp":
		addr, good := d.word(sc, f, mv)
		if !good {
			return false
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			d.bad(sc, f, mv.off, "%q: want host:port (%v)", addr, err)
			return false
		} else if port == "" {
			d.bad(sc, f, mv.off, "%q: missing port", addr)
			return false
		}
		*tcp = addr
		return true
	case "exec":
		if mv.kind != jArray {
			d.bad(sc, f, mv.off, "want an argv array, got %s", mv.kind)
			return false
		}
		argv, good := d.argv(sc, f, mv, fields)
		*exec = argv
		return good
	default: // http
		u, good := d.word(sc, f, mv)
		if !good {
			return false
		}
		if _, err := httpd.ParseURL(u); err != nil {
			d.bad(sc, f, mv.off, "%v", err)
			return false
		}
		*url = u
		return true
	}
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" when none is close.
func suggest(key string, known []string) string {
	best, bestD := "", -1
	lk := strings.ToLower(key)
	for _, k := range known {
		if dd := editDistance(lk, k); bestD < 0 || dd < bestD {
			best, bestD = k, dd
		}
	}
	limit := len(key) / 3
	if limit < 1 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortProblems puts problems in document order, each source's together, the
// sources in the order they first appear.
func sortProblems(ps []Problem) {
	rank := map[string]int{}
	for _, p := range ps {
		if _, ok := rank[p.Source]; !ok {
			rank[p.Source] = len(rank)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Source != b.Source {
			return rank[a.Source] < rank[b.Source]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Resolve turns raw services into effective Services using the final
// Settings (after env and flags were layered on top), and checks what needs
// the whole set: duplicate names, the reserved name "main", copies of a
// service with instances whose names are taken, unknown dependencies,
// self-dependencies and dependency cycles. Every problem is reported, none
// stops the scan. The services are returned in order, one for each raw
// service, or its copies in place of a service with instances, even when
// there are problems (then they are not fit to run).
//
// instances: a service that gives it (even 1) is a template: it becomes N
// services NAME-1..NAME-N with VIGIL_INSTANCE and VIGIL_INSTANCES in their
// env, and its name stands for all of them in depends_on (and is taken:
// no other service may be called NAME). Without it a service keeps its
// name.
//
// Defaults: restart "always" ("on-failure" for a oneshot, and a scheduled
// service is a oneshot); concurrency "forbid" for a scheduled service;
// max_retries, backoff.*, stable_after and stop_timeout from s; stop_signal
// SIGTERM; log "inherit"; no ready check; a ready check without timeout
// waits forever (Timeout 0).
func Resolve(raw []RawService, s Settings) ([]Service, []Problem) {
	var probs []Problem
	add := func(r *RawService, field, format string, a ...any) {
		p := r.Fields[field]
		svc := r.Name
		if svc == "" {
			field = fmt.Sprintf("services[%d].%s", r.Index, field)
		}
		probs = append(probs, Problem{Service: svc, Field: field, Line: p.Line, Col: p.Col,
			Source: r.Source, Msg: fmt.Sprintf(format, a...)})
	}
	where := func(r *RawService, j int, field string) string {
		f := raw[j].Fields[field]
		w := fmt.Sprintf("%d:%d", f.Line, f.Col)
		if raw[j].Source != r.Source {
			w = raw[j].Source + ":" + w
		}
		return w
	}
	// Names: the first service with a name owns it, a template too.
	owner := make(map[string]int, len(raw))
	for i := range raw {
		r := &raw[i]
		switch {
		case r.Name == "":
		case r.Name == MainName:
			add(r, "name", "%q is reserved for the main process (vigil -- CMD)", MainName)
		default:
			if j, dup := owner[r.Name]; dup {
				add(r, "name", "duplicate name (first at %s)", where(r, j, "name"))
				continue
			}
			owner[r.Name] = i
		}
	}
	// Units are the services Resolve returns: each raw service, or the
	// copies of an owning template. A copy whose name is taken is left
	// out of the graph (the config is refused anyway).
	type unit struct {
		raw, instance int
		name          string
	}
	units := make([]unit, 0, len(raw))
	byName := make(map[string]int, len(raw)) // unit name -> unit
	copies := map[string][]int{}             // template name -> its units
	for i := range raw {
		r := &raw[i]
		o, isOwner := owner[r.Name]
		isOwner = isOwner && o == i
		if r.Instances == 0 || !isOwner {
			if isOwner {
				byName[r.Name] = len(units)
			}
			units = append(units, unit{raw: i, name: r.Name})
			continue
		}
		for k := 1; k <= r.Instances; k++ {
			name := r.Name + "-" + strconv.Itoa(k)
			if j, taken := owner[name]; taken {
				add(r, "instances", "copy %d of %d would be named %q, and service %q (at %s) has that name",
					k, r.Instances, name, name, where(r, j, "name"))
			} else {
				byName[name] = len(units)
				copies[r.Name] = append(copies[r.Name], len(units))
			}
			units = append(units, unit{raw: i, instance: k, name: name})
		}
	}
	// Dependencies, checked once per raw service, then edges between
	// units for the cycle search. An edge remembers its depends_on index.
	type edge struct{ to, idx int }
	depEdges := make([][]edge, len(raw)) // per raw service, to units
	for i := range raw {
		r := &raw[i]
		o, isOwner := owner[r.Name]
		isOwner = isOwner && o == i
		for k, dep := range r.DependsOn {
			f := indexed("depends_on", k)
			tmpl, isTemplate := copies[dep]
			u, known := byName[dep]
			switch {
			case dep == "":
			case dep == r.Name:
				add(r, f, "a service cannot depend on itself")
			case r.Instances > 0 && isOwner && strings.HasPrefix(dep, r.Name+"-") && known && units[u].raw == i:
				add(r, f, "%q is a copy of this service: a copy cannot depend on itself", dep)
			case dep == MainName:
				add(r, f, "%q is the main process, not a service: nothing can depend on it", MainName)
			case isTemplate:
				if isOwner {
					for _, to := range tmpl {
						depEdges[i] = append(depEdges[i], edge{to, k})
					}
				}
			case !known:
				add(r, f, "unknown service %q", dep)
			default:
				if isOwner {
					depEdges[i] = append(depEdges[i], edge{u, k})
				}
			}
		}
	}
	// Cycles: one report per strongly connected component, naming a
	// shortest cycle through its first service.
	succ := func(v int) []edge { return depEdges[units[v].raw] }
	for _, comp := range tarjan(len(units), func(v int) []int {
		out := make([]int, len(succ(v)))
		for k, e := range succ(v) {
			out[k] = e.to
		}
		return out
	}) {
		in := map[int]bool{}
		start := comp[0]
		for _, v := range comp {
			in[v] = true
			start = min(start, v)
		}
		// BFS from start back to start within the component.
		prev := map[int]int{}
		firstEdge := -1
		queue := []int{start}
		found := false
		for len(queue) > 0 && !found {
			v := queue[0]
			queue = queue[1:]
			for _, e := range succ(v) {
				if !in[e.to] {
					continue
				}
				if e.to == start {
					prev[start] = v
					found = true
					break
				}
				if _, seen := prev[e.to]; !seen && e.to != start {
					prev[e.to] = v
					queue = append(queue, e.to)
				}
			}
		}
		path := []int{start}
		for v := prev[start]; v != start; v = prev[v] {
			path = append(path, v)
		}
		path = append(path, start)
		// path is reversed: start <- ... <- start.
		names := make([]string, len(path))
		for k, v := range path {
			names[len(path)-1-k] = units[v].name
		}
		next := path[len(path)-2]
		for _, e := range succ(start) {
			if e.to == next {
				firstEdge = e.idx
				break
			}
		}
		add(&raw[units[start].raw], fmt.Sprintf("depends_on[%d]", firstEdge), "dependency cycle: %s", strings.Join(names, " -> "))
	}

	// A dependency on a template is one on each of its copies.
	expand := func(deps []string) []string {
		var out []string
		for _, dep := range deps {
			tmpl, ok := copies[dep]
			if !ok {
				out = append(out, dep)
				continue
			}
			for _, c := range tmpl {
				out = append(out, units[c].name)
			}
		}
		return out
	}
	out := make([]Service, len(units))
	for k, u := range units {
		r := &raw[u.raw]
		svc := resolveOne(r, s)
		svc.DependsOn = expand(svc.DependsOn)
		if u.instance != 0 {
			svc.Name, svc.Template, svc.Instance, svc.Instances = u.name, r.Name, u.instance, r.Instances
			svc.Env = withInstance(svc.Env, u.instance, r.Instances)
		}
		out[k] = svc
	}
	sortProblems(probs)
	return out, probs
}

// CopyAs is c, a copy of a service with instances (Template set), made
// copy i of n: its name, number and environment; for `vigil scale`, which
// changes N without reading the file.
func (c Service) CopyAs(i, n int) Service {
	out := c
	out.Name, out.Instance, out.Instances = fmt.Sprintf("%s-%d", c.Template, i), i, n
	out.Env = nil
	for _, kv := range c.Env {
		if k, _, _ := strings.Cut(kv, "="); k != InstanceVar && k != InstancesVar {
			out.Env = append(out.Env, kv)
		}
	}
	out.Env = withInstance(out.Env, i, n)
	return out
}

// withInstance adds a copy's VIGIL_INSTANCE and VIGIL_INSTANCES to env,
// keeping it sorted by key (the decoder refuses both in a template's env).
func withInstance(env []string, i, n int) []string {
	env = append(env, InstanceVar+"="+strconv.Itoa(i), InstancesVar+"="+strconv.Itoa(n))
	sort.SliceStable(env, func(a, b int) bool {
		ka, _, _ := strings.Cut(env[a], "=")
		kb, _, _ := strings.Cut(env[b], "=")
		return ka < kb
	})
	return env
}

func resolveOne(r *RawService, s Settings) Service {
	svc := Service{
		Name:        r.Name,
		Argv:        append([]string(nil), r.Argv...),
		Shell:       r.Shell,
		Dir:         r.Dir,
		Env:         append([]string(nil), r.Env...),
		User:        r.User,
		Restart:     r.Restart,
		MaxRetries:  s.MaxRetries,
		StableAfter: s.StableAfter,
		StopSignal:  syscall.SIGTERM,
		StopTimeout: s.StopTimeout,
		Critical:    r.Critical,
		Oneshot:     r.Oneshot,
		Log:         r.Log,
		EnvFiles:    append(append([]EnvFile(nil), s.EnvFiles...), r.EnvFiles...),
		Secrets:     append([]Secret(nil), r.Secrets...),
		Backoff: Backoff{
			Initial: s.BackoffInitial, Max: s.BackoffMax,
			Factor: s.BackoffFactor, Jitter: s.BackoffJitter,
		},
	}
	if r.Schedule != "" {
		svc.Oneshot = true
		svc.Schedule, svc.Timezone = r.Schedule, r.Timezone
		svc.Concurrency = r.Concurrency
		if svc.Concurrency == "" {
			svc.Concurrency = ConcurrencyForbid
		}
		if r.StartingDeadline != nil {
			svc.StartingDeadline = *r.StartingDeadline
		}
	}
	if svc.Restart == "" {
		svc.Restart = RestartAlways
		if svc.Oneshot {
			svc.Restart = RestartOnFailure
		}
	}
	if svc.Log == "" {
		svc.Log = LogInherit
	}
	if r.MaxRetries != nil {
		svc.MaxRetries = *r.MaxRetries
	}
	if r.StableAfter != nil {
		svc.StableAfter = *r.StableAfter
	}
	if r.StopTimeout != nil {
		svc.StopTimeout = *r.StopTimeout
	}
	if r.StopSignal != 0 {
		svc.StopSignal = r.StopSignal
	}
	if b := r.Backoff; b.Initial != nil {
		svc.Backoff.Initial = *b.Initial
	}
	if b := r.Backoff; b.Max != nil {
		svc.Backoff.Max = *b.Max
	}
	if b := r.Backoff; b.Factor != nil {
		svc.Backoff.Factor = *b.Factor
	}
	if b := r.Backoff; b.Jitter != nil {
		svc.Backoff.Jitter = *b.Jitter
	}
	for _, dep := range r.DependsOn {
		if dep != "" {
			svc.DependsOn = append(svc.DependsOn, dep)
		}
	}
	if r.LogFile != nil {
		lf := *r.LogFile
		svc.LogFile = &lf
	}
	if r.Ready != nil {
		rd := *r.Ready
		rd.Exec = append([]string(nil), rd.Exec...)
		svc.Ready = &rd
	}
	if r.Health != nil {
		h := *r.Health
		h.Exec = append([]string(nil), h.Exec...)
		svc.Health = &h
	}
	return svc
}

// tarjan returns the strongly connected components of more than one vertex
// of the graph on 0..n-1: its cycles (an edge from a vertex to itself is no
// cycle here; Resolve reports those apart). Leaving out the single vertices
// saves an allocation for each service of a config without cycles.
func tarjan(n int, succ func(int) []int) [][]int {
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var comps [][]int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range succ(v) {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			if stack[len(stack)-1] == v {
				stack = stack[:len(stack)-1]
				onStack[v] = false
				return
			}
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			comps = append(comps, comp)
		}
	}
	for v := 0; v < n; v++ {
		if index[v] < 0 {
			visit(v)
		}
	}
	return comps
}
