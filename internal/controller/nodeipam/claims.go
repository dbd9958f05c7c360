package nodeipam

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// claims is the allocation state the Node objects show: which node holds
// each node subnet, and which nodes' podCIDRs cannot be honoured. It is
// rebuilt from the nodes on every sync, so a restarted controller knows
// every CIDR in use before it hands out one, and a deleted node's subnet is
// free as soon as the node is gone.
type claims struct {
	// owner, per range, maps a subnet index to the node holding it.
	owner []map[int]string
	// problems maps a node to why its podCIDRs are not (all) its own.
	problems map[string]string
}

// assess reads the nodes' podCIDRs. A node keeps every CIDR of its own
// that lies inside a cluster CIDR and that no earlier node (by creation
// time, then name) holds; the others are problems, left alone.
func assess(ranges []subnetRange, nodes []*corev1.Node) claims {
	c := claims{owner: make([]map[int]string, len(ranges)), problems: map[string]string{}}
	for i := range ranges {
		c.owner[i] = map[int]string{}
	}
	ordered := append([]*corev1.Node(nil), nodes...)
	sort.Slice(ordered, func(i, j int) bool {
		a, b := ordered[i], ordered[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	for _, n := range ordered {
		var problems []string
		for _, s := range nodeCIDRs(n) {
			if msg := c.claim(ranges, n.Name, s); msg != "" {
				problems = append(problems, msg)
			}
		}
		if len(problems) > 0 {
			c.problems[n.Name] = strings.Join(problems, "; ")
		}
	}
	return c
}

// claim records that node holds the CIDR s, or says why it cannot.
func (c claims) claim(ranges []subnetRange, node, s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Sprintf("podCIDR %q is not a CIDR", s)
	}
	for i, r := range ranges {
		if p.Addr().Is4() != r.cluster.Addr().Is4() {
			continue
		}
		first, last, ok := r.span(p)
		if !ok {
			return fmt.Sprintf("podCIDR %s is outside the cluster CIDR %s", s, r.cluster)
		}
		for j := first; j <= last; j++ {
			if other, taken := c.owner[i][j]; taken && other != node {
				return fmt.Sprintf("podCIDR %s is already used by node %s", s, other)
			}
		}
		for j := first; j <= last; j++ {
			c.owner[i][j] = node
		}
		return ""
	}
	return fmt.Sprintf("podCIDR %s: no cluster CIDR of its IP family", s)
}

// nodeCIDRs are the CIDRs a node claims: spec.podCIDRs, or the older
// single spec.podCIDR.
func nodeCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

// choose returns the lowest free subnet of each range: not held by a node,
// not reserved (indexes per range), not in flight. ok is false if some
// range is full.
func choose(ranges []subnetRange, cl claims, reserved [][]int, inFlight []netip.Prefix) ([]netip.Prefix, bool) {
	out := make([]netip.Prefix, 0, len(ranges))
	for i, r := range ranges {
		taken := map[int]bool{}
		for idx := range cl.owner[i] {
			taken[idx] = true
		}
		if i < len(reserved) {
			for _, idx := range reserved[i] {
				taken[idx] = true
			}
		}
		for _, p := range inFlight {
			if first, last, ok := r.span(p); ok {
				for j := first; j <= last; j++ {
					taken[j] = true
				}
			}
		}
		idx, ok := r.lowestFree(func(j int) bool { return taken[j] })
		if !ok {
			return nil, false
		}
		out = append(out, r.subnet(idx))
	}
	return out, true
}
