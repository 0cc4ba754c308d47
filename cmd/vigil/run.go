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
	"time"

	"github.com/vigil-init/vigil/cmd/vigil/internal/early"
	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/reaper"
	"github.com/vigil-init/vigil/reexec"
	"github.com/vigil-init/vigil/state"
	"github.com/vigil-init/vigil/supervise"
	"golang.org/x/sys/unix"
)

// runtime runs the main process and the services of the config, if any:
// wrapper mode is the same supervisor with no services and the wrapper
// column of the signal table. resumeGC is called once the services of a
// handoff are adopted.
//
// refused says a re-exec's handoff could not be taken: the processes the old
// image ran are stopped before anything starts again.
func runtime(log *slog.Logger, rp *reaper.Reaper, exits *reaper.Queue, sigs <-chan os.Signal, inv invocation, st setup, stderr *proc.Output, handoff *reexec.Handoff, refused bool, inherited []int, resumeGC func()) int {
	s := st.settings
	wrapper := !st.supervisor
	done := make(chan struct{})
	defer close(done)
	reaping := false
	if refused {
		// The old image's services still run, and this one knows nothing
		// of them: adopt nothing, leak nothing, start nothing twice.
		if err := reexec.CloseInherited(); err != nil {
			log.Warn("cannot close the old image's descriptors", "err", err)
		}
		go rp.Run(done)
		reaping = true
		stopLeftovers(log, rp, s.ShutdownTimeout)
	}
	var term = -1
	if len(inv.command) > 0 {
		term = proc.ForegroundTerminal()
	}
	var store supervise.Saver
	if !wrapper {
		if st := openState(log, s); st != nil {
			defer st.Close()
			store = st
		}
	}
	rx := &reexecer{reaper: rp, pdeath: inv.flags.pdeath}
	if rx.pdeath == 0 {
		rx.pdeath = early.ParentDeathSignal
	}
	start := processStart()
	stopHTTP := func() {}
	defer func() { stopHTTP() }()
	var srv *control.Server
	stopControl := func() {}
	// controlUp is closed once the control socket is open or has failed;
	// whatever reads srv, stopControl or rx.control after Started waits
	// for it.
	controlUp := make(chan struct{})
	started := false
	defer func() {
		if started {
			<-controlUp
		}
		stopControl()
	}()
	var sup *supervise.Supervisor
	sup, err := supervise.New(supervise.Options{
		Log:             log,
		Reaper:          rp,
		Exits:           exits,
		Services:        st.services,
		Main:            inv.command,
		Terminal:        term,
		MainFiles:       inherited,
		ExitZero:        inv.flags.exitZero,
		Wrapper:         wrapper,
		Env:             proc.CleanEnv(os.Environ()),
		Signals:         sigs,
		Rewrite:         inv.flags.rewrite,
		RespawnLimit:    s.RespawnLimit,
		ShutdownTimeout: s.ShutdownTimeout,
		WarnOrphans:     inv.flags.warnOrphans,
		Stdout:          proc.NewOutput(os.Stdout),
		Stderr:          stderr,
		Handoff:         handoff,
		Reexec:          rx,
		ReexecInterval:  s.ReexecInterval,
		State:           store,
		LogMemory:       roomForRings,
		Started: func() {
			// On the loop, as the re-exec that reads it: one that
			// comes before (a recovered panic) has no socket to wait
			// for.
			started, rx.controlUp = true, controlUp
			handler := supervisorControl{sup: sup, reload: func() ([]config.Service, []error) {
				next, errs := load(os.Environ(), inv.flags)
				return next.services, errs
			}}
			open := func() {
				defer close(controlUp)
				srv, stopControl = serveControl(log, s.Socket, handler)
				rx.control = srv
				rx.serve = func() { go srv.Serve(handler, log) }
				if s.HTTP != "" {
					stopHTTP = serveHTTP(log, s.HTTP, httpSource{sup: sup, start: start})
				}
			}
			if !wrapper {
				open()
				return
			}
			// The main process runs already, and the loop handles
			// nothing (not its exit) until Started returns: a short
			// main (a job, a probe's command) would wait for the
			// sockets' directory checks, binds and listens. They open
			// beside it instead.
			go open()
		},
	})
	resumeGC()
	if err != nil {
		log.Error("cannot supervise", "err", err)
		return 70
	}
	// Only now, with a handoff's children adopted: the first pass must not
	// reap one of them as an orphan.
	if !reaping {
		go rp.Run(done)
	}
	if handoff == nil && !wrapper {
		log.Info("supervising", "services", len(st.services), "config", st.configPath)
	}
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
	st.whereFrom()
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
		when := ""
		if svc.Schedule != "" {
			tz := svc.Timezone
			if tz == "" {
				tz = "local"
			}
			when = fmt.Sprintf("at %q %s, %s", svc.Schedule, tz, svc.Concurrency)
			if svc.StartingDeadline > 0 {
				when += ", deadline " + svc.StartingDeadline.String()
			}
		}
		name := svc.Name
		if svc.Template != "" {
			name += fmt.Sprintf(" (%s %d/%d)", svc.Template, svc.Instance, svc.Instances)
		}
		deps := ""
		if len(svc.DependsOn) > 0 {
			deps = "after " + strings.Join(svc.DependsOn, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%q\n", name, kind, when, deps, svc.Argv)
	}
	tw.Flush()
	printEnvs(w, st.envs)
	fmt.Fprintln(w, "settings:")
	v := reflect.ValueOf(st.settings)
	t := v.Type()
	var names []string
	values := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("env")
		if tag == "" {
			continue // a file-only setting (env_file), shown per service
		}
		name := "VIGIL_" + tag
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

// printEnvs lists, per service, the variables that the config adds or
// changes and where each came from: names and sources, never a value
// (values may be secrets, and check runs in build logs).
func printEnvs(w io.Writer, envs []config.ServiceEnv) {
	for _, se := range envs {
		inherited := 0
		var own []config.EnvVar
		for _, v := range se.Vars {
			if v.Source == config.SourceEnvironment {
				inherited++
			} else {
				own = append(own, v)
			}
		}
		if len(own) == 0 {
			continue
		}
		fmt.Fprintf(w, "environment of %s (%d more from vigil's environment):\n", se.Name, inherited)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, v := range own {
			fmt.Fprintf(tw, "  %s\t%s\n", v.Name, v.Source)
		}
		tw.Flush()
	}
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
// file under its lock (docs/state-and-reexec.md, vigil reset).
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

// stopLeftovers ends every process vigil has, as the wrapper ends what
// outlived main: SIGTERM, SIGKILL after timeout, and waits until they are
// gone (at most killGrace after the SIGKILL).
func stopLeftovers(log *slog.Logger, rp *reaper.Reaper, timeout time.Duration) {
	gone := rp.NoChildren()
	if !proc.SignalAll(unix.SIGTERM) {
		return
	}
	proc.SignalAll(unix.SIGCONT)
	log.Warn("stopping the processes of the image before this one", "timeout", timeout)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-gone:
		return
	case <-t.C:
	}
	proc.SignalAll(unix.SIGKILL)
	select {
	case <-gone:
	case <-time.After(killGrace):
		log.Error("processes survived SIGKILL; starting anyway", "waited", killGrace)
	}
}

// killGrace bounds the wait after SIGKILL: a process in uninterruptible
// sleep must not hold the start for ever.
const killGrace = 5 * time.Second
