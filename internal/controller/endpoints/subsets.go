package endpoints

import (
	"bytes"
	"crypto/md5"
	"math"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/dump"
	utilnet "k8s.io/utils/net"

	"kite/internal/controller/internal/endpointutil"
)

// MaxCapacity is the most addresses (ready and not) an Endpoints object
// holds; beyond it the controller truncates and sets the over-capacity
// annotation, as upstream.
const MaxCapacity = 1000

// overCapacityTruncated is the value of the endpoints.kubernetes.io/over-capacity
// annotation on truncated Endpoints.
const overCapacityTruncated = "truncated"

// DesiredSubsets computes the packed subsets of a Service's Endpoints from
// the pods its selector matches. It reports how many ready and not-ready
// addresses went in (before packing).
func DesiredSubsets(svc *corev1.Service, pods []*corev1.Pod) (subsets []corev1.EndpointSubset, ready, notReady int) {
	for _, pod := range pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		addr, ok := podAddress(svc, pod)
		if !ok {
			continue
		}
		isReady := svc.Spec.PublishNotReadyAddresses || endpointutil.IsPodReady(pod)
		add := func(ports []corev1.EndpointPort) {
			s := corev1.EndpointSubset{Ports: ports}
			if isReady {
				s.Addresses = []corev1.EndpointAddress{addr}
				ready++
			} else {
				s.NotReadyAddresses = []corev1.EndpointAddress{addr}
				notReady++
			}
			subsets = append(subsets, s)
		}
		if len(svc.Spec.Ports) == 0 {
			// A headless Service may have no ports: addresses only.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				add(nil)
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			port, err := endpointutil.FindPort(pod, sp)
			if err != nil {
				continue
			}
			add([]corev1.EndpointPort{{Name: sp.Name, Port: int32(port), Protocol: sp.Protocol, AppProtocol: sp.AppProtocol}})
		}
	}
	return RepackSubsets(subsets), ready, notReady
}

// podAddress is the address of pod for svc: the pod IP of the Service's
// (first) IP family.
func podAddress(svc *corev1.Service, pod *corev1.Pod) (corev1.EndpointAddress, bool) {
	ipv6 := false
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		ipv6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		ipv6 = utilnet.IsIPv6String(svc.Spec.ClusterIP)
	default:
		ipv6 = utilnet.IsIPv6String(pod.Status.PodIP)
	}
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		if utilnet.IsIPv6String(ip.IP) == ipv6 {
			nodeName := pod.Spec.NodeName
			addr := corev1.EndpointAddress{
				IP:       ip.IP,
				NodeName: &nodeName,
				TargetRef: &corev1.ObjectReference{
					Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
					ResourceVersion: pod.ResourceVersion,
				},
			}
			if endpointutil.ShouldSetHostname(pod, svc) {
				addr.Hostname = pod.Spec.Hostname
			}
			return addr, true
		}
	}
	return corev1.EndpointAddress{}, false
}

// RepackSubsets expands subsets to (address, port) pairs and packs them into
// the canonical layout, as upstream's endpoints.RepackSubsets: one subset
// per set of addresses sharing the same ports; an address not ready on any
// port is not ready; addresses deduplicated by IP and target UID; subsets
// with no ports kept (headless). The result is sorted (SortSubsets).
func RepackSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	type addrKey struct {
		ip  string
		uid types.UID
	}
	allAddrs := map[addrKey]*corev1.EndpointAddress{}
	// ready state of each address per port; not ready wins.
	byPort := map[corev1.EndpointPort]map[*corev1.EndpointAddress]bool{}
	var portOrder []corev1.EndpointPort
	mapAddr := func(a *corev1.EndpointAddress, port corev1.EndpointPort, ready bool) {
		key := addrKey{ip: a.IP}
		if a.TargetRef != nil {
			key.uid = a.TargetRef.UID
		}
		addr := allAddrs[key]
		if addr == nil {
			cp := *a
			addr = &cp
			allAddrs[key] = addr
		}
		set, ok := byPort[port]
		if !ok {
			set = map[*corev1.EndpointAddress]bool{}
			byPort[port] = set
			portOrder = append(portOrder, port)
		}
		if was, found := set[addr]; !found || was {
			set[addr] = ready
		}
	}
	for i := range subsets {
		ports := subsets[i].Ports
		if len(ports) == 0 {
			ports = []corev1.EndpointPort{{Port: -1}} // sentinel: keep port-less addresses
		}
		for _, port := range ports {
			for k := range subsets[i].Addresses {
				mapAddr(&subsets[i].Addresses[k], port, true)
			}
			for k := range subsets[i].NotReadyAddresses {
				mapAddr(&subsets[i].NotReadyAddresses[k], port, false)
			}
		}
	}

	// Group ports by the exact set of (address, ready) they serve.
	type group struct {
		addrs map[*corev1.EndpointAddress]bool
		ports []corev1.EndpointPort
	}
	groups := map[string]*group{}
	var groupOrder []string
	for _, port := range portOrder {
		addrs := byPort[port]
		key := addressSetKey(addrs)
		g, ok := groups[key]
		if !ok {
			g = &group{addrs: addrs}
			groups[key] = g
			groupOrder = append(groupOrder, key)
		}
		if port.Port > 0 {
			g.ports = append(g.ports, port)
		}
	}
	out := make([]corev1.EndpointSubset, 0, len(groups))
	for _, key := range groupOrder {
		g := groups[key]
		var s corev1.EndpointSubset
		for addr, ready := range g.addrs {
			if ready {
				s.Addresses = append(s.Addresses, *addr)
			} else {
				s.NotReadyAddresses = append(s.NotReadyAddresses, *addr)
			}
		}
		s.Ports = g.ports
		out = append(out, s)
	}
	return SortSubsets(out)
}

