// Package printers renders API objects as meta.k8s.io/v1 Table rows, the
// shape `kubectl get` asks for with
// "Accept: application/json;as=Table;v=v1;g=meta.k8s.io".
//
// kubectl prints whatever columns the server sends, so the columns and the
// text of each cell here follow upstream Kubernetes' printers (as served by
// kube-apiserver), not a design of our own: users and scripts read them.
//
// The package is pure: no I/O, no clock. Ages are computed against the `now`
// the caller passes, which keeps tests exact.
//
// Like kube-apiserver, a Printer always produces every cell, the -o wide ones
// included; those columns carry Priority 1 and kubectl hides them unless it
// was asked for -o wide.
//
// Objects may be typed (*corev1.Pod, ...) or *unstructured.Unstructured.
// Fields that the API server defaults (a Service's type, a ReplicaSet's
// replicas, ...) are read as their default when unset, so a row looks the
// same whether or not the stored object went through defaulting.
package printers
