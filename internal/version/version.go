// Package version is kite's version, stamped at build time.
package version

// Version is kite's own version; the Makefile stamps it from git.
var Version = "v0.1.0-dev"

// Kubernetes is the Kubernetes API version kite serves (that of its
// k8s.io/api), as the server reports it.
const (
	KubernetesMajor = "1"
	KubernetesMinor = "37"
	Kubernetes      = "v1.37.2"
)
