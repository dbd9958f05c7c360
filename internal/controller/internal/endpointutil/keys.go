package endpointutil

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// PortMapKey identifies a list of EndpointSlice ports regardless of order:
// the slices of one Service (or Endpoints) are grouped by it.
func PortMapKey(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		proto, port := "", int32(0)
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		if p.Port != nil {
			port = *p.Port
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%d/%s", deref(p.Name), proto, port, deref(p.AppProtocol)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// EndpointKey identifies an EndpointSlice endpoint across syncs: its
// addresses, hostname and target (upstream's endpoint hash). Everything
// else about it may change in place.
func EndpointKey(ep *discoveryv1.Endpoint) string {
	addrs := slices.Clone(ep.Addresses)
	sort.Strings(addrs)
	var b strings.Builder
	b.WriteString(strings.Join(addrs, ","))
	b.WriteByte('|')
	b.WriteString(deref(ep.Hostname))
	if ep.TargetRef != nil {
		b.WriteByte('|')
		b.WriteString(ep.TargetRef.Namespace)
		b.WriteByte('/')
		b.WriteString(ep.TargetRef.Name)
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
