package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// defaultAffinitySeconds is Kubernetes' default ClientIP affinity timeout
// (three hours) when sessionAffinityConfig leaves it out.
const defaultAffinitySeconds = 10800

// PortKey names one port of one Service.
type PortKey struct {
	Namespace, Name string
	// Port is the service port's name ("" for a single unnamed port).
	Port     string
	Protocol v1.Protocol
}

// String is "<ns>/<svc>:<port>" (or "<ns>/<svc>" for an unnamed port), the
// form kube-proxy's comments use.
func (k PortKey) String() string {
	if k.Port == "" {
		return k.Namespace + "/" + k.Name
	}
	return k.Namespace + "/" + k.Name + ":" + k.Port
}

// proto is the protocol in nft and iptables spelling.
func (k PortKey) proto() string { return strings.ToLower(string(k.Protocol)) }

// Endpoint is one backend of a service port.
type Endpoint struct {
	Addr                        netip.AddrPort
	Node                        string
	Local                       bool
	Ready, Serving, Terminating bool
}

// ServicePort is one port of a Service with the endpoints traffic to it may
// reach from this node.
type ServicePort struct {
	Key       PortKey
	ClusterIP netip.Addr
	Port      uint16
	// NodePort is 0 when the Service has none.
	NodePort        uint16
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr
	// ExternalLocal and InternalLocal are the traffic policies being Local
	// (ExternalLocal only for externally reachable ports).
	ExternalLocal, InternalLocal bool
	// HealthCheckNodePort serves the local endpoint count (ExternalLocal).
	HealthCheckNodePort uint16
	// AffinitySeconds > 0 pins a client IP to its endpoint for that long.
	AffinitySeconds int32
	// ClusterEndpoints are the usable endpoints anywhere: the ready ones,
	// or if none is ready the serving-and-terminating ones.
	ClusterEndpoints []Endpoint
	// LocalEndpoints are the usable endpoints on this node, by the same
	// rule applied to this node's endpoints alone.
	LocalEndpoints []Endpoint
}

// External reports whether traffic can reach the port from outside the
// cluster network: a NodePort, external IPs or load-balancer IPs.
func (sp *ServicePort) External() bool {
	return sp.NodePort != 0 || len(sp.ExternalIPs) > 0 || len(sp.LoadBalancerIPs) > 0
}

// InternalEndpoints are where ClusterIP traffic goes.
func (sp *ServicePort) InternalEndpoints() []Endpoint {
	if sp.InternalLocal {
		return sp.LocalEndpoints
	}
	return sp.ClusterEndpoints
}

// ExternalEndpoints are where NodePort, external-IP and LB traffic goes.
func (sp *ServicePort) ExternalEndpoints() []Endpoint {
	if sp.ExternalLocal {
		return sp.LocalEndpoints
	}
	return sp.ClusterEndpoints
}

// usesCluster and usesLocal say which endpoint sets some path dispatches
// over, so a renderer makes only the chains that something reaches.
func (sp *ServicePort) usesCluster() bool {
	// Under externalTrafficPolicy Local, traffic from pods and from the
	// node itself to an external address still goes cluster-wide.
	return !sp.InternalLocal || sp.External()
}
func (sp *ServicePort) usesLocal() bool { return sp.InternalLocal || sp.ExternalLocal }

// Model is the whole desired state of one node's service proxy.
type Model struct {
	// ClusterCIDR is the pod network (invalid: unknown, nothing is
	// masqueraded for being off-cluster).
	ClusterCIDR netip.Prefix
	// Ports is sorted by key.
	Ports []ServicePort
}

// ModelInput is what BuildModel reads.
type ModelInput struct {
	NodeName    string
	ClusterCIDR netip.Prefix
	Services    []*v1.Service
	Slices      []*discovery.EndpointSlice
}

