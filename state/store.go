package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// options are the store's knobs; tests shorten the times and fake the disk.
type options struct {
	fs          fsys
	minInterval time.Duration // between two writes
	backoffMin  time.Duration // first retry after a failed write
	backoffMax  time.Duration
	closeWait   time.Duration // how long Close waits for the last write
}

func defaults() options {
	return options{
		fs:          osFS{},
		minInterval: MinInterval,
		backoffMin:  time.Second,
		backoffMax:  time.Minute,
		closeWait:   2 * time.Second,
	}
}

var errClosed = errors.New("state: store closed")

// Store is the state of one directory: the state it found there at Open, and
// a writer goroutine that puts every snapshot given to Save on disk.
//
// A nil *Store is valid and persists nothing (Load gives an empty File, Save
// drops, Flush and Close return nil): that is what Open returns with
// ErrLocked, so the caller can go on with the same code.
type Store struct {
	dir    string // the state directory as configured
	base   string // where the files are, for I/O: dir or its private directory
	path   string // the state file as the log shows it
	file   string // the state file, for I/O
	log    *slog.Logger
	o      options
	loaded File

	kick   chan struct{} // buffer 1: "look at the state again"
	quit   chan struct{} // closed by Close after its flush
	exited chan struct{} // closed when the writer returns

	mu          sync.Mutex
	lock        io.Closer // the directory's flock; nil while not held
	latest      *File     // newest snapshot not known to be on disk
	seq         uint64    // counts Saves
	written     uint64    // seq of the snapshot on disk
	flushWant   uint64    // counts Flush requests
	flushServed uint64    // the last request an attempt started after
	lastErr     error     // of the last attempt
	changed     chan struct{}
	closed      bool
	disabled    error // persistence off for good (the lock was found taken late)

	// Owned by the writer goroutine.
	failing bool // in a failure episode, already logged
	inPlace bool // the state file is a mount point: write it in place
	backoff time.Duration
}

// Open takes an exclusive flock on dir (the directory itself; a lock file
// dir/.lock where directories cannot be locked) and reads dir/state.json
// (see Load). If another vigil holds the lock it returns a nil Store and an
// error wrapping ErrLocked, and the caller runs without persistence (and says
// so). It never fails otherwise: a missing, unreadable, read-only or full
// volume gives a Store that keeps the newest snapshot in memory, reports the
// problem once through log (warn), retries with backoff (1 s doubling to
// 1 min), and logs once more (info) when writing works again.
//
// A directory that was missing at Open and appears later is written to, but
// what was in it is not loaded: the state in memory is newer.
func Open(dir string, log *slog.Logger) (*Store, error) {
	return open(dir, log, defaults())
}

func open(dir string, log *slog.Logger, o options) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		dir:     dir,
		base:    dir,
		path:    filepath.Join(dir, FileName),
		file:    filepath.Join(dir, FileName),
		log:     log,
		o:       o,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		exited:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	lk, err := o.fs.Lock(dir)
	switch {
	case errors.Is(err, ErrLocked) || errors.Is(err, ErrUnsafe):
		return nil, fmt.Errorf("state: %w", err)
	case err != nil:
		s.failing = true
		log.Warn("state directory unusable; keeping state in memory and retrying", "dir", dir, "err", err)
		s.loaded = s.read(false)
	default:
		s.lock = lk
		s.adopt(lk)
		removeTemps(o.fs, s.base)
		s.loaded = s.read(true)
	}
	go s.run()
	return s, nil
}

// adopt puts the store's files where the lock lk says they are.
func (s *Store) adopt(lk io.Closer) {
	h, ok := lk.(*held)
	if !ok {
		return
	}
	s.base, s.path, s.file = h.base, filepath.Join(h.shown, FileName), filepath.Join(h.base, FileName)
	if h.shared {
		s.log.Warn("the state directory is writable by other users; vigil keeps its files in its own "+
			"private directory there", "dir", s.dir, "private", h.shown)
	}
}

