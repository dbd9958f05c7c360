// Package e2e is kite's end-to-end tier: it starts the real `kite server`
// binary and drives it with real kubectl binaries (the one compiled into
// kite, Google Cloud SDK's 1.27 and 1.33, Debian's 1.20 when fetched by
// get-kubectl-1.20.sh) and with plain HTTPS requests, asserting the output
// upstream Kubernetes gives.
//
// Conventions:
//   - Every test runs inside a private network and mount namespace
//     (testutil.MainInNetns); servers listen on 127.0.0.1 at a free port and
//     nothing is sent anywhere else. Addresses in objects (Node addresses,
//     pod IPs) are data only and never contacted: nodes use 192.0.2.0/24
//     (TEST-NET-1), pods 10.244.0.0/16 (kite's default cluster CIDR).
//   - One server per kubectl version, each with its own state dir, HOME
//     (so kubectl's discovery cache is private) and namespace.
//   - No kite agent runs: the tests play the nodes (fakenode_test.go) with
//     client-go and the admin kubeconfig, as a kubelet would.
//   - The binary comes from $KITE_BIN, default ../../bin/kite (`make build`).
//
// The package has only tests; this file holds its documentation.
package e2e
