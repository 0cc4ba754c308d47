// Package state keeps vigil's state file, VIGIL_STATE_DIR/state.json
// (docs/state-and-reexec.md): every service's status, retry count,
// given-up mark, last exit, restart count and times, so that retry counts and
// given-up marks survive a restart of the container.
//
// The document is versioned. Within a version, fields this binary does not
// know are accepted and ignored (and dropped at the next write): a newer
// vigil of the same version may add fields, and rolling back to an older
// binary must not throw the state away. Anything else that is not exactly a
// document of this version (malformed JSON, trailing data, a missing or other
// version, negative counts, an exit status outside 0..255, a null or unnamed
// service) is an error, and a Store moves such a file aside. A key given
// twice in one object is taken once, the last one winning (encoding/json).
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the version of the document this package reads and writes.
const Version = 1

// FileName is the state file's name inside the state directory.
const FileName = "state.json"

// MinInterval is the least time between two writes of a Store, so that a
// crash-looping service cannot cause a write storm.
const MinInterval = 100 * time.Millisecond

// ErrLocked is wrapped by Open and Reset when another vigil holds the state
// directory's lock.
var ErrLocked = errors.New("state directory is locked by another vigil")

// ErrUnknown is wrapped by Reset for a name that is not in the state file.
var ErrUnknown = errors.New("unknown service")

// Service is one service's persisted record.
type Service struct {
	Status    string    `json:"status"` // the supervisor's state word (ready, backoff, given-up, ...)
	Pid       int       `json:"pid,omitempty"`
	StartTime uint64    `json:"start_time,omitempty"` // field 22 of /proc/PID/stat, to recognise the process later
	Restarts  int       `json:"restarts"`
	Retries   int       `json:"retries"` // consecutive failed runs
	GivenUp   bool      `json:"given_up"`
	LastExit  *int      `json:"last_exit"` // 0..255, or 128+S for a signal; null if none
	Started   time.Time `json:"started,omitzero"`
	Exited    time.Time `json:"exited,omitzero"`
	// LastRun is when a scheduled service's latest run started: at start,
	// a tick missed since is caught up (starting_deadline).
	LastRun time.Time `json:"last_run,omitzero"`
}

// File is the whole document.
type File struct {
	Version    int                `json:"version"`
	Generation int                `json:"generation"` // vigil's re-exec generation
	Updated    time.Time          `json:"updated"`
	Services   map[string]Service `json:"services"`
}

// empty is the document of a fresh start.
func empty() File {
	return File{Version: Version, Services: map[string]Service{}}
}

// Decode parses a state document strictly: malformed JSON, trailing data, a
// missing or unknown version, negative counts, an exit status outside
// 0..255, a null service or an empty service name are errors. Unknown fields
// are ignored (see the package comment). Services is never nil in the
// result.
func Decode(data []byte) (File, error) {
	var doc struct {
		Version    *int                `json:"version"`
		Generation int                 `json:"generation"`
		Updated    time.Time           `json:"updated"`
		Services   map[string]*Service `json:"services"`
	}
	// json.Unmarshal checks the whole input first, so trailing data is an
	// error; "null" leaves doc empty and fails on the version below.
	if err := json.Unmarshal(data, &doc); err != nil {
		return File{}, fmt.Errorf("state: %w", err)
	}
	switch {
	case doc.Version == nil:
		return File{}, errors.New("state: no version")
	case *doc.Version != Version:
		return File{}, fmt.Errorf("state: version %d is not supported (this vigil reads version %d)", *doc.Version, Version)
	case doc.Generation < 0:
		return File{}, fmt.Errorf("state: negative generation %d", doc.Generation)
	}
	f := File{Version: Version, Generation: doc.Generation, Updated: doc.Updated,
		Services: make(map[string]Service, len(doc.Services))}
	for name, svc := range doc.Services {
		if err := check(name, svc); err != nil {
			return File{}, err
		}
		f.Services[name] = *svc
	}
	return f, nil
}

func check(name string, s *Service) error {
	switch {
	case name == "":
		return errors.New("state: service with an empty name")
	case s == nil:
		return fmt.Errorf("state: service %q is null", name)
	case s.Pid < 0:
		return fmt.Errorf("state: service %q: negative pid %d", name, s.Pid)
	case s.Restarts < 0:
		return fmt.Errorf("state: service %q: negative restarts %d", name, s.Restarts)
	case s.Retries < 0:
		return fmt.Errorf("state: service %q: negative retries %d", name, s.Retries)
	case s.LastExit != nil && (*s.LastExit < 0 || *s.LastExit > 255):
		return fmt.Errorf("state: service %q: last_exit %d is not in 0..255", name, *s.LastExit)
	}
	return nil
}

// Encode is the inverse of Decode: indented JSON, fields in a stable order
// (struct order, services sorted by name), a trailing newline. It always
// writes the current Version whatever f.Version says, and a nil Services as
// {}, so its output always decodes. A time that JSON cannot hold (a year
// outside 0..9999) is written as the zero time.
func Encode(f File) []byte {
	f.Version = Version
	f.Updated = encodable(f.Updated)
	services := make(map[string]Service, len(f.Services))
	for name, s := range f.Services {
		s.Started = encodable(s.Started)
		s.Exited = encodable(s.Exited)
		services[name] = s
	}
	f.Services = services
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		// Unreachable: every field is an int, a string, a bool, a pointer to
		// an int or a time checked by encodable.
		panic("state: encode: " + err.Error())
	}
	return b.Bytes()
}

func encodable(t time.Time) time.Time {
	if _, err := t.MarshalJSON(); err != nil {
		return time.Time{}
	}
	return t
}

// clone copies f deeply enough that the caller may change its own copy.
func clone(f File) File {
	services := make(map[string]Service, len(f.Services))
	for name, s := range f.Services {
		if s.LastExit != nil {
			v := *s.LastExit
			s.LastExit = &v
		}
		services[name] = s
	}
	f.Services = services
	return f
}
