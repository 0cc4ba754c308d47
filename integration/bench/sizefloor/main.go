// Command sizefloor is the library floor of `make size`: a program that
// links what vigil's features need from outside its own code and does next
// to nothing with it (a JSON config, settings from the environment, a cron
// parser, a TCP listener and a dialer that resolves names, structured
// logs, every signal caught). Its stripped size is what vigil would weigh
// with none of its own code; it is never run.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/mattn/go-isatty"
	"github.com/robfig/cron/v3"
	"golang.org/x/sys/unix"
)

type settings struct {
	Socket  string        `env:"SOCKET"`
	Timeout time.Duration `env:"TIMEOUT"`
}

func main() {
	var s settings
	if err := env.Parse(&s); err != nil {
		os.Exit(78)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(os.Getenv("CONFIG")), &cfg); err != nil {
		os.Exit(78)
	}
	out, _ := json.Marshal(cfg)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs)
	sched, _ := cron.ParseStandard("@hourly")
	ln, err := net.Listen("tcp", os.Getenv("HTTP"))
	if err == nil {
		ln.Close()
	}
	var d net.Dialer
	if c, err := d.Dial("tcp", os.Getenv("CHECK")); err == nil {
		c.Close()
	}
	slog.Info("floor", "config", string(out), "next", sched.Next(time.Now()), "pid", unix.Getpid(), "tty", isatty.IsTerminal(1))
	fmt.Println(s, <-sigs)
}
