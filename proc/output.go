package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxLine is the longest line Pump writes as one piece. A longer line is split
// into chunks of MaxLine bytes, each written as a prefixed line of its own
// (with a newline added), rather than buffered whole: a service printing a
// line without end must not make vigil's memory grow without end, and the
// bytes still all arrive, in order, each chunk whole. When the split falls
// right before the line's newline, no empty line is written for it.
const MaxLine = 64 << 10

// initialBuf is the size a pump's buffer starts at. It grows (doubling, up to
// maxData) only when a line does not fit or a read fills it, so a thousand
// quiet services cost a few KiB each rather than MaxLine each.
const initialBuf = 4<<10 + 1

// maxData is the most a pump buffers: a MaxLine chunk and one byte more, where
// the chunk's newline goes.
const maxData = MaxLine + 1

// batchMax is the most a pump writes at once when it gathers lines: PIPE_BUF,
// the size up to which the kernel never splits a write to a pipe.
const batchMax = 4096

// Output is one of vigil's output streams (its stdout or its stderr) shared by
// every prefixed service and, for stderr, by vigil's own log. Lines are
// written whole, with one write while holding the stream's lock, so lines of
// different services never interleave mid-line.
//
// A pump gathers the whole lines of one read into writes of up to batchMax
// bytes: one system call per line made a flood of short lines cost a write(2)
// each. batchMax is PIPE_BUF, so a batch stays atomic on a pipe that
// processes other than vigil (services with log: inherit) write to as well.
//
// Whatever reads the stream (a log driver) may stop reading. A pump then
// waits, and so does the service whose pipe fills: that is the service
// waiting, not vigil. vigil's own log never waits: Write queues the line
// (boundedly, counting what it has to drop) for a goroutine that writes it.
//
// When the stream is a pipe or a terminal, Output writes through a
// description of its own, opened non-blocking: a wait for the reader is a
// poll(2) that Interrupt can end, and a service with log: inherit that sets
// O_NONBLOCK on the description it shares with vigil changes nothing for
// vigil. A pipe vigil may not open again (a non-root vigil and its
// runtime's pipe) is polled for room before each write of at most a page. A
// socket is written with MSG_DONTWAIT. Whatever the stream, a write that
// meets EAGAIN waits with poll(2) for it to take more, rather than dropping
// the line.
type Output struct {
	mu   sync.Mutex
	w    io.Writer // when the stream is no file (tests)
	fd   int       // else the descriptor written to; -1 when w is used
	sock bool      // fd is a socket: send with MSG_DONTWAIT
	fifo bool      // fd is a non-blocking pipe of vigil's own: writes up to PIPE_BUF are whole or refused
	// pollFirst: fd is a pipe shared with services and maybe blocking:
	// poll for room before each write of at most a page.
	pollFirst bool
	keep      any // the files behind fd, kept from their finalizers
	// broken is set once a write fails with EPIPE: the reader of vigil's
	// stdout or stderr is gone for good, so later lines are dropped without
	// a system call (and without one more SIGPIPE each).
	broken error

	// interrupted and wake (an eventfd, -1 when there is none) end the
	// pumps' waits for the reader: see Interrupt.
	interrupted atomic.Bool
	wake        int

	// vigil's own log lines waiting for the writer goroutine.
	qmu      sync.Mutex
	queue    [][]byte
	queued   int // bytes in queue
	dropped  int // lines dropped since the last report
	dropAt   int // queued lines ahead of the first of them: the report goes after those
	idle     chan struct{}
	dropLine func(n int) []byte
	resumed  chan struct{} // closed by Resume; nil when not interrupted
}

// Bounds of the queue of vigil's own log lines: a stalled reader costs at
// most this much memory; further lines are counted and dropped. Large
// enough for a burst from one event with a reader that keeps up (2000
// orphans reaped in one pass log 2000 lines at once, with -w).
const (
	logQueueLines = 4096
	logQueueBytes = 512 << 10
)

// pageSize is what a pipe takes in one write once poll(2) says it has room.
const pageSize = 4096

// ErrInterrupted is returned by a pump whose wait for the reader was ended by
// Interrupt.
var ErrInterrupted = errors.New("output interrupted")

