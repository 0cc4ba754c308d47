package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vigil-init/vigil/signals"
)

// Exit codes of Main.
const (
	ExitOK       = 0  // the action took effect (ready: ready)
	ExitFailed   = 1  // the action failed; the reason is on stderr
	ExitUsage    = 2  // bad arguments
	ExitNotReady = 3  // ready: not (all) ready
	ExitNoVigil  = 69 // no vigil answers on any socket path (EX_UNAVAILABLE)
)

// dialTimeout bounds connecting to one socket path.
const dialTimeout = 2 * time.Second

// Main is the client side of every verb: args are the arguments after the
// verb. It finds the socket (SocketPaths(explicitSocket): the first that
// answers wins), sends one request, prints the reply and returns the exit
// code: ExitOK, ExitFailed (reason on stderr as `vigil VERB NAME...: reason`),
// ExitNotReady (ready verb), ExitNoVigil (naming the paths tried) or
// ExitUsage.
func Main(verb string, args []string, explicitSocket string, stdout, stderr io.Writer) int {
	return Client{Socket: explicitSocket, Stdout: stdout, Stderr: stderr}.Main(verb, args)
}

// Client is Main with options.
type Client struct {
	Socket         string
	Stdout, Stderr io.Writer
	// OfflineReset, if set, runs `vigil reset NAME...` when no vigil
	// answers (docs/state-and-reexec.md: edit the state file under its lock) and
	// gives the exit code; unset, reset exits ExitNoVigil like the others.
	OfflineReset func(names []string) int
}

// Main runs one verb; see the package function Main.
func (c Client) Main(verb string, args []string) int {
	explicitSocket, stdout, stderr := c.Socket, c.Stdout, c.Stderr
	row, ok := remote(verb)
	usage := row.Usage
	if !ok {
		fmt.Fprintf(stderr, "vigil: unknown verb %q\n", verb)
		return ExitUsage
	}
	req, jsonOut, help, err := parseArgs(verb, args)
	if help {
		fmt.Fprintf(stdout, "usage: %s\n", usage)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil %s: %v\nusage: %s\n", verb, err, usage)
		return ExitUsage
	}
	if verb == verbLogs {
		return c.logs(req)
	}
	rep, err := call(explicitSocket, req, clientTimeout(verb))
	// A connection lost without a reply is vigil re-executing: the socket
	// survives the exec, so asking again reaches the new image. Only the
	// verbs that come to the same whether asked once or twice are asked
	// again: status and ready change nothing; stop and start wait for a
	// state, and a service that got there already is simply reported.
	for try := 0; try < 3 && lostReply(err) && row.Retriable; try++ {
		time.Sleep(50 * time.Millisecond)
		rep, err = call(explicitSocket, req, clientTimeout(verb))
	}
	if err != nil {
		var nr *notRunningError
		if errors.As(err, &nr) {
			if verb == verbReset && c.OfflineReset != nil {
				return c.OfflineReset(req.Names)
			}
			fmt.Fprintf(stderr, "vigil %s: %v\n", verb, err)
			return ExitNoVigil
		}
		fmt.Fprintf(stderr, "vigil %s: %v\n", verb, err)
		return ExitFailed
	}
	if !rep.OK {
		fmt.Fprintf(stderr, "%s: %s\n", prefix(verb, req.Names), trimName(rep.Error, req.Names))
		return ExitFailed
	}
	switch verb {
	case verbStatus:
		if rep.Services == nil {
			rep.Services = []ServiceStatus{}
		}
		if jsonOut {
			enc := json.NewEncoder(stdout)
			enc.Encode(struct {
				Services []ServiceStatus `json:"services"`
			}{rep.Services})
			return ExitOK
		}
		printStatus(stdout, rep.Services, time.Now(), isTerminal(stdout))
	case verbReady:
		if rep.Ready == nil || !*rep.Ready {
			fmt.Fprintf(stderr, "%s: not ready\n", prefix(verb, req.Names))
			return ExitNotReady
		}
	}
	return ExitOK
}

// prefix is how an error line starts: the command as typed, less the signal.
func prefix(verb string, names []string) string {
	if len(names) == 0 {
		return "vigil " + verb
	}
	return "vigil " + verb + " " + strings.Join(names, " ")
}

// trimName drops a leading "NAME: " from a handler's error when that is the
// only name asked for: the prefix already says it.
func trimName(msg string, names []string) string {
	if len(names) == 1 {
		return strings.TrimPrefix(msg, names[0]+": ")
	}
	return msg
}

