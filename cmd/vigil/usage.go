package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vigil-init/vigil/config"
)

const usageText = `vigil: a container init that reaps, forwards signals and supervises services.

Usage:
  vigil [flags] -- CMD [ARG...]      run CMD as the main process (a drop-in for tini)
  vigil [flags] [-c FILE]            supervise the services of a config file
  vigil check   [-c FILE]            validate config and environment; exit 0 or 78
  vigil status  [--json] [NAME...]   ask the running vigil
  vigil start|stop|restart NAME...   act on services
  vigil signal  SIG NAME...          signal a service's process group
  vigil reload | reexec              re-read the config | replace vigil in place
  vigil ready   [NAME...]            exit 0 iff ready (a Kubernetes exec probe)
  vigil reset   [NAME...]            forget retry counts and given-up marks
  vigil version                      print the version

Flags of the run verb (later wins: defaults < file < TINI_* < VIGIL_* < flags):
  -c, --config FILE      config file (VIGIL_CONFIG)
  -e CODE                treat this exit status of the main process as success (repeatable;
                         after the 128+S conversion, so -e 143 covers death by SIGTERM)
  -r FROM:TO             rewrite a forwarded signal, TO 0 drops it (repeatable), e.g. -r TERM:QUIT
  -p SIG                 signal vigil gets when its parent dies (tini's -p)
  -w                     log every reaped orphan at warn level (tini's -w)
  -v                     more detail (repeatable; -v is already debug)
  -g, -s                 tini's: group forwarding and subreaping are already on
  --log-format text|json (VIGIL_LOG_FORMAT)
  --state-dir DIR        (VIGIL_STATE_DIR)
  --socket PATH          (VIGIL_SOCKET)
  --http ADDR            serve /livez, /readyz, /metrics on ADDR, e.g. :9090 (VIGIL_HTTP)
  -h, --help             this text;  --version  the version

Exit status: the main process's (128+S if killed by signal S), 2 usage error,
78 config error, 127/126 command not found / not executable.

Environment (a variable set to "" counts as unset):
`

func printUsage(w io.Writer) {
	io.WriteString(w, usageText)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, d := range config.Docs() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Var, d.Default, d.Help)
	}
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", "TINI_SUBREAPER, TINI_KILL_PROCESS_GROUP", "-", "accepted with tini's meaning (set at all = on)")
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", "TINI_VERBOSITY", "-", "tini's: 0 errors only, 3 debug")
	tw.Flush()
}
