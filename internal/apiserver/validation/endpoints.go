package validation

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateEndpoints validates core/v1 Endpoints, on create and after
// every update.
func ValidateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	errs := objectMeta(&ep.ObjectMeta, true, nameIsDNSSubdomain)
	sp := field.NewPath("subsets")
	for i := range ep.Subsets {
		ss, p := &ep.Subsets[i], sp.Index(i)
		// A headless service's endpoints may have no ports, never no
		// addresses.
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j := range ss.Addresses {
			errs = append(errs, endpointAddress(&ss.Addresses[j], p.Child("addresses").Index(j))...)
		}
		for j := range ss.NotReadyAddresses {
			errs = append(errs, endpointAddress(&ss.NotReadyAddresses[j], p.Child("notReadyAddresses").Index(j))...)
		}
		for j, port := range ss.Ports {
			pp := p.Child("ports").Index(j)
			if len(ss.Ports) > 1 && port.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if port.Name != "" {
				errs = append(errs, dnsLabel(port.Name, pp.Child("name"))...)
			}
			errs = append(errs, portNumber(port.Port, pp.Child("port"))...)
			errs = append(errs, oneOf(port.Protocol, pp.Child("protocol"), portProtocols...)...)
			if port.AppProtocol != nil {
				errs = append(errs, qualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
			}
		}
	}
	return errs
}

// ValidateEndpointsUpdate validates ep replacing old.
func ValidateEndpointsUpdate(ep, old *corev1.Endpoints) field.ErrorList {
	return append(metaUpdate(&ep.ObjectMeta, &old.ObjectMeta), ValidateEndpoints(ep)...)
}

func endpointAddress(a *corev1.EndpointAddress, p *field.Path) field.ErrorList {
	errs := utilvalidation.IsValidIP(p.Child("ip"), a.IP)
	if a.Hostname != "" {
		errs = append(errs, dnsLabel(a.Hostname, p.Child("hostname"))...)
	}
	if a.NodeName != nil {
		errs = append(errs, nameAt(*a.NodeName, p.Child("nodeName"), nameIsDNSSubdomain)...)
	}
	return append(errs, nonSpecialIP(a.IP, p.Child("ip"))...)
}

// EndpointSlice limits.
const (
	maxSliceEndpoints = 1000
	maxSliceAddresses = 100
	maxSlicePorts     = 20000
	maxTopologyLabels = 16
	maxZoneHints      = 8
)

var addressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}

// ValidateEndpointSlice validates a discovery/v1 EndpointSlice, on create
// and after every update.
func ValidateEndpointSlice(es *discoveryv1.EndpointSlice) field.ErrorList {
	errs := objectMeta(&es.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, oneOf(es.AddressType, field.NewPath("addressType"), addressTypes...)...)
	errs = append(errs, sliceEndpoints(es.Endpoints, es.AddressType, field.NewPath("endpoints"))...)
	return append(errs, slicePorts(es.Ports, field.NewPath("ports"))...)
}

// ValidateEndpointSliceUpdate validates es replacing old; the address type
// is immutable.
func ValidateEndpointSliceUpdate(es, old *discoveryv1.EndpointSlice) field.ErrorList {
	errs := metaUpdate(&es.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, ValidateEndpointSlice(es)...)
	return append(errs, immutable(es.AddressType, old.AddressType, field.NewPath("addressType"))...)
}

func sliceEndpoints(eps []discoveryv1.Endpoint, at discoveryv1.AddressType, p *field.Path) field.ErrorList {
	if len(eps) > maxSliceEndpoints {
		return field.ErrorList{field.TooMany(p, len(eps), maxSliceEndpoints)}
	}
	var errs field.ErrorList
	for i, ep := range eps {
		ip := p.Index(i)
		ap := ip.Child("addresses")
		if len(ep.Addresses) == 0 {
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		} else if len(ep.Addresses) > maxSliceAddresses {
			errs = append(errs, field.TooMany(ap, len(ep.Addresses), maxSliceAddresses))
		}
		for j, a := range ep.Addresses {
			// Unknown address types were reported above; their addresses
			// are not checked.
			switch at {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				errs = append(errs, ipOfFamily(a, at == discoveryv1.AddressTypeIPv6, ap.Index(j))...)
				errs = append(errs, nonSpecialIP(a, ap.Index(j))...)
			case discoveryv1.AddressTypeFQDN:
				errs = append(errs, utilvalidation.IsFullyQualifiedDomainName(ap.Index(j), a)...)
			}
		}
		if ep.NodeName != nil {
			errs = append(errs, nameAt(*ep.NodeName, ip.Child("nodeName"), nameIsDNSSubdomain)...)
		}
		tp := ip.Child("deprecatedTopology")
		if len(ep.DeprecatedTopology) > maxTopologyLabels {
			errs = append(errs, field.TooMany(tp, len(ep.DeprecatedTopology), maxTopologyLabels))
		}
		errs = append(errs, labels(ep.DeprecatedTopology, tp)...)
		if ep.Hostname != nil {
			errs = append(errs, dnsLabel(*ep.Hostname, ip.Child("hostname"))...)
		}
		if h := ep.Hints; h != nil {
			errs = append(errs, zoneHints(h.ForZones, ip.Child("hints", "forZones"))...)
		}
	}
	return errs
}

func ipOfFamily(s string, v6 bool, p *field.Path) field.ErrorList {
	a, err := netip.ParseAddr(s)
	switch {
	case v6 && (err != nil || !a.Is6() || a.Is4In6()):
		return field.ErrorList{field.Invalid(p, s, "must be a valid IPv6 address")}
	case !v6 && (err != nil || !a.Is4()):
		return field.ErrorList{field.Invalid(p, s, "must be a valid IPv4 address")}
	}
	return nil
}

func zoneHints(zones []discoveryv1.ForZone, p *field.Path) field.ErrorList {
	if len(zones) > maxZoneHints {
		return field.ErrorList{field.TooMany(p, len(zones), maxZoneHints)}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, z := range zones {
		zp := p.Index(i).Child("name")
		if seen[z.Name] {
			errs = append(errs, field.Duplicate(zp, z.Name))
		}
		seen[z.Name] = true
		errs = append(errs, invalidFor(z.Name, zp, utilvalidation.IsValidLabelValue(z.Name))...)
	}
	return errs
}

func slicePorts(ports []discoveryv1.EndpointPort, p *field.Path) field.ErrorList {
	if len(ports) > maxSlicePorts {
		return field.ErrorList{field.TooMany(p, len(ports), maxSlicePorts)}
	}
	var errs field.ErrorList
	names := map[string]bool{}
	for i, port := range ports {
		pp := p.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, dnsLabel(name, pp.Child("name"))...)
		}
		if names[name] {
			errs = append(errs, field.Duplicate(pp.Child("name"), name))
		}
		names[name] = true
		if port.Protocol == nil {
			errs = append(errs, field.Required(pp.Child("protocol"), ""))
		} else {
			errs = append(errs, supported(*port.Protocol, pp.Child("protocol"), portProtocols...)...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, qualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
		}
	}
	return errs
}
