package dns

import (
	"testing"

	"kite/internal/testutil"
)

// Every test runs in a network namespace of its own with only loopback:
// the servers, fake upstreams and unreachable upstreams below are all
// inside it.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
