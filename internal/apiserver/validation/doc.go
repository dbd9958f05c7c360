// Package validation checks API objects the way upstream Kubernetes does
// before it stores them, so that kite answers a bad request with the same
// 422 Invalid and the same field errors (path, type, message) as a real
// apiserver would.
//
// It works on the external (versioned) k8s.io/api types, after defaulting
// (package defaults): like upstream, it treats a field the defaults always
// fill (restartPolicy, imagePullPolicy, service type, ...) as required.
//
// ValidateCreate and ValidateUpdate dispatch on the object's type; the
// per-kind functions are exported for callers that know the kind. An update
// is checked as: the metadata did not change what it may not
// (name, namespace, uid, creationTimestamp, ...), the kind's own update rules
// (immutable fields), and then the new object as a whole.
//
// Some of upstream's work is the server's, not this package's:
//   - resourceVersion preconditions (a 409 Conflict, not a 422),
//   - name generation, and copying allocated values (clusterIPs, node ports,
//     healthCheckNodePort) from the old Service into an update that omits
//     them; validation assumes both have happened,
//   - allocation itself: the node port range, and whether a cluster IP is in
//     the service CIDR, are the allocator's to check.
//
// Paths and messages follow kubernetes/kubernetes pkg/apis/*/validation,
// including a few odd upstream paths (kept on purpose; each is marked).
package validation
