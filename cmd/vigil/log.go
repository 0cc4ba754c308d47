package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"github.com/vigil-init/vigil/config"
	"github.com/vigil-init/vigil/proc"
	"golang.org/x/sys/unix"
)

// newLogger builds vigil's own log: always on stderr (stdout belongs to the
// services), in text or JSON, and appended to a file too when one is set.
// A log file that cannot be opened is a config error at the first start;
// after a re-exec (reexeced) the services are running already and vigil
// must not die over it: it logs to stderr only and says so.
func newLogger(s config.Settings, stderr io.Writer, reexeced bool) (*slog.Logger, io.Closer, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, nil, fmt.Errorf("log level: %w", err)
	}
	color := s.LogFormat == "text" && isatty.IsTerminal(os.Stderr.Fd())
	h := handlerFor(stderr, s.LogFormat, level, color)
	var closer logCloser
	if o, ok := stderr.(*proc.Output); ok {
		// stderr queues vigil's lines (it never blocks the caller); what
		// it had to drop is reported in the log's own format.
		closer.out = o
		o.SetDropLine(func(n int) []byte {
			var b bytes.Buffer
			slog.New(handlerFor(&b, s.LogFormat, slog.LevelWarn, color)).Warn("log lines dropped: stderr was not read", "count", n)
			return b.Bytes()
		})
	}
	if s.LogFile == "" {
		return slog.New(h), closer, nil
	}
	f, err := openLogFile(s.LogFile)
	if err != nil {
		if !reexeced {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		log := slog.New(h)
		log.Error("cannot open the log file after re-exec; logging to stderr only", "file", s.LogFile, "err", err)
		return log, closer, nil
	}
	h = slog.NewMultiHandler(h, handlerFor(f, s.LogFormat, level, false))
	closer.file = f
	return slog.New(h), closer, nil
}

// logCloser ends vigil's log: the lines still queued for stderr get a
// moment to go out (not forever: the reader may be stuck), and the file is
// closed.
type logCloser struct {
	out  *proc.Output
	file *os.File
}

// flushTimeout bounds the wait for a stalled reader of stderr at exit.
const flushTimeout = time.Second

func (c logCloser) Close() error {
	c.out.Flush(flushTimeout)
	if c.file != nil {
		return c.file.Close()
	}
	return nil
}

// openLogFile opens (creating it 0644 if missing) the file vigil appends its
// log to. vigil often runs as root and the file's directory may be a volume
// a service can write: a symlink put there would have root create and
// append to a file of the service's choosing, and a FIFO would block vigil
// forever. So no link is followed, the open does not block, and anything
// but a regular file of vigil's own uid with one link is refused.
func openLogFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = errors.New("is a symbolic link")
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var bad string
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		bad = "not a regular file"
	case st.Uid != uint32(os.Geteuid()):
		bad = fmt.Sprintf("owned by uid %d, not by vigil's uid %d", st.Uid, os.Geteuid())
	case st.Nlink != 1:
		// A hard link to a file of vigil's elsewhere.
		bad = fmt.Sprintf("has %d links", st.Nlink)
	}
	if bad != "" {
		f.Close()
		return nil, fmt.Errorf("%s: %s; refusing it", path, bad)
	}
	return f, nil
}

func handlerFor(w io.Writer, format string, level slog.Level, color bool) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	}
	return &textHandler{w: w, level: level, color: color, mu: new(sync.Mutex)}
}

// textHandler writes one short line per record, readable in `docker logs`:
//
//	02:51:20.123 vigil INFO started main pid=12
type textHandler struct {
	w     io.Writer
	level slog.Level
	color bool
	mu    *sync.Mutex
	attrs string // preformatted attributes from WithAttrs
	group string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

var levelColor = map[slog.Level]string{
	slog.LevelDebug: "\x1b[90m", slog.LevelInfo: "\x1b[32m",
	slog.LevelWarn: "\x1b[33m", slog.LevelError: "\x1b[31m",
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("15:04:05.000"))
	b.WriteString(" vigil ")
	lv := r.Level.String()
	if h.color {
		b.WriteString(levelColor[r.Level] + lv + "\x1b[0m")
	} else {
		b.WriteString(lv)
	}
	b.WriteByte(' ')
	writeEscaped(&b, r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := a.Key
		if group != "" {
			g = group + "." + g
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if needsQuote(key) {
		key = strconv.Quote(key)
	}
	b.WriteString(key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || needsQuote(v) {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
}

// needsQuote reports whether s cannot stand unquoted in a key=value line:
// a separator, a quote, or anything not printable. Logged values come from
// services and files vigil does not trust (a name in a forged state file):
// a newline would forge a log line, an ESC would drive the terminal of
// whoever reads the log.
func needsQuote(s string) bool {
	for _, r := range s {
		if r == ' ' || r == '"' || r == '=' || r == '\\' || r == utf8.RuneError || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}

// writeEscaped writes the message with every unprintable character escaped
// as Go would quote it (\n, \x1b, \u202e), the rest as is.
func writeEscaped(b *strings.Builder, s string) {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				fmt.Fprintf(b, "\\x%02x", s[i])
				continue
			}
			b.WriteRune(r)
		case r == '\\' || r == ' ' || strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		appendAttr(&b, h.group, a)
	}
	h2 := *h
	h2.attrs = b.String()
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	if h2.group != "" {
		name = h2.group + "." + name
	}
	h2.group = name
	return &h2
}
