package config

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// base is a valid service with room for one more field: the first byte after
// it is column 30 of line 1.
const base = `[{"name":"web","command":"x",`

// svc is a one-service array document with extra fields after base.
func svc(fields string) string { return base + fields + `}]` }

// check runs the whole pipeline as the caller does: Decode onto the
// defaults, then Resolve with the result. It returns every problem as text.
func check(doc string) []string {
	s := Default()
	raw, probs := Decode([]byte(doc), "f.json", &s)
	_, more := Resolve(raw, s)
	var out []string
	for _, p := range append(probs, more...) {
		out = append(out, p.String())
	}
	return out
}

// resolveOK decodes and resolves doc, failing the test on any problem.
func resolveOK(t *testing.T, doc string, tweak func(*Settings)) ([]Service, Settings) {
	t.Helper()
	s := Default()
	raw, probs := Decode([]byte(doc), "f.json", &s)
	if tweak != nil {
		tweak(&s)
	}
	svcs, more := Resolve(raw, s)
	for _, p := range append(probs, more...) {
		t.Errorf("unexpected problem: %s", p)
	}
	return svcs, s
}

// defaulted is the Service a document gives for name/argv when no optional
// field is set, under settings s.
func defaulted(s Settings, name string, argv ...string) Service {
	return Service{
		Name: name, Argv: argv, Restart: RestartAlways, MaxRetries: s.MaxRetries,
		Backoff:     Backoff{Initial: s.BackoffInitial, Max: s.BackoffMax, Factor: s.BackoffFactor, Jitter: s.BackoffJitter},
		StableAfter: s.StableAfter, StopSignal: syscall.SIGTERM, StopTimeout: s.StopTimeout, Log: LogInherit,
	}
}

