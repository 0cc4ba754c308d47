package proc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
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
// every prefixed service. Lines are written whole, with one Write call while
// holding the stream's lock, so lines of different services never interleave
// mid-line.
//
// A pump gathers the whole lines of one read into writes of up to batchMax
// bytes: one system call per line made a flood of short lines cost a write(2)
// each. batchMax is PIPE_BUF, so a batch stays atomic on a pipe that
// processes other than vigil (services with log: inherit) write to as well.
type Output struct {
	mu sync.Mutex
	w  io.Writer
	// broken is set once a write fails with EPIPE: the reader of vigil's
	// stdout or stderr is gone for good, so later lines are dropped without
	// a system call (and without one more SIGPIPE each).
	broken error
}

// NewOutput returns an Output writing to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// write writes one whole prefixed line.
func (o *Output) write(line []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken != nil {
		return o.broken
	}
	_, err := o.w.Write(line)
	if errors.Is(err, syscall.EPIPE) {
		o.broken = err
	}
	return err
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

// PumpCarry is Pump starting with carry, the partial line an earlier pump
// of the same stream left. When a read fails with os.ErrDeadlineExceeded
// (vigil interrupts its pumps before a re-exec), it writes every whole line
// it holds and returns the partial one instead of writing it, so the new
// vigil can go on with it: no line is torn or lost across the exec.
func (o *Output) PumpCarry(name string, r io.Reader, carry []byte) (leftover []byte, err error) {
	p := len(name) + len(" | ")
	buf := make([]byte, p+max(initialBuf, len(carry)+1))
	// Unconsumed data is buf[start:end]; start never drops below p, so there
	// is always room for the prefix in front of a line.
	start, end := p, p+copy(buf[p:], carry)
	// split: the last thing written was a MaxLine chunk, so a newline coming
	// next ends that line and is not an empty line of its own.
	split := false
	var werr, rerr error
	write := func(b []byte) {
		if err := o.write(b); err != nil && werr == nil {
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
	// it there, over bytes already consumed.
	emit := func(s, e int) {
		if split && e-s == 1 {
			split = false
			return
		}
		split = false
		if n := p + e - s; n <= batchMax {
			if len(batch)+n > batchMax {
				flush()
			}
			if batch == nil {
				batch = make([]byte, 0, batchMax)
			}
			batch = append(batch, name...)
			batch = append(batch, " | "...)
			batch = append(batch, buf[s:e]...)
			return
		}
		flush()
		copy(buf[s-p:], name)
		copy(buf[s-p+len(name):], " | ")
		write(buf[s-p : e])
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
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			emit(start, start+i+1)
			start += i + 1
		}
		for end-start >= MaxLine {
			if start+MaxLine == len(buf) {
				room() // always moves: the buffer holds maxData > MaxLine
			}
			// Put a newline after the chunk, over the next line's first
			// byte if there is one, and restore that byte after.
			c := start + MaxLine
			saved := buf[c]
			buf[c] = '\n'
			emit(start, c+1)
			split = true
			buf[c] = saved
			start = c
		}
		if start == end {
			start, end = p, p
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			flush()
			return bytes.Clone(buf[start:end]), werr
		}
		if rerr != nil {
			if start < end {
				// A last line without a newline: add one.
				if end == len(buf) {
					room()
				}
				buf[end] = '\n'
				emit(start, end+1)
			}
			flush()
			break
		}
		// Everything whole is out before the pump may block in Read.
		flush()
		if end == len(buf) {
			room()
		}
		free := len(buf) - end
		n, err := r.Read(buf[end:])
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
	return nil, errors.Join(rerr, werr)
}

// grow doubles the data part of buf (after the p bytes kept for the prefix),
// up to maxData, keeping the contents.
func grow(buf []byte, p int) []byte {
	n := min(2*(len(buf)-p)-1, maxData)
	nb := make([]byte, p+n)
	copy(nb, buf)
	return nb
}

// Write writes p whole under the stream's lock, so vigil's own log lines
// never tear or interleave with a service's prefixed lines.
func (o *Output) Write(p []byte) (int, error) {
	if err := o.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}
