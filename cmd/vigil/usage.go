package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/control/verb"
)

const usageText = `vigil: a container init that reaps, forwards signals and supervises services.

Usage:
  vigil [flags] -- CMD [ARG...]      run CMD as the main process (a drop-in for tini)
  vigil [flags] [-c FILE]            supervise the services of a config file
%s
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
	var verbs strings.Builder
	for _, v := range verb.Table {
		fmt.Fprintf(&verbs, "  %-33s  %s\n", v.Usage, v.Help)
	}
	fmt.Fprintf(w, usageText, verbs.String())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, d := range config.Docs() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Var, d.Default, d.Help)
	}
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", "TINI_SUBREAPER, TINI_KILL_PROCESS_GROUP", "-", "accepted with tini's meaning (set at all = on)")
	fmt.Fprintf(tw, "  %s\t%s\t%s\n", "TINI_VERBOSITY", "-", "tini's: 0 errors only, 3 debug")
	tw.Flush()
}