func shell(s Settings, name, cmd string) Service {
	v := defaulted(s, name, "/bin/sh", "-c", cmd)
	v.Shell = true
	return v
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want func(Settings) []Service
	}{
		{"array form: a string command runs under /bin/sh -c",
			`[{"name": "web", "command": "nginx -g 'daemon off;'"}, {"name": "db", "command": "postgres"}]`,
			func(s Settings) []Service {
				return []Service{shell(s, "web", "nginx -g 'daemon off;'"), shell(s, "db", "postgres")}
			}},
		{"array form accepts every service field",
			`[{"name": "web", "command": ["nginx"], "oneshot": true}]`,
			func(s Settings) []Service {
				v := defaulted(s, "web", "nginx")
				v.Oneshot, v.Restart = true, RestartOnFailure
				return []Service{v}
			}},
		{"object form: an argv command runs directly",
			`{"services": [{"name": "web", "command": ["nginx", "-g", "daemon off;"]}]}`,
			func(s Settings) []Service { return []Service{defaulted(s, "web", "nginx", "-g", "daemon off;")} }},
		{"object form: a string command works too",
			`{"services": [{"name": "web", "command": "exec nginx"}]}`,
			func(s Settings) []Service { return []Service{shell(s, "web", "exec nginx")} }},
		{"object form without services has no services",
			`{"max_retries": 1}`,
			func(Settings) []Service { return []Service{} }},
		{"object form with an empty services array",
			`{"services": []}`,
			func(Settings) []Service { return []Service{} }},
		{"empty array form",
			`[]`,
			func(Settings) []Service { return []Service{} }},
		{"a leading byte order mark is skipped",
			"\xEF\xBB\xBF[{\"name\": \"a\", \"command\": \"x\"}]",
			func(s Settings) []Service { return []Service{shell(s, "a", "x")} }},
		{"surrounding white space is fine",
			" \r\n\t[{\"name\": \"a\", \"command\": \"x\"}]\n\n",
			func(s Settings) []Service { return []Service{shell(s, "a", "x")} }},
		{"escapes in strings are decoded",
			`[{"name": "a", "command": ["printf", "\u00e9\t\"\\\/\ud83d\ude00\n"]}]`,
			func(s Settings) []Service { return []Service{defaulted(s, "a", "printf", "é\t\"\\/😀\n")} }},
		{"an example with every service field decodes",
			everyFieldExample,
			func(s Settings) []Service {
				web := defaulted(s, "web", "nginx", "-g", "daemon off;")
				web.Dir, web.Env, web.User = "/srv", []string{"PORT=8080"}, "www-data"
				web.MaxRetries = 5
				web.Backoff = Backoff{Initial: 500 * time.Millisecond, Max: time.Minute, Factor: 2, Jitter: 0.2}
				web.StopSignal, web.Critical, web.DependsOn = syscall.SIGQUIT, true, []string{"db"}
				web.Ready = &Ready{TCP: "127.0.0.1:8080", Timeout: 30 * time.Second}
				web.Log = LogPrefix
				return []Service{web, defaulted(s, "db", "postgres")}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, s := resolveOK(t, tc.doc, nil)
			if want := tc.want(s); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

const everyFieldExample = `{
  "services": [
    {
      "name": "web",
      "command": ["nginx", "-g", "daemon off;"],
      "dir": "/srv", "env": {"PORT": "8080"}, "user": "www-data",
      "restart": "always",
      "max_retries": 5,
      "backoff": {"initial": "500ms", "max": "1m", "factor": 2, "jitter": 0.2},
      "stable_after": "10s",
      "stop_signal": "SIGQUIT", "stop_timeout": "5s",
      "critical": true,
      "depends_on": ["db"],
      "ready": {"tcp": "127.0.0.1:8080", "timeout": "30s"},
      "oneshot": false,
      "log": "prefix"
    },
    {"name": "db", "command": ["postgres"]}
  ],
  "max_retries": 3, "respawn_limit": "10/1m", "shutdown_timeout": "9s", "state_dir": "/var/lib/vigil"
}`

func TestServiceFields(t *testing.T) {
	tests := []struct {
		name  string
		field string // extra fields of svc()
		tweak func(*Settings)
		want  func(*Service, Settings)
	}{
		{"no optional field: every default comes from the settings", ``, nil,
			func(*Service, Settings) {}},
		{"global settings from the env layer are the services' defaults", ``,
			func(s *Settings) {
				s.MaxRetries, s.StableAfter, s.StopTimeout = 7, time.Minute, 2*time.Second
				s.BackoffInitial, s.BackoffMax, s.BackoffFactor, s.BackoffJitter = time.Millisecond, time.Hour, 3, 0.5
			},
			func(v *Service, _ Settings) {
				v.MaxRetries, v.StableAfter, v.StopTimeout = 7, time.Minute, 2*time.Second
				v.Backoff = Backoff{time.Millisecond, time.Hour, 3, 0.5}
			}},
		{"dir", `"dir":"/srv"`, nil, func(v *Service, _ Settings) { v.Dir = "/srv" }},
		{"env becomes K=V sorted by key", `"env":{"Z":"1","A":"x=y","M":""}`, nil,
			func(v *Service, _ Settings) { v.Env = []string{"A=x=y", "M=", "Z=1"} }},
		{"empty env object", `"env":{}`, nil, func(v *Service, _ Settings) {}},
		{"user by name", `"user":"www-data"`, nil, func(v *Service, _ Settings) { v.User = "www-data" }},
		{"user as uid:gid", `"user":"1000:1000"`, nil, func(v *Service, _ Settings) { v.User = "1000:1000" }},
		{"restart defaults to always", ``, nil, func(v *Service, _ Settings) { v.Restart = RestartAlways }},
		{"restart on-failure", `"restart":"on-failure"`, nil, func(v *Service, _ Settings) { v.Restart = RestartOnFailure }},
		{"restart never", `"restart":"never"`, nil, func(v *Service, _ Settings) { v.Restart = RestartNever }},
		{"a oneshot's restart defaults to on-failure", `"oneshot":true`, nil,
			func(v *Service, _ Settings) { v.Oneshot, v.Restart = true, RestartOnFailure }},
		{"a oneshot keeps an explicit restart", `"oneshot":true,"restart":"never"`, nil,
			func(v *Service, _ Settings) { v.Oneshot, v.Restart = true, RestartNever }},
		{"oneshot false keeps always", `"oneshot":false`, nil, func(v *Service, _ Settings) {}},
		{"max_retries beats the global setting", `"max_retries":5`, func(s *Settings) { s.MaxRetries = 9 },
			func(v *Service, _ Settings) { v.MaxRetries = 5 }},
		{"max_retries 0 is kept, not defaulted", `"max_retries":0`, nil, func(v *Service, _ Settings) { v.MaxRetries = 0 }},
		{"max_retries -1 is unlimited", `"max_retries":-1`, nil, func(v *Service, _ Settings) { v.MaxRetries = -1 }},
		{"a full backoff beats the global settings",
			`"backoff":{"initial":"500ms","max":"1m","factor":1.5,"jitter":0}`, nil,
			func(v *Service, _ Settings) { v.Backoff = Backoff{500 * time.Millisecond, time.Minute, 1.5, 0} }},
		{"backoff fields left out come from the settings", `"backoff":{"max":"2m"}`,
			func(s *Settings) { s.BackoffInitial = 3 * time.Second },
			func(v *Service, s Settings) {
				v.Backoff = Backoff{3 * time.Second, 2 * time.Minute, s.BackoffFactor, s.BackoffJitter}
			}},
		{"an empty backoff object changes nothing", `"backoff":{}`, nil, func(v *Service, _ Settings) {}},
		{"jitter 1 and factor 1 are the limits", `"backoff":{"factor":1,"jitter":1}`, nil,
			func(v *Service, _ Settings) { v.Backoff.Factor, v.Backoff.Jitter = 1, 1 }},
		{"stable_after beats the global setting", `"stable_after":"1m30s"`, nil,
			func(v *Service, _ Settings) { v.StableAfter = 90 * time.Second }},
		{"stable_after 0 is kept", `"stable_after":"0"`, nil, func(v *Service, _ Settings) { v.StableAfter = 0 }},
		{"stop_timeout beats the global setting", `"stop_timeout":"250ms"`, nil,
			func(v *Service, _ Settings) { v.StopTimeout = 250 * time.Millisecond }},
		{"stop_signal defaults to SIGTERM", ``, nil, func(v *Service, _ Settings) { v.StopSignal = syscall.SIGTERM }},
		{"stop_signal by full name", `"stop_signal":"SIGQUIT"`, nil, func(v *Service, _ Settings) { v.StopSignal = syscall.SIGQUIT }},
		{"stop_signal without SIG, any case", `"stop_signal":"int"`, nil, func(v *Service, _ Settings) { v.StopSignal = syscall.SIGINT }},
		{"stop_signal as a JSON number", `"stop_signal":10`, nil, func(v *Service, _ Settings) { v.StopSignal = syscall.SIGUSR1 }},
		{"stop_signal as a real-time signal", `"stop_signal":"RTMIN+3"`, nil, func(v *Service, _ Settings) { v.StopSignal = 37 }},
		{"critical", `"critical":true`, nil, func(v *Service, _ Settings) { v.Critical = true }},
		{"depends_on keeps its order",
			`"depends_on":["b","a"]},{"name":"a","command":"x"},{"name":"b","command":"x"`, nil,
			func(v *Service, _ Settings) { v.DependsOn = []string{"b", "a"} }},
		{"empty depends_on", `"depends_on":[]`, nil, func(v *Service, _ Settings) {}},
		{"ready tcp", `"ready":{"tcp":"localhost:80"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{TCP: "localhost:80"} }},
		{"ready tcp on IPv6 with a timeout", `"ready":{"tcp":"[::1]:8080","timeout":"30s"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{TCP: "[::1]:8080", Timeout: 30 * time.Second} }},
		{"ready exec", `"ready":{"exec":["pg_isready","-q"]}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{Exec: []string{"pg_isready", "-q"}} }},
		{"ready file", `"ready":{"file":"/run/ready"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{File: "/run/ready"} }},
		{"ready notify_fd", `"ready":{"notify_fd":3,"timeout":"1m"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{NotifyFD: 3, Timeout: time.Minute} }},
		{"ready http", `"ready":{"http":"http://127.0.0.1:8080/ready"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{HTTP: "http://127.0.0.1:8080/ready"} }},
		{"ready that keeps running", `"ready":{"http":"http://h/r","interval":"5s","failure_threshold":2}`, nil,
			func(v *Service, _ Settings) {
				v.Ready = &Ready{HTTP: "http://h/r", Interval: 5 * time.Second, FailureThreshold: 2}
			}},
		{"ready interval at its minimum, threshold by default", `"ready":{"tcp":"h:1","interval":"100ms"}`, nil,
			func(v *Service, _ Settings) { v.Ready = &Ready{TCP: "h:1", Interval: 100 * time.Millisecond} }},
		{"health defaults", `"health":{"tcp":"h:1"}`, nil,
			func(v *Service, _ Settings) {
				v.Health = &Health{TCP: "h:1", Interval: 10 * time.Second, Timeout: 2 * time.Second, FailureThreshold: 3}
			}},
		{"health, every field", `"health":{"http":"http://127.0.0.1:8080/healthz","interval":"5s","timeout":"1s","start_period":"30s","failure_threshold":5}`, nil,
			func(v *Service, _ Settings) {
				v.Health = &Health{HTTP: "http://127.0.0.1:8080/healthz", Interval: 5 * time.Second, Timeout: time.Second,
					StartPeriod: 30 * time.Second, FailureThreshold: 5}
			}},
		{"health exec", `"health":{"exec":["pg_isready","-q"],"interval":"1s","timeout":"500ms"}`, nil,
			func(v *Service, _ Settings) {
				v.Health = &Health{Exec: []string{"pg_isready", "-q"}, Interval: time.Second, Timeout: 500 * time.Millisecond,
					FailureThreshold: 3}
			}},
		{"log defaults to inherit", ``, nil, func(v *Service, _ Settings) { v.Log = LogInherit }},
		{"log prefix", `"log":"prefix"`, nil, func(v *Service, _ Settings) { v.Log = LogPrefix }},
		{"log inherit", `"log":"inherit"`, nil, func(v *Service, _ Settings) { v.Log = LogInherit }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := base[:len(base)-1] + `}]`
			if tc.field != "" {
				doc = svc(tc.field)
			}
			got, s := resolveOK(t, doc, tc.tweak)
			want := shell(s, "web", "x")
			tc.want(&want, s)
			if !reflect.DeepEqual(got[0], want) {
				t.Errorf("got  %+v\nwant %+v", got[0], want)
			}
		})
	}
	t.Run("an argv command may have empty arguments after the program", func(t *testing.T) {
		got, s := resolveOK(t, `[{"name":"a","command":["printf","%s",""]}]`, nil)
		if want := defaulted(s, "a", "printf", "%s", ""); !reflect.DeepEqual(got[0], want) {
			t.Errorf("got %+v", got[0])
		}
	})
}

// allSettings sets every top-level setting to a value other than its
// default.
const allSettings = `{
  "state_dir": "/state", "socket": "/run/v.sock", "log_level": "debug", "log_format": "json",
  "log_file": "/var/log/vigil.log", "max_retries": -1,
  "backoff_initial": "2s", "backoff_max": "2m", "backoff_factor": 1.5, "backoff_jitter": 0,
  "stable_after": "1m", "stop_timeout": "3s", "respawn_limit": "5/10s",
  "shutdown_timeout": "20s", "reexec_interval": "1h", "reset_state": true,
  "kill_process_group": true, "subreaper": true, "http": "127.0.0.1:9090"
}`

func TestSettingsFromFile(t *testing.T) {
	t.Run("every setting is read from its snake_case key", func(t *testing.T) {
		s := Default()
		raw, probs := Decode([]byte(allSettings), "f.json", &s)
		if len(raw) != 0 || len(probs) != 0 {
			t.Fatalf("raw %v, problems %v", raw, probs)
		}
		want := Settings{
			StateDir: "/state", Socket: "/run/v.sock", LogLevel: "debug", LogFormat: "json",
			LogFile: "/var/log/vigil.log", MaxRetries: -1,
			BackoffInitial: 2 * time.Second, BackoffMax: 2 * time.Minute, BackoffFactor: 1.5, BackoffJitter: 0,
			StableAfter: time.Minute, StopTimeout: 3 * time.Second, RespawnLimit: RespawnLimit{5, 10 * time.Second},
			ShutdownTimeout: 20 * time.Second, ReexecInterval: time.Hour, ResetState: true, KillProcessGroup: true, Subreaper: true,
			HTTP: "127.0.0.1:9090",
		}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("got  %+v\nwant %+v", s, want)
		}
	})
	t.Run("the keys are derived from the env tags, all but CONFIG and SERVICES", func(t *testing.T) {
		typ := reflect.TypeFor[Settings]()
		for i := 0; i < typ.NumField(); i++ {
			tag := typ.Field(i).Tag.Get("env")
			if tag == "" {
				continue // a file-only setting such as env_file
			}
			key := strings.ToLower(tag)
			_, inFile := fileSettings[key]
			if want := tag != "CONFIG" && tag != "SERVICES"; inFile != want {
				t.Errorf("%s: in file = %v, want %v", tag, inFile, want)
			}
			if tag != "CONFIG" && tag != "SERVICES" && !strings.Contains(allSettings, `"`+key+`"`) {
				t.Errorf("allSettings does not cover %q: add it to this test", key)
			}
		}
	})
	t.Run("the defaults pass Validate, so a setting's check sees only itself", func(t *testing.T) {
		if errs := Default().Validate(); len(errs) != 0 {
			t.Fatal(errs)
		}
	})
	t.Run("respawn_limit 0 may be a JSON number", func(t *testing.T) {
		s := Default()
		if _, probs := Decode([]byte(`{"respawn_limit": 0}`), "f.json", &s); len(probs) != 0 || s.RespawnLimit.N != 0 {
			t.Errorf("%v %+v", probs, s.RespawnLimit)
		}
	})
	t.Run("an empty string setting is applied", func(t *testing.T) {
		s := Default()
		s.Socket = "/x"
		if _, probs := Decode([]byte(`{"socket": ""}`), "f.json", &s); len(probs) != 0 || s.Socket != "" {
			t.Errorf("%v %q", probs, s.Socket)
		}
	})
	t.Run("a bad setting is reported and not applied; good ones are", func(t *testing.T) {
		s := Default()
		_, probs := Decode([]byte(`{"max_retries": -2, "stop_timeout": "-1s", "log_level": "loud", "backoff_jitter": 2, "subreaper": true}`), "f.json", &s)
		want := Default()
		want.Subreaper = true
		if !reflect.DeepEqual(s, want) {
			t.Errorf("settings changed: %+v", s)
		}
		if len(probs) != 4 {
			t.Errorf("problems: %v", probs)
		}
	})
	t.Run("the environment beats the file", func(t *testing.T) {
		s := Default()
		Decode([]byte(`{"max_retries": 9, "stop_timeout": "1s"}`), "f.json", &s)
		if errs := s.Env([]string{"VIGIL_MAX_RETRIES=4"}); len(errs) != 0 {
			t.Fatal(errs)
		}
		if s.MaxRetries != 4 || s.StopTimeout != time.Second {
			t.Errorf("%+v", s)
		}
	})
	t.Run("top-level settings are the services' defaults", func(t *testing.T) {
		got, _ := resolveOK(t, `{"max_retries": 9, "backoff_factor": 3, "stop_timeout": "1s", "services": [{"name":"a","command":"x"}]}`, nil)
		if got[0].MaxRetries != 9 || got[0].Backoff.Factor != 3 || got[0].StopTimeout != time.Second {
			t.Errorf("%+v", got[0])
		}
	})
	t.Run("a nil Settings is allowed", func(t *testing.T) {
		raw, probs := Decode([]byte(`{"max_retries": 9, "services": [{"name":"a","command":"x"}]}`), "f.json", nil)
		if len(raw) != 1 || len(probs) != 0 {
			t.Errorf("%v %v", raw, probs)
		}
	})
	t.Run("nothing is applied after a syntax error", func(t *testing.T) {
		s := Default()
		if _, probs := Decode([]byte(`{"max_retries": 9,`), "f.json", &s); len(probs) != 1 || s.MaxRetries != 3 {
			t.Errorf("%v %+v", probs, s)
		}
	})
}

func TestServicesVar(t *testing.T) {
	t.Run("the array form", func(t *testing.T) {
		raw, probs := Decode([]byte(`[{"name":"a","command":"x"}]`), ServicesVar, nil)
		if len(raw) != 1 || raw[0].Name != "a" || raw[0].Source != ServicesVar || len(probs) != 0 {
			t.Errorf("%+v %v", raw, probs)
		}
	})
	t.Run("the object form", func(t *testing.T) {
		raw, probs := Decode([]byte(`{"services":[{"name":"a","command":["x"]}]}`), ServicesVar, nil)
		if len(raw) != 1 || raw[0].Name != "a" || len(probs) != 0 {
			t.Errorf("%+v %v", raw, probs)
		}
	})
	t.Run("top-level settings are problems naming the variable to use, and are not applied", func(t *testing.T) {
		s := Default()
		raw, probs := Decode([]byte(`{"max_retries": 5, "services": [], "bogus": 1}`), ServicesVar, &s)
		want := []string{
			`VIGIL_SERVICES:1:2: field "max_retries": VIGIL_SERVICES holds services only: set VIGIL_MAX_RETRIES instead`,
			`VIGIL_SERVICES:1:36: field "bogus": unknown field`,
		}
		if got := strs(probs); !reflect.DeepEqual(got, want) || len(raw) != 0 || !reflect.DeepEqual(s, Default()) {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
	t.Run("positions are within the variable's value", func(t *testing.T) {
		_, probs := Decode([]byte("[\n {\"name\":\"a\",\"command\":\"\"}]"), ServicesVar, nil)
		want := []string{`VIGIL_SERVICES:2:24: service "a": field "command": empty command`}
		if got := strs(probs); !reflect.DeepEqual(got, want) {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
	t.Run("its services replace the file's and the file's settings stay", func(t *testing.T) {
		// What the caller does: the file's layer, then VIGIL_SERVICES's
		// services instead of the file's.
		s := Default()
		_, p1 := Decode([]byte(`{"max_retries": 7, "services": [{"name":"file","command":"x"}]}`), "f.json", &s)
		raw, p2 := Decode([]byte(`[{"name":"env","command":"y"}]`), ServicesVar, &s)
		svcs, p3 := Resolve(raw, s)
		if len(p1)+len(p2)+len(p3) != 0 || len(svcs) != 1 || svcs[0].Name != "env" || svcs[0].MaxRetries != 7 {
			t.Errorf("%+v %v %v %v", svcs, p1, p2, p3)
		}
	})
	t.Run("resolve problems of its services name it", func(t *testing.T) {
		raw, _ := Decode([]byte(`[{"name":"a","command":"x","depends_on":["zz"]}]`), ServicesVar, nil)
		_, probs := Resolve(raw, Default())
		want := []string{`VIGIL_SERVICES:1:42: service "a": field "depends_on[0]": unknown service "zz"`}
		if got := strs(probs); !reflect.DeepEqual(got, want) {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
}

func strs(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestProblems pins each kind of problem with its exact position. In svc()
// documents the first added field's key is at column 30.
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		// Top level.
		{"unknown top-level field is reported at its key, with a suggestion",
			`{"services": [], "max_retry": 1}`,
			[]string{`f.json:1:18: field "max_retry": unknown field (did you mean "max_retries"?)`}},
		{"unknown top-level field far from any known one has no suggestion",
			`{"zzzzzz": 1}`,
			[]string{`f.json:1:2: field "zzzzzz": unknown field`}},
		{"config is not a file setting",
			`{"config": "/x.json"}`,
			[]string{`f.json:1:2: field "config": unknown field`}},
		{"a setting of the wrong JSON type is reported at its value",
			`{"max_retries": "3"}`,
			[]string{`f.json:1:17: field "max_retries": want a whole number, got a string`}},
		{"a fractional whole number",
			`{"max_retries": 2.5}`,
			[]string{`f.json:1:17: field "max_retries": want a whole number, got 2.5`}},
		{"a whole number out of range",
			`{"max_retries": 99999999999999999999}`,
			[]string{`f.json:1:17: field "max_retries": 99999999999999999999 is out of range`}},
		{"a float out of range",
			`{"backoff_factor": 1e999}`,
			[]string{`f.json:1:20: field "backoff_factor": 1e999 is out of range`}},
		{"a setting's bad duration",
			`{"shutdown_timeout": "9 s"}`,
			[]string{`f.json:1:22: field "shutdown_timeout": bad duration "9 s" (write e.g. "500ms", "10s", "1m30s")`}},
		{"a duration given as a number",
			`{"stop_timeout": 5}`,
			[]string{`f.json:1:18: field "stop_timeout": want a duration string such as "500ms" or "1m", got a number`}},
		{"a setting's negative duration",
			`{"reexec_interval": "-1h"}`,
			[]string{`f.json:1:21: field "reexec_interval": negative duration "-1h"`}},
		{"an http address without a port",
			`{"http": "9090"}`,
			[]string{`f.json:1:10: field "http": "9090": want [host]:port, e.g. :9090 or 127.0.0.1:9090`}},
		{"an http address with a port name",
			`{"http": ":http"}`,
			[]string{`f.json:1:10: field "http": ":http": port "http": want a number 1..65535`}},
		{"an http address with port 0",
			`{"http": "[::1]:0"}`,
			[]string{`f.json:1:10: field "http": "[::1]:0": port "0": want a number 1..65535`}},
		{"a bad respawn_limit",
			`{"respawn_limit": "10"}`,
			[]string{`f.json:1:19: field "respawn_limit": respawn limit "10": want N/window, e.g. 10/1m, or 0`}},
		{"a setting rule of Validate is applied with a position",
			`{"log_format": "xml"}`,
			[]string{`f.json:1:16: field "log_format": "xml" is not one of text, json`}},
		{"backoff_factor below 1",
			`{"backoff_factor": 0.5}`,
			[]string{`f.json:1:20: field "backoff_factor": 0.5: want 1 or more`}},
		{"a boolean setting given as a string",
			`{"subreaper": "yes"}`,
			[]string{`f.json:1:15: field "subreaper": want true or false, got a string`}},
		{"services that is not an array",
			`{"services": {"name": "a"}}`,
			[]string{`f.json:1:14: field "services": want an array of services, got an object`}},
		{"a document that is neither an array nor an object",
			`"web"`,
			[]string{`f.json:1:1: want an array of services or an object with "services", got a string`}},
		{"a duplicate top-level key is reported at the second key",
			"{\"max_retries\": 1,\n \"max_retries\": 2}",
			[]string{`f.json:2:2: field "max_retries": duplicate key (first at 1:2)`}},
		{"a service that is not an object",
			`[{"name":"a","command":"x"}, "b"]`,
			[]string{`f.json:1:30: field "services[1]": want a service object, got a string`}},
		{"null is a wrong type",
			`{"services": null}`,
			[]string{`f.json:1:14: field "services": want an array of services, got null`}},

		// Names.
		{"missing name is reported at the service's brace",
			`[{"command":"x"}]`,
			[]string{`f.json:1:2: field "services[0].name": missing: every service needs a name`}},
		{"missing command",
			`[{"name":"a"}]`,
			[]string{`f.json:1:2: service "a": field "command": missing: every service needs a command`}},
		{"an empty object misses both",
			`[{}]`,
			[]string{`f.json:1:2: field "services[0].name": missing: every service needs a name`,
				`f.json:1:2: field "services[0].command": missing: every service needs a command`}},
		{"a name of the wrong type",
			`[{"name":1,"command":"x"}]`,
			[]string{`f.json:1:10: field "services[0].name": want a string, got a number`}},
		{"an empty name",
			`[{"name":"","command":"x"}]`,
			[]string{`f.json:1:10: field "services[0].name": empty name`}},
		{"a name with a bad character",
			`[{"name":"my web","command":"x"}]`,
			[]string{`f.json:1:10: service "my web": field "name": "my web": a name is a letter or digit, then letters, digits, '_', '.' or '-'`}},
		{"a name starting with a dash",
			`[{"name":"-a","command":"x"}]`,
			[]string{`f.json:1:10: service "-a": field "name": "-a": a name is a letter or digit, then letters, digits, '_', '.' or '-'`}},
		{"names may use _ . - after the first character",
			`[{"name":"0a_b.c-d","command":"x"}]`,
			nil},
		{"a duplicate name is reported at the second, naming the first",
			"[{\"name\":\"a\",\"command\":\"x\"},\n {\"name\":\"a\",\"command\":\"y\"}]",
			[]string{`f.json:2:3: service "a": field "name": duplicate name (first at 1:3)`}},
		{"the reserved name main",
			`[{"name":"main","command":"x"}]`,
			[]string{`f.json:1:3: service "main": field "name": "main" is reserved for the main process (vigil -- CMD)`}},
		{"Main is not main",
			`[{"name":"Main","command":"x"}]`,
			nil},

		// Command.
		{"a repeated command key is a problem, even when the first is valid",
			svc(`"command":""`),
			[]string{`f.json:1:30: service "web": field "command": duplicate key (first at 1:16)`}},
		{"an empty shell command",
			`[{"name":"a","command":""}]`,
			[]string{`f.json:1:24: service "a": field "command": empty command`}},
		{"a blank shell command",
			`[{"name":"a","command":"  \t "}]`,
			[]string{`f.json:1:24: service "a": field "command": empty command`}},
		{"an empty argv",
			`[{"name":"a","command":[]}]`,
			[]string{`f.json:1:24: service "a": field "command": empty command`}},
		{"an empty program name",
			`[{"name":"a","command":["", "x"]}]`,
			[]string{`f.json:1:25: service "a": field "command[0]": empty program name`}},
		{"an argv element that is not a string",
			`[{"name":"a","command":["ls", 1]}]`,
			[]string{`f.json:1:31: service "a": field "command[1]": want a string, got a number`}},
		{"a command of the wrong type",
			`[{"name":"a","command":{"x":1}}]`,
			[]string{`f.json:1:24: service "a": field "command": want an argv array or a shell string, got an object`}},
		{"a NUL byte in a command",
			`[{"name":"a","command":["ls","a\u0000b"]}]`,
			[]string{`f.json:1:30: service "a": field "command[1]": contains a NUL byte`}},

		// Other service fields; svc() puts the key at column 30.
		{"unknown field in a service, with a suggestion",
			svc(`"depend_on":["a"]`),
			[]string{`f.json:1:30: service "web": field "depend_on": unknown field (did you mean "depends_on"?)`}},
		{"a known field in the wrong case is unknown, with a suggestion",
			svc(`"Critical":true`),
			[]string{`f.json:1:30: service "web": field "Critical": unknown field (did you mean "critical"?)`}},
		{"a duplicate key in a service",
			svc(`"name":"x"`),
			[]string{`f.json:1:30: service "web": field "name": duplicate key (first at 1:3)`}},
		{"dir of the wrong type",
			svc(`"dir":5`),
			[]string{`f.json:1:36: service "web": field "dir": want a string, got a number`}},
		{"an empty dir",
			svc(`"dir":""`),
			[]string{`f.json:1:36: service "web": field "dir": empty string`}},
		{"env that is not an object",
			svc(`"env":["A=1"]`),
			[]string{`f.json:1:36: service "web": field "env": want an object of strings, got an array`}},
		{"an env value that is not a string",
			svc(`"env":{"PORT":8080}`),
			[]string{`f.json:1:44: service "web": field "env.PORT": want a string, got a number`}},
		{"an empty env name",
			svc(`"env":{"":"x"}`),
			[]string{`f.json:1:37: service "web": field "env.": empty variable name`}},
		{"an env name with =",
			svc(`"env":{"A=B":"x"}`),
			[]string{`f.json:1:37: service "web": field "env.A=B": a variable name cannot contain '=' or a NUL byte`}},
		{"a duplicate env name",
			svc(`"env":{"A":"1","A":"2"}`),
			[]string{`f.json:1:45: service "web": field "env.A": duplicate key (first at 1:37)`}},
		{"an empty user",
			svc(`"user":""`),
			[]string{`f.json:1:37: service "web": field "user": empty string`}},
		{"a user with an empty gid",
			svc(`"user":"1000:"`),
			[]string{`f.json:1:37: service "web": field "user": "1000:": want a name or uid:gid`}},
		{"a bad restart",
			svc(`"restart":"sometimes"`),
			[]string{`f.json:1:40: service "web": field "restart": "sometimes" is not one of always, on-failure, never`}},
		{"max_retries below -1",
			svc(`"max_retries":-2`),
			[]string{`f.json:1:44: service "web": field "max_retries": -2: want -1 (unlimited) or more`}},
		{"max_retries as a string",
			svc(`"max_retries":"3"`),
			[]string{`f.json:1:44: service "web": field "max_retries": want a whole number, got a string`}},
		{"max_retries with an exponent",
			svc(`"max_retries":1e2`),
			[]string{`f.json:1:44: service "web": field "max_retries": want a whole number, got 1e2`}},
		{"backoff that is not an object",
			svc(`"backoff":"1s"`),
			[]string{`f.json:1:40: service "web": field "backoff": want an object with initial, max, factor, jitter; got a string`}},
		{"a bad duration in backoff is reported with its line and column",
			svc(`"backoff":{"initial":"5x"}`),
			[]string{`f.json:1:51: service "web": field "backoff.initial": bad duration "5x" (write e.g. "500ms", "10s", "1m30s")`}},
		{"a negative backoff.max",
			svc(`"backoff":{"max":"-1s"}`),
			[]string{`f.json:1:47: service "web": field "backoff.max": negative duration "-1s"`}},
		{"backoff.factor below 1",
			svc(`"backoff":{"factor":0.5}`),
			[]string{`f.json:1:50: service "web": field "backoff.factor": 0.5: want 1 or more`}},
		{"backoff.factor as a string",
			svc(`"backoff":{"factor":"2"}`),
			[]string{`f.json:1:50: service "web": field "backoff.factor": want a number, got a string`}},
		{"backoff.jitter above 1",
			svc(`"backoff":{"jitter":1.5}`),
			[]string{`f.json:1:50: service "web": field "backoff.jitter": 1.5: want 0..1`}},
		{"backoff.jitter below 0",
			svc(`"backoff":{"jitter":-0.1}`),
			[]string{`f.json:1:50: service "web": field "backoff.jitter": -0.1: want 0..1`}},
		{"unknown field in backoff is reported with its line and column",
			svc(`"backoff":{"initail":"1s"}`),
			[]string{`f.json:1:41: service "web": field "backoff.initail": unknown field (did you mean "initial"?)`}},
		{"stable_after as a number",
			svc(`"stable_after":10`),
			[]string{`f.json:1:45: service "web": field "stable_after": want a duration string such as "500ms" or "1m", got a number`}},
		{"a bad stop_timeout",
			svc(`"stop_timeout":"5"`),
			[]string{`f.json:1:45: service "web": field "stop_timeout": bad duration "5" (write e.g. "500ms", "10s", "1m30s")`}},
		{"a negative stop_timeout",
			svc(`"stop_timeout":"-5s"`),
			[]string{`f.json:1:45: service "web": field "stop_timeout": negative duration "-5s"`}},
		{"an unknown signal name",
			svc(`"stop_signal":"SIGFOO"`),
			[]string{`f.json:1:44: service "web": field "stop_signal": bad signal: unknown signal "SIGFOO"`}},
		{"a signal number out of range",
			svc(`"stop_signal":99`),
			[]string{`f.json:1:44: service "web": field "stop_signal": bad signal: signal number 99 out of range 1..64`}},
		{"a signal of the wrong type",
			svc(`"stop_signal":true`),
			[]string{`f.json:1:44: service "web": field "stop_signal": want a signal name or number, got a boolean`}},
		{"critical as a string",
			svc(`"critical":"yes"`),
			[]string{`f.json:1:41: service "web": field "critical": want true or false, got a string`}},
		{"oneshot as a number",
			svc(`"oneshot":1`),
			[]string{`f.json:1:40: service "web": field "oneshot": want true or false, got a number`}},
		{"a bad log mode",
			svc(`"log":"file"`),
			[]string{`f.json:1:36: service "web": field "log": "file" is not one of inherit, prefix`}},

		// depends_on.
		{"depends_on that is not an array",
			svc(`"depends_on":"db"`),
			[]string{`f.json:1:43: service "web": field "depends_on": want an array of service names, got a string`}},
		{"a depends_on element that is not a string",
			svc(`"depends_on":[1]`),
			[]string{`f.json:1:44: service "web": field "depends_on[0]": want a string, got a number`}},
		{"an empty depends_on element",
			svc(`"depends_on":[""]`),
			[]string{`f.json:1:44: service "web": field "depends_on[0]": empty name`}},
		{"a dependency listed twice",
			svc(`"depends_on":["a","a"]},{"name":"a","command":"x"`),
			[]string{`f.json:1:48: service "web": field "depends_on[1]": "a" is already listed as depends_on[0]`}},
		{"an unknown dependency is reported at its element",
			svc(`"depends_on":["db","cache"]},{"name":"db","command":"x"`),
			[]string{`f.json:1:49: service "web": field "depends_on[1]": unknown service "cache"`}},
		{"a self-dependency",
			svc(`"depends_on":["web"]`),
			[]string{`f.json:1:44: service "web": field "depends_on[0]": a service cannot depend on itself`}},
		{"a dependency on main",
			svc(`"depends_on":["main"]`),
			[]string{`f.json:1:44: service "web": field "depends_on[0]": "main" is the main process, not a service: nothing can depend on it`}},

		// ready.
		{"ready that is not an object",
			svc(`"ready":"tcp"`),
			[]string{`f.json:1:38: service "web": field "ready": want an object with one of tcp, exec, file, notify_fd, http; got a string`}},
		{"an empty ready",
			svc(`"ready":{}`),
			[]string{`f.json:1:38: service "web": field "ready": want one of tcp, exec, file, notify_fd, http`}},
		{"a ready with only a timeout",
			svc(`"ready":{"timeout":"1s"}`),
			[]string{`f.json:1:38: service "web": field "ready": want one of tcp, exec, file, notify_fd, http`}},
		{"two ready checks",
			svc(`"ready":{"tcp":":80","file":"/x"}`),
			[]string{`f.json:1:51: service "web": field "ready.file": ready takes one check only, and tcp is given at 1:39`}},
		{"unknown field in ready",
			svc(`"ready":{"port":"x","file":"/x"}`),
			[]string{`f.json:1:39: service "web": field "ready.port": unknown field`}},
		{"a ready.tcp without a port",
			svc(`"ready":{"tcp":"localhost"}`),
			[]string{`f.json:1:45: service "web": field "ready.tcp": "localhost": want host:port (address localhost: missing port in address)`}},
		{"a ready.tcp with an empty port",
			svc(`"ready":{"tcp":"localhost:"}`),
			[]string{`f.json:1:45: service "web": field "ready.tcp": "localhost:": missing port`}},
		{"a ready.exec that is a string",
			svc(`"ready":{"exec":"true"}`),
			[]string{`f.json:1:46: service "web": field "ready.exec": want an argv array, got a string`}},
		{"an empty ready.exec",
			svc(`"ready":{"exec":[]}`),
			[]string{`f.json:1:46: service "web": field "ready.exec": empty command`}},
		{"a ready.exec element that is not a string",
			svc(`"ready":{"exec":["x",null]}`),
			[]string{`f.json:1:51: service "web": field "ready.exec[1]": want a string, got null`}},
		{"an empty ready.file",
			svc(`"ready":{"file":""}`),
			[]string{`f.json:1:46: service "web": field "ready.file": empty string`}},
		{"a ready.notify_fd that is stdio",
			svc(`"ready":{"notify_fd":2}`),
			[]string{`f.json:1:51: service "web": field "ready.notify_fd": 2: want 3 or more (0, 1 and 2 are stdio)`}},
		{"a ready.notify_fd as a string",
			svc(`"ready":{"notify_fd":"3"}`),
			[]string{`f.json:1:51: service "web": field "ready.notify_fd": want a whole number, got a string`}},
		{"a bad ready.timeout",
			svc(`"ready":{"file":"/x","timeout":"soon"}`),
			[]string{`f.json:1:61: service "web": field "ready.timeout": bad duration "soon" (write e.g. "500ms", "10s", "1m30s")`}},
		{"a ready.http that is https",
			svc(`"ready":{"http":"https://h/"}`),
			[]string{`f.json:1:46: service "web": field "ready.http": "https://h/": scheme "https" is not supported, only http://`}},
		{"a ready.http without scheme",
			svc(`"ready":{"http":"h:80/ready"}`),
			[]string{`f.json:1:46: service "web": field "ready.http": "h:80/ready": want http://host:port/path`}},
		{"a ready.interval under the minimum",
			svc(`"ready":{"tcp":"h:1","interval":"50ms"}`),
			[]string{`f.json:1:62: service "web": field "ready.interval": "50ms" is under the 100ms minimum`}},
		{"a ready.failure_threshold without interval",
			svc(`"ready":{"tcp":"h:1","failure_threshold":2}`),
			[]string{`f.json:1:51: service "web": field "ready.failure_threshold": needs ready.interval: without it the check stops once the service is ready`}},
		{"a ready.failure_threshold under 1",
			svc(`"ready":{"tcp":"h:1","interval":"1s","failure_threshold":0}`),
			[]string{`f.json:1:87: service "web": field "ready.failure_threshold": 0: want 1 or more`}},
		{"a notify_fd check cannot repeat",
			svc(`"ready":{"notify_fd":3,"interval":"1s"}`),
			[]string{`f.json:1:53: service "web": field "ready.interval": a notify_fd check is read once and cannot be repeated`}},
		{"two ready checks, one http",
			svc(`"ready":{"tcp":"h:1","http":"http://h/"}`),
			[]string{`f.json:1:51: service "web": field "ready.http": ready takes one check only, and tcp is given at 1:39`}},

		// health.
		{"health that is not an object",
			svc(`"health":"x"`),
			[]string{`f.json:1:39: service "web": field "health": want an object with one of exec, tcp, http; got a string`}},
		{"an empty health",
			svc(`"health":{}`),
			[]string{`f.json:1:39: service "web": field "health": want one of exec, tcp, http`}},
		{"two health checks",
			svc(`"health":{"tcp":"h:1","http":"http://h/"}`),
			[]string{`f.json:1:52: service "web": field "health.http": health takes one check only, and tcp is given at 1:40`}},
		{"a file health check is no kind",
			svc(`"health":{"file":"/x"}`),
			[]string{`f.json:1:39: service "web": field "health": want one of exec, tcp, http`, `f.json:1:40: service "web": field "health.file": unknown field`}},
		{"a health.http of another scheme",
			svc(`"health":{"http":"ftp://h/"}`),
			[]string{`f.json:1:47: service "web": field "health.http": "ftp://h/": scheme "ftp" is not supported, only http://`}},
		{"a health.interval under the minimum",
			svc(`"health":{"tcp":"h:1","interval":"10ms"}`),
			[]string{`f.json:1:63: service "web": field "health.interval": "10ms" is under the 100ms minimum`}},
		{"a health.timeout as long as the interval",
			svc(`"health":{"tcp":"h:1","interval":"1s","timeout":"1s"}`),
			[]string{`f.json:1:78: service "web": field "health.timeout": 1s is not shorter than the interval (1s)`}},
		{"a health.interval not longer than the default timeout",
			svc(`"health":{"tcp":"h:1","interval":"2s"}`),
			[]string{`f.json:1:63: service "web": field "health.interval": 2s is not longer than the timeout (2s by default): set a shorter timeout`}},
		{"the timeout is checked against the interval beside other problems",
			svc(`"health":{"tcp":"h","interval":"1s","timeout":"1s"}`),
			[]string{`f.json:1:46: service "web": field "health.tcp": "h": want host:port (address h: missing port in address)`, `f.json:1:76: service "web": field "health.timeout": 1s is not shorter than the interval (1s)`}},
		{"a health.timeout of 0",
			svc(`"health":{"tcp":"h:1","timeout":"0s"}`),
			[]string{`f.json:1:62: service "web": field "health.timeout": a check needs a timeout above 0`}},
		{"a health.failure_threshold under 1",
			svc(`"health":{"tcp":"h:1","failure_threshold":0}`),
			[]string{`f.json:1:72: service "web": field "health.failure_threshold": 0: want 1 or more`}},
		{"a negative health.start_period",
			svc(`"health":{"tcp":"h:1","start_period":"-1s"}`),
			[]string{`f.json:1:67: service "web": field "health.start_period": negative duration "-1s"`}},
		{"a health.exec that is a string",
			svc(`"health":{"exec":"true"}`),
			[]string{`f.json:1:47: service "web": field "health.exec": want an argv array, got a string`}},
		{"a health.tcp without a port",
			svc(`"health":{"tcp":"h"}`),
			[]string{`f.json:1:46: service "web": field "health.tcp": "h": want host:port (address h: missing port in address)`}},
		{"an unknown field in health, with a suggestion",
			svc(`"health":{"tcp":"h:1","intervall":"5s"}`),
			[]string{`f.json:1:52: service "web": field "health.intervall": unknown field (did you mean "interval"?)`}},

		// Unnamed services are named by their index.
		{"problems of a service without a usable name use its index",
			`[{"name":"a","command":"x"},{"name":5,"command":"","depends_on":["zz"]}]`,
			[]string{`f.json:1:37: field "services[1].name": want a string, got a number`,
				`f.json:1:49: field "services[1].command": empty command`,
				`f.json:1:66: field "services[1].depends_on[0]": unknown service "zz"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(tc.doc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("doc %s\ngot  %q\nwant %q", tc.doc, got, tc.want)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"an empty document", "", `f.json:1:1: invalid JSON: empty document`},
		{"a blank document", "  \n ", `f.json:2:2: invalid JSON: empty document`},
		{"a missing comma is reported where the comma should be",
			"[\n  {\"name\": \"a\"\n   \"command\": \"x\"}]",
			`f.json:3:4: invalid JSON: unexpected character '"' after an object value (want ',' or '}')`},
		{"a trailing comma in an object", `{"services": [],}`,
			`f.json:1:17: invalid JSON: unexpected character '}' looking for an object key (a string)`},
		{"a trailing comma in an array", `[{"name":"a","command":"x"},]`,
			`f.json:1:29: invalid JSON: unexpected character ']' looking for a value`},
		{"an unterminated string", `[{"name": "a`,
			`f.json:1:13: invalid JSON: unexpected end of input in a string (missing closing quote)`},
		{"a truncated document", "[{\"name\": \"a\",\n",
			`f.json:2:1: invalid JSON: unexpected end of input looking for an object key (a string)`},
		{"a missing colon", `{"services" []}`,
			`f.json:1:13: invalid JSON: unexpected character '[' after an object key (want ':')`},
		{"data after the document", `[] []`,
			`f.json:1:4: invalid JSON: unexpected character '[' after the end of the document`},
		{"a comment", "// services\n[]",
			`f.json:1:1: invalid JSON: unexpected character '/' looking for a value`},
		{"single quotes", `['a']`,
			`f.json:1:2: invalid JSON: unexpected character '\'' looking for a value`},
		{"a bad escape", `["a\x"]`,
			`f.json:1:4: invalid JSON: invalid escape "\\x" in a string`},
		{"a short unicode escape", `["\u12"]`,
			`f.json:1:3: invalid JSON: invalid \u escape (want 4 hex digits)`},
		{"a raw newline in a string", "[\"a\nb\"]",
			`f.json:1:4: invalid JSON: unexpected control character U+000A in a string (escape it)`},
		{"invalid UTF-8 in a string", "[\"a\xffb\"]",
			`f.json:1:4: invalid JSON: invalid UTF-8 in a string`},
		{"a stray byte outside strings", "[\xff]",
			`f.json:1:2: invalid JSON: unexpected byte 0xff looking for a value`},
		{"a leading zero", `{"max_retries": 01}`,
			`f.json:1:18: invalid JSON: unexpected character '1' after an object value (want ',' or '}')`},
		{"a lone minus", `[-]`,
			`f.json:1:3: invalid JSON: unexpected character ']' in a number (want a digit)`},
		{"a dangling decimal point", `[1.]`,
			`f.json:1:4: invalid JSON: unexpected character ']' after a decimal point (want a digit)`},
		{"an empty exponent", `[1e+]`,
			`f.json:1:5: invalid JSON: unexpected character ']' in a number's exponent (want a digit)`},
		{"a misspelt literal", `[tru]`,
			`f.json:1:5: invalid JSON: unexpected character ']' in literal true`},
		{"NaN is not JSON", `[NaN]`,
			`f.json:1:2: invalid JSON: unexpected character 'N' looking for a value`},
		{"nesting too deep", strings.Repeat("[", 300),
			`f.json:1:201: invalid JSON: nested more than 200 levels deep`},
		{"columns count characters, not bytes", "{\"é€😀\": 1 2}",
			`f.json:1:11: invalid JSON: unexpected character '2' after an object value (want ',' or '}')`},
		{"a tab is one column", "{\t\t1}",
			`f.json:1:4: invalid JSON: unexpected character '1' looking for an object key (a string)`},
		{"CRLF line ends", "[\r\n1,\r\n}",
			`f.json:3:1: invalid JSON: unexpected character '}' looking for a value`},
		{"a byte order mark takes no column", "\xEF\xBB\xBF]",
			`f.json:1:1: invalid JSON: unexpected character ']' looking for a value`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, probs := Decode([]byte(tc.doc), "f.json", nil)
			if got := strs(probs); len(got) != 1 || got[0] != tc.want || raw != nil {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"a two-service cycle is reported once, at the first service's edge",
			"[{\"name\":\"a\",\"command\":\"x\",\"depends_on\":[\"b\"]},\n {\"name\":\"b\",\"command\":\"x\",\"depends_on\":[\"a\"]}]",
			[]string{`f.json:1:42: service "a": field "depends_on[0]": dependency cycle: a -> b -> a`}},
		{"a three-service cycle names the whole path",
			`[{"name":"a","command":"x","depends_on":["z","b"]},` +
				`{"name":"b","command":"x","depends_on":["c"]},` +
				`{"name":"c","command":"x","depends_on":["a"]},{"name":"z","command":"x"}]`,
			[]string{`f.json:1:46: service "a": field "depends_on[1]": dependency cycle: a -> b -> c -> a`}},
		{"two separate cycles are both reported",
			`[{"name":"a","command":"x","depends_on":["b"]},{"name":"b","command":"x","depends_on":["a"]},` +
				`{"name":"c","command":"x","depends_on":["d"]},{"name":"d","command":"x","depends_on":["c"]}]`,
			[]string{`f.json:1:42: service "a": field "depends_on[0]": dependency cycle: a -> b -> a`,
				`f.json:1:134: service "c": field "depends_on[0]": dependency cycle: c -> d -> c`}},
		{"a service depending on a cycle is not itself reported",
			`[{"name":"t","command":"x","depends_on":["a"]},` +
				`{"name":"a","command":"x","depends_on":["b"]},{"name":"b","command":"x","depends_on":["a"]}]`,
			[]string{`f.json:1:88: service "a": field "depends_on[0]": dependency cycle: a -> b -> a`}},
		{"the shortest cycle through the first service is named",
			`[{"name":"a","command":"x","depends_on":["b"]},` +
				`{"name":"b","command":"x","depends_on":["c","a"]},{"name":"c","command":"x","depends_on":["a"]}]`,
			[]string{`f.json:1:42: service "a": field "depends_on[0]": dependency cycle: a -> b -> a`}},
		{"a diamond is no cycle",
			`[{"name":"a","command":"x","depends_on":["b","c"]},{"name":"b","command":"x","depends_on":["d"]},` +
				`{"name":"c","command":"x","depends_on":["d"]},{"name":"d","command":"x"}]`,
			nil},
		{"a self-dependency is reported as such, not as a cycle too",
			`[{"name":"a","command":"x","depends_on":["a"]}]`,
			[]string{`f.json:1:42: service "a": field "depends_on[0]": a service cannot depend on itself`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(tc.doc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestManyProblemsAllReported(t *testing.T) {
	doc := `{
  "max_retries": "x",
  "bogus": true,
  "services": [
    {"name": "web", "command": [], "restart": "often",
     "backoff": {"initial": "5x", "jitter": 2, "extra": 1},
     "depends_on": ["db", "nope"], "ready": {"tcp": "x", "exec": ["y"]}},
    {"name": "db", "command": "postgres", "depends_on": ["web"], "stop_signal": "FOO"},
    {"name": "db", "command": "again"},
    {"name": "main", "command": "x", "log": "loud"}
  ],
  "stop_timeout": "-3s"
}`
	want := []string{
		`f.json:2:18: field "max_retries": want a whole number, got a string`,
		`f.json:3:3: field "bogus": unknown field`,
		`f.json:5:32: service "web": field "command": empty command`,
		`f.json:5:47: service "web": field "restart": "often" is not one of always, on-failure, never`,
		`f.json:6:29: service "web": field "backoff.initial": bad duration "5x" (write e.g. "500ms", "10s", "1m30s")`,
		`f.json:6:45: service "web": field "backoff.jitter": 2: want 0..1`,
		`f.json:6:48: service "web": field "backoff.extra": unknown field`,
		`f.json:7:53: service "web": field "ready.tcp": "x": want host:port (address x: missing port in address)`,
		`f.json:7:58: service "web": field "ready.exec": ready takes one check only, and tcp is given at 7:46`,
		`f.json:8:81: service "db": field "stop_signal": bad signal: unknown signal "FOO"`,
		`f.json:10:45: service "main": field "log": "loud" is not one of inherit, prefix`,
		`f.json:12:19: field "stop_timeout": negative duration "-3s"`,
		// Resolve's, after Decode's, in document order.
		`f.json:7:21: service "web": field "depends_on[0]": dependency cycle: web -> db -> web`,
		`f.json:7:27: service "web": field "depends_on[1]": unknown service "nope"`,
		`f.json:9:6: service "db": field "name": duplicate name (first at 8:6)`,
		`f.json:10:6: service "main": field "name": "main" is reserved for the main process (vigil -- CMD)`,
	}
	if got := check(doc); !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"every part", Problem{"web", "backoff.initial", 3, 7, "f.json", `bad duration "5x"`},
			`f.json:3:7: service "web": field "backoff.initial": bad duration "5x"`},
		{"no service", Problem{"", "max_retries", 1, 2, "f.json", "m"}, `f.json:1:2: field "max_retries": m`},
		{"no field", Problem{"", "", 1, 1, "f.json", "m"}, `f.json:1:1: m`},
		{"no position", Problem{"web", "", 0, 0, "VIGIL_SERVICES", "m"}, `VIGIL_SERVICES: service "web": m`},
		{"no source", Problem{"", "f", 2, 3, "", "m"}, `2:3: field "f": m`},
		{"nothing but a message", Problem{Msg: "m"}, `m`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("got %q want %q", got, tc.want)
			}
			if tc.p.Error() != tc.p.String() {
				t.Error("Error() differs from String()")
			}
		})
	}
}

func TestRawServicePositions(t *testing.T) {
	doc := "[{\"name\": \"a\",\n  \"command\": [\"x\", \"y\"],\n  \"backoff\": {\"max\": \"1s\"},\n  \"depends_on\": [\"b\"]},\n {\"name\": \"b\", \"command\": \"x\"}]"
	raw, probs := Decode([]byte(doc), "f.json", nil)
	if len(probs) != 0 || len(raw) != 2 {
		t.Fatal(probs)
	}
	want := map[string]Pos{
		"name": {1, 3}, "command": {2, 3}, "command[0]": {2, 15}, "command[1]": {2, 20},
		"backoff": {3, 3}, "backoff.max": {3, 15}, "depends_on": {4, 3}, "depends_on[0]": {4, 18},
	}
	if !reflect.DeepEqual(raw[0].Fields, want) {
		t.Errorf("got %v\nwant %v", raw[0].Fields, want)
	}
	if raw[0].At != (Pos{1, 2}) || raw[1].At != (Pos{5, 2}) || raw[1].Index != 1 {
		t.Errorf("At %v %v", raw[0].At, raw[1].At)
	}
	if raw[0].MaxRetries != nil || raw[0].Backoff.Initial != nil || *raw[0].Backoff.Max != time.Second {
		t.Errorf("given/not given: %+v", raw[0])
	}
}

func TestResolveReturnsEveryService(t *testing.T) {
	raw, _ := Decode([]byte(`[{"name":"a","command":"x"},{"name":"a","command":"y"},{"name":"main","command":"z"}]`), "f.json", nil)
	svcs, probs := Resolve(raw, Default())
	if len(svcs) != 3 || len(probs) != 2 {
		t.Errorf("%d services, problems %v", len(svcs), probs)
	}
}