// addressSetKey identifies a set of (address, ready) pairs.
func addressSetKey(addrs map[*corev1.EndpointAddress]bool) string {
	type pair struct {
		addr  *corev1.EndpointAddress
		ready bool
	}
	list := make([]pair, 0, len(addrs))
	for a, r := range addrs {
		list = append(list, pair{a, r})
	}
	sort.Slice(list, func(i, j int) bool { return lessAddress(list[i].addr, list[j].addr) })
	var b bytes.Buffer
	for _, p := range list {
		b.WriteString(p.addr.IP)
		b.WriteByte('/')
		if p.addr.TargetRef != nil {
			b.WriteString(string(p.addr.TargetRef.UID))
		}
		if p.ready {
			b.WriteString("/r;")
		} else {
			b.WriteString("/n;")
		}
	}
	return b.String()
}

// lessAddress orders addresses by IP (as bytes), then target UID.
func lessAddress(a, b *corev1.EndpointAddress) bool {
	if c := bytes.Compare([]byte(a.IP), []byte(b.IP)); c != 0 {
		return c < 0
	}
	if b.TargetRef == nil {
		return false
	}
	if a.TargetRef == nil {
		return true
	}
	return a.TargetRef.UID < b.TargetRef.UID
}

// SortSubsets sorts subsets in place as upstream does: addresses by IP and
// target UID, ports and subsets by the MD5 of their spew dump (upstream's
// hashutil.DeepHashObject), so kite and kube-controller-manager write the
// same order. It returns subsets.
func SortSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	for i := range subsets {
		s := &subsets[i]
		sort.Slice(s.Addresses, func(a, b int) bool { return lessAddress(&s.Addresses[a], &s.Addresses[b]) })
		sort.Slice(s.NotReadyAddresses, func(a, b int) bool { return lessAddress(&s.NotReadyAddresses[a], &s.NotReadyAddresses[b]) })
		sortByHash(s.Ports)
	}
	sortByHash(subsets)
	return subsets
}

func sortByHash[T any](items []T) {
	if len(items) < 2 {
		return
	}
	keys := make([][16]byte, len(items))
	idx := make([]int, len(items))
	for i := range items {
		keys[i] = md5.Sum([]byte(dump.ForHash(items[i])))
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return bytes.Compare(keys[idx[a]][:], keys[idx[b]][:]) < 0 })
	sorted := make([]T, len(items))
	for i, j := range idx {
		sorted[i] = items[j]
	}
	copy(items, sorted)
}

// Truncate cuts subsets down to MaxCapacity addresses as upstream: ready
// addresses are kept before not-ready ones, and each subset keeps a share
// proportional to its size (rounded up, the last ones taking what is left).
// It reports whether anything was cut.
func Truncate(subsets []corev1.EndpointSubset) bool {
	totalReady, totalNotReady := 0, 0
	for _, s := range subsets {
		totalReady += len(s.Addresses)
		totalNotReady += len(s.NotReadyAddresses)
	}
	if totalReady+totalNotReady <= MaxCapacity {
		return false
	}
	truncateReady := totalReady > MaxCapacity
	limit, total := MaxCapacity-totalReady, totalNotReady
	if truncateReady {
		limit, total = MaxCapacity, totalReady
	}
	left := limit
	for i := range subsets {
		s := &subsets[i]
		n := len(s.NotReadyAddresses)
		if truncateReady {
			n = len(s.Addresses)
		}
		share := min(int(math.Ceil(float64(n)/float64(total)*float64(limit))), left)
		if truncateReady {
			s.Addresses = s.Addresses[:min(len(s.Addresses), share)]
			s.NotReadyAddresses = nil
			left -= len(s.Addresses)
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:min(len(s.NotReadyAddresses), share)]
			left -= len(s.NotReadyAddresses)
		}
	}
	return true
}

// SubsetsEqual compares subsets ignoring the resourceVersion of target
// references, so that pod updates that change nothing an endpoint shows do
// not rewrite the Endpoints.
func SubsetsEqual(a, b []corev1.EndpointSubset) bool {
	return apiequality.Semantic.DeepEqual(withoutTargetVersions(a), withoutTargetVersions(b))
}

func withoutTargetVersions(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	out := make([]corev1.EndpointSubset, len(subsets))
	clear := func(addrs []corev1.EndpointAddress) []corev1.EndpointAddress {
		addrs = slices.Clone(addrs)
		for i := range addrs {
			if addrs[i].TargetRef != nil {
				ref := *addrs[i].TargetRef
				ref.ResourceVersion = ""
				addrs[i].TargetRef = &ref
			}
		}
		return addrs
	}
	for i, s := range subsets {
		out[i] = corev1.EndpointSubset{Addresses: clear(s.Addresses), NotReadyAddresses: clear(s.NotReadyAddresses), Ports: s.Ports}
	}
	return out
}
