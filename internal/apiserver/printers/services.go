package printers

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// listMax is how many entries the ENDPOINTS and PORTS columns list before
// summarising the rest as " + N more...".
const listMax = 3

func servicePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Type", "string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
			column("Cluster-IP", "string", "The service's primary cluster IP."),
			column("External-IP", "string", "Addresses the service is reachable at from outside the cluster."),
			column("Port(s)", "string", "Service ports, with node ports, and protocols."),
			ageColumn(),
			wide(column("Selector", "string", "Labels of the pods that back the service.")),
		},
		Cells: typed(func(svc *corev1.Service, now time.Time) []interface{} {
			clusterIP := none
			if len(svc.Spec.ClusterIPs) > 0 {
				clusterIP = svc.Spec.ClusterIPs[0]
			} else if svc.Spec.ClusterIP != "" {
				clusterIP = svc.Spec.ClusterIP
			}
			return []interface{}{
				svc.Name,
				string(serviceType(svc)),
				clusterIP,
				serviceExternalIP(svc),
				orDefault(servicePorts(svc.Spec.Ports), none),
				age(svc.CreationTimestamp, now),
				labels.FormatLabels(svc.Spec.Selector),
			}
		}),
	}
}

// serviceType is the service's type; unset means ClusterIP, the default.
func serviceType(svc *corev1.Service) corev1.ServiceType {
	if svc.Spec.Type == "" {
		return corev1.ServiceTypeClusterIP
	}
	return svc.Spec.Type
}

// serviceExternalIP is the EXTERNAL-IP cell: the external IPs, plus the
// load balancer's addresses for a LoadBalancer ("<pending>" until it has
// one), or the DNS name of an ExternalName service.
//
// kube-apiserver prints tables in wide mode, so the load balancer list is
// never shortened here.
func serviceExternalIP(svc *corev1.Service) string {
	switch serviceType(svc) {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return none
	case corev1.ServiceTypeLoadBalancer:
		addrs := loadBalancerAddresses(svc.Status.LoadBalancer)
		addrs = append(addrs, svc.Spec.ExternalIPs...)
		if len(addrs) == 0 {
			return "<pending>"
		}
		return strings.Join(addrs, ",")
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return unknown
}

// loadBalancerAddresses are the distinct ingress IPs (or hostnames, for
// ingress points without an IP), sorted.
func loadBalancerAddresses(lb corev1.LoadBalancerStatus) []string {
	seen := map[string]bool{}
	var out []string
	for _, in := range lb.Ingress {
		a := in.IP
		if a == "" {
			a = in.Hostname
		}
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// servicePorts renders ports as "80/TCP" or, with a node port,
// "80:30080/TCP", joined by commas. An unset protocol is TCP, the default.
func servicePorts(ports []corev1.ServicePort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		proto := orDefault(string(p.Protocol), string(corev1.ProtocolTCP))
		if p.NodePort > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, proto))
		} else {
			parts = append(parts, fmt.Sprintf("%d/%s", p.Port, proto))
		}
	}
	return strings.Join(parts, ",")
}

func endpointsPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Endpoints", "string", "The first few ready addresses with ports."),
			ageColumn(),
		},
		Cells: typed(func(ep *corev1.Endpoints, now time.Time) []interface{} {
			return []interface{}{ep.Name, endpointsAddresses(ep), age(ep.CreationTimestamp, now)}
		}),
	}
}

// endpointsAddresses renders up to listMax "ip:port" entries (bare IPs for
// subsets without ports) and counts the rest: one entry per address and
// port, so two ports on ten addresses are twenty entries.
func endpointsAddresses(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return none
	}
	var list []string
	total := 0
	add := func(s string) {
		total++
		if len(list) < listMax {
			list = append(list, s)
		}
	}
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			// Headless services may have no ports.
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return withMore(list, total, "")
}

func endpointSlicePrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("AddressType", "string", "The kind of addresses in the slice: IPv4, IPv6 or FQDN."),
			column("Ports", "string", "The first few port numbers (or names)."),
			column("Endpoints", "string", "The first few endpoint addresses."),
			ageColumn(),
		},
		Cells: typed(func(es *discoveryv1.EndpointSlice, now time.Time) []interface{} {
			return []interface{}{
				es.Name,
				string(es.AddressType),
				endpointSlicePorts(es.Ports),
				endpointSliceAddresses(es.Endpoints),
				age(es.CreationTimestamp, now),
			}
		}),
	}
}

// endpointSlicePorts lists port numbers, or the name of a port without a
// number, or "*" for a port with neither.
func endpointSlicePorts(ports []discoveryv1.EndpointPort) string {
	var list []string
	for _, p := range ports {
		s := "*"
		if p.Port != nil {
			s = strconv.Itoa(int(*p.Port))
		} else if p.Name != nil {
			s = *p.Name
		}
		if len(list) < listMax {
			list = append(list, s)
		}
	}
	return withMore(list, len(ports), unset)
}

func endpointSliceAddresses(endpoints []discoveryv1.Endpoint) string {
	var list []string
	total := 0
	for _, e := range endpoints {
		for _, a := range e.Addresses {
			total++
			if len(list) < listMax {
				list = append(list, a)
			}
		}
	}
	return withMore(list, total, unset)
}

// withMore joins the listed entries and, when total is more than listed,
// adds " + N more...". An empty list is empty.
func withMore(list []string, total int, empty string) string {
	s := strings.Join(list, ",")
	if total > len(list) {
		return fmt.Sprintf("%s + %d more...", s, total-len(list))
	}
	return orDefault(s, empty)
}
