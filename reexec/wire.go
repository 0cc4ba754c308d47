package reexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/reaper"
	"golang.org/x/sys/unix"
)

// The handoff's encoding. It is binary, not JSON: with a thousand services
// encoding/json took some 50 ms of the re-exec's pause, marshalling half a
// megabyte in the old image and decoding it on the new image's cold heap.
//
// Every struct is a record: a 4-byte little-endian length, then its fields
// in a fixed order (unsigned and signed varints, one byte for a bool, 8
// bytes for a float, a length before bytes, a count before a list). A
// record may end before its last fields, which then read as zero, and a
// reader skips what follows the fields it knows. So fields are added only
// at the end of a record, each with a zero value that means what leaving it
// out meant before: a handoff from an older vigil of the same version then
// reads as it did, and the protocol version only changes for anything else.

// errWire is wrapped by every error about a malformed handoff.
var errWire = errors.New("malformed handoff")

type wireWriter struct{ b []byte }

func (w *wireWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *wireWriter) bool(v bool) {
	var c byte
	if v {
		c = 1
	}
	w.b = append(w.b, c)
}

func (w *wireWriter) float(v float64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}

func (w *wireWriter) string(v string) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}

// A list's count is 0 for nil and len+1 otherwise, so nil and empty stay
// apart (reload compares readiness checks with reflect.DeepEqual).
func (w *wireWriter) count(n int, isNil bool) {
	if isNil {
		w.uint(0)
		return
	}
	w.uint(uint64(n) + 1)
}

func (w *wireWriter) bytes(v []byte) {
	w.count(len(v), v == nil)
	w.b = append(w.b, v...)
}

func (w *wireWriter) strings(v []string) {
	w.count(len(v), v == nil)
	for _, s := range v {
		w.string(s)
	}
}

// time keeps the instant, not the monotonic reading (meaningless in another
// image) nor the zone.
func (w *wireWriter) time(t time.Time) {
	w.bool(!t.IsZero())
	if !t.IsZero() {
		w.int(t.UnixNano())
	}
}

func (w *wireWriter) record(fields func()) {
	at := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	fields()
	binary.LittleEndian.PutUint32(w.b[at:], uint32(len(w.b)-at-4))
}

// wireReader reads what wireWriter wrote. Past the end of a record every
// read gives zero; after the first error it gives zero too, and err keeps
// that error.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errWire, what)
	}
	r.b = nil
}

