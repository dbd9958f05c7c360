package kuard

import (
	"testing"

	"kite/internal/testutil"
)

// Every test runs inside a fresh network namespace with only loopback
// (testutil.MainInNetns): the handler tests need no network at all, and the
// one that serves for real listens on 127.0.0.1 there.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
