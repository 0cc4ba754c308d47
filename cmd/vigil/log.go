package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vigil-init/vigil/config"
)

// newLogger builds vigil's own log: always on stderr (stdout belongs to the
// services), in text or JSON, and appended to a file too when one is set.
func newLogger(s config.Settings, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, nil, fmt.Errorf("log level: %w", err)
	}
	color := s.LogFormat == "text" && isatty.IsTerminal(os.Stderr.Fd())
	h := handlerFor(stderr, s.LogFormat, level, color)
	var closer io.Closer = io.NopCloser(nil)
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		h = slog.NewMultiHandler(h, handlerFor(f, s.LogFormat, level, false))
		closer = f
	}
	return slog.New(h), closer, nil
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
	b.WriteString(r.Message)
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
	if group != "" {
		b.WriteString(group + ".")
	}
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \"=\t\n\\") {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
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