func (r *wireReader) uint() uint64 {
	if len(r.b) == 0 {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) int() int64 {
	if len(r.b) == 0 {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bool() bool {
	if len(r.b) == 0 {
		return false
	}
	c := r.b[0]
	r.b = r.b[1:]
	if c > 1 {
		r.fail("bad bool")
	}
	return c == 1
}

func (r *wireReader) float() float64 {
	if len(r.b) == 0 {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("cut float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	// Every float handed over (backoff factor and jitter of a valid
	// config, the respawn bucket's tokens: bucket.handoff leaves out one
	// that is not a real number) is finite: anything else is damage.
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.fail("float not finite")
		return 0
	}
	return v
}

// size reads a length and checks there is that much left; each list
// element takes a byte at least, so a count is checked the same way
// before anything is allocated for it.
func (r *wireReader) size(n uint64) int {
	if n > uint64(len(r.b)) {
		r.fail("length past the end")
		return 0
	}
	return int(n)
}

func (r *wireReader) string() string {
	n := r.size(r.uint())
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list's count; ok is false for nil.
func (r *wireReader) count() (n int, ok bool) {
	c := r.uint()
	if c == 0 {
		return 0, false
	}
	return r.size(c - 1), r.err == nil
}

func (r *wireReader) bytes() []byte {
	n, ok := r.count()
	if !ok {
		return nil
	}
	v := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *wireReader) strings() []string {
	n, ok := r.count()
	if !ok {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.string()
	}
	return v
}

func (r *wireReader) time() time.Time {
	if !r.bool() {
		return time.Time{}
	}
	return time.Unix(0, r.int())
}

func (r *wireReader) record(fields func()) {
	if len(r.b) == 0 {
		return // not written by an older vigil: all zero
	}
	if len(r.b) < 4 {
		r.fail("cut record")
		return
	}
	n := uint64(binary.LittleEndian.Uint32(r.b))
	if n > uint64(len(r.b)-4) {
		r.fail("record past the end")
		return
	}
	outer := r.b[4+n:]
	r.b = r.b[4 : 4+n]
	fields()
	if r.err == nil {
		// Fields a newer vigil added are skipped.
		r.b = outer
	}
}

// end reports an error if anything follows the top record.
func (r *wireReader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

// AppendBinary appends the handoff's encoding to b.
func (h *Handoff) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.record(func() {
		w.int(int64(h.Generation))
		w.count(len(h.Signals), h.Signals == nil)
		for _, sig := range h.Signals {
			w.int(int64(sig))
		}
		w.count(len(h.Panics), h.Panics == nil)
		for _, t := range h.Panics {
			w.time(t)
		}
		w.int(h.Clock)
		w.bool(h.Bucket != nil)
		if h.Bucket != nil {
			w.record(func() {
				w.float(h.Bucket.Tokens)
				w.int(h.Bucket.Last)
			})
		}
		w.count(len(h.Services), h.Services == nil)
		for i := range h.Services {
			w.handoffService(&h.Services[i])
		}
		w.uint(h.Orphans)
		w.uint(h.Forwarded)
	})
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary wrote.
func (h *Handoff) UnmarshalBinary(data []byte) error {
	r := wireReader{b: data}
	*h = Handoff{}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", errWire)
	}
	r.record(func() {
		h.Generation = int(r.int())
		if n, ok := r.count(); ok {
			h.Signals = make([]int, n)
			for i := range h.Signals {
				h.Signals[i] = int(r.int())
			}
		}
		if n, ok := r.count(); ok {
			h.Panics = make([]time.Time, n)
			for i := range h.Panics {
				h.Panics[i] = r.time()
			}
		}
		h.Clock = r.int()
		if r.bool() {
			h.Bucket = &HandoffBucket{}
			r.record(func() {
				h.Bucket.Tokens = r.float()
				h.Bucket.Last = r.int()
			})
		}
		if n, ok := r.count(); ok {
			h.Services = make([]HandoffService, n)
			for i := range h.Services {
				r.handoffService(&h.Services[i])
			}
		}
		h.Orphans = r.uint()
		h.Forwarded = r.uint()
	})
	return r.end()
}

func (w *wireWriter) handoffService(hs *HandoffService) {
	w.record(func() {
		w.service(&hs.Config)
		w.bool(hs.Main)
		w.string(hs.State)
		w.int(int64(hs.Pid))
		w.int(int64(hs.Pgid))
		w.bool(hs.Exit != nil)
		if hs.Exit != nil {
			w.record(func() {
				w.int(int64(hs.Exit.Pid))
				w.uint(uint64(hs.Exit.Status))
				w.bool(hs.Exit.Orphan)
			})
		}
		w.uint(hs.StartTime)
		w.time(hs.Started)
		w.int(int64(hs.Retries))
		w.int(int64(hs.Restarts))
		w.bool(hs.LastExit != nil)
		if hs.LastExit != nil {
			w.int(int64(*hs.LastExit))
		}
		w.bool(hs.Want)
		w.count(len(hs.Pipes), hs.Pipes == nil)
		for _, p := range hs.Pipes {
			w.record(func() {
				w.int(int64(p.FD))
				w.bool(p.Stderr)
				w.bytes(p.Carry)
				w.int(int64(p.Teed))
			})
		}
		w.int(int64(hs.Notify))
		w.int(hs.Due)
		w.bool(hs.Reserved)
		w.bool(hs.Stopping)
		w.int(hs.KillAt)
		w.bool(hs.RestartAfterStop)
		w.time(hs.NextRun)
		w.time(hs.LastRun)
		w.int(int64(hs.FailedRuns))
		w.bool(hs.RunDue)
		w.bool(hs.LogRing != nil)
		if hs.LogRing != nil {
			w.record(func() {
				// An encoding error leaves the record empty: the new
				// image starts an empty ring.
				if b, err := hs.LogRing.AppendBinary(w.b); err == nil {
					w.b = b
				}
			})
		}
		w.uint(hs.HealthFailures)
		w.bool(hs.WasReady)
	})
}

func (r *wireReader) handoffService(hs *HandoffService) {
	r.record(func() {
		r.service(&hs.Config)
		hs.Main = r.bool()
		hs.State = r.string()
		hs.Pid = int(r.int())
		hs.Pgid = int(r.int())
		if r.bool() {
			hs.Exit = &reaper.Exit{}
			r.record(func() {
				hs.Exit.Pid = int(r.int())
				hs.Exit.Status = unix.WaitStatus(r.uint())
				hs.Exit.Orphan = r.bool()
			})
		}
		hs.StartTime = r.uint()
		hs.Started = r.time()
		hs.Retries = int(r.int())
		hs.Restarts = int(r.int())
		if r.bool() {
			v := int(r.int())
			hs.LastExit = &v
		}
		hs.Want = r.bool()
		if n, ok := r.count(); ok {
			hs.Pipes = make([]HandoffPipe, n)
			for i := range hs.Pipes {
				p := &hs.Pipes[i]
				r.record(func() {
					p.FD = int(r.int())
					p.Stderr = r.bool()
					p.Carry = r.bytes()
					p.Teed = int(r.int())
				})
			}
		}
		hs.Notify = int(r.int())
		hs.Due = r.int()
		hs.Reserved = r.bool()
		hs.Stopping = r.bool()
		hs.KillAt = r.int()
		hs.RestartAfterStop = r.bool()
		hs.NextRun = r.time()
		hs.LastRun = r.time()
		hs.FailedRuns = int(r.int())
		hs.RunDue = r.bool()
		if r.bool() {
			var raw RawBytes
			r.record(func() {
				// Not copied: a megabyte each, copied again by the ring
				// that decodes it.
				raw, r.b = RawBytes(r.b[:len(r.b):len(r.b)]), nil
			})
			if raw == nil {
				raw = RawBytes{}
			}
			hs.LogRing = raw
		}
		hs.HealthFailures = r.uint()
		hs.WasReady = r.bool()
	})
}

func (w *wireWriter) service(c *config.Service) {
	w.record(func() {
		w.string(c.Name)
		w.strings(c.Argv)
		w.bool(c.Shell)
		w.string(c.Dir)
		w.strings(c.Env)
		w.string(c.User)
		w.string(c.Restart)
		w.int(int64(c.MaxRetries))
		w.int(int64(c.Backoff.Initial))
		w.int(int64(c.Backoff.Max))
		w.float(c.Backoff.Factor)
		w.float(c.Backoff.Jitter)
		w.int(int64(c.StableAfter))
		w.int(int64(c.StopSignal))
		w.int(int64(c.StopTimeout))
		w.bool(c.Critical)
		w.strings(c.DependsOn)
		w.bool(c.Ready != nil)
		if rd := c.Ready; rd != nil {
			w.record(func() {
				w.string(rd.TCP)
				w.strings(rd.Exec)
				w.string(rd.File)
				w.int(int64(rd.NotifyFD))
				w.int(int64(rd.Timeout))
				w.string(rd.HTTP)
				w.int(int64(rd.Interval))
				w.int(int64(rd.FailureThreshold))
			})
		}
		w.bool(c.Oneshot)
		w.string(c.Log)
		// Paths only: the values they give are read again by the new
		// image, as at a reload.
		w.count(len(c.EnvFiles), c.EnvFiles == nil)
		for _, f := range c.EnvFiles {
			w.record(func() {
				w.string(f.Path)
				w.bool(f.Optional)
				w.bool(f.TopLevel)
			})
		}
		w.count(len(c.Secrets), c.Secrets == nil)
		for _, sec := range c.Secrets {
			w.record(func() {
				w.string(sec.Var)
				w.string(sec.Path)
			})
		}
		w.bool(c.LogFile != nil)
		if lf := c.LogFile; lf != nil {
			w.record(func() {
				w.string(lf.Path)
				w.int(lf.MaxSize)
				w.int(int64(lf.MaxFiles))
			})
		}
		w.string(c.Schedule)
		w.string(c.Timezone)
		w.string(c.Concurrency)
		w.int(int64(c.StartingDeadline))
		w.string(c.Template)
		w.int(int64(c.Instance))
		w.int(int64(c.Instances))
		w.bool(c.Health != nil)
		if h := c.Health; h != nil {
			w.record(func() {
				w.string(h.TCP)
				w.strings(h.Exec)
				w.string(h.HTTP)
				w.int(int64(h.Interval))
				w.int(int64(h.Timeout))
				w.int(int64(h.StartPeriod))
				w.int(int64(h.FailureThreshold))
			})
		}
	})
}

func (r *wireReader) service(c *config.Service) {
	r.record(func() {
		c.Name = r.string()
		c.Argv = r.strings()
		c.Shell = r.bool()
		c.Dir = r.string()
		c.Env = r.strings()
		c.User = r.string()
		c.Restart = r.string()
		c.MaxRetries = int(r.int())
		c.Backoff.Initial = time.Duration(r.int())
		c.Backoff.Max = time.Duration(r.int())
		c.Backoff.Factor = r.float()
		c.Backoff.Jitter = r.float()
		c.StableAfter = time.Duration(r.int())
		c.StopSignal = syscall.Signal(r.int())
		c.StopTimeout = time.Duration(r.int())
		c.Critical = r.bool()
		c.DependsOn = r.strings()
		if r.bool() {
			rd := &config.Ready{}
			r.record(func() {
				rd.TCP = r.string()
				rd.Exec = r.strings()
				rd.File = r.string()
				rd.NotifyFD = int(r.int())
				rd.Timeout = time.Duration(r.int())
				rd.HTTP = r.string()
				rd.Interval = time.Duration(r.int())
				rd.FailureThreshold = int(r.int())
			})
			c.Ready = rd
		}
		c.Oneshot = r.bool()
		c.Log = r.string()
		if n, ok := r.count(); ok {
			c.EnvFiles = make([]config.EnvFile, 0, n)
			for range n {
				var f config.EnvFile
				r.record(func() {
					f.Path = r.string()
					f.Optional = r.bool()
					f.TopLevel = r.bool()
				})
				c.EnvFiles = append(c.EnvFiles, f)
			}
		}
		if n, ok := r.count(); ok {
			c.Secrets = make([]config.Secret, 0, n)
			for range n {
				var sec config.Secret
				r.record(func() {
					sec.Var = r.string()
					sec.Path = r.string()
				})
				c.Secrets = append(c.Secrets, sec)
			}
		}
		if r.bool() {
			lf := &config.LogFile{}
			r.record(func() {
				lf.Path = r.string()
				lf.MaxSize = r.int()
				lf.MaxFiles = int(r.int())
			})
			c.LogFile = lf
		}
		c.Schedule = r.string()
		c.Timezone = r.string()
		c.Concurrency = r.string()
		c.StartingDeadline = time.Duration(r.int())
		c.Template = r.string()
		c.Instance = int(r.int())
		c.Instances = int(r.int())
		if r.bool() {
			h := &config.Health{}
			r.record(func() {
				h.TCP = r.string()
				h.Exec = r.strings()
				h.HTTP = r.string()
				h.Interval = time.Duration(r.int())
				h.Timeout = time.Duration(r.int())
				h.StartPeriod = time.Duration(r.int())
				h.FailureThreshold = int(r.int())
			})
			c.Health = h
		}
	})
}

// AppendBinary appends the binding's encoding to b.
func (bd *Binding) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.record(func() {
		w.uint(bd.StartTime)
		w.uint(bd.PidNS)
		w.string(bd.BootID)
	})
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary wrote.
func (bd *Binding) UnmarshalBinary(data []byte) error {
	r := wireReader{b: data}
	*bd = Binding{}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", errWire)
	}
	r.record(func() {
		bd.StartTime = r.uint()
		bd.PidNS = r.uint()
		bd.BootID = r.string()
	})
	return r.end()
}
