package printers

import (
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels that give a node its ROLES: "node-role.kubernetes.io/<role>" (any
// value) and the older "kubernetes.io/role=<role>".
const (
	nodeRoleLabelPrefix = "node-role.kubernetes.io/"
	legacyNodeRoleLabel = "kubernetes.io/role"
)

func nodePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Status", "string", "Whether the node is ready, and whether it takes new pods."),
			column("Roles", "string", "Roles from the node's node-role.kubernetes.io/* labels."),
			ageColumn(),
			column("Version", "string", "The kubelet's version."),
			wide(column("Internal-IP", "string", "The node's first internal IP.")),
			wide(column("External-IP", "string", "The node's first external IP.")),
			wide(column("OS-Image", "string", "The node's operating system image.")),
			wide(column("Kernel-Version", "string", "The node's kernel version.")),
			wide(column("Container-Runtime", "string", "The container runtime and its version.")),
		},
		Cells: typed(func(n *corev1.Node, now time.Time) []interface{} {
			info := n.Status.NodeInfo
			return []interface{}{
				n.Name,
				nodeStatus(n),
				nodeRoles(n),
				age(n.CreationTimestamp, now),
				info.KubeletVersion,
				nodeAddress(n, corev1.NodeInternalIP),
				nodeAddress(n, corev1.NodeExternalIP),
				orDefault(info.OSImage, unknown),
				orDefault(info.KernelVersion, unknown),
				orDefault(info.ContainerRuntimeVersion, unknown),
			}
		}),
	}
}

// nodeStatus is "Ready" or "NotReady" from the Ready condition ("Unknown"
// without one), with ",SchedulingDisabled" for a cordoned node.
func nodeStatus(n *corev1.Node) string {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = "NotReady"
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

// nodeRoles lists the node's roles, sorted, or "<none>".
func nodeRoles(n *corev1.Node) string {
	set := map[string]bool{}
	for k, v := range n.Labels {
		if role, ok := strings.CutPrefix(k, nodeRoleLabelPrefix); ok && role != "" {
			set[role] = true
		} else if k == legacyNodeRoleLabel && v != "" {
			set[v] = true
		}
	}
	if len(set) == 0 {
		return none
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return strings.Join(roles, ",")
}

// nodeAddress is the node's first address of type t, or "<none>".
func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return none
}

func namespacePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Status", "string", "The namespace's phase: Active or Terminating."),
			ageColumn(),
		},
		Cells: typed(func(ns *corev1.Namespace, now time.Time) []interface{} {
			// An unset phase is Active, the default.
			return []interface{}{ns.Name, orDefault(string(ns.Status.Phase), string(corev1.NamespaceActive)), age(ns.CreationTimestamp, now)}
		}),
	}
}