// NewOutput returns an Output writing to w.
func NewOutput(w io.Writer) *Output {
	o := &Output{w: w, fd: -1, wake: -1}
	f, ok := w.(*os.File)
	if !ok {
		return o
	}
	// Through SyscallConn: Fd would make the file blocking.
	rc, err := f.SyscallConn()
	if err != nil {
		return o
	}
	fd := -1
	rc.Control(func(d uintptr) { fd = int(d) })
	var st unix.Stat_t
	if fd < 0 || unix.Fstat(fd, &st) != nil {
		return o
	}
	o.fd, o.keep = fd, f
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		o.sock = true
	case unix.S_IFIFO, unix.S_IFCHR:
		// A pipe or a terminal opened again through /proc is a new open
		// file description of the same pipe or terminal (never for a
		// regular file: that would write from offset 0).
		nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		var nst unix.Stat_t
		if err == nil && (unix.Fstat(nfd, &nst) != nil || nst.Dev != st.Dev || nst.Ino != st.Ino || nst.Rdev != st.Rdev) {
			unix.Close(nfd)
			err = unix.ESTALE
		}
		if err != nil {
			// A non-root vigil may not open a pipe its runtime made
			// (the open checks the pipe's owner and mode). The shared
			// description may be blocking: wait for room before each
			// write instead, so that the wait is a poll Interrupt can
			// end (a write of up to a page then fits, unless a service
			// fills the pipe in between).
			o.pollFirst = st.Mode&unix.S_IFMT == unix.S_IFIFO
			break
		}
		own := os.NewFile(uintptr(nfd), f.Name())
		o.fd, o.keep = nfd, [2]*os.File{f, own}
		o.fifo = st.Mode&unix.S_IFMT == unix.S_IFIFO
	}
	if efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		o.wake = efd
	}
	return o
}

// Close releases the description and the eventfd Output opened of its
// own; the stream it was given stays open. For tests: vigil's outputs live
// as long as vigil.
func (o *Output) Close() error {
	if own, ok := o.keep.([2]*os.File); ok {
		own[1].Close()
	}
	if o.wake >= 0 {
		unix.Close(o.wake)
		o.wake = -1
	}
	return nil
}

// write writes b whole (a batch of whole lines) under the stream's lock and
// returns how much of it went out. An interruptible write (a pump's) returns
// ErrInterrupted when it would have to wait for the reader after Interrupt.
func (o *Output) write(b []byte, interruptible bool) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken != nil {
		return 0, o.broken
	}
	var n int
	var err error
	if o.fd < 0 {
		n, err = o.w.Write(b)
	} else {
		n, err = o.writeFD(b, interruptible)
	}
	if errors.Is(err, syscall.EPIPE) {
		o.broken = err
	}
	return n, err
}

// writeFD writes b to o.fd, waiting with poll(2) while the stream is full.
func (o *Output) writeFD(b []byte, interruptible bool) (int, error) {
	done := 0
	for done < len(b) {
		var n int
		var err error
		switch {
		case o.sock:
			n, err = unix.SendmsgN(o.fd, b[done:], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		case o.pollFirst:
			if err := o.waitWritable(interruptible); err != nil {
				return done, err
			}
			n, err = unix.Write(o.fd, b[done:min(len(b), done+pageSize)])
		default:
			n, err = unix.Write(o.fd, b[done:])
		}
		if n > 0 {
			done += n
		}
		switch {
		case err == nil, err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := o.waitWritable(interruptible); err != nil {
				return done, err
			}
		default:
			return done, &os.PathError{Op: "write", Path: "output", Err: err}
		}
	}
	return done, nil
}

// waitWritable waits until o.fd takes more, or, for an interruptible wait,
// until Interrupt.
func (o *Output) waitWritable(interruptible bool) error {
	fds := []unix.PollFd{{Fd: int32(o.fd), Events: unix.POLLOUT}}
	if interruptible && o.wake >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(o.wake), Events: unix.POLLIN})
	}
	for {
		if interruptible && o.interrupted.Load() {
			return ErrInterrupted
		}
		_, err := unix.Poll(fds, -1)
		if err != nil && err != unix.EINTR {
			return &os.PathError{Op: "poll", Path: "output", Err: err}
		}
		if fds[0].Revents != 0 {
			// Writable, or an error the next write reports.
			return nil
		}
	}
}

