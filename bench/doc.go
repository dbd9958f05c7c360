// Package bench measures kite's API server as users meet it: the real
// binary (KITE_BIN, default ../bin/kite) started as `kite server` with an
// embedded etcd in a temporary state dir, driven by client-go over TLS on
// loopback inside a private network namespace.
//
// The benchmarks measure fixed batches (1,000 objects, N starts), so they
// are meant to run once each: `make bench`, i.e. -benchtime 1x. They print
// absolute figures with the machine they ran on and ratios measured side by
// side in the same run; they fail on functional errors (an error from the
// server, a missing watch event) and never on speed. See README.md.
package bench
