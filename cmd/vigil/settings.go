package main

import (
	"errors"

	"github.com/vigil-init/vigil/config"
)

// loadSettings layers the environment and the flags over the defaults and
// validates the result once, so every problem is reported together.
func loadSettings(environ []string, f flagValues) (config.Settings, error) {
	s := config.Default()
	// The JSON file's layer goes here, between defaults and TINI_*.
	errs := s.Env(environ)
	if f.config != nil {
		s.Config = *f.config
	}
	if f.logFormat != nil {
		s.LogFormat = *f.logFormat
	}
	if f.stateDir != nil {
		s.StateDir = *f.stateDir
	}
	if f.socket != nil {
		s.Socket = *f.socket
	}
	if f.verbose > 0 {
		s.LogLevel = "debug"
	}
	if f.subreaper {
		s.Subreaper = true
	}
	if f.group {
		s.KillProcessGroup = true
	}
	errs = append(errs, s.Validate()...)
	return s, errors.Join(errs...)
}