// Interrupt ends every pump's wait for the reader and makes later ones
// return at once, until Resume: a re-exec must not wait on a log driver
// that stopped reading. A pump so interrupted returns what it could not
// write, to be handed over (see PumpCarry). A wait in a blocking write(2)
// (the stream has no description of vigil's own) cannot be ended.
func (o *Output) Interrupt() {
	if o == nil {
		return
	}
	o.qmu.Lock()
	if o.resumed == nil {
		o.resumed = make(chan struct{})
	}
	o.qmu.Unlock()
	o.interrupted.Store(true)
	if o.wake >= 0 {
		unix.Write(o.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// Resume undoes Interrupt.
func (o *Output) Resume() {
	if o == nil {
		return
	}
	o.interrupted.Store(false)
	if o.wake >= 0 {
		var b [8]byte
		unix.Read(o.wake, b[:])
	}
	o.qmu.Lock()
	if o.resumed != nil {
		close(o.resumed)
		o.resumed = nil
	}
	o.qmu.Unlock()
}

// Write queues p, one or more whole lines of vigil's own log, and returns
// at once: vigil's log must never block its caller (the main loop) behind a
// reader that stopped reading. A goroutine writes the queue out in order,
// under the stream's lock like every line. When the queue is full the line
// is dropped and counted; the count is reported once the reader is back.
func (o *Output) Write(p []byte) (int, error) {
	o.qmu.Lock()
	defer o.qmu.Unlock()
	if o.idle == nil && o.dropped == 0 && o.tryWrite(p) {
		return len(p), nil
	}
	if len(o.queue) >= logQueueLines || o.queued+len(p) > logQueueBytes {
		if o.dropped == 0 {
			o.dropAt = len(o.queue)
		}
		o.dropped++
		return len(p), nil
	}
	o.queue = append(o.queue, bytes.Clone(p))
	o.queued += len(p)
	if o.idle == nil {
		o.idle = make(chan struct{})
		go o.drain(o.idle)
	}
	return len(p), nil
}

// tryWrite writes a line at once when that cannot block nor tear it: to a
// pipe vigil opened non-blocking, a write of up to PIPE_BUF goes in whole or
// not at all, and only when no pump holds the stream. Lines then appear in
// the order they were logged, with no goroutine woken for them; anything
// else goes through the queue.
func (o *Output) tryWrite(p []byte) bool {
	if !o.fifo || o.pollFirst || len(p) > pipeBuf || o.interrupted.Load() || !o.mu.TryLock() {
		return false
	}
	defer o.mu.Unlock()
	if o.broken != nil {
		return true // dropped, as the queue would
	}
	for {
		n, err := unix.Write(o.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, syscall.EPIPE):
			o.broken = err
			return true
		case err != nil || n != len(p):
			return n == len(p)
		}
		return true
	}
}

// pipeBuf is what a pipe takes whole or not at all (POSIX PIPE_BUF, Linux).
const pipeBuf = 4096

// SetDropLine sets how the report of dropped log lines is written, so it
// has the log's format; by default a plain line.
func (o *Output) SetDropLine(f func(n int) []byte) {
	o.qmu.Lock()
	defer o.qmu.Unlock()
	o.dropLine = f
}

// drain writes the queue out until it is empty, then ends (closing idle):
// no goroutine lingers for a quiet log.
func (o *Output) drain(idle chan struct{}) {
	var batch []byte
	for {
		o.qmu.Lock()
		batch = batch[:0]
		// Whole lines, up to batchMax (at least one), in one write; the
		// report of dropped lines goes where they were dropped, once the
		// lines queued before them are out: the reader is back.
		i := 0
		for ; i < len(o.queue) && (i == 0 || len(batch)+len(o.queue[i]) <= batchMax); i++ {
			if o.dropped > 0 {
				if o.dropAt == 0 {
					break
				}
				o.dropAt--
			}
			batch = append(batch, o.queue[i]...)
			o.queued -= len(o.queue[i])
			o.queue[i] = nil
		}
		o.queue = o.queue[i:]
		if len(o.queue) == 0 {
			o.queue = nil // let the backing array go
		}
		if o.dropped > 0 && o.dropAt == 0 {
			if o.dropLine != nil {
				batch = append(batch, o.dropLine(o.dropped)...)
			} else {
				batch = fmt.Appendf(batch, "vigil: %d log lines dropped: stderr was not read\n", o.dropped)
			}
			o.dropped = 0
		}
		if len(batch) == 0 {
			o.idle = nil
			o.qmu.Unlock()
			close(idle)
			return
		}
		o.qmu.Unlock()
		// Interruptible too: a pump that Interrupt must stop may be
		// waiting for the stream's lock, which this write holds.
		n, err := o.write(batch, true)
		if errors.Is(err, ErrInterrupted) {
			o.qmu.Lock()
			o.queue = append([][]byte{bytes.Clone(batch[n:])}, o.queue...)
			o.queued += len(batch) - n
			if o.dropped > 0 {
				o.dropAt++ // these went before the drops
			}
			resumed := o.resumed
			o.qmu.Unlock()
			if resumed != nil {
				<-resumed
			}
		}
	}
}

// Flush waits up to timeout for vigil's queued log lines to be written and
// reports whether they were. vigil calls it before it exits or re-execs.
func (o *Output) Flush(timeout time.Duration) bool {
	if o == nil {
		return true
	}
	o.qmu.Lock()
	idle := o.idle
	o.qmu.Unlock()
	if idle == nil {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// Pump copies r to o line by line, each line as "name | line\n", until r
// reaches EOF or fails; it returns nil at EOF (a service closing its output is
// not an error). A last line without a newline is written with one added.
//
// Lines are passed on byte for byte (a CR before the newline stays). A line
// is held until its newline arrives, EOF, or it reaches MaxLine bytes (see
// MaxLine). When a write fails, Pump keeps reading r to the end, so the
// service never blocks on a full pipe, and drops the lines it cannot write;
// nothing is reported per line. The error returned is r's read error if it
// failed other than with EOF, joined with the first write error, if any: at
// most one error per pump for the caller to log.
//
// Memory per pump is one buffer of at most MaxLine plus the prefix, grown
// from a few KiB only as needed; the prefix is written into the buffer in
// front of each line, over bytes already consumed, so a line costs no
// allocation and no copy.
func (o *Output) Pump(name string, r io.Reader) error {
	_, err := o.PumpCarry(name, r, nil)
	return err
}

// PumpCarry is Pump starting with carry, what an earlier pump of the same
// stream left. When a read fails with os.ErrDeadlineExceeded (vigil stops its
// pumps before a re-exec), it writes every whole line it holds and returns
// the partial one instead of writing it, so the new vigil can go on with it:
// no line is torn or lost across the exec. When a wait for the reader is
// ended by Interrupt, it returns ErrInterrupted and, as leftover, everything
// it took in but did not write, without prefixes, in order: the lines of the
// batch that did not go out, then the rest of its buffer. Nothing is lost or
// written twice; only a line longer than a pipe takes at once that was cut
// mid-write goes on, after the exec, under a prefix of its own.
func (o *Output) PumpCarry(name string, r io.Reader, carry []byte) (leftover []byte, err error) {
	leftover, _, err = o.PumpTee(PumpOptions{Prefix: name + " | "}, r, carry)
	return leftover, err
}

// PumpOptions are the choices of PumpTee.
type PumpOptions struct {
	// Prefix goes in front of every line written ("web | "); "" writes
	// the lines as they are (log: inherit passed through vigil).
	Prefix string
	// Tee, if set, is given every whole line as it is taken for writing
	// (without its newline; a MaxLine chunk counts as a line) and the time
	// the read that completed it returned (one clock reading per read, not
	// per line), on the pump's goroutine. It must not keep the slice, and
	// must not block: it runs between the reads that keep the service's
	// pipe from filling.
	Tee func(line []byte, at time.Time)
	// Teed is how many bytes at the front of the carry were given to Tee
	// by the pump that left them (see PumpTee's teed): not given again.
	Teed int
}

// PumpTee is PumpCarry with the options o. It also returns teed: how many
// bytes at the front of leftover were given to Tee already (lines whose
// write was interrupted), for the next pump's PumpOptions.Teed, so that
// across a re-exec no line reaches Tee twice or never.
func (o *Output) PumpTee(opt PumpOptions, r io.Reader, carry []byte) (leftover []byte, teed int, err error) {
	prefix := opt.Prefix
	p := len(prefix)
	skip := opt.Teed
	// readAt is when the last read returned: the time of the lines it
	// completed (a carry's, when this pump started).
	var readAt time.Time
	if opt.Tee != nil {
		readAt = time.Now()
	}
	buf := make([]byte, p+max(initialBuf, len(carry)+1))
	// Unconsumed data is buf[start:end]; start never drops below p, so there
	// is always room for the prefix in front of a line.
	start, end := p, p+copy(buf[p:], carry)
	// split: the last thing written was a MaxLine chunk, so a newline coming
	// next ends that line and is not an empty line of its own.
	split := false
	var werr, rerr error
	// held is what an interrupted write did not write, as the service wrote
	// it (prefixes taken off); interrupted says the pump must stop.
	var held []byte
	interrupted := false
	write := func(b []byte) {
		n, err := o.write(b, true)
		switch {
		case errors.Is(err, ErrInterrupted):
			interrupted = true
			held = unprefix(b, n, p)
		case err != nil && werr == nil:
			werr = err
		}
	}
	// batch gathers prefixed lines for one write; allocated at the first
	// line that goes into it, so a quiet service never pays for it.
	var batch []byte
	flush := func() {
		if len(batch) > 0 {
			write(batch)
			batch = batch[:0]
		}
	}
	// emit writes buf[s:e] (ending in '\n') with the prefix in front: into
	// the batch, or, for a line too long for one, flushing the batch and
	// writing the line straight from buf with the prefix put in front of
	// it there, over bytes already consumed. It reports whether the line
	// was taken (written, batched, or held after an interrupted write of
	// its own); after an interrupted flush it was not.
	var put func(s, e int) bool
	emit := func(s, e int) bool {
		if split && e-s == 1 {
			split = false
			return true
		}
		split = false
		if !put(s, e) {
			return false
		}
		// Taken, written or held: given to tee now, once.
		if skip > 0 {
			skip -= e - s
		} else if opt.Tee != nil {
			opt.Tee(buf[s:e-1], readAt)
		}
		return true
	}
	put = func(s, e int) bool {
		if n := p + e - s; n <= batchMax {
			if len(batch)+n > batchMax {
				if flush(); interrupted {
					return false
				}
			}
			if batch == nil {
				batch = make([]byte, 0, batchMax)
			}
			batch = append(batch, prefix...)
			batch = append(batch, buf[s:e]...)
			return true
		}
		if flush(); interrupted {
			return false
		}
		copy(buf[s-p:], prefix)
		write(buf[s-p : e])
		return true
	}
	// stop is the interrupted pump's result: what it held went to tee.
	stop := func() ([]byte, int, error) {
		return append(held, buf[start:end]...), len(held) + max(skip, 0), errors.Join(ErrInterrupted, werr)
	}
	// room makes buf[end] exist: it moves the pending bytes to the front of
	// the buffer, or grows it if they are there already.
	room := func() {
		if start > p {
			end = p + copy(buf[p:], buf[start:end])
			start = p
		} else {
			buf = grow(buf, p)
		}
	}
	for {
		for !interrupted {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			if emit(start, start+i+1) {
				start += i + 1
			}
		}
		for !interrupted && end-start >= MaxLine {
			if start+MaxLine == len(buf) {
				room() // always moves: the buffer holds maxData > MaxLine
			}
			// Put a newline after the chunk, over the next line's first
			// byte if there is one, and restore that byte after.
			c := start + MaxLine
			saved := buf[c]
			buf[c] = '\n'
			took := emit(start, c+1)
			buf[c] = saved
			if took {
				split = true
				start = c
			}
		}
		if interrupted {
			return stop()
		}
		if start == end {
			start, end = p, p
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			if flush(); interrupted {
				return stop()
			}
			return bytes.Clone(buf[start:end]), max(skip, 0), werr
		}
		if rerr != nil {
			if start < end {
				// A last line without a newline: add one.
				if end == len(buf) {
					room()
				}
				buf[end] = '\n'
				if emit(start, end+1) {
					start = end
				}
			}
			if flush(); interrupted {
				return stop()
			}
			break
		}
		// Everything whole is out before the pump may block in Read.
		if flush(); interrupted {
			return stop()
		}
		if end == len(buf) {
			room()
		}
		free := len(buf) - end
		n, err := r.Read(buf[end:])
		if opt.Tee != nil {
			readAt = time.Now()
		}
		end += n
		rerr = err
		if n == free && len(buf)-p < maxData {
			// A read filled the buffer: a busy stream, read more at once.
			buf = grow(buf, p)
		}
	}
	if errors.Is(rerr, io.EOF) {
		rerr = nil
	}
	return nil, 0, errors.Join(rerr, werr)
}

// unprefix is what of b, prefixed lines of which the first n bytes were
// written, is still to go, with the p-byte prefixes taken off: as the
// service wrote it, for the next pump to prefix again. The line cut at n
// keeps only its unwritten part.
func unprefix(b []byte, n, p int) []byte {
	var out []byte
	for i := bytes.LastIndexByte(b[:n], '\n') + 1; i < len(b); {
		e := len(b)
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			e = i + j + 1
		}
		from := min(i+p, e)
		if n > from {
			from = n
		}
		out = append(out, b[from:e]...)
		i = e
	}
	if out == nil {
		out = []byte{}
	}
	return out
}

// grow doubles the data part of buf (after the p bytes kept for the prefix),
// up to maxData, keeping the contents.
func grow(buf []byte, p int) []byte {
	// Never smaller: a carry handed over may exceed maxData.
	n := max(min(2*(len(buf)-p)-1, maxData), len(buf)-p)
	nb := make([]byte, p+n)
	copy(nb, buf)
	return nb
}