// BuildModel computes the service ports × endpoints that one node serves.
// IPv4 only: IPv6 ClusterIPs, external IPs and slices are ignored.
// Headless and ExternalName Services have no rules.
func BuildModel(in ModelInput) *Model {
	bySvc := map[[2]string][]*discovery.EndpointSlice{}
	for _, s := range in.Slices {
		name := s.Labels[discovery.LabelServiceName]
		if name == "" || s.AddressType != discovery.AddressTypeIPv4 {
			continue
		}
		k := [2]string{s.Namespace, name}
		bySvc[k] = append(bySvc[k], s)
	}
	m := &Model{ClusterCIDR: in.ClusterCIDR}
	for _, svc := range in.Services {
		m.Ports = append(m.Ports, servicePorts(svc, bySvc[[2]string{svc.Namespace, svc.Name}], in.NodeName)...)
	}
	slices.SortFunc(m.Ports, func(a, b ServicePort) int { return comparePortKeys(a.Key, b.Key) })
	return m
}

func comparePortKeys(a, b PortKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}

func servicePorts(svc *v1.Service, eps []*discovery.EndpointSlice, node string) []ServicePort {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return nil
	}
	clusterIP, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !clusterIP.Is4() {
		return nil // headless ("None"), unallocated, or IPv6
	}
	var externalIPs, lbIPs []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			externalIPs = append(externalIPs, a)
		}
	}
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			// ipMode Proxy means the load balancer proxies to the node
			// itself: the ingress IP must not be captured here.
			if ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP {
				continue
			}
			if a, err := netip.ParseAddr(ing.IP); err == nil && a.Is4() {
				lbIPs = append(lbIPs, a)
			}
		}
	}
	var affinity int32
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		affinity = defaultAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	nodePorts := svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer
	var out []ServicePort
	for _, p := range svc.Spec.Ports {
		proto := cmp.Or(p.Protocol, v1.ProtocolTCP)
		if proto != v1.ProtocolTCP && proto != v1.ProtocolUDP && proto != v1.ProtocolSCTP {
			continue
		}
		sp := ServicePort{
			Key:             PortKey{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: proto},
			ClusterIP:       clusterIP,
			Port:            uint16(p.Port),
			ExternalIPs:     externalIPs,
			LoadBalancerIPs: lbIPs,
			AffinitySeconds: affinity,
			InternalLocal:   svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
		}
		if nodePorts {
			sp.NodePort = uint16(p.NodePort)
		}
		if sp.External() && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal {
			sp.ExternalLocal = true
			sp.HealthCheckNodePort = uint16(svc.Spec.HealthCheckNodePort)
		}
		all := sliceEndpoints(eps, p.Name, proto, node)
		sp.ClusterEndpoints = usable(all)
		sp.LocalEndpoints = usable(slices.DeleteFunc(slices.Clone(all), func(e Endpoint) bool { return !e.Local }))
		out = append(out, sp)
	}
	return out
}

