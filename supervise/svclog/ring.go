// Package svclog keeps what services write: an in-memory ring of each
// service's last lines (for `vigil logs`, surviving a re-exec) and a
// size-rotated log file per service that never stalls the service.
package svclog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Stream is the stream a line came from.
type Stream uint8

// The streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// Line is one whole line of a service's output, without its newline.
type Line struct {
	Time   time.Time
	Stream Stream
	Text   string
}

// DefaultRingSize is the memory a ring holds at most: the last 1 MiB.
const DefaultRingSize = 1 << 20

const (
	minRingAlloc = 4 << 10
	fixedHeader  = 9 // 8 bytes of time, 1 of stream; then a uvarint length
	maxHeader    = fixedHeader + binary.MaxVarintLen64
)

// ErrClosed is returned by Follower.Next once its ring is closed and read.
var ErrClosed = errors.New("log ring closed")

// Ring is a service's last lines, at most max bytes of them counting a
// small header per line, so a flood of short lines costs no more memory
// than a few long ones. Lines are kept encoded in one byte buffer (no
// allocation and no pointer per line for the garbage collector), which
// starts small and grows to max only for a service that writes that much.
// Append never blocks on a reader.
type Ring struct {
	mu  sync.Mutex
	max int
	buf []byte
	// head and tail are absolute byte positions (the record at p is at
	// buf[p%len(buf)]): [head, tail) holds the records. first and next
	// are the sequence numbers of the record at head and of the next one.
	head, tail  uint64
	first, next uint64
	wake        chan struct{} // closed by Append for waiting followers
	closed      bool
}

// NewRing returns an empty ring of size bytes (DefaultRingSize if max <= 0;
// at least 1 KiB).
func NewRing(size int) *Ring {
	if size <= 0 {
		size = DefaultRingSize
	}
	return &Ring{max: max(size, 1<<10)}
}

// Append adds a line, dropping the oldest ones to make room. A line too long
// for the ring is cut to fit.
func (r *Ring) Append(l Line) { appendText(r, l.Time, l.Stream, l.Text) }

// AppendText is Append for a line in a byte slice, which it does not keep:
// a pump's buffer, without a string made of each line.
func (r *Ring) AppendText(t time.Time, s Stream, text []byte) { appendText(r, t, s, text) }

func appendText[T []byte | string](r *Ring, t time.Time, s Stream, text T) {
	if lim := r.max - maxHeader; len(text) > lim {
		text = text[:lim]
	}
	var hdr [maxHeader]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(t.UnixNano()))
	hdr[8] = byte(s)
	h := fixedHeader + binary.PutUvarint(hdr[fixedHeader:], uint64(len(text)))
	need := uint64(h + len(text))

	r.mu.Lock()
	defer r.mu.Unlock()
	for uint64(len(r.buf))-(r.tail-r.head) < need {
		if len(r.buf) < r.max {
			r.grow(need)
			continue
		}
		_, size := r.header(r.head)
		r.head += size
		r.first++
	}
	r.put(r.tail, hdr[:h])
	putAt(r.buf, r.tail+uint64(h), text)
	r.tail += need
	r.next++
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// grow makes the buffer big enough for need more bytes (or max), keeping
// every record at its absolute position.
func (r *Ring) grow(need uint64) {
	used := r.tail - r.head
	size := max(len(r.buf)*2, minRingAlloc)
	for uint64(size) < used+need && size < r.max {
		size *= 2
	}
	size = min(size, r.max)
	data := make([]byte, used)
	r.get(r.head, data)
	r.buf = make([]byte, size)
	r.put(r.head, data)
}

// put and get copy bytes at an absolute position, across the wrap.
func (r *Ring) put(pos uint64, b []byte) { putAt(r.buf, pos, b) }

func putAt[T []byte | string](buf []byte, pos uint64, b T) {
	i := int(pos % uint64(len(buf)))
	n := copy(buf[i:], b)
	copy(buf, b[n:])
}

func (r *Ring) get(pos uint64, b []byte) {
	if len(b) == 0 {
		return
	}
	i := int(pos % uint64(len(r.buf)))
	n := copy(b, r.buf[i:])
	copy(b[n:], r.buf)
}

type recHeader struct {
	time   int64
	stream Stream
	text   int // length of the text
	hdr    int // length of the header
}

// header decodes the record at pos and returns it with its whole size.
// Records in the buffer were written by Append (or checked by DecodeRing),
// so the header is valid.
func (r *Ring) header(pos uint64) (recHeader, uint64) {
	var b [maxHeader]byte
	n := min(uint64(maxHeader), r.tail-pos)
	r.get(pos, b[:n])
	l, k := binary.Uvarint(b[fixedHeader:n])
	h := recHeader{
		time:   int64(binary.LittleEndian.Uint64(b[:8])),
		stream: Stream(b[8]),
		text:   int(l),
		hdr:    fixedHeader + k,
	}
	return h, uint64(h.hdr + h.text)
}

func (r *Ring) line(pos uint64) (Line, uint64) {
	h, size := r.header(pos)
	text := make([]byte, h.text)
	r.get(pos+uint64(h.hdr), text)
	return Line{Time: time.Unix(0, h.time), Stream: h.stream, Text: string(text)}, size
}

// seek returns the position of record seq (first <= seq <= next).
func (r *Ring) seek(seq uint64) uint64 {
	pos := r.head
	for s := r.first; s < seq; s++ {
		_, size := r.header(pos)
		pos += size
	}
	return pos
}

