package config

import (
	"fmt"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON parser that keeps the byte offset of every value and key, so
// that the config's validation can name the line:column of each problem.
// encoding/json stops at the first error and has no offsets for fields; this
// one builds the whole tree first and leaves every semantic check to the
// caller. It follows RFC 8259 strictly (no comments, no trailing commas, UTF-8
// only) except that a leading UTF-8 byte order mark is skipped. Numbers are
// kept as their literal text, so integers are exact.

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (k jkind) String() string {
	switch k {
	case jNull:
		return "null"
	case jBool:
		return "a boolean"
	case jNumber:
		return "a number"
	case jString:
		return "a string"
	case jArray:
		return "an array"
	default:
		return "an object"
	}
}

// jnode is one JSON value.
type jnode struct {
	kind    jkind
	off     int    // byte offset of the value's first byte
	str     string // a string's value, or a number's literal text
	b       bool
	elems   []*jnode  // array elements
	members []jmember // object members in document order, duplicates included
}

type jmember struct {
	key    string
	keyOff int // byte offset of the key's opening quote
	val    *jnode
}

// jsonError is a syntax error at a byte offset.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// maxDepth bounds nesting: a config needs a handful of levels, and the bound
// keeps hostile input from growing the stack without end.
const maxDepth = 200

// jparser allocates little per value: a config of a thousand services is
// parsed again at each re-exec, inside the pause, and its 14 000 small
// allocations were most of the cost there. Nodes come from slabs; members and
// elements are gathered on stacks shared by all levels and copied once into
// a slice of the right size; object keys, the same few over and over, are
// each allocated once.
type jparser struct {
	data  []byte
	i     int
	depth int

	slab    []jnode
	members []jmember
	elems   []*jnode
	keys    map[string]string
}

// jslab is how many nodes are allocated at a time.
const jslab = 256

func (p *jparser) node(n jnode) *jnode {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]jnode, 0, jslab)
	}
	p.slab = append(p.slab, n)
	return &p.slab[len(p.slab)-1]
}

// key returns an object key, allocated once per distinct key.
func (p *jparser) key(b []byte) string {
	if k, ok := p.keys[string(b)]; ok {
		return k
	}
	k := string(b)
	p.keys[k] = k
	return k
}

// parseJSON parses exactly one JSON value, surrounded by optional white space.
func parseJSON(data []byte) (*jnode, *jsonError) {
	p := &jparser{data: data, keys: make(map[string]string)}
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		p.i = 3
	}
	p.ws()
	if p.i >= len(p.data) {
		return nil, &jsonError{p.i, "empty document"}
	}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i < len(p.data) {
		return nil, p.errHere("after the end of the document")
	}
	return n, nil
}

func (p *jparser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// errHere reports the byte at p.i (or the end of input) as unexpected.
func (p *jparser) errHere(context string) *jsonError {
	if p.i >= len(p.data) {
		return &jsonError{p.i, "unexpected end of input " + context}
	}
	return &jsonError{p.i, "unexpected " + describeByte(p.data, p.i) + " " + context}
}

func describeByte(data []byte, i int) string {
	r, size := utf8.DecodeRune(data[i:])
	switch {
	case r == utf8.RuneError && size <= 1:
		return fmt.Sprintf("byte 0x%02x", data[i])
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf("control character %U", r)
	default:
		return fmt.Sprintf("character %q", r)
	}
}

func (p *jparser) value() (*jnode, *jsonError) {
	p.ws()
	if p.i >= len(p.data) {
		return nil, p.errHere("looking for a value")
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		off := p.i
		s, err := p.string(false)
		if err != nil {
			return nil, err
		}
		return p.node(jnode{kind: jString, off: off, str: s}), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", jnode{kind: jBool, off: p.i, b: true})
	case c == 'f':
		return p.literal("false", jnode{kind: jBool, off: p.i})
	case c == 'n':
		return p.literal("null", jnode{kind: jNull, off: p.i})
	default:
		return nil, p.errHere("looking for a value")
	}
}

func (p *jparser) literal(word string, n jnode) (*jnode, *jsonError) {
	for k := 0; k < len(word); k++ {
		if p.i >= len(p.data) || p.data[p.i] != word[k] {
			return nil, p.errHere("in literal " + word)
		}
		p.i++
	}
	return p.node(n), nil
}

func (p *jparser) enter() *jsonError {
	p.depth++
	if p.depth > maxDepth {
		return &jsonError{p.i, fmt.Sprintf("nested more than %d levels deep", maxDepth)}
	}
	return nil
}

func (p *jparser) object() (*jnode, *jsonError) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := p.node(jnode{kind: jObject, off: p.i})
	p.i++ // {
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return n, nil
	}
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	for {
		p.ws()
		if p.i >= len(p.data) || p.data[p.i] != '"' {
			return nil, p.errHere("looking for an object key (a string)")
		}
		keyOff := p.i
		key, err := p.string(true)
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return nil, p.errHere("after an object key (want ':')")
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.members = append(p.members, jmember{key: key, keyOff: keyOff, val: v})
		p.ws()
		if p.i < len(p.data) {
			switch p.data[p.i] {
			case ',':
				p.i++
				continue
			case '}':
				p.i++
				n.members = append([]jmember(nil), p.members[base:]...)
				return n, nil
			}
		}
		return nil, p.errHere("after an object value (want ',' or '}')")
	}
}

