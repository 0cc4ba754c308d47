// Package control is vigil's control socket: the server the running vigil
// listens with, and the client side of `vigil status|start|stop|restart|
// signal|reload|ready|reset|reexec|logs` (docs/control.md).
//
// # Where the socket is
//
// SocketPaths gives the list, in order: VIGIL_SOCKET / --socket alone when
// set; else /run/vigil/vigil.sock (the directory 0700, /run made if missing);
// else /dev/shm/vigil-<inode of /proc/self/ns/mnt>.sock. The server binds the
// first it can use, the client takes the first that answers (as root, as its
// own uid, or as PID 1). If someone else holds the /dev/shm name, the server
// listens in a new 0700 directory /dev/shm/vigil-<inode>-<random>/ and
// clients look there too.
//
// # Wire format (version 1)
//
// One connection carries one request and one reply, each a single JSON object
// on one line (terminated by '\n'). Unknown fields are ignored both ways, so
// fields can be added; an incompatible change bumps "v".
//
// Request, client to server:
//
//	{"v":1,"verb":"start","names":["web","db"]}
//	{"v":1,"verb":"signal","names":["web"],"signal":10}
//	{"v":1,"verb":"scale","names":["worker"],"count":5}
//	{"v":1,"verb":"status"}
//	{"v":1,"verb":"logs","names":["web"],"lines":100,"follow":true}
//
//	v       protocol version; 1. A missing v (0) is taken as 1; a higher one
//	        gets an error reply naming the version the server speaks.
//	verb    status, start, stop, restart, signal, reload, ready, reset, reexec, scale
//	names   service names; empty or missing means all (status, ready, reset)
//	signal  the signal number, for verb signal only
//	count   the number of copies, for verb scale only (with one name)
//	lines   for logs: how many of the last lines of each service (0: none)
//	follow  for logs: keep sending new lines until the client hangs up
//	since   for logs: only lines after this time (RFC 3339)
//
// Reply, server to client:
//
//	{"v":1,"ok":true}
//	{"v":1,"ok":true,"services":[{"name":"web","state":"ready",...}]}
//	{"v":1,"ok":true,"ready":false}
//	{"v":1,"ok":false,"error":"web: given-up (last exit 1)"}
//	{"v":1,"ok":false,"error":"unknown service \"x\"","unknown":true}
//
//	ok        the action took effect
//	error     why not, when ok is false (for reload: the config problems)
//	unknown   the error is about an unknown service name (ErrUnknown)
//	services  for status: ServiceStatus objects, as `vigil status --json`
//	ready     for ready: whether every named service is ready
//	more      another reply follows on this connection (logs only)
//	logs      for logs: lines, each {"service","time","stream","text"}
//	notes     for logs: what the lines do not say ("db: its output does
//	          not pass through vigil", "web: 120 lines dropped")
//
// logs is the one verb with several replies: each {"ok":true,"more":true,
// "logs":[...]} carries lines (the last ones asked for first, then, with
// follow, new ones as they come), and a last reply without "more" ends it
// (an error, or the end of the lines without follow). A follower holds a
// connection until it hangs up or the server closes: it takes one of
// maxFollowers slots of its own, never one of the verbs', and a follower
// that stops reading is dropped once a reply waits replyTimeout.
//
// A request must arrive whole within a few seconds and be at most
// MaxRequest bytes; anything else (garbage, a wrong version, an unknown verb,
// a peer that is neither root nor vigil's own uid) gets {"ok":false,...} and
// the connection is closed.
package control

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/control/verb"
)

// Version is the wire protocol version this package speaks.
const Version = 1

// MaxRequest is the largest request the server reads, in bytes.
const MaxRequest = 1 << 20

// maxReply bounds what the client reads back (a status of many services).
const maxReply = 64 << 20

// ErrUnknown (wrapped) in a Handler error means an unknown service name.
// The client exits 1 for it, like for any failure; the reply marks it with
// "unknown":true.
var ErrUnknown = errors.New("unknown service")

// ServiceStatus is one service as `vigil status --json` shows it.
type ServiceStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`     // starting, running, ready, unhealthy, backoff, stopping, stopped, exited, given-up, blocked
	Pid      int       `json:"pid"`       // 0 when not running
	Started  time.Time `json:"started"`   // zero when never started
	Restarts int       `json:"restarts"`  // within this start of vigil
	Retries  int       `json:"retries"`   // persisted count of consecutive failed runs
	LastExit *int      `json:"last_exit"` // 128+S for a signal; null if none yet
	Ready    bool      `json:"ready"`
	// Health is HealthHealthy or HealthUnhealthy; null without a health
	// check, or without a process to check.
	Health *string `json:"health"`
	// HealthFailures counts the health check's consecutive failures.
	HealthFailures int `json:"health_failures"`
	// LastCheckFailure is why the last health or readiness attempt failed.
	LastCheckFailure string `json:"last_check_failure,omitempty"`
	// A scheduled service's schedule, its next tick and the start of its
	// latest run (RFC 3339; absent when none), and its failed runs within
	// this start of vigil; absent for other services.
	Schedule   string    `json:"schedule,omitempty"`
	NextRun    time.Time `json:"next_run,omitzero"`
	LastRun    time.Time `json:"last_run,omitzero"`
	FailedRuns int       `json:"failed_runs,omitempty"`
	// LogFileDropped counts the lines its log_file lost (a full, slow or
	// read-only disk) since vigil started; the lines still went to the
	// service's log destination and to `vigil logs`.
	LogFileDropped uint64 `json:"log_file_dropped,omitempty"`
}

// LogLine is one line of a service's output, as `vigil logs` gets it.
type LogLine struct {
	Service string    `json:"service"`
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"` // stdout or stderr
	Text    string    `json:"text"`
}

