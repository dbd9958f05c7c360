package lbipam

import (
	"testing"

	"kite/internal/testutil"
)

// The API tests run a real API server (embedded etcd on loopback): in a
// network namespace of their own.
func TestMain(m *testing.M) { testutil.MainInNetns(m) }
