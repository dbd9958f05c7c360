package scheduler

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// nodeInfo is what the filters and scores know about one node: the node
// and a summary of the pods on it (bound, or assumed by this scheduler and
// not yet seen bound in the cache).
type nodeInfo struct {
	node *corev1.Node
	// pods counts the pods that occupy the node: not Succeeded or Failed.
	pods int
	// requested sums those pods' resource requests.
	requested corev1.ResourceList
	// ports are the host ports those pods use.
	ports []hostPort
	// byOwner counts the pods that are not terminating per controller UID,
	// for spreading.
	byOwner map[types.UID]int
}

// hostPort is one (hostIP, protocol, port) a pod holds on its node.
type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

// conflicts reports whether two host ports cannot both be held: same port
// and protocol, and the same IP or either the wildcard.
func (a hostPort) conflicts(b hostPort) bool {
	if a.port != b.port || a.protocol != b.protocol {
		return false
	}
	return a.ip == b.ip || a.ip == wildcardIP || b.ip == wildcardIP
}

const wildcardIP = "0.0.0.0"

// podHostPorts are the host ports pod asks for.
func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
				if hp.ip == "" || hp.ip == "::" {
					hp.ip = wildcardIP
				}
				if hp.protocol == "" {
					hp.protocol = corev1.ProtocolTCP
				}
				out = append(out, hp)
			}
		}
	}
	return out
}

// podRequests are pod's effective resource requests: the larger of its
// init containers' and the sum of its containers', plus overhead.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	return resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

// ownerUID is the UID of pod's controller (a ReplicaSet, say), empty for a
// bare pod.
func ownerUID(pod *corev1.Pod) types.UID {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return ref.UID
	}
	return ""
}

// terminal reports whether pod has finished and no longer holds a node.
func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// buildSnapshot summarises nodes and the pods on them. assumed maps the
// UIDs of pods this scheduler bound, whose binding the cache may not show
// yet, to their nodes. Nodes come back sorted by name.
func buildSnapshot(nodes []*corev1.Node, pods []*corev1.Pod, assumed map[types.UID]string) []*nodeInfo {
	byName := make(map[string]*nodeInfo, len(nodes))
	out := make([]*nodeInfo, 0, len(nodes))
	for _, n := range nodes {
		ni := &nodeInfo{node: n, requested: corev1.ResourceList{}, byOwner: map[types.UID]int{}}
		byName[n.Name] = ni
		out = append(out, ni)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node.Name < out[j].node.Name })
	for _, p := range pods {
		nodeName := p.Spec.NodeName
		if nodeName == "" {
			nodeName = assumed[p.UID]
		}
		ni := byName[nodeName]
		if ni == nil || terminal(p) {
			continue
		}
		ni.add(p)
	}
	return out
}

// add accounts for pod on the node.
func (ni *nodeInfo) add(pod *corev1.Pod) {
	ni.pods++
	for name, q := range podRequests(pod) {
		sum := ni.requested[name]
		sum.Add(q)
		ni.requested[name] = sum
	}
	ni.ports = append(ni.ports, podHostPorts(pod)...)
	if pod.DeletionTimestamp == nil {
		if uid := ownerUID(pod); uid != "" {
			ni.byOwner[uid]++
		}
	}
}
