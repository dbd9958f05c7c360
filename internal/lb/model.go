package lb

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Target is one health check: a TCP connect to IP:Port, or, with HTTP,
// GET http://IP:Port/ expecting 200 (kube-proxy's health check node port
// for externalTrafficPolicy Local).
type Target struct {
	IP   netip.Addr
	Port int32
	HTTP bool
}

func (t Target) String() string {
	if t.HTTP {
		return fmt.Sprintf("http://%s/", netip.AddrPortFrom(t.IP, uint16(t.Port)))
	}
	return "tcp:" + netip.AddrPortFrom(t.IP, uint16(t.Port)).String()
}

// Health is what the checker knows of a target.
type Health int

// A target is Unknown until its first check; Unknown counts as up, so a
// new Service forwards at once, and the first failure takes it out.
const (
	Unknown Health = iota
	Up
	Down
)

// Frontend is one Service port on one ingress address, and the nodes it
// forwards to.
type Frontend struct {
	Service  string // namespace/name
	IP       netip.Addr
	Protocol string // tcp, udp, sctp (nft's names)
	Port     int32
	NodePort int32
	// Nodes are the node addresses to forward to, sorted; empty: the
	// port is closed (connection refused).
	Nodes []netip.Addr
}

// Chain is the nft chain of the frontend: named by the Service port, so
// every ingress address of it shares one chain.
func (f Frontend) Chain() string {
	return fmt.Sprintf("%s%s/%s/%d", svcChainPrefix, f.Service, f.Protocol, f.Port)
}

// State is everything kite lb programs.
type State struct {
	Frontends []Frontend
	// Addrs are the ingress addresses to own, sorted.
	Addrs []netip.Addr
	// Pool: traffic to these prefixes not served here is refused.
	Pool []netip.Prefix
}

// Node is what the model needs of a Node.
type Node struct {
	Name string
	IP   netip.Addr
}

// ReadyNodes are the nodes a load balancer may use: Ready, with an IPv4
// InternalIP, not labelled exclude-from-external-load-balancers; sorted
// by address.
func ReadyNodes(nodes []*corev1.Node) []Node {
	var out []Node
	for _, n := range nodes {
		if _, excluded := n.Labels[LabelExcludeFromLB]; excluded || !ready(n) {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Unmap().Is4() {
				out = append(out, Node{Name: n.Name, IP: ip.Unmap()})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return a.IP.Compare(b.IP) })
	return out
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Serves reports whether kite lb handles the Service: type LoadBalancer,
// class unset or class.
func Serves(svc *corev1.Service, class string) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == class)
}

// targets are the health checks a Service port needs on one node: the
// health check node port (HTTP) for externalTrafficPolicy Local; a TCP
// connect to the NodePort for TCP ports otherwise. UDP and SCTP ports of
// Cluster-policy Services have no check of their own: node readiness is
// all there is.
func targets(svc *corev1.Service, p corev1.ServicePort, node netip.Addr) []Target {
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && svc.Spec.HealthCheckNodePort != 0 {
		return []Target{{IP: node, Port: svc.Spec.HealthCheckNodePort, HTTP: true}}
	}
	if cmp.Or(p.Protocol, corev1.ProtocolTCP) == corev1.ProtocolTCP {
		return []Target{{IP: node, Port: p.NodePort}}
	}
	return nil
}

// Desired computes what to program from the Services, the usable nodes
// and the targets' health, and lists the health checks it needs. Pure.
func Desired(services []*corev1.Service, nodes []Node, class string, pool []netip.Prefix, health func(Target) Health) (State, []Target) {
	st := State{Pool: slices.Clone(pool)}
	need := map[Target]bool{}
	addrs := map[netip.Addr]bool{}
	for _, svc := range services {
		if !Serves(svc, class) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		var ips []netip.Addr
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil && ip.Unmap().Is4() {
				ips = append(ips, ip.Unmap())
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				continue // allocateLoadBalancerNodePorts: false; nothing to forward to
			}
			var up []netip.Addr
			for _, n := range nodes {
				healthy := true
				for _, t := range targets(svc, p, n.IP) {
					need[t] = true
					healthy = healthy && health(t) != Down
				}
				if healthy {
					up = append(up, n.IP)
				}
			}
			for _, ip := range ips {
				addrs[ip] = true
				st.Frontends = append(st.Frontends, Frontend{Service: key, IP: ip,
					Protocol: strings.ToLower(string(cmp.Or(p.Protocol, corev1.ProtocolTCP))),
					Port:     p.Port, NodePort: p.NodePort, Nodes: up})
			}
		}
		for _, ip := range ips {
			addrs[ip] = true // owned even with no ports, so the address answers
		}
	}
	// Two Services claiming one address and port (a foreign write): the
	// first by name wins, deterministically.
	slices.SortFunc(st.Frontends, func(a, b Frontend) int {
		return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Service, b.Service))
	})
	st.Frontends = slices.CompactFunc(st.Frontends, func(a, b Frontend) bool {
		return a.IP == b.IP && a.Protocol == b.Protocol && a.Port == b.Port
	})
	for ip := range addrs {
		st.Addrs = append(st.Addrs, ip)
	}
	slices.SortFunc(st.Addrs, netip.Addr.Compare)
	var ts []Target
	for t := range need {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b Target) int {
		return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port), boolCmp(a.HTTP, b.HTTP))
	})
	return st, ts
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
