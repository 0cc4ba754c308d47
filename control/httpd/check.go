package httpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Bounds of a check's response.
const (
	maxStatusLine = 4 << 10  // the status line and each header line
	maxCheckRead  = 64 << 10 // everything read of one response
)

// Target is a parsed check URL.
type Target struct {
	Addr string // host:port to dial (port 80 when the URL has none)
	Host string // the Host header: the URL's authority as written
	Path string // path and query, at least "/"
}

// ParseURL reads a check URL: http:// only (no TLS, no credentials), a host,
// an optional port, an optional path and query. The config uses it to refuse
// what Check could not fetch.
func ParseURL(raw string) (Target, error) {
	rest, ok := cutPrefixFold(raw, "http://")
	if !ok {
		if i := strings.Index(raw, "://"); i > 0 {
			return Target{}, fmt.Errorf("%q: scheme %q is not supported, only http://", raw, raw[:i])
		}
		return Target{}, fmt.Errorf("%q: want http://host:port/path", raw)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return Target{}, fmt.Errorf("%q: a URL cannot hold spaces or control bytes", raw)
		}
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i] // a fragment is never sent
	}
	authority, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	if strings.IndexByte(authority, '@') >= 0 {
		return Target{}, fmt.Errorf("%q: credentials in a check URL are not supported", raw)
	}
	if authority == "" {
		return Target{}, fmt.Errorf("%q: missing host", raw)
	}
	host, port := authority, "80"
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return Target{}, fmt.Errorf("%q: unclosed [ in host", raw)
		}
		host = authority[1:end]
		switch after := authority[end+1:]; {
		case after == "":
		case after[0] == ':':
			port = after[1:]
		default:
			return Target{}, fmt.Errorf("%q: junk after ]", raw)
		}
	} else if h, p, found := strings.Cut(authority, ":"); found {
		host, port = h, p
	}
	if host == "" {
		return Target{}, fmt.Errorf("%q: missing host", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("%q: bad port %q", raw, port)
	}
	return Target{Addr: net.JoinHostPort(host, port), Host: authority, Path: path}, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// Check GETs url and returns nil for a status of 200-399. It waits no longer
// than ctx allows (give it the check's timeout) and reads at most 64 KiB.
// The error says why the check failed: the URL, connection refused, status
// 503, timeout.
func Check(ctx context.Context, url string) error {
	t, err := ParseURL(url)
	if err != nil {
		return err
	}
	if err := check(ctx, t); err != nil {
		if ctx.Err() != nil {
			// Whatever broke last, the reason is the deadline.
			return fmt.Errorf("GET %s: timeout: %w", url, ctx.Err())
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

func check(ctx context.Context, t Target) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// A cancel without deadline must unblock the read too.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := "GET " + t.Path + " HTTP/1.1\r\nHost: " + t.Host +
		"\r\nUser-Agent: vigil-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	r := bufio.NewReaderSize(io.LimitReader(c, maxCheckRead), maxStatusLine)
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	code, reason, err := parseStatusLine(line)
	if err != nil {
		return err
	}
	if code >= 200 && code != 204 && code != 304 {
		drainBody(r) // those three have no body, whatever Content-Length says
	}
	if code < 200 || code > 399 {
		if reason != "" {
			return fmt.Errorf("status %d %s", code, reason)
		}
		return fmt.Errorf("status %d", code)
	}
	return nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", errors.New("line longer than 4 KiB")
	case errors.Is(err, io.EOF) && len(line) == 0:
		return "", errors.New("connection closed before a response")
	case err != nil:
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line string) (int, string, error) {
	proto, rest, _ := strings.Cut(line, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, "", fmt.Errorf("not an HTTP/1 response: %q", truncate(line))
	}
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 || code < 100 {
		return 0, "", fmt.Errorf("bad status line %q", truncate(line))
	}
	return code, truncate(reason), nil
}

// drainBody reads the rest of a response whose length is known, within the
// read bound, so closing does not reset a connection the server is still
// writing to. A response without Content-Length is left: it may never end.
func drainBody(r *bufio.Reader) {
	length := int64(-1)
	for {
		line, err := readLine(r)
		if err != nil {
			return
		}
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && n >= 0 {
				length = n
			}
		}
	}
	if length > 0 {
		discard(r, length)
	}
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
