package dns

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// The slim records DNS is answered from. They hold what the specification
// needs and nothing else: a Service of a few kilobytes becomes a name, its
// addresses and its named ports.

// serviceKind says which records a Service has.
type serviceKind uint8

const (
	kindClusterIP    serviceKind = iota // A/AAAA of its cluster IPs
	kindHeadless                        // A/AAAA of its ready endpoints
	kindExternalName                    // a CNAME
)

// Service is the DNS view of a corev1.Service.
type Service struct {
	Namespace, Name string // lower case
	Kind            serviceKind
	ClusterIPs      []netip.Addr
	ExternalName    string // fully qualified, lower case
	Ports           []Port // named ports only: unnamed ports have no SRV
	// PublishNotReady counts every endpoint as ready, as the Service's
	// spec.publishNotReadyAddresses (or the older annotation) asks.
	PublishNotReady bool
}

// Port is a named Service port.
type Port struct {
	Name     string // lower case
	Protocol string // "tcp", "udp" or "sctp"
	Port     uint16
}

// Endpoint is one address of an EndpointSlice endpoint.
type Endpoint struct {
	Addr     netip.Addr
	Hostname string // endpoint hostname, lower case; "" when the pod set none
	Ready    bool
}

// tolerateUnreadyAnnotation is the pre-publishNotReadyAddresses way to
// ask for unready endpoints in DNS, still honoured by the specification.
const tolerateUnreadyAnnotation = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

// ServiceRecord builds the DNS view of a Service.
func ServiceRecord(svc *corev1.Service) Service {
	s := Service{
		Namespace:       strings.ToLower(svc.Namespace),
		Name:            strings.ToLower(svc.Name),
		PublishNotReady: svc.Spec.PublishNotReadyAddresses || svc.Annotations[tolerateUnreadyAnnotation] == "true",
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		s.Kind = kindExternalName
		s.ExternalName = strings.ToLower(fqdn(svc.Spec.ExternalName))
		return s // no ports, no addresses: only the CNAME
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		s.Kind = kindHeadless
	default:
		s.Kind = kindClusterIP
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				s.ClusterIPs = append(s.ClusterIPs, a.Unmap())
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue
		}
		s.Ports = append(s.Ports, Port{Name: strings.ToLower(p.Name), Protocol: protocol(p.Protocol), Port: uint16(p.Port)})
	}
	return s
}

func protocol(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// SliceService is the namespace and name of the Service an EndpointSlice
// belongs to; ok is false for slices of no Service.
func SliceService(slice *discoveryv1.EndpointSlice) (namespace, name string, ok bool) {
	name = slice.Labels[discoveryv1.LabelServiceName]
	return strings.ToLower(slice.Namespace), strings.ToLower(name), name != ""
}

// EndpointRecords builds the DNS view of an EndpointSlice: one Endpoint
// per address. FQDN slices (deprecated) have no addresses to answer.
func EndpointRecords(slice *discoveryv1.EndpointSlice) []Endpoint {
	if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	var eps []Endpoint
	for _, ep := range slice.Endpoints {
		// A nil ready condition means ready: "unknown state" is to be
		// interpreted as ready by consumers (discovery/v1 API docs).
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		host := ""
		if ep.Hostname != nil {
			host = strings.ToLower(*ep.Hostname)
		}
		for _, a := range ep.Addresses {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			eps = append(eps, Endpoint{Addr: addr.Unmap(), Hostname: host, Ready: ready})
		}
	}
	return eps
}

// endpointLabel is an endpoint's name under its Service: its hostname,
// else its address with dashes (10-244-1-5, fd00--5), which the
// specification leaves to the implementation and CoreDNS also uses.
func endpointLabel(ep Endpoint) string {
	if ep.Hostname != "" {
		return ep.Hostname
	}
	return dashed(ep.Addr)
}

func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}

// undashed parses an address written with dashes; ok is false when it
// is none.
func undashed(label string) (netip.Addr, bool) {
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
		return a, err == nil && a.Is4()
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	return a, err == nil && a.Is6() && !a.Is4In6() && a.Zone() == ""
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