// parseArgs reads a verb's arguments: flags anywhere before "--", then names.
func parseArgs(verb string, args []string) (req request, jsonOut, help bool, err error) {
	req = request{V: Version, Verb: verb}
	if verb == verbLogs {
		req.Lines = defaultLogLines
	}
	var pos []string
	sigGiven := false
	flags := true
	for i := 0; i < len(args); i++ {
		a := args[i]
		if flags && a == "--" {
			flags = false
			continue
		}
		if flags && len(a) > 1 && a[0] == '-' {
			switch {
			case a == "-h" || a == "-help" || a == "--help":
				return req, false, true, nil
			case verb == verbStatus && (a == "--json" || a == "-json"):
				jsonOut = true
			case verb == verbLogs && (a == "-f" || a == "--follow"):
				req.Follow = true
			case verb == verbLogs && (a == "-n" || a == "--lines" || strings.HasPrefix(a, "-n=") || strings.HasPrefix(a, "--lines=")):
				v, given := strings.CutPrefix(strings.TrimPrefix(strings.TrimPrefix(a, "-n"), "--lines"), "=")
				if !given {
					if i+1 >= len(args) {
						return req, false, false, fmt.Errorf("%s needs a number of lines", a)
					}
					i++
					v = args[i]
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return req, false, false, fmt.Errorf("%s %q: want a number of lines, 0 or more", a, v)
				}
				req.Lines = n
			case verb == verbSignal && !sigGiven && len(pos) == 0 && validSignal(a[1:]):
				// kill style: vigil signal -HUP web
				pos = append(pos, a[1:])
				sigGiven = true
			default:
				return req, false, false, fmt.Errorf("unknown flag %s", a)
			}
			continue
		}
		pos = append(pos, a)
	}
	switch verb {
	case verbSignal:
		if len(pos) == 0 {
			return req, false, false, errors.New("missing signal and service name")
		}
		sig, err := signals.Parse(pos[0])
		if err != nil {
			return req, false, false, err
		}
		req.Signal = int(sig)
		pos = pos[1:]
		if len(pos) == 0 {
			return req, false, false, errors.New("missing service name")
		}
	case verbStart, verbStop, verbRestart, verbLogs:
		if len(pos) == 0 {
			return req, false, false, errors.New("missing service name")
		}
	case verbScale:
		if len(pos) != 2 {
			return req, false, false, errors.New("want a service name and a number of copies")
		}
		n, err := strconv.Atoi(pos[1])
		if err != nil || n < 1 {
			return req, false, false, fmt.Errorf("number of copies %q: want a whole number from 1", pos[1])
		}
		req.Count = n
		pos = pos[:1]
	case verbReload, verbReexec:
		if len(pos) != 0 {
			return req, false, false, fmt.Errorf("unexpected argument %q", pos[0])
		}
	}
	for _, n := range pos {
		if n == "" {
			return req, false, false, errors.New("empty service name")
		}
	}
	req.Names = pos
	return req, jsonOut, false, nil
}

func validSignal(s string) bool {
	_, err := signals.Parse(s)
	return err == nil
}

// notRunningError says no socket path answered.
type notRunningError struct {
	tried []string
	off   bool // VIGIL_SOCKET=none: nothing was tried
}

func (e *notRunningError) Error() string {
	if e.off {
		return "the control socket is off (VIGIL_SOCKET=none): no vigil can be reached"
	}
	return "no vigil running (tried " + strings.Join(e.tried, "; ") + ")"
}

// call sends req to the first socket path that answers and reads the reply,
// all within timeout.
func call(explicit string, req request, timeout time.Duration) (reply, error) {
	var rep reply
	err := connect(explicit, timeout, func(c *net.UnixConn, deadline time.Time) error {
		var err error
		rep, err = exchange(c, req, deadline, timeout)
		return err
	})
	return rep, err
}

// connect runs talk on a connection to the first socket path that answers,
// found within timeout.
func connect(explicit string, timeout time.Duration, talk func(c *net.UnixConn, deadline time.Time) error) error {
	if explicit == SocketOff {
		return &notRunningError{off: true}
	}
	deadline := time.Now().Add(timeout)
	var tried []string
	var denied []string
	paths := SocketPaths(explicit)
	fixed := len(paths)
	for i := 0; ; i++ {
		if i == fixed && explicit == "" {
			// None answered: the private /dev/shm directories of a vigil
			// whose /dev/shm name someone else took (see Listen).
			paths = append(paths, privateShmPaths()...)
		}
		if i >= len(paths) || time.Until(deadline) <= 0 {
			break
		}
		p := paths[i]
		c, err := dial(p, min(dialTimeout, time.Until(deadline)))
		if err != nil {
			if i < fixed && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
				denied = append(denied, p)
			}
			tried = append(tried, p+": "+reason(err))
			continue
		}
		if uid, ok := serverUID(c); !ok {
			c.Close()
			tried = append(tried, fmt.Sprintf("%s: answered by uid %d, neither root nor us nor PID 1: not trusted", p, uid))
			continue
		}
		defer c.Close()
		return talk(c, deadline)
	}
	if len(denied) > 0 {
		return fmt.Errorf("permission denied on %s: only root and vigil's own user may use the control socket", strings.Join(denied, ", "))
	}
	return &notRunningError{tried: tried}
}