func (p *jparser) array() (*jnode, *jsonError) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := p.node(jnode{kind: jArray, off: p.i})
	p.i++ // [
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
		return n, nil
	}
	base := len(p.elems)
	defer func() { p.elems = p.elems[:base] }()
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		p.ws()
		if p.i < len(p.data) {
			switch p.data[p.i] {
			case ',':
				p.i++
				continue
			case ']':
				p.i++
				n.elems = append([]*jnode(nil), p.elems[base:]...)
				return n, nil
			}
		}
		return nil, p.errHere("after an array element (want ',' or ']')")
	}
}

func (p *jparser) number() (*jnode, *jsonError) {
	start := p.i
	digits := func() int {
		k := 0
		for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
			p.i++
			k++
		}
		return k
	}
	if p.data[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.data) && p.data[p.i] == '0':
		p.i++
	case digits() == 0:
		return nil, p.errHere("in a number (want a digit)")
	}
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errHere("after a decimal point (want a digit)")
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errHere("in a number's exponent (want a digit)")
		}
	}
	return p.node(jnode{kind: jNumber, off: start, str: string(p.data[start:p.i])}), nil
}

// string reads a string starting at its opening quote and returns its value;
// key: it is an object key.
func (p *jparser) string(key bool) (string, *jsonError) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.data) {
		c := p.data[p.i]
		if c == '"' {
			var s string
			if key {
				s = p.key(p.data[start:p.i])
			} else {
				s = string(p.data[start:p.i])
			}
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.data[start:p.i]...)
	for {
		if p.i >= len(p.data) {
			return "", p.errHere("in a string (missing closing quote)")
		}
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errHere("in a string (escape it)")
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			buf = utf8.AppendRune(buf, r)
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.data[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", &jsonError{p.i, "invalid UTF-8 in a string"}
			}
			buf = append(buf, p.data[p.i:p.i+size]...)
			p.i += size
		}
	}
}

// escape reads one escape sequence at p.i (the backslash).
func (p *jparser) escape() (rune, *jsonError) {
	at := p.i
	if p.i+1 >= len(p.data) {
		p.i++
		return 0, p.errHere("in a string escape")
	}
	c := p.data[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return 0, &jsonError{at, `invalid \u escape (want 4 hex digits)`}
		}
		if utf16.IsSurrogate(r) {
			// A pair is two escapes; a lone half becomes U+FFFD, as
			// encoding/json does.
			save := p.i
			if p.i+1 < len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
				p.i += 2
				if r2, ok := p.hex4(); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						return dec, nil
					}
				}
			}
			p.i = save
			return utf8.RuneError, nil
		}
		return r, nil
	default:
		return 0, &jsonError{at, fmt.Sprintf("invalid escape %q in a string", "\\"+string(rune(c)))}
	}
}

func (p *jparser) hex4() (rune, bool) {
	if p.i+4 > len(p.data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.data[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// lineIndex turns byte offsets into 1-based line:column in O(log n): columns
// count characters (UTF-8 sequences; a tab is one), computed from character
// counts kept at every blockSize bytes, so that many problems on one long
// line cost no more than a few on a short one.
type lineIndex struct {
	data   []byte
	starts []int // byte offset of each line's first byte
	blocks []int // blocks[k]: characters in data[:k*blockSize]
}

const blockSize = 64

func newLineIndex(data []byte) lineIndex {
	starts := []int{0}
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		starts[0] = 3 // a byte order mark takes no column
	}
	blocks := make([]int, len(data)/blockSize+1)
	n := 0
	for i, c := range data {
		if i%blockSize == 0 {
			blocks[i/blockSize] = n
		}
		if c == '\n' {
			starts = append(starts, i+1)
		}
		if isCharStart(c) {
			n++
		}
	}
	if len(data)%blockSize == 0 {
		blocks[len(data)/blockSize] = n
	}
	return lineIndex{data: data, starts: starts, blocks: blocks}
}

// isCharStart reports whether c starts a character: any byte but a UTF-8
// continuation byte. (A stray continuation byte, only possible in a document
// that is not UTF-8, then takes no column.)
func isCharStart(c byte) bool { return c&0xC0 != 0x80 }

// chars counts the characters in data[:off].
func (l lineIndex) chars(off int) int {
	k := off / blockSize
	n := l.blocks[k]
	for _, c := range l.data[k*blockSize : off] {
		if isCharStart(c) {
			n++
		}
	}
	return n
}

func (l lineIndex) pos(off int) Pos {
	if off > len(l.data) {
		off = len(l.data)
	}
	if off < l.starts[0] {
		off = l.starts[0]
	}
	line := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > off }) - 1
	return Pos{Line: line + 1, Col: l.chars(off) - l.chars(l.starts[line]) + 1}
}
