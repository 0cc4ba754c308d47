package httpd

import (
	"bytes"
	"strings"
)

// request is what the responder needs of a request: the rest is read,
// checked and dropped.
type request struct {
	method string
	path   string // percent-decoded, without the query
}

// headerEnd returns the length of the request head (request line and
// headers, up to and including the empty line), or -1 if it is not complete
// yet. A bare LF ends a line as CRLF does (RFC 9112 section 2.2 lets a
// recipient accept it).
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		// The empty line: "\n\n" or "\n\r\n".
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// badStart reports whether the bytes so far cannot begin a request line: a
// method is a token followed by a space. It lets the responder answer a TLS
// hello or binary junk at once instead of waiting for a head that never comes.
func badStart(b []byte) bool {
	for i, c := range b {
		if c == ' ' {
			return i == 0
		}
		if !isToken(c) {
			return true
		}
	}
	return false
}

// parseRequest reads a complete request head. It returns the request, or
// the status of the error response to give (400, 505).
func parseRequest(head []byte) (request, int) {
	lines := bytes.Split(head, []byte{'\n'})
	// The head ends with an empty line; Split leaves an empty last element
	// after it.
	var req request
	for i, line := range lines {
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			return req, 400 // a CR that does not end a line
		}
		if i == 0 {
			status := parseRequestLine(string(line), &req)
			if status != 0 {
				return req, status
			}
			continue
		}
		if len(line) == 0 {
			break
		}
		if !validHeader(line) {
			return req, 400
		}
	}
	return req, 0
}

// parseRequestLine reads "METHOD SP TARGET SP HTTP/1.x".
func parseRequestLine(line string, req *request) int {
	method, rest, ok := strings.Cut(line, " ")
	if !ok || method == "" {
		return 400
	}
	target, version, ok := strings.Cut(rest, " ")
	if !ok || target == "" || strings.IndexByte(version, ' ') >= 0 {
		return 400
	}
	for i := 0; i < len(method); i++ {
		if !isToken(method[i]) {
			return 400
		}
	}
	switch {
	case version == "HTTP/1.1", version == "HTTP/1.0":
	case len(version) == 8 && strings.HasPrefix(version, "HTTP/") && isDigit(version[5]) &&
		version[6] == '.' && isDigit(version[7]):
		return 505
	case version == "HTTP/2", version == "HTTP/3":
		return 505
	default:
		return 400
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return 400
		}
	}
	// The absolute form (a request meant for a proxy) names the same
	// resource; only its path matters here.
	if len(target) >= 7 && strings.EqualFold(target[:7], "http://") {
		target = target[7:]
		if i := strings.IndexAny(target, "/?"); i >= 0 {
			target = target[i:]
		} else {
			target = "/"
		}
		if target[0] == '?' {
			target = "/" + target
		}
	}
	if target == "*" {
		req.method, req.path = method, "*"
		return 0
	}
	if target[0] != '/' {
		return 400
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	path, ok := unescapePath(target)
	if !ok {
		return 400
	}
	req.method, req.path = method, path
	return 0
}

// validHeader checks "name: value": a token name right before the colon
// (no space, RFC 9112 section 5.1), no obsolete line folding, and no control
// byte in the value but HT.
func validHeader(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range line[:colon] {
		if !isToken(c) {
			return false
		}
	}
	for _, c := range line[colon+1:] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// unescapePath decodes %XX escapes; a bad escape or a NUL is refused.
func unescapePath(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		h, l := unhex(s[i+1]), unhex(s[i+2])
		if h < 0 || l < 0 || (h == 0 && l == 0) {
			return "", false
		}
		b.WriteByte(byte(h<<4 | l))
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isToken is RFC 9110's tchar.
func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validServiceName is the config's rule for names: a name that cannot be a
// service is unknown without asking the supervisor.
func validServiceName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