// dial connects to path, retrying while the listen queue is full.
func dial(path string, timeout time.Duration) (*net.UnixConn, error) {
	end := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", path, time.Until(end))
		if err == nil {
			return c.(*net.UnixConn), nil
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Until(end) < 10*time.Millisecond {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverUID reports the uid of the process that listens, and whether to
// trust it: root, our own uid, or the PID namespace's init (a container
// running vigil as a non-root user, reached by `docker exec -u 0`). Another
// user's socket planted in /dev/shm is not trusted, nor, in a user
// namespace, one of an unmapped user (the overflow uid; see peerRule).
func serverUID(c *net.UnixConn) (uint32, bool) {
	cred, err := peerCred(c)
	if err != nil {
		return 0, false
	}
	return cred.Uid, currentPeerRule().allowed(cred.Uid) || cred.Pid == 1
}

func reason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return "no such socket"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listening (stale socket)"
	case errors.Is(err, syscall.ENOTSOCK):
		return "not a socket"
	case errors.Is(err, syscall.EACCES):
		return "permission denied"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// exchange writes the request and reads the one-line reply.
func exchange(c *net.UnixConn, req request, deadline time.Time, timeout time.Duration) (reply, error) {
	var rep reply
	c.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	// A write error (the server refused us and closed) may still leave its
	// reply to read: read anyway.
	_, werr := c.Write(append(b, '\n'))
	line, rerr := bufio.NewReader(io.LimitReader(c, maxReply)).ReadBytes('\n')
	if rerr != nil && !(errors.Is(rerr, io.EOF) && len(line) > 0) {
		var ne net.Error
		switch {
		case errors.As(rerr, &ne) && ne.Timeout():
			return rep, fmt.Errorf("no reply from vigil within %s", timeout)
		case werr != nil:
			return rep, fmt.Errorf("sending the request: %w", werr)
		case errors.Is(rerr, io.EOF):
			return rep, errNoReply
		default:
			return rep, fmt.Errorf("reading the reply: %w", rerr)
		}
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		return rep, fmt.Errorf("garbled reply from vigil: %v", err)
	}
	if !rep.OK && rep.Error == "" {
		rep.Error = "failed (no reason given)"
	}
	return rep, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// printStatus writes the status table: aligned for a terminal, one
// tab-separated line each (header included) otherwise.
func printStatus(w io.Writer, list []ServiceStatus, now time.Time, aligned bool) {
	out := w
	if aligned {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		defer tw.Flush()
		out = tw
	}
	fmt.Fprintln(out, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST-EXIT\tREADY\tNEXT\tLAST\tHEALTH\tLAST-CHECK-FAILURE")
	for _, s := range list {
		pid, uptime := "-", "-"
		if s.Pid != 0 {
			pid = strconv.Itoa(s.Pid)
			if !s.Started.IsZero() {
				uptime = formatUptime(now.Sub(s.Started))
			}
		}
		last := "-"
		if s.LastExit != nil {
			last = strconv.Itoa(*s.LastExit)
		}
		ready := "no"
		if s.Ready {
			ready = "yes"
		}
		// A scheduled service's next tick and latest run, relative to now.
		next, lastRun := "-", "-"
		if !s.NextRun.IsZero() {
			next = "in " + formatUptime(s.NextRun.Sub(now))
		}
		if !s.LastRun.IsZero() {
			lastRun = formatUptime(now.Sub(s.LastRun)) + " ago"
		}
		health := "-"
		if s.Health != nil {
			health = *s.Health
		}
		failure := "-"
		if s.LastCheckFailure != "" {
			// One line per service, whatever a check's output said.
			failure = strings.Join(strings.Fields(s.LastCheckFailure), " ")
		}
		fmt.Fprintf(out, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, pid, uptime, s.Restarts, last, ready, next, lastRun, health, failure)
	}
}

// formatUptime gives the two largest units: 45s, 3m12s, 2h5m, 3d4h.
func formatUptime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec < 3600:
		return fmt.Sprintf("%dm%ds", sec/60, sec%60)
	case sec < 86400:
		return fmt.Sprintf("%dh%dm", sec/3600, sec%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", sec/86400, sec%86400/3600)
	}
}

// retriable are the verbs asked again after a lost reply (see Main).

// lostReply reports whether err is a connection that went away between the
// request and its reply.
func lostReply(err error) bool {
	return err != nil && (errors.Is(err, errNoReply) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

var errNoReply = errors.New("vigil closed the connection without a reply")
