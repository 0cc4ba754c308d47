package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/state"
	"github.com/vigil-init/vigil/supervise"
)

// runSupervisor is supervisor mode: every service of the config, plus the
// main process when `-- CMD` is given. resumeGC is called once the
// services of a handoff are adopted.
func runSupervisor(log *slog.Logger, rp *reaper.Reaper, sigs <-chan os.Signal, inv invocation, st setup, stderr *proc.Output, handoff *reexec.Handoff, resumeGC func(), onOrphan *func(), done chan struct{}) int {
	s := st.settings
	var term = -1
	if len(inv.command) > 0 {
		term = proc.ForegroundTerminal()
	}
	store := openState(log, s)
	defer store.Close()
	rx := &reexecer{reaper: rp}
	sup, err := supervise.New(supervise.Options{
		Log:             log,
		Reaper:          rp,
		Services:        st.services,
		Main:            inv.command,
		Terminal:        term,
		ExitZero:        inv.flags.exitZero,
		Env:             proc.CleanEnv(os.Environ()),
		Signals:         sigs,
		Rewrite:         inv.flags.rewrite,
		RespawnLimit:    s.RespawnLimit,
		ShutdownTimeout: s.ShutdownTimeout,
		Stdout:          proc.NewOutput(os.Stdout),
		Stderr:          stderr,
		Handoff:         handoff,
		Reexec:          rx,
		ReexecInterval:  s.ReexecInterval,
		State:           store,
	})
	resumeGC()
	if err != nil {
		log.Error("cannot supervise", "err", err)
		return 70
	}
	*onOrphan = sup.OrphanReaped
	go rp.Run(done)
	if handoff == nil {
		log.Info("supervising", "services", len(st.services), "config", st.configPath)
	}
	handler := supervisorControl{sup: sup, reload: func() ([]config.Service, []error) {
		next, errs := load(os.Environ(), inv.flags)
		return next.services, errs
	}}
	srv, stop := serveControl(log, s.Socket, handler)
	defer stop()
	rx.control = srv
	rx.serve = func() { go srv.Serve(handler, log) }
	return sup.Run()
}

// runCheck is `vigil check [-c FILE]`: the run verb's validation without
// starting anything, then the effective settings and where each came from.
func runCheck(args []string) int {
	return check(args, os.Environ(), os.Stdout, os.Stderr)
}

func check(args, environ []string, stdout, stderr io.Writer) int {
	inv, err := parseArgs(args)
	switch {
	case err != nil:
	case inv.verb != "":
		// `vigil check status` is a mistake, not a check that passed.
		err = usagef("check takes no verb, got %q", inv.verb)
	case len(inv.command) > 0:
		err = usagef("check takes no command, got %q", inv.command[0])
	case inv.version:
		err = usagef("check takes no --version")
	case inv.help:
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil check: %v\n", err)
		return exitUsage
	}
	st, errs := load(environ, inv.flags)
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "vigil check: %d problem(s):\n%s", len(errs), indent(errs))
		return exitConfig
	}
	printCheck(stdout, st)
	return 0
}

// printCheck shows what a run would do. It runs in image builds (`RUN vigil
// check`) whose output ends up in CI logs: no value of a service's env and
// not VIGIL_SERVICES itself (which holds them) is ever printed, only names.
func printCheck(w io.Writer, st setup) {
	cfg := st.configPath
	if cfg == "" {
		cfg = "(none)"
	}
	fmt.Fprintf(w, "config: %s\n", cfg)
	fmt.Fprintf(w, "services: %d\n", len(st.services))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, svc := range st.services {
		kind := svc.Restart
		if svc.Oneshot {
			kind = "oneshot, " + kind
		}
		deps := ""
		if len(svc.DependsOn) > 0 {
			deps = "after " + strings.Join(svc.DependsOn, ",")
		}
		env := ""
		if len(svc.Env) > 0 {
			names := make([]string, len(svc.Env))
			for i, kv := range svc.Env {
				names[i], _, _ = strings.Cut(kv, "=")
			}
			env = "env " + strings.Join(names, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%q\n", svc.Name, kind, deps, env, svc.Argv)
	}
	tw.Flush()
	fmt.Fprintln(w, "settings:")
	v := reflect.ValueOf(st.settings)
	t := v.Type()
	var names []string
	values := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		name := "VIGIL_" + t.Field(i).Tag.Get("env")
		names = append(names, name)
		values[name] = fmt.Sprint(v.Field(i).Interface())
	}
	if values[config.ServicesVar] != "" {
		values[config.ServicesVar] = "(set; its services are listed above)"
	}
	sort.Strings(names)
	for _, n := range names {
		val := values[n]
		if val == "" {
			val = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", n, val, st.source[n])
	}
	tw.Flush()
}

// handedOver is the service list a handoff carries, less main.
func handedOver(h *reexec.Handoff) []config.Service {
	var out []config.Service
	for _, hs := range h.Services {
		if !hs.Main {
			out = append(out, hs.Config)
		}
	}
	return out
}

// defaultStateDir is used when it exists and no state dir is set.
const defaultStateDir = "/var/lib/vigil"

// stateDir is where the state lives, "" for none.
func stateDir(s config.Settings) string {
	switch s.StateDir {
	case "none":
		return ""
	case "":
		if fi, err := os.Stat(defaultStateDir); err == nil && fi.IsDir() {
			return defaultStateDir
		}
		return ""
	}
	return s.StateDir
}

// openState opens the state directory. Nothing about the volume can stop
// the services: problems are logged and vigil runs with state in memory.
func openState(log *slog.Logger, s config.Settings) *state.Store {
	dir := stateDir(s)
	if dir == "" {
		return nil
	}
	if s.ResetState {
		if err := state.Reset(dir, nil); err != nil {
			log.Warn("cannot reset the state", "dir", dir, "err", err)
		} else {
			log.Info("state reset: retry counts and given-up marks forgotten", "dir", dir)
		}
	}
	store, err := state.Open(dir, log)
	if err != nil {
		log.Warn("running without persistence", "dir", dir, "err", err)
		return nil
	}
	return store
}

// offlineReset is `vigil reset` with no vigil running: it edits the state
// file under its lock (SPEC section 6).
func offlineReset(names []string) int {
	s := config.Default()
	s.Env(os.Environ())
	dir := stateDir(s)
	if dir == "" {
		fmt.Fprintln(os.Stderr, "vigil reset: no vigil running and no state directory: nothing to reset")
		return 0
	}
	if err := state.Reset(dir, names); err != nil {
		fmt.Fprintf(os.Stderr, "vigil reset: %v\n", err)
		return 1
	}
	return 0
}
