// Package defaults fills in the fields that upstream Kubernetes defaults when
// it decodes a request body: what a client left empty and the API promises to
// set (restartPolicy Always, service type ClusterIP, deployment replicas 1, ...).
//
// Every function works in place on the external (versioned) k8s.io/api types
// and is idempotent, so the server may call it on every decode, before
// validation. Object dispatches on the concrete type and ignores kinds it does
// not know.
//
// Only defaulting lives here. Things upstream does elsewhere stay out:
// name generation, uid, creationTimestamp, a new namespace's status (beyond
// the decode default below), service clusterIP/nodePort allocation and
// clusterIP/clusterIPs normalisation are the server's (strategy and allocator)
// work. Two conversion side effects that clients can observe are folded in
// here because kite never converts: Secret.stringData merges into data, and
// Node spec.podCIDR/podCIDRs are kept in step.
//
// The rules follow pkg/apis/{core,apps,discovery}/v1 defaults in
// kubernetes/kubernetes (defaults.go and the +default tags of k8s.io/api),
// with feature gates at their current defaults.
package defaults
