package svclog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// TimeLayout is the time stamp of each line of a log file: RFC 3339 with
// milliseconds, so lines sort and line up.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// RotatorOptions configure a Rotator.
type RotatorOptions struct {
	FS       FS
	Name     string // the file's base name in FS, e.g. "web.log"
	MaxSize  int64  // rotate before the file would grow past this
	MaxFiles int    // rotated files kept: Name.1 (newest) .. Name.MaxFiles; 0 = none
	UID, GID int    // owner of the files created; -1 = vigil's
	// Queue is how many bytes of lines wait for the writer at most;
	// lines that find it full are dropped and counted. Default 1 MiB.
	Queue int
	// RetryEvery spaces attempts to open or rotate the file again after
	// a failure (default 1s), so a read-only disk costs one failed call
	// per interval, not one per line.
	RetryEvery time.Duration
	Log        *slog.Logger // problems, each logged once until it clears
}

// RotatorStats are a rotator's counters since it started.
type RotatorStats struct {
	Written   uint64 // lines written whole
	Dropped   uint64 // lines lost: queue full, or the file could not take them
	Errors    uint64 // failed opens, writes and rotations
	Rotations uint64
}

// Rotator writes a service's lines to a file in a goroutine of its own,
// rotating it by size. Write never blocks on the disk: a slow, full or
// read-only disk costs dropped lines (counted, and logged once), never a
// stalled service.
type Rotator struct {
	o RotatorOptions

	mu      sync.Mutex
	pending []byte // formatted lines waiting for the writer
	stamp   []byte // the last time stamp formatted, of millisecond stampMs
	stampMs int64
	spare   []byte
	queued  uint64 // lines ever queued (the writer's target for Flush)
	done    uint64 // lines the writer has finished with (written or dropped)
	stats   RotatorStats
	flushed chan struct{} // closed when done moves; nil when nobody waits
	closing bool

	kick    chan struct{}
	exit    chan struct{}
	closeFS func() error // the directory OpenRotator opened

	// The writer goroutine's own.
	f          File
	size       int64
	midLine    bool // a failed write left a partial line in the file
	failing    error
	failedAt   time.Time
	noRotateTo time.Time
	dropMark   uint64
}

// NewRotator starts a rotator. The file is opened by the writer, so a
// problem with it shows in the log and the stats, not here.
func NewRotator(o RotatorOptions) *Rotator { return newRotator(o, nil) }

