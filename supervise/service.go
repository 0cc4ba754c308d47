package supervise

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"github.com/vigil-init/vigil/supervise/schedule"
)

// State is where a service is in its life; the words are the interface of
// `vigil status` (docs/control.md).
type State string

const (
	Starting State = "starting" // waiting for dependencies, a respawn token or the spawn
	Running  State = "running"  // started, readiness check pending
	Ready    State = "ready"    // ready (no check: once spawned)
	Backoff  State = "backoff"  // waiting to restart
	Stopping State = "stopping"
	Stopped  State = "stopped" // by request
	Exited   State = "exited"  // finished for good without failure
	GivenUp  State = "given-up"
	Blocked  State = "blocked" // a dependency failed for good
	// Unhealthy: its health check failed failure_threshold times in a row;
	// it is being stopped and the run counts as failed.
	Unhealthy State = "unhealthy"
	// Scheduled: a scheduled service between runs, its next tick armed.
	Scheduled State = "scheduled"
)

// States is every state word, in the order of a service's life.
func States() []string {
	return []string{string(Starting), string(Running), string(Ready), string(Unhealthy), string(Backoff),
		string(Stopping), string(Stopped), string(Exited), string(GivenUp), string(Blocked), string(Scheduled)}
}

// transitions is the state machine: the states each state may move to.
// become refuses anything else, so a new path through a service's life is
// a line here first.
var transitions = map[State][]State{
	// Spawned, or waiting; a spawn that fails is judged like any run.
	Starting: {Running, Ready, Backoff, Exited, GivenUp, Blocked, Stopping, Stopped, Scheduled},
	// Running after Ready: a continuous readiness check failed.
	Running: {Ready, Unhealthy, Backoff, Exited, GivenUp, Stopping, Stopped, Starting, Scheduled},
	Ready:   {Running, Unhealthy, Backoff, Exited, GivenUp, Stopping, Stopped, Starting, Scheduled},
	// Being stopped for its health; its exit is judged a failed run.
	Unhealthy: {Backoff, GivenUp, Stopping, Stopped, Starting, Scheduled},
	Backoff:   {Starting, Running, Ready, Exited, GivenUp, Blocked, Stopping, Stopped, Scheduled},
	Stopping:  {Stopped},
	Stopped:   {Starting, Stopping, Scheduled},
	Exited:    {Starting, Stopping, Stopped, Scheduled},
	GivenUp:   {Starting, Stopping, Stopped, Scheduled},
	Blocked:   {Starting, Stopped},
	// A tick (or vigil start) starts a run; a reload that drops the
	// schedule makes it an ordinary service waiting to start.
	Scheduled: {Starting, Stopped},
}

// allowed reports whether the table lets a service go from one state to
// the other.
func allowed(from, to State) bool { return slices.Contains(transitions[from], to) }

// desire is what the operator and the config want of a service, whatever
// its state: a state machine whose states say what is, and one word for
// what should be, replace the flags that said both.
type desire uint8

const (
	wantUp   desire = iota // run it (the default)
	wantDown               // stopped on request: stays down until start
	wantGone               // removed by a reload: deleted once down
)

// timerKind says what a service's one timer is for.
type timerKind uint8

const (
	noTimer      timerKind = iota
	restartDue             // the end of a backoff: then take a respawn token
	tokenDue               // a respawn token taken, waiting for its time
	readyTimeout           // the readiness check's deadline
	killDue                // SIGKILL to the group of a stopping service
	// tickDue is the next tick of a scheduled service. It lives in the
	// service's second slot, tick: a tick must come while the first slot
	// holds a run's own timer (a retry's backoff, a readiness deadline,
	// a SIGKILL), since it decides about that run (skip, replace, or end
	// its retries).
	tickDue
)

// slot is a service's one timer. gen tells a firing that is still wanted
// from one that was replaced or cancelled while it was on its way.
type slot struct {
	kind timerKind
	at   time.Time
	gen  int
	stop func() bool
}

// service is one service's runtime record: its config, where it is, and
// what is wanted of it. Projections of it (status, state file, handoff) are
// in record.go.
type service struct {
	config.Service
	isMain bool
	deps   []*service // what it depends on
	users  []*service // what depends on it

	state   State
	desired desire
	pid     int // the running leader, 0 if none
	// startTime is the leader's start time, read once at spawn: a re-exec
	// and the state file use it to recognise the process.
	startTime uint64
	pgid      int // the last group it led; may outlive the leader
	// escaped are descendants that left the group (setsid), found when a
	// stop began: the stop waits for them and kills them too.
	escaped []proc.Proc
	run     int // counts spawns
	started time.Time
	// runFailed: this run failed its readiness check; its exit is judged
	// a failed run whatever its status.
	runFailed bool
	retries   int // consecutive failed runs
	restarts  int // within this start of vigil
	lastExit  *int

	timer slot
	// health and readiness are the repeating checks of the current run
	// (nil: none running); see health.go.
	health, readiness *probe
	healthy           bool   // the health check has not reached its threshold
	healthFailures    uint64 // failed health attempts within this start of vigil
	lastCheckError    string // the last failure of a health or readiness attempt
	wasReady          bool   // this run was ready at some point
	// The schedule of a scheduled service: its next tick in tick (at is
	// the tick's wall-clock time), the parsed expression (cron, parsed
	// from cronKey), and its runs.
	tick       slot
	cron       *schedule.Schedule
	cronKey    string
	due        bool               // a run is due (a tick, vigil start): tryStart spawns it
	attempts   int                // retries of this tick's run
	lastRun    time.Time          // start of the latest run, persisted
	failedRuns int                // failed runs within this start of vigil
	catchUp    bool               // at start: run once for a tick missed while vigil was down
	cancel     context.CancelFunc // readiness check of this run
	notify     *os.File           // read end of the notify_fd pipe until the check takes it
	pumps      []*pump            // output passing through vigil, being copied
	log        *svcLog            // its ring and log file; nil unless output passes through vigil
}

// become moves svc to state to, through the table: every state change goes
// through here. It logs msg (with the service's name) at level, and marks the
// state for persistence; a transition the table does not allow is refused
// and logged as an internal error.
func (s *Supervisor) become(svc *service, to State, level slog.Level, msg string, args ...any) bool {
	if from := svc.state; from != to {
		if !allowed(from, to) {
			s.log.Error("internal error: state change refused", "service", svc.Name, "from", string(from), "to", string(to))
			return false
		}
		svc.state = to
		s.dirty = true
		if msg == "" {
			level, msg, args = slog.LevelDebug, "state", []any{"from", string(from), "to", string(to)}
		}
	}
	ctx := context.Background()
	if msg != "" && s.log.Enabled(ctx, level) {
		s.log.Log(ctx, level, msg, append([]any{"service", svc.Name}, args...)...)
	}
	return true
}

// ready reports whether dependents of svc may start.
func (svc *service) ready() bool {
	return svc.state == Ready || (svc.Oneshot && svc.state == Exited) || svc.state == Scheduled
}

// scheduled reports whether svc runs on a schedule.
func (svc *service) scheduled() bool { return svc.Schedule != "" }

// failedForGood reports whether svc will not run again by itself.
func (svc *service) failedForGood() bool {
	return svc.state == GivenUp || svc.state == Blocked
}
