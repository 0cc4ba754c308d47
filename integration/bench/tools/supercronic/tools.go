//go:build tools

// Package supercronic only pins supercronic in this module's go.mod and
// go.sum; build.sh builds it with `go build github.com/aptible/supercronic`.
package supercronic

import _ "github.com/aptible/supercronic"