// LogBatch is what a logs handler sends at once: lines, and notes about
// them (a service that keeps no lines, lines dropped for a slow reader).
type LogBatch struct {
	Lines []LogLine
	Notes []string
}

// LogsRequest is what `vigil logs` asks.
type LogsRequest struct {
	Names  []string
	Lines  int  // the last Lines of each service first
	Follow bool // then new lines until ctx ends
	// Since, if set, leaves out the lines up to that time: a follower
	// that lost its connection (vigil re-executed) asks again from where
	// it was, the ring having been handed over.
	Since time.Time
}

// Health words of ServiceStatus.Health.
const (
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// request is what the client sends; see the package documentation.
type request struct {
	V      int       `json:"v"`
	Verb   string    `json:"verb"`
	Names  []string  `json:"names,omitempty"`
	Signal int       `json:"signal,omitempty"`
	Count  int       `json:"count,omitempty"` // scale: the number of copies
	Lines  int       `json:"lines,omitempty"`
	Follow bool      `json:"follow,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// reply is what the server answers; see the package documentation.
type reply struct {
	V        int             `json:"v"`
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Unknown  bool            `json:"unknown,omitempty"`
	Services []ServiceStatus `json:"services,omitempty"`
	Ready    *bool           `json:"ready,omitempty"`
	More     bool            `json:"more,omitempty"`
	Logs     []LogLine       `json:"logs,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

// Verb names the server and client switch on; the rest of each verb's
// row (usage, names, timeout, probe) is in package verb.
const (
	verbStatus  = "status"
	verbStart   = "start"
	verbStop    = "stop"
	verbRestart = "restart"
	verbSignal  = "signal"
	verbReload  = "reload"
	verbReady   = "ready"
	verbReset   = "reset"
	verbReexec  = "reexec"
	verbScale   = "scale"
	verbLogs    = "logs"
)

// remote looks up a verb that goes over the socket.
func remote(name string) (verb.Verb, bool) {
	v, ok := verb.Lookup(name)
	return v, ok && !v.Local
}

const clientMargin = 5 * time.Second

func clientTimeout(name string) time.Duration {
	v, _ := remote(name)
	return v.Timeout + clientMargin
}

// The default socket locations; variables so tests can move them.
var (
	runDir = "/run"
	shmDir = "/dev/shm"
	mntNS  = "/proc/self/ns/mnt"
)

const (
	runSubdir  = "vigil"
	socketName = "vigil.sock"
)

// SocketOff as the socket path (VIGIL_SOCKET=none, --socket none) means no
// control socket at all: the leanest wrapper, which no verb can reach.
const SocketOff = "none"

// SocketPaths lists where the socket may be, in the order of docs/control.md:
// explicit (VIGIL_SOCKET / --socket) alone if non-empty; else
// /run/vigil/vigil.sock, then /dev/shm/vigil-<inode of /proc/self/ns/mnt>.sock
// (left out when that inode cannot be read).
func SocketPaths(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	paths := []string{filepath.Join(runDir, runSubdir, socketName)}
	if ino, err := nsInode(); err == nil {
		paths = append(paths, filepath.Join(shmDir, fmt.Sprintf("vigil-%d.sock", ino)))
	}
	return paths
}

// Bounds of the search for private /dev/shm directories: /dev/shm is
// shared, and anyone may fill it with decoys.
const (
	maxScan       = 100000 // directory entries looked at
	maxCandidates = 64     // sockets tried
)

// privateShm reports whether path is a socket in a private /dev/shm
// directory (vigil-<ino>-<random>/vigil.sock).
func privateShm(path string) bool {
	dir := filepath.Dir(path)
	return filepath.Base(path) == socketName && filepath.Dir(dir) == shmDir &&
		strings.HasPrefix(filepath.Base(dir), "vigil-")
}

// privateShmPaths lists the sockets of the private /dev/shm directories of
// this mount namespace, vigil-<ino>-*/vigil.sock, where a vigil listens when
// someone else holds vigil-<ino>.sock: directories only (no links), those
// of root and of our uid first. Anyone can make such a directory: the
// client still checks who answers there.
func privateShmPaths() []string {
	ino, err := nsInode()
	if err != nil {
		return nil
	}
	d, err := os.Open(shmDir)
	if err != nil {
		return nil
	}
	defer d.Close()
	prefix := fmt.Sprintf("vigil-%d-", ino)
	var ours, others []string
	for seen := 0; seen < maxScan && len(ours) < maxCandidates; {
		entries, err := d.ReadDir(256)
		seen += len(entries)
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			p := filepath.Join(shmDir, e.Name(), socketName)
			fi, err := e.Info()
			if err != nil {
				continue
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid == 0 || st.Uid == uint32(os.Geteuid())) {
				ours = append(ours, p)
			} else {
				others = append(others, p)
			}
		}
		if err != nil {
			break
		}
	}
	paths := append(ours, others...)
	return paths[:min(len(paths), maxCandidates)]
}

func nsInode() (uint64, error) {
	fi, err := os.Stat(mntNS)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", mntNS)
	}
	return st.Ino, nil
}

// Verbs lists the verbs that go over the socket, in the table's order.
var Verbs = func() []string {
	var out []string
	for _, v := range verb.Table {
		if !v.Local {
			out = append(out, v.Name)
		}
	}
	return out
}()
