package e2e

import (
	"testing"

	"kite/internal/testutil"
)

// TestMain re-executes the tests inside a fresh network namespace with only
// loopback up, so no request they make can leave the machine.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