// Last returns the last n lines (all if n < 0), oldest first.
func (r *Ring) Last(n int) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.first
	if n >= 0 && r.next-r.first > uint64(n) {
		from = r.next - uint64(n)
	}
	out := make([]Line, 0, r.next-from)
	pos := r.seek(from)
	for s := from; s < r.next; s++ {
		l, size := r.line(pos)
		out = append(out, l)
		pos += size
	}
	return out
}

// Len returns the number of lines held and the bytes they take.
func (r *Ring) Len() (lines int, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.next - r.first), int(r.tail - r.head)
}

// Close wakes every follower: Next returns ErrClosed once it has returned
// the lines left. Append after Close still stores lines.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// Follower reads a ring's lines as they come, for `vigil logs -f`. It holds
// no buffer of its own: it is a position in the ring, so a follower that
// reads too slowly never slows the service, it loses the lines the ring
// dropped, and Next says how many.
type Follower struct {
	r        *Ring
	seq, pos uint64
}

// Follow returns a follower that starts with the last n lines held (n = 0:
// only new lines).
func (r *Ring) Follow(n int) *Follower {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.first
	if n >= 0 && r.next-r.first > uint64(n) {
		from = r.next - uint64(n)
	}
	return &Follower{r: r, seq: from, pos: r.seek(from)}
}

// Next waits for lines after those it returned before and returns up to
// limit of them (limit <= 0: all there are), with the number of lines dropped
// by the ring before this follower could read them. It returns ctx's error
// when ctx ends first, and ErrClosed when the ring is closed and every line
// has been returned.
func (f *Follower) Next(ctx context.Context, limit int) (lines []Line, lost uint64, err error) {
	r := f.r
	for {
		r.mu.Lock()
		if f.seq < r.first {
			lost += r.first - f.seq
			f.seq, f.pos = r.first, r.head
		}
		if f.seq < r.next {
			n := r.next - f.seq
			if limit > 0 && n > uint64(limit) {
				n = uint64(limit)
			}
			lines = make([]Line, 0, n)
			for range n {
				l, size := r.line(f.pos)
				lines = append(lines, l)
				f.pos += size
				f.seq++
			}
			r.mu.Unlock()
			return lines, lost, nil
		}
		if r.closed {
			r.mu.Unlock()
			return nil, lost, ErrClosed
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, lost, ctx.Err()
		}
	}
}

// The handoff encoding: a version byte, the ring's max, the number of
// lines, the length of the records, then the records as they sit in the
// buffer (oldest first). Followers are not carried: their connections do
// not survive the re-exec.
const ringVersion = 1

// EncodedLen is the length of the ring's encoding (AppendBinary) now.
func (r *Ring) EncodedLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	used := r.tail - r.head
	return 1 + uvarintLen(uint64(r.max)) + uvarintLen(r.next-r.first) + uvarintLen(used) + int(used)
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// AppendBinary appends the ring's encoding to b.
func (r *Ring) AppendBinary(b []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b = append(b, ringVersion)
	b = binary.AppendUvarint(b, uint64(r.max))
	b = binary.AppendUvarint(b, r.next-r.first)
	used := r.tail - r.head
	b = binary.AppendUvarint(b, used)
	start := len(b)
	b = slices.Grow(b, int(used))[:start+int(used)]
	if used > 0 {
		r.get(r.head, b[start:])
	}
	return b, nil
}

// MaxDecodedRing bounds the max a decoded ring may claim: a handoff is
// trusted less than vigil's own memory.
const MaxDecodedRing = 64 << 20

// DecodeRing reads a ring written by AppendBinary and returns it with the
// bytes that follow it. Every record is checked, so the ring's reads never
// go wrong however the input was damaged.
func DecodeRing(b []byte) (*Ring, []byte, error) {
	bad := func(what string) (*Ring, []byte, error) {
		return nil, nil, fmt.Errorf("log ring handoff: %s", what)
	}
	if len(b) < 1 || b[0] != ringVersion {
		return bad("unknown version")
	}
	b = b[1:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return bad("cut header")
		}
		vals[i], b = v, b[n:]
	}
	maxSize, count, used := vals[0], vals[1], vals[2]
	switch {
	case maxSize < 1<<10 || maxSize > MaxDecodedRing:
		return bad("size out of range")
	case used > maxSize:
		return bad("more data than the ring holds")
	case used > uint64(len(b)):
		return bad("cut data")
	}
	data := b[:used]
	rest := b[used:]
	var lines uint64
	for p := 0; p < len(data); lines++ {
		if len(data)-p < fixedHeader {
			return bad("cut record")
		}
		if s := Stream(data[p+8]); s != Stdout && s != Stderr {
			return bad("unknown stream")
		}
		l, k := binary.Uvarint(data[p+fixedHeader:])
		if k <= 0 || l > uint64(len(data)-p-fixedHeader-k) {
			return bad("cut record")
		}
		p += fixedHeader + k + int(l)
	}
	if lines != count {
		return bad("line count does not match")
	}
	r := NewRing(int(maxSize))
	if used > 0 {
		r.buf = make([]byte, min(int(maxSize), max(minRingAlloc, int(used))))
		copy(r.buf, data)
	}
	r.tail, r.next = used, count
	return r, rest, nil
}
