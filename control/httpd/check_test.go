package httpd

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want Target
		err  string
	}{
		{"http://127.0.0.1:8080/healthz", Target{"127.0.0.1:8080", "127.0.0.1:8080", "/healthz"}, ""},
		{"http://localhost", Target{"localhost:80", "localhost", "/"}, ""},
		{"HTTP://Web:81", Target{"Web:81", "Web:81", "/"}, ""},
		{"http://h:8080?probe=1", Target{"h:8080", "h:8080", "/?probe=1"}, ""},
		{"http://h/p/q?x=1#frag", Target{"h:80", "h", "/p/q?x=1"}, ""},
		{"http://[::1]:9090/readyz", Target{"[::1]:9090", "[::1]:9090", "/readyz"}, ""},
		{"http://[::1]/", Target{"[::1]:80", "[::1]", "/"}, ""},
		{"https://h/", Target{}, `scheme "https" is not supported, only http://`},
		{"127.0.0.1:8080/healthz", Target{}, "want http://host:port/path"},
		{"http://", Target{}, "missing host"},
		{"http://:8080/", Target{}, "missing host"},
		{"http://h:0/", Target{}, "bad port"},
		{"http://h:99999/", Target{}, "bad port"},
		{"http://h:x/", Target{}, "bad port"},
		{"http://user:pw@h/", Target{}, "credentials"},
		{"http://h/a b", Target{}, "spaces or control bytes"},
		{"http://h/\x00", Target{}, "spaces or control bytes"},
		{"http://[::1/", Target{}, "unclosed ["},
		{"http://[::1]x/", Target{}, "junk after ]"},
	}
	for _, tc := range tests {
		got, err := ParseURL(tc.url)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.url, err, tc.err)
		case got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	type seen struct{ host, uri, agent string }
	requests := make(chan seen, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests <- seen{r.Host, r.URL.RequestURI(), r.UserAgent()}
		code := map[string]int{"/ok": 200, "/created": 201, "/moved": 302, "/notmod": 304,
			"/missing": 404, "/down": 503}[r.URL.Path]
		if code == 302 {
			w.Header().Set("Location", "/elsewhere-never-followed")
		}
		if code == 200 || code == 201 {
			w.Write([]byte(strings.Repeat("x", 100<<10))) // more than the read bound
			return
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		// A 200 whose body never ends: the status decides, the body is not
		// waited for.
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/longheader", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("b", 8<<10))
		w.WriteHeader(200)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A port with nothing behind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		err     string // "" = success
	}{
		{"200 with a body over the read bound", srv.URL + "/ok?x=1", 30 * time.Second, ""},
		{"201", srv.URL + "/created", 30 * time.Second, ""},
		{"302 is success and not followed", srv.URL + "/moved", 30 * time.Second, ""},
		{"304", srv.URL + "/notmod", 30 * time.Second, ""},
		{"200 with an endless body", srv.URL + "/stream", 30 * time.Second, ""},
		{"404", srv.URL + "/missing", 30 * time.Second, "status 404 Not Found"},
		{"503", srv.URL + "/down", 30 * time.Second, "status 503 Service Unavailable"},
		{"connection refused", refused, 30 * time.Second, "connection refused"},
		{"timeout", srv.URL + "/hang", 200 * time.Millisecond, "timeout"},
		{"header line beyond the bound", srv.URL + "/longheader", 30 * time.Second, ""},
		{"bad URL", "https://example.com/", 30 * time.Second, "only http://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := Check(ctx, tc.url)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("%v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
	// The request as the server saw it.
	close(requests)
	var got []seen
	for r := range requests {
		got = append(got, r)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if len(got) == 0 || got[0] != (seen{host, "/ok?x=1", "vigil-check"}) {
		t.Errorf("first request seen as %+v", got)
	}
}

func TestCheckNotHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, reply := range []string{"SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 abc\r\n\r\n", ""} {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096)) // the request: unread, the close would be a reset
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	for _, want := range []string{"not an HTTP/1 response", "bad status line", "closed before a response"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := Check(ctx, "http://"+ln.Addr().String()+"/")
		cancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	<-done
}

func TestCheckCancel(t *testing.T) {
	// A cancel without a deadline unblocks the read as well.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- Check(ctx, "http://"+ln.Addr().String()+"/") }()
	c := <-accepted
	defer c.Close()
	cancel()
	if err := <-res; err == nil || !strings.Contains(err.Error(), "timeout: context canceled") {
		t.Errorf("error %v", err)
	}
}
