package httpd

import (
	"net"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
	"HEAD /readyz/web HTTP/1.0\n\n",
	"GET http://h/metrics?x HTTP/1.1\r\nA: b\r\n\r\n",
	"POST /livez HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
	"GET /readyz/%41 HTTP/1.1\r\n X: folded\r\n\r\n",
	"GET / HTTP/9.9\r\n\r\n",
	"\x16\x03\x01",
	"GET /livez HTTP/1.1\r\nHost",
	"",
}

// FuzzParseRequest: any head parses without panic into a request or an
// error status, and a request has a method and a path.
func FuzzParseRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headerEnd(b)
		if end < 0 {
			badStart(b)
			return
		}
		if end > len(b) {
			t.Fatalf("head end %d beyond %d bytes", end, len(b))
		}
		req, status := parseRequest(b[:end])
		switch status {
		case 0:
			if req.method == "" || req.path == "" {
				t.Fatalf("request %+v without method or path", req)
			}
			if req.path != "*" && req.path[0] != '/' {
				t.Fatalf("path %q", req.path)
			}
		case 400, 505:
		default:
			t.Fatalf("status %d", status)
		}
	})
}

// FuzzServe: whatever a client sends, the server answers with exactly one
// well-framed response, or closes without one if it sent nothing,, within the
// request bound, and never panics.
func FuzzServe(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := New(ln, newSource(), nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	f.Cleanup(func() {
		s.Close()
		<-done
	})
	addr := ln.Addr().String()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The server's bound is 5 s; the margin is for a loaded machine.
		c.SetDeadline(time.Now().Add(RequestTimeout + 10*time.Second))
		// A write may fail once the server has answered early and closed.
		c.Write(b)
		c.(*net.TCPConn).CloseWrite()
		var out []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("no answer and no close within the bound for %q", b)
				}
				break // EOF, or a reset after an early answer
			}
		}
		if len(out) == 0 {
			// Only a client that sent nothing gets nothing: the rest is
			// read (up to 64 KiB after the answer), so no reset eats it.
			if len(b) > 0 {
				t.Fatalf("%q got no response", b)
			}
			return
		}
		if _, err := parseResponse(string(out)); err != nil {
			// A HEAD answer has a Content-Length and no body.
			if !strings.HasPrefix(string(b), "HEAD ") || !strings.HasSuffix(string(out), "\r\n\r\n") {
				t.Fatalf("response %q to %q: %v", out, b, err)
			}
		}
	})
}
