package l2

import (
	"testing"

	"kite/internal/testutil"
)

// Every test runs in a fresh network and mount namespace: the kernel test
// builds its namespace and links there, and they vanish with it.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