func newRotator(o RotatorOptions, closeFS func() error) *Rotator {
	if o.Queue <= 0 {
		o.Queue = 1 << 20
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("log_file", o.Name)
	r := &Rotator{o: o, kick: make(chan struct{}, 1), exit: make(chan struct{}), closeFS: closeFS}
	go r.run()
	return r
}

// OpenRotator is NewRotator for the file at path: it opens the directory
// (see OpenDir) and writes path's base name in it.
func OpenRotator(path string, o RotatorOptions) (*Rotator, error) {
	d, err := OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	o.FS, o.Name = d, filepath.Base(path)
	return newRotator(o, d.Close), nil
}

// Write queues a line as "TIME STREAM TEXT\n" and reports whether it was
// queued (false: dropped, the queue is full or the rotator closed).
func (r *Rotator) Write(l Line) bool { return writeText(r, l.Time, l.Stream, l.Text) }

// WriteText is Write for a line in a byte slice, which it does not keep.
func (r *Rotator) WriteText(t time.Time, s Stream, text []byte) bool {
	return writeText(r, t, s, text)
}

func writeText[T []byte | string](r *Rotator, t time.Time, s Stream, text T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.pending)
	if r.closing || n+len(TimeLayout)+8+len(text) > r.o.Queue && n > 0 {
		r.stats.Dropped++
		return false
	}
	// Formatting the time is most of a line's cost, and the lines of one
	// read share their time: formatted once per millisecond.
	if ms := t.UnixMilli(); ms != r.stampMs || r.stamp == nil {
		r.stamp, r.stampMs = t.AppendFormat(r.stamp[:0], TimeLayout), ms
	}
	b := append(r.pending, r.stamp...)
	b = append(b, ' ')
	b = append(b, s.String()...)
	b = append(b, ' ')
	b = append(b, text...)
	r.pending = append(b, '\n')
	r.queued++
	// Only the first line of a batch wakes the writer: it takes all
	// that is pending at once, and a wake-up per line cost a context
	// switch per line.
	if n == 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// Stats returns the counters.
func (r *Rotator) Stats() RotatorStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Flush waits until every line queued before it is written or dropped.
func (r *Rotator) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.queued
	for r.done < target {
		if r.flushed == nil {
			r.flushed = make(chan struct{})
		}
		ch := r.flushed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-r.exit:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}

// Close writes what is queued, closes the file and stops the writer; it
// gives up waiting (the writer then ends on its own) when ctx ends, e.g.
// on a stalled disk at shutdown. Lines written after Close are dropped.
func (r *Rotator) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closing {
		r.closing = true
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	select {
	case <-r.exit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Rotator) run() {
	defer close(r.exit)
	for range r.kick {
		r.mu.Lock()
		batch := r.pending
		r.pending = r.spare[:0]
		closing := r.closing
		r.mu.Unlock()

		written, dropped := r.writeBatch(batch)

		r.mu.Lock()
		r.spare = batch[:0]
		r.stats.Written += written
		r.stats.Dropped += dropped
		r.done += written + dropped
		if r.flushed != nil {
			close(r.flushed)
			r.flushed = nil
		}
		// A line queued after the batch was taken still gets its kick,
		// so only an empty queue ends the loop.
		last := closing && len(r.pending) == 0
		r.mu.Unlock()
		if last {
			if r.f != nil {
				r.f.Close()
			}
			if r.closeFS != nil {
				r.closeFS()
			}
			return
		}
	}
}

// writeBatch writes whole lines, rotating between them, and returns how
// many lines it wrote and dropped.
func (r *Rotator) writeBatch(b []byte) (written, dropped uint64) {
	for len(b) > 0 {
		if r.f == nil && !r.open() {
			return written, dropped + uint64(bytes.Count(b, []byte{'\n'}))
		}
		chunk := wholeLines(b, r.o.MaxSize-r.size)
		if len(chunk) == 0 {
			if r.size > 0 && time.Now().After(r.noRotateTo) {
				r.rotate()
				continue
			}
			// A line longer than max_size goes alone into a new
			// file; while rotation fails, lines go on into the
			// current one: a file over max_size beats lost lines.
			chunk = b
			if r.size == 0 {
				chunk = b[:bytes.IndexByte(b, '\n')+1]
			}
		}
		out := chunk
		if r.midLine {
			out = append([]byte{'\n'}, chunk...)
		}
		n, err := r.f.Write(out)
		if r.midLine && n > 0 {
			r.midLine = false
			n--
		}
		r.size += int64(n)
		if err != nil {
			whole := uint64(bytes.Count(chunk[:n], []byte{'\n'}))
			if n > 0 {
				r.midLine = chunk[n-1] != '\n'
			}
			r.fail("cannot write the log file; its lines are dropped until it works again", err)
			return written + whole, dropped + uint64(bytes.Count(b, []byte{'\n'})) - whole
		}
		written += uint64(bytes.Count(chunk, []byte{'\n'}))
		b = b[len(chunk):]
		r.recovered()
	}
	return written, dropped
}

// wholeLines is the longest prefix of b made of whole lines and at most
// room bytes long.
func wholeLines(b []byte, room int64) []byte {
	if room <= 0 {
		return nil
	}
	if int64(len(b)) <= room {
		return b
	}
	if i := bytes.LastIndexByte(b[:room], '\n'); i >= 0 {
		return b[:i+1]
	}
	return nil
}

func (r *Rotator) open() bool {
	if r.failing != nil && time.Since(r.failedAt) < r.o.RetryEvery {
		return false
	}
	f, size, err := r.o.FS.Open(r.o.Name, r.o.UID, r.o.GID)
	if err != nil {
		r.fail("cannot open the log file; its lines are dropped until it works again", err)
		return false
	}
	r.f, r.size = f, size
	r.midLine = false
	return true
}

// rotate shifts Name.i to Name.i+1 (the oldest is removed) and Name to
// Name.1, and opens a new Name. A failed step is logged and retried at
// RetryEvery; meanwhile the lines go on into the current file.
func (r *Rotator) rotate() {
	name := r.o.Name
	numbered := func(i int) string { return name + "." + strconv.Itoa(i) }
	var err error
	if r.o.MaxFiles == 0 {
		err = r.o.FS.Remove(name)
	} else {
		err = r.o.FS.Remove(numbered(r.o.MaxFiles))
		for i := r.o.MaxFiles - 1; i >= 1 && ignoreMissing(err) == nil; i-- {
			err = r.o.FS.Rename(numbered(i), numbered(i+1))
		}
		if ignoreMissing(err) == nil {
			err = r.o.FS.Rename(name, numbered(1))
		}
	}
	if err = ignoreMissing(err); err != nil {
		r.noRotateTo = time.Now().Add(r.o.RetryEvery)
		r.fail("cannot rotate the log file; it grows past max_size until it can", err)
		return
	}
	r.f.Close()
	r.f = nil
	r.mu.Lock()
	r.stats.Rotations++
	r.mu.Unlock()
	r.open()
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// fail counts an error and logs the first of a run of failures.
func (r *Rotator) fail(msg string, err error) {
	r.mu.Lock()
	r.stats.Errors++
	dropped := r.stats.Dropped
	r.mu.Unlock()
	r.failedAt = time.Now()
	if r.failing == nil {
		r.failing = err
		r.dropMark = dropped
		r.o.Log.Error(msg, "err", err)
	}
}

// recovered logs the end of a run of failures.
func (r *Rotator) recovered() {
	if r.failing == nil {
		return
	}
	r.mu.Lock()
	dropped := r.stats.Dropped - r.dropMark
	r.mu.Unlock()
	r.failing = nil
	r.o.Log.Info("log file writable again", "dropped", dropped)
}
