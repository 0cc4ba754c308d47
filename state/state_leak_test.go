package state

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine started by them is
// still running once they are done (go.uber.org/goleak, test-only).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
