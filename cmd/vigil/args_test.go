package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/signals"
	"golang.org/x/sys/unix"
)

func TestParseArgs(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		args []string
		want invocation
		err  string
	}{
		{"command after --", []string{"--", "sh", "-c", "x"}, invocation{command: []string{"sh", "-c", "x"}}, ""},
		{"first non-flag is the command, like tini", []string{"sh", "-c", "x"}, invocation{command: []string{"sh", "-c", "x"}}, ""},
		{"flags stop at the command", []string{"-v", "sleep", "-v"}, invocation{command: []string{"sleep", "-v"}, flags: flagValues{verbose: 1}}, ""},
		{"a verb is only the first argument", []string{"--", "status"}, invocation{command: []string{"status"}}, ""},
		{"verb", []string{"status", "--json", "web"}, invocation{verb: "status", verbArgs: []string{"--json", "web"}}, ""},
		{"-vvv counts", []string{"-vvv", "--", "x"}, invocation{command: []string{"x"}, flags: flagValues{verbose: 3}}, ""},
		{"-e repeats, joined or apart", []string{"-e143", "-e", "3", "--", "x"}, invocation{command: []string{"x"}, flags: flagValues{exitZero: []int{143, 3}}}, ""},
		{"clustered tini flags", []string{"-sgw", "--", "x"}, invocation{command: []string{"x"}, flags: flagValues{subreaper: true, group: true, warnOrphans: true}}, ""},
		{"-p takes a signal", []string{"-p", "SIGKILL", "--", "x"}, invocation{command: []string{"x"}, flags: flagValues{pdeath: unix.SIGKILL}}, ""},
		{"long flags with = and apart", []string{"--config=/c.json", "--log-format", "json", "--socket", "/s"}, invocation{flags: flagValues{config: str("/c.json"), logFormat: str("json"), socket: str("/s")}}, ""},
		{"--http ADDR and --http=ADDR", []string{"--http", ":9090", "--http=127.0.0.1:9091"}, invocation{flags: flagValues{http: str("127.0.0.1:9091")}}, ""},
		{"-c", []string{"-c", "/c.json"}, invocation{flags: flagValues{config: str("/c.json")}}, ""},
		{"help", []string{"--help"}, invocation{help: true}, ""},
		{"unknown short flag", []string{"-x"}, invocation{}, "unknown flag -x"},
		{"unknown long flag", []string{"--nope"}, invocation{}, "unknown flag --nope"},
		{"-e needs a value", []string{"-e"}, invocation{}, "needs a value"},
		{"-e out of range", []string{"-e", "256"}, invocation{}, "0..255"},
		{"bad -p", []string{"-p", "NOPE"}, invocation{}, "unknown signal"},
		{"--help takes no value", []string{"--help=x"}, invocation{}, "takes no value"},
		{"--config needs a value", []string{"--config"}, invocation{}, "needs a value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if _, ok := err.(usageError); !ok {
					t.Errorf("error %T is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRewriteFlag(t *testing.T) {
	inv, err := parseArgs([]string{"-r", "TERM:QUIT", "-r15:0", "-r", "USR1:USR2", "-r", "TTIN:TERM", "--", "x"})
	if err != nil {
		t.Fatal(err)
	}
	// The later -r for TERM wins.
	want := signals.Rewrite{unix.SIGTERM: 0, unix.SIGUSR1: unix.SIGUSR2, unix.SIGTTIN: unix.SIGTERM}
	if !reflect.DeepEqual(inv.flags.rewrite, want) {
		t.Errorf("rewrite %v, want %v", inv.flags.rewrite, want)
	}
	for _, spec := range []string{"CHLD:TERM", "URG:0", "PIPE:USR1", "PROF:TERM", "KILL:TERM"} {
		_, err := parseArgs([]string{"-r", spec, "--", "x"})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "-r: signal rewrite") {
			t.Errorf("-r %s: %v, want a usage error", spec, err)
		}
	}
}

func TestSettingsLayers(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name  string
		env   []string
		flags flagValues
		check func(config.Settings) bool
		err   string
	}{
		{"defaults", nil, flagValues{}, func(s config.Settings) bool {
			return s.ShutdownTimeout == 9*time.Second && s.MaxRetries == 3 && s.LogLevel == "warn" &&
				s.RespawnLimit == config.RespawnLimit{N: 10, Window: time.Minute} && s.BackoffFactor == 2
		}, ""},
		{"VIGIL_ variables override defaults", []string{"VIGIL_SHUTDOWN_TIMEOUT=2s", "VIGIL_MAX_RETRIES=-1", "VIGIL_RESPAWN_LIMIT=0"}, flagValues{}, func(s config.Settings) bool {
			return s.ShutdownTimeout == 2*time.Second && s.MaxRetries == -1 && s.RespawnLimit.N == 0
		}, ""},
		{"empty variable counts as unset", []string{"VIGIL_LOG_LEVEL=", "VIGIL_SHUTDOWN_TIMEOUT="}, flagValues{}, func(s config.Settings) bool {
			return s.LogLevel == "warn" && s.ShutdownTimeout == 9*time.Second
		}, ""},
		{"a supervisor logs at info by default", []string{`VIGIL_SERVICES=[{"name":"a","command":["true"]}]`}, flagValues{}, func(s config.Settings) bool {
			return s.LogLevel == "info"
		}, ""},
		{"a wrapper logs at warn unless VIGIL_LOG_LEVEL asks for more", []string{"VIGIL_LOG_LEVEL=info"}, flagValues{}, func(s config.Settings) bool {
			return s.LogLevel == "info"
		}, ""},
		{"a wrapper logs at warn unless -v asks for more", nil, flagValues{verbose: 1}, func(s config.Settings) bool {
			return s.LogLevel == "debug"
		}, ""},
		{"TINI_ variables, set at all means on", []string{"TINI_SUBREAPER=0", "TINI_KILL_PROCESS_GROUP=x"}, flagValues{}, func(s config.Settings) bool {
			return s.Subreaper && s.KillProcessGroup
		}, ""},
		{"VIGIL_ beats TINI_", []string{"TINI_VERBOSITY=3", "VIGIL_LOG_LEVEL=warn"}, flagValues{}, func(s config.Settings) bool {
			return s.LogLevel == "warn"
		}, ""},
		{"flags beat VIGIL_", []string{"VIGIL_LOG_FORMAT=text", "VIGIL_LOG_LEVEL=error"}, flagValues{logFormat: str("json"), verbose: 1}, func(s config.Settings) bool {
			return s.LogFormat == "json" && s.LogLevel == "debug"
		}, ""},
		{"--http beats VIGIL_HTTP beats the default (off)", []string{"VIGIL_HTTP=:9090"}, flagValues{http: str("127.0.0.1:9091")}, func(s config.Settings) bool {
			return s.HTTP == "127.0.0.1:9091"
		}, ""},
		{"VIGIL_HTTP", []string{"VIGIL_HTTP=:9090"}, flagValues{}, func(s config.Settings) bool {
			return s.HTTP == ":9090"
		}, ""},
		{"a bad --http", nil, flagValues{http: str("localhost")}, nil, "VIGIL_HTTP"},
		{"every problem at once", []string{"VIGIL_SHUTDOWN_TIMEOUT=x", "VIGIL_LOG_LEVEL=loud", "VIGIL_BACKOFF_JITTER=2", "VIGIL_RESPAWN_LIMIT=10"}, flagValues{}, nil,
			"VIGIL_SHUTDOWN_TIMEOUT|VIGIL_LOG_LEVEL|VIGIL_BACKOFF_JITTER|VIGIL_RESPAWN_LIMIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, errs := load(tc.env, tc.flags)
			s, err := st.settings, joinErrors(errs)
			if tc.err != "" {
				if err == nil {
					t.Fatal("no error")
				}
				for _, want := range strings.Split(tc.err, "|") {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not name %s:\n%v", want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Errorf("settings %+v", s)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var b strings.Builder
	printUsage(&b)
	typ := reflect.TypeFor[config.Settings]()
	for i := 0; i < typ.NumField(); i++ {
		tag := typ.Field(i).Tag.Get("env")
		if tag == "" {
			continue // a file-only setting
		}
		v := "VIGIL_" + tag
		if !strings.Contains(b.String(), v) {
			t.Errorf("--help does not list %s", v)
		}
	}
}
