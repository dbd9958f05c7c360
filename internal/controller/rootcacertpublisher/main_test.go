package rootcacertpublisher

import (
	"testing"

	"kite/internal/testutil"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }
