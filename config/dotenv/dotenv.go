// Package dotenv reads environment files in the dotenv form that docker
// compose and most dotenv libraries accept: KEY=VALUE lines, an optional
// "export " prefix, # comments, single quotes (literal) and double quotes
// (with \n, \r, \t, \" and \\ escapes). There is no variable expansion: a
// "$" is just a character, as in the service's argv.
//
// Values are secrets until proven otherwise: no error of this package ever
// quotes one, only the file and the line.
package dotenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// MaxSize is the largest env file Read accepts. An env file is a few
// kilobytes; a bigger one is a mistake (or a hostile file) and would end up
// in every exec of the service anyway.
const MaxSize = 1 << 20

// Var is one assignment, in file order.
type Var struct {
	Key   string
	Value string
	Line  int // 1-based line of the key
}

// Error is a syntax error: where, never what the value was.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ValidKey reports whether k is [A-Za-z_][A-Za-z0-9_]*.
func ValidKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

// Parse reads a dotenv document. file only names it in errors. A key given
// twice keeps its last value, as docker compose does; both are returned.
func Parse(data []byte, file string) ([]Var, error) {
	// A byte order mark, as some Windows editors write, is not a key.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := parser{src: data, file: file, line: 1}
	// A CRLF file (edited on Windows) reads as its LF twin; a CR elsewhere
	// is data.
	if bytes.Contains(data, []byte("\r\n")) {
		p.src = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	var out []Var
	for {
		v, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, v)
	}
}

type parser struct {
	src  []byte
	i    int
	file string
	line int
}

func (p *parser) fail(line int, format string, a ...any) error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (p *parser) skipBlanks() {
	for p.i < len(p.src) && isBlank(p.src[p.i]) {
		p.i++
	}
}

// restOfLine skips to just after the next newline (or the end).
func (p *parser) restOfLine() {
	if j := bytes.IndexByte(p.src[p.i:], '\n'); j >= 0 {
		p.i += j + 1
		p.line++
		return
	}
	p.i = len(p.src)
}

// next returns the next assignment, ok=false at the end.
func (p *parser) next() (Var, bool, error) {
	for {
		p.skipBlanks()
		if p.i >= len(p.src) {
			return Var{}, false, nil
		}
		switch p.src[p.i] {
		case '\n':
			p.i++
			p.line++
			continue
		case '#':
			p.restOfLine()
			continue
		}
		break
	}
	line := p.line
	start := p.i
	for p.i < len(p.src) && p.src[p.i] != '=' && p.src[p.i] != '\n' && !isBlank(p.src[p.i]) {
		p.i++
	}
	key := string(p.src[start:p.i])
	if key == "export" {
		p.skipBlanks()
		if p.i < len(p.src) && p.src[p.i] != '=' && p.src[p.i] != '\n' {
			start = p.i
			for p.i < len(p.src) && p.src[p.i] != '=' && p.src[p.i] != '\n' && !isBlank(p.src[p.i]) {
				p.i++
			}
			key = string(p.src[start:p.i])
		}
	}
	p.skipBlanks()
	// The key is not quoted in errors either: a line that is not an
	// assignment may well be the second line of a value.
	if !ValidKey(key) {
		return Var{}, false, p.fail(line, "want KEY=VALUE with a KEY of letters, digits and '_', not starting with a digit")
	}
	if p.i >= len(p.src) || p.src[p.i] != '=' {
		// Not named: a lone word may be a value pasted on its own line.
		return Var{}, false, p.fail(line, "missing '=' (want KEY=VALUE)")
	}
	p.i++
	p.skipBlanks()
	val, err := p.value(line, key)
	if err != nil {
		return Var{}, false, err
	}
	if strings.IndexByte(val, 0) >= 0 {
		return Var{}, false, p.fail(line, "variable %s: the value contains a NUL byte", key)
	}
	return Var{Key: key, Value: val, Line: line}, true, nil
}

