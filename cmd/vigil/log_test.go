package main

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestTextLog(t *testing.T) {
	var b strings.Builder
	log := slog.New(handlerFor(&b, "text", slog.LevelInfo, false))
	log.Info("started main", "pid", 12, "cmd", "sh -c x")
	log.With("svc", "web").Warn("exited", "status", 3)
	log.Debug("hidden")
	got := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(got) != 2 {
		t.Fatalf("lines %q", got)
	}
	if !strings.HasSuffix(got[0], ` vigil INFO started main pid=12 cmd="sh -c x"`) {
		t.Errorf("line %q", got[0])
	}
	if !strings.HasSuffix(got[1], ` vigil WARN exited svc=web status=3`) {
		t.Errorf("line %q", got[1])
	}
}

func TestJSONLog(t *testing.T) {
	var b strings.Builder
	slog.New(handlerFor(&b, "json", slog.LevelDebug, false)).Info("main exited", "status", 3)
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	if m["msg"] != "main exited" || m["status"] != 3.0 {
		t.Errorf("%v", m)
	}
}