// read loads the state file. A corrupt or unreadable one is moved aside if
// the lock is held (and left alone otherwise); either way it is logged as an
// error and the state starts fresh.
func (s *Store) read(locked bool) File {
	data, err := s.o.fs.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return s.readShared()
	}
	if err == nil {
		var f File
		if f, err = Decode(data); err == nil {
			return f
		}
	}
	if !locked {
		s.log.Error("state file is corrupt or unreadable; starting fresh", "file", s.path, "err", err)
		return empty()
	}
	aside := s.asideName(time.Now())
	shown := filepath.Join(filepath.Dir(s.path), filepath.Base(aside))
	if rerr := s.o.fs.Rename(s.file, aside); rerr != nil {
		s.log.Error("state file is corrupt or unreadable and cannot be moved aside; starting fresh",
			"file", s.path, "err", err, "rename_err", rerr)
		return empty()
	}
	_ = s.o.fs.SyncDir(s.base)
	s.log.Error("state file is corrupt or unreadable; moved it aside and starting fresh",
		"file", s.path, "moved_to", shown, "err", err)
	return empty()
}

// readShared loads, once, a state file an older vigil left in a state
// directory others can write, now that the files live in the private
// directory: only a regular file of vigil's own with no other name (the
// checks of ReadFile), else nothing. It is never moved or changed: the
// directory is not vigil's alone.
func (s *Store) readShared() File {
	if s.base == s.dir {
		return empty()
	}
	legacy := filepath.Join(s.dir, FileName)
	data, err := s.o.fs.ReadFile(legacy)
	if errors.Is(err, fs.ErrNotExist) {
		return empty()
	}
	var f File
	if err == nil {
		f, err = Decode(data)
	}
	if err != nil {
		s.log.Warn("ignoring the state file in the shared state directory", "file", legacy, "err", err)
		return empty()
	}
	s.log.Info("loaded the state file of the shared state directory; it is kept in the private one from now on",
		"file", legacy, "now", s.path)
	return f
}

