package config

import (
	"syscall"
	"time"
)

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Log modes.
const (
	LogInherit = "inherit"
	LogPrefix  = "prefix"
)

// Concurrency policies of a scheduled service: what a tick does while a run
// is still in flight.
const (
	ConcurrencyForbid  = "forbid"  // skip the tick (logged)
	ConcurrencyAllow   = "allow"   // start another run
	ConcurrencyReplace = "replace" // stop the running one, then start
)

// MaxInstances bounds `instances`: a typo of a few zeros should not fork
// a million processes.
const MaxInstances = 1000

// Environment variables a copy of an `instances` service gets.
const (
	InstanceVar  = "VIGIL_INSTANCE"  // 1..N
	InstancesVar = "VIGIL_INSTANCES" // N
)

// MainName is the service name of `-- CMD` in supervisor mode; reserved in
// config files.
const MainName = "main"

// Service is one service after decoding and defaulting: every field holds
// its effective value (the per-service field, else the global setting, else
// the built-in default), so the supervisor never looks anything up.
type Service struct {
	Name string
	// Argv is the command. A string command of the file becomes
	// ["/bin/sh", "-c", STRING] with Shell set.
	Argv  []string
	Shell bool
	Dir   string
	// Env is the service's own additions (the "env" object), in key order;
	// the supervisor puts them over vigil's cleaned environment.
	Env  []string
	User string // "" = vigil's own user

	Restart     string // RestartAlways, RestartOnFailure, RestartNever
	MaxRetries  int    // -1 = unlimited
	Backoff     Backoff
	StableAfter time.Duration
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	Critical    bool
	DependsOn   []string
	Ready       *Ready  // nil: ready once spawned (a oneshot: once it exits 0)
	Health      *Health // nil: no liveness check
	Oneshot     bool
	Log         string // LogInherit, LogPrefix
	// EnvFiles are the top-level env files, then the service's own, in
	// the order they apply (a later file wins). ServiceEnvs reads them.
	EnvFiles []EnvFile
	Secrets  []Secret // sorted by Var
	LogFile  *LogFile // nil: no log file

	// Schedule is the cron expression of a scheduled service ("" = not
	// scheduled), already checked with schedule.Parse; a scheduled
	// service is always a Oneshot and never Critical.
	Schedule string
	// Timezone is the schedule's IANA zone, "" = vigil's local time.
	Timezone string
	// Concurrency is ConcurrencyForbid, ConcurrencyAllow or
	// ConcurrencyReplace for a scheduled service, "" otherwise.
	Concurrency string
	// StartingDeadline: at start, run once for a tick missed while vigil
	// was down if it is younger than this; 0 = off.
	StartingDeadline time.Duration

	// Template is, for a copy of a service with `instances`, the name
	// written in the config (its copies are Template-1..Template-N);
	// "" for a service of its own. Instance is the copy's number (1..N)
	// and Instances is N; both 0 for a service that is no copy.
	Template  string
	Instance  int
	Instances int
}

// Backoff is the restart delay: Initial, times Factor per failed run, capped
// at Max, each +/- Jitter (a share, 0..1).
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  float64
}

// Ready is a readiness check; exactly one of TCP, Exec, File, NotifyFD, HTTP
// is set.
type Ready struct {
	TCP      string   // host:port that must accept a connection
	Exec     []string // argv that must exit 0
	File     string   // path that must exist
	NotifyFD int      // the service writes a line to this fd (s6-style); 0 = unset
	HTTP     string   // http:// URL that must answer with a status 200-399
	Timeout  time.Duration
	// Interval > 0 keeps the check running once the service is ready:
	// FailureThreshold consecutive failures make it not ready (no
	// restart), a success ready again. 0: the check stops once ready.
	Interval time.Duration
	// FailureThreshold is only given with Interval. 0 means the default,
	// DefaultReadyThreshold, so a Ready from an older vigil's handoff
	// compares equal to the same check read from the file again.
	FailureThreshold int
}

// Threshold is the effective FailureThreshold.
func (r *Ready) Threshold() int {
	if r.FailureThreshold == 0 {
		return DefaultReadyThreshold
	}
	return r.FailureThreshold
}

// Health is a liveness check; exactly one of TCP, Exec, HTTP is set. It runs
// once the service is ready, first after StartPeriod, then every Interval,
// each attempt bounded by Timeout (shorter than Interval); FailureThreshold
// consecutive failures make the service unhealthy, and it is stopped.
type Health struct {
	TCP              string
	Exec             []string
	HTTP             string
	Interval         time.Duration // default 10s
	Timeout          time.Duration // default 2s
	StartPeriod      time.Duration // default 0
	FailureThreshold int           // default 3
}

// Defaults and bounds of checks.
const (
	DefaultHealthInterval  = 10 * time.Second
	DefaultHealthTimeout   = 2 * time.Second
	DefaultHealthThreshold = 3
	DefaultReadyThreshold  = 1
	// MinCheckInterval keeps a typo ("10ms" for "10s") from turning a
	// check into a busy loop.
	MinCheckInterval = 100 * time.Millisecond
)

// Problem is one thing wrong with a config, located for the user.
type Problem struct {
	Service string // "" for a top-level field
	Field   string // e.g. "backoff.initial", "depends_on[1]"
	Line    int    // 1-based; 0 when unknown (e.g. an environment variable)
	Col     int
	Source  string // file name, or "VIGIL_SERVICES"
	Msg     string
}
