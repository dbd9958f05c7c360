package lab

import (
	"testing"

	"kite/internal/testutil"
)

// Test address conventions: the labs use 172.30.N.0/24 (picked) and
// 172.31.200.0/24 (given) as underlays, the default pod and Service CIDRs,
// and 10.96.7.0/24 on a scratch bridge to provoke an overlap — all inside
// the private network namespace MainInNetns runs the tests in, which is the
// labs' "host" and vanishes with them.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