// asideName is state.json.corrupt-<UTC time>, with -2, -3, ... if taken.
func (s *Store) asideName(now time.Time) string {
	base := s.file + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; i < 1000; i++ {
		if _, err := s.o.fs.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

// Load returns what was on disk at Open: an empty File (current version, no
// services) if there was no file, or if it was corrupt, truncated, of an
// unknown version or unreadable, in which case it was renamed aside to
// state.json.corrupt-<time> (UTC, e.g. 20261126T031500Z) with an error log
// line. The result is the caller's to change.
func (s *Store) Load() File {
	if s == nil {
		return empty()
	}
	return clone(s.loaded)
}

// Save hands a new snapshot to the writer goroutine and returns at once: it
// never waits for the disk, only for a mutex that is never held across I/O.
// f is copied, so the caller may reuse its map. Bursts coalesce: only the
// newest pending snapshot is written, writes are at least MinInterval apart
// (and the backoff apart while the volume fails), and the newest snapshot is
// always written eventually. A zero f.Updated is set to now. Saves after
// Close are dropped.
func (s *Store) Save(f File) {
	if s == nil {
		return
	}
	f = clone(f)
	if f.Updated.IsZero() {
		f.Updated = time.Now()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.seq++
	s.latest = &f
	s.mu.Unlock()
	s.poke()
}

func (s *Store) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush waits, bounded by ctx, until the newest snapshot given to Save is on
// disk (nil) or an attempt to write it has failed (that error). An attempt
// is made at once, skipping MinInterval and any backoff. It returns ctx's
// error if the disk does not answer in time, and an error wrapping ErrLocked
// if persistence was turned off because another vigil took the directory.
func (s *Store) Flush(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	target := s.seq
	if s.written >= target {
		s.mu.Unlock()
		return nil
	}
	if s.disabled != nil {
		s.mu.Unlock()
		return s.disabled
	}
	s.flushWant++
	gen := s.flushWant
	s.mu.Unlock()
	s.poke()
	for {
		s.mu.Lock()
		if s.written >= target {
			s.mu.Unlock()
			return nil
		}
		if s.flushServed >= gen {
			err := s.lastErr
			s.mu.Unlock()
			return err
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-s.exited:
			return errClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close flushes (bounded: 2 s) and releases the lock. Later Saves are
// dropped. A writer stuck on a hung disk is left behind (and the lock of a
// private directory with it).
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.o.closeWait)
	defer cancel()
	err := s.Flush(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("state: last write not done after %v: %w", s.o.closeWait, err)
	}
	close(s.quit)
	stuck := false
	select {
	case <-s.exited:
	case <-ctx.Done():
		stuck = true
	}
	s.mu.Lock()
	lk := s.lock
	s.lock = nil
	s.mu.Unlock()
	if h, ok := lk.(*held); ok && stuck && h.keep != nil {
		// The stuck writer reaches its files through this descriptor's
		// number: closed, the number could name another directory by the
		// time the writer wakes up. Kept open (and locked) until exit or exec.
		lk = nil
	}
	if lk != nil {
		if cerr := lk.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("state: release the lock: %w", cerr))
		}
	}
	return err
}

// run is the writer goroutine.
func (s *Store) run() {
	defer close(s.exited)
	var next time.Time // earliest next attempt: MinInterval or backoff
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		pending := s.written < s.seq && s.disabled == nil
		urgent := s.flushWant > s.flushServed
		s.mu.Unlock()
		now := time.Now()
		switch {
		case pending && (urgent || !now.Before(next)):
			next = s.attempt()
			continue
		case urgent: // nothing to write
			s.mu.Lock()
			s.flushServed = s.flushWant
			s.broadcast()
			s.mu.Unlock()
			continue
		}
		var wake <-chan time.Time
		if pending {
			timer.Reset(next.Sub(now))
			wake = timer.C
		}
		select {
		case <-s.kick:
		case <-wake:
		case <-s.quit:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// broadcast wakes every Flush; s.mu held.
func (s *Store) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// attempt writes the newest snapshot once and returns when the next attempt
// may start. It logs before it publishes the result, so a Flush that returns
// an error returns after the log line; and it never logs holding s.mu, so a
// slow log cannot block Save.
func (s *Store) attempt() time.Time {
	s.mu.Lock()
	f, seq, gen := s.latest, s.seq, s.flushWant
	s.mu.Unlock()

	err := s.ensureLock()
	if err == nil {
		err = s.write(Encode(*f))
	}
	next := s.account(err)

	s.mu.Lock()
	s.flushServed = max(s.flushServed, gen)
	s.lastErr = err
	if err == nil {
		s.written = seq
		if s.seq == seq {
			s.latest = nil
		}
	}
	if errors.Is(err, ErrLocked) || errors.Is(err, ErrUnsafe) {
		s.disabled = err
	}
	s.broadcast()
	s.mu.Unlock()
	return next
}

// account logs the result of an attempt (a failure once per episode, the
// recovery once) and returns when the next attempt may start.
func (s *Store) account(err error) time.Time {
	now := time.Now()
	switch {
	case err == nil:
		if s.failing {
			s.failing = false
			s.log.Info("state file writable again", "file", s.path)
		}
		s.backoff = 0
		return now.Add(s.o.minInterval)
	case errors.Is(err, ErrLocked):
		s.log.Error("another vigil took the state directory; running without persistence", "dir", s.dir, "err", err)
		return now
	case errors.Is(err, ErrUnsafe):
		s.log.Error("the state directory is not safe to use; running without persistence", "dir", s.dir, "err", err)
		return now
	}
	if s.backoff == 0 {
		s.backoff = s.o.backoffMin
	} else {
		s.backoff = min(2*s.backoff, s.o.backoffMax)
	}
	if !s.failing {
		s.failing = true
		s.log.Warn("cannot write the state file; keeping state in memory and retrying",
			"file", s.path, "err", err, "retry_in", s.backoff)
	} else {
		s.log.Debug("state file still not writable", "file", s.path, "err", err, "retry_in", s.backoff)
	}
	return now.Add(s.backoff)
}

// ensureLock takes the directory's lock if Open could not (the directory was
// missing or unusable then).
func (s *Store) ensureLock() error {
	s.mu.Lock()
	held := s.lock != nil
	s.mu.Unlock()
	if held {
		return nil
	}
	lk, err := s.o.fs.Lock(s.dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.mu.Lock()
	if s.closed && s.quitDone() {
		s.mu.Unlock()
		lk.Close()
		return errClosed
	}
	s.lock = lk
	s.mu.Unlock()
	s.adopt(lk)
	removeTemps(s.o.fs, s.base)
	return nil
}

// quitDone tells whether Close has given up on the writer (and may have
// released the lock already).
func (s *Store) quitDone() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

func (s *Store) write(data []byte) error {
	if s.inPlace {
		return writeInPlace(s.o.fs, s.base, data)
	}
	err := writeAtomic(s.o.fs, s.base, data)
	if !errors.Is(err, errBindMounted) {
		return err
	}
	s.inPlace = true
	s.log.Warn("the state file is a single bind-mounted file: it cannot be replaced atomically, so vigil "+
		"overwrites it in place (a crash mid-write loses it); mount a directory instead",
		"file", s.path)
	return writeInPlace(s.o.fs, s.base, data)
}
