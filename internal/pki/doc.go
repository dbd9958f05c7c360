// Package pki creates and keeps kite's certificates, bootstrap tokens and
// kubeconfig files under a state directory.
//
// Every Ensure function is idempotent: it first looks at what is on disk and
// keeps it when it is still good, so calling it on every start is cheap and
// safe. What "still good" means differs by kind of file, on purpose:
//
//   - The CA is never replaced once its certificate exists, because other
//     machines and kubeconfigs may already trust it. A CA file that cannot be
//     used is an error (wrapping ErrInvalidFile and naming the file) that a
//     human must resolve. The one exception is a key without a certificate:
//     nothing can trust a CA whose certificate was never written, so that is
//     treated as an interrupted first run and the CA is created afresh.
//   - Leaf certificates are cheap: anything unreadable, not signed by the
//     current CA, missing a requested name or expiring within RenewBefore is
//     silently reissued.
//   - A bootstrap token is stable once written; an unreadable one is an error
//     because it may already have been handed to joining nodes.
//
// Files are written to a temporary name and renamed into place, keys (and the
// files that embed them) with mode 0600, so a crash never leaves a torn file
// behind. The key is written before its certificate: the certificate's
// presence marks a complete pair.
//
// Layout of a state directory:
//
//	ca.crt, ca.key          the cluster CA (EnsureCA)
//	<name>.crt, <name>.key  leaf pairs (EnsureServingCert, EnsureClientCert)
//	<name>.token            bootstrap tokens (EnsureToken)
//
// Concurrent callers on the same directory are not coordinated; kite calls
// these from one process during start-up.
package pki