// value reads what follows "KEY=" up to and including the end of its line.
func (p *parser) value(line int, key string) (string, error) {
	if p.i >= len(p.src) {
		return "", nil
	}
	switch q := p.src[p.i]; q {
	case '\'', '"':
		p.i++
		var b strings.Builder
		closed := false
		for p.i < len(p.src) {
			c := p.src[p.i]
			p.i++
			if c == q {
				closed = true
				break
			}
			if c == '\n' {
				p.line++
			}
			if c == '\\' && q == '"' && p.i < len(p.src) {
				switch e := p.src[p.i]; e {
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				case 't':
					c = '\t'
				case '"', '\\':
					c = e
				default:
					// Unknown escapes stay as written (compose does so).
					b.WriteByte('\\')
					continue
				}
				p.i++
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", p.fail(line, "variable %s: the %s quote is never closed", key, quoteName(q))
		}
		// After the closing quote: blanks, then a comment or the end of
		// the line.
		p.skipBlanks()
		if p.i < len(p.src) && p.src[p.i] != '\n' && p.src[p.i] != '#' {
			return "", p.fail(p.line, "variable %s: unexpected text after the closing quote", key)
		}
		p.restOfLine()
		return b.String(), nil
	}
	start := p.i
	end := len(p.src)
	if j := bytes.IndexByte(p.src[start:], '\n'); j >= 0 {
		end = start + j
	}
	raw := p.src[start:end]
	// A comment starts at a '#' after a blank: "a#b" and "KEY=#b" are
	// values, "KEY= #b" is empty. p.src[start-1] is the '=' or a blank.
	for j := range raw {
		if raw[j] != '#' {
			continue
		}
		prev := p.src[start-1]
		if j > 0 {
			prev = raw[j-1]
		}
		if isBlank(prev) {
			raw = raw[:j]
			break
		}
	}
	p.i = end
	p.restOfLine()
	return string(bytes.TrimRight(raw, " \t")), nil
}

func quoteName(q byte) string {
	if q == '"' {
		return "double"
	}
	return "single"
}

// Format writes vars as a dotenv document Parse reads back to the same vars
// (keys must be valid and values free of NUL bytes). A value is written bare
// when that is unambiguous, else double-quoted with escapes.
func Format(vars []Var) []byte {
	var b []byte
	for _, v := range vars {
		b = append(b, v.Key...)
		b = append(b, '=')
		if bare(v.Value) {
			b = append(b, v.Value...)
		} else {
			b = append(b, '"')
			for i := 0; i < len(v.Value); i++ {
				switch c := v.Value[i]; c {
				case '\n':
					b = append(b, `\n`...)
				case '\r':
					b = append(b, `\r`...)
				case '\t':
					b = append(b, `\t`...)
				case '"', '\\':
					b = append(b, '\\', c)
				default:
					b = append(b, c)
				}
			}
			b = append(b, '"')
		}
		b = append(b, '\n')
	}
	return b
}

// bare reports whether s reads back as itself unquoted.
func bare(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == '\'' || s[0] == '"' || s[0] == '#' || isBlank(s[0]) || isBlank(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n', c == '\r':
			return false
		case c == '#' && isBlank(s[i-1]):
			return false
		}
	}
	return true
}

// ErrTooBig is returned by ReadRegular for a file over its limit.
var ErrTooBig = errors.New("file too big")

// ReadRegular reads the whole of a regular file of at most limit bytes.
// Symbolic links are followed (an env or secret file is often a link, e.g.
// a Kubernetes secret volume's ..data), but the open never blocks (a FIFO
// planted in its place is refused, not waited on) and the read is bounded
// even if the file grows meanwhile.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes, the limit is %d)", path, ErrTooBig, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w (over %d bytes)", path, ErrTooBig, limit)
	}
	return data, nil
}

// ReadFile reads and parses an env file of at most MaxSize bytes.
func ReadFile(path string) ([]Var, error) {
	data, err := ReadRegular(path, MaxSize)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}
