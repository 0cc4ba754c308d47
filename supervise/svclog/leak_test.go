package svclog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a rotator's writer or a follower
// outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