// sliceEndpoints collects, over a Service's slices, the endpoints of the
// slice port with that name and protocol (the endpoint controller has
// resolved named targetPorts into it), deduplicated by address.
func sliceEndpoints(eps []*discovery.EndpointSlice, portName string, proto v1.Protocol, node string) []Endpoint {
	seen := map[netip.AddrPort]int{}
	var out []Endpoint
	for _, s := range eps {
		var port int32
		for _, p := range s.Ports {
			if p.Port != nil && ptrOr(p.Name, "") == portName && ptrOr(p.Protocol, v1.ProtocolTCP) == proto {
				port = *p.Port
			}
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !ip.Is4() {
				continue
			}
			// Unset conditions mean ready (and then serving), per the
			// EndpointSlice API.
			ready := ptrOr(e.Conditions.Ready, true)
			ep := Endpoint{
				Addr:        netip.AddrPortFrom(ip, uint16(port)),
				Node:        ptrOr(e.NodeName, ""),
				Ready:       ready,
				Serving:     ptrOr(e.Conditions.Serving, ready),
				Terminating: ptrOr(e.Conditions.Terminating, false),
			}
			ep.Local = node != "" && ep.Node == node
			if i, ok := seen[ep.Addr]; ok {
				if ep.Ready && !out[i].Ready {
					out[i] = ep
				}
				continue
			}
			seen[ep.Addr] = len(out)
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
	return out
}

// usable is the endpoints traffic may go to: the ready ones; if none is
// ready, those still serving while terminating (so a rolling update or a
// draining node does not drop traffic it could still serve).
func usable(all []Endpoint) []Endpoint {
	var ready, terminating []Endpoint
	for _, e := range all {
		switch {
		case e.Ready:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// String is a one-line summary, for logs and test failures.
func (sp *ServicePort) String() string {
	return fmt.Sprintf("%s/%s %s:%d nodePort=%d cluster=%d local=%d", sp.Key, sp.Key.Protocol, sp.ClusterIP, sp.Port, sp.NodePort, len(sp.ClusterEndpoints), len(sp.LocalEndpoints))
}

// equal reports whether two service ports would be programmed alike.
func (sp *ServicePort) equal(o *ServicePort) bool {
	return sp.Key == o.Key && sp.ClusterIP == o.ClusterIP && sp.Port == o.Port && sp.NodePort == o.NodePort &&
		sp.ExternalLocal == o.ExternalLocal && sp.InternalLocal == o.InternalLocal &&
		sp.HealthCheckNodePort == o.HealthCheckNodePort && sp.AffinitySeconds == o.AffinitySeconds &&
		slices.Equal(sp.ExternalIPs, o.ExternalIPs) && slices.Equal(sp.LoadBalancerIPs, o.LoadBalancerIPs) &&
		slices.Equal(sp.ClusterEndpoints, o.ClusterEndpoints) && slices.Equal(sp.LocalEndpoints, o.LocalEndpoints)
}

// ServiceKey names a Service.
type ServiceKey struct{ Namespace, Name string }

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

func compareServiceKeys(a, b ServiceKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// sortedServiceKeys is keys sorted, each once (keys is not modified).
func sortedServiceKeys(keys []ServiceKey) []ServiceKey {
	return slices.Compact(slices.SortedFunc(slices.Values(keys), compareServiceKeys))
}

// servicePortRange is where a Service's ports sit in Ports (sorted by
// key, so they are contiguous): Ports[lo:hi], empty when it has none.
func (m *Model) servicePortRange(k ServiceKey) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(m.Ports, k, func(sp ServicePort, k ServiceKey) int {
		return compareServiceKeys(ServiceKey{sp.Key.Namespace, sp.Key.Name}, k)
	})
	hi = lo
	for hi < len(m.Ports) && m.Ports[hi].Key.Namespace == k.Namespace && m.Ports[hi].Key.Name == k.Name {
		hi++
	}
	return lo, hi
}

// UpdateModel is prev with the ports of the changed Services computed
// again from in, which holds the current Services and EndpointSlices of
// those Services (a changed Service absent from in is gone; objects of
// other Services are ignored). The result equals BuildModel over all
// objects, at the cost of the changed Services plus one copy of prev's
// ports; prev is not modified. in.ClusterCIDR must be prev's (a new CIDR
// changes every port: use BuildModel).
func UpdateModel(prev *Model, in ModelInput, changed []ServiceKey) *Model {
	fresh := BuildModel(in)
	keys := sortedServiceKeys(changed)
	m := &Model{ClusterCIDR: prev.ClusterCIDR, Ports: make([]ServicePort, 0, len(prev.Ports)+len(fresh.Ports))}
	// A Service's ports are contiguous in both Models, and its new ports
	// go where its old ones were: copy prev between the changed ranges.
	pos := 0
	for _, k := range keys {
		lo, hi := prev.servicePortRange(k)
		flo, fhi := fresh.servicePortRange(k)
		m.Ports = append(m.Ports, prev.Ports[pos:lo]...)
		m.Ports = append(m.Ports, fresh.Ports[flo:fhi]...)
		pos = hi
	}
	m.Ports = append(m.Ports, prev.Ports[pos:]...)
	return m
}
