package endpointslicemirroring

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/utils/net"

	"kite/internal/controller/internal/endpointutil"
)

// Plan is the writes that make the mirrored slices match an Endpoints.
type Plan struct {
	Create, Update, Delete []*discoveryv1.EndpointSlice
	// Invalid counts addresses that are not IPs; Skipped counts those left
	// out because a subset had more than the mirroring limit.
	Invalid, Skipped int
}

// Empty reports a plan that writes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// PlanMirror computes the slices that mirror ep, as upstream's
// endpointslicemirroring reconciler: one slice per (address type, port
// list), holding at most maxPerSubset addresses of each subset; ready
// addresses ready, notReadyAddresses not ready; labels and annotations
// copied from the Endpoints (but the trigger time and last-applied
// configuration), with the service-name and managed-by labels; owned by
// the Endpoints. Existing slices are reused by name.
func PlanMirror(ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice, maxPerSubset int) Plan {
	var plan Plan
	type group struct {
		ports     []discoveryv1.EndpointPort
		at        discoveryv1.AddressType
		endpoints map[string]*discoveryv1.Endpoint
		order     []string
	}
	groups := map[string]*group{}
	var groupOrder []string
	for _, subset := range ep.Subsets {
		ports := mirrorPorts(subset.Ports)
		portKey := endpointutil.PortMapKey(ports)
		added := 0
		add := func(addr corev1.EndpointAddress, ready bool) {
			if added >= maxPerSubset {
				plan.Skipped++
				return
			}
			e, at, ok := addressToEndpoint(addr, ready)
			if !ok {
				plan.Invalid++
				plan.Skipped++
				return
			}
			added++
			key := string(at) + "|" + portKey
			g := groups[key]
			if g == nil {
				g = &group{ports: ports, at: at, endpoints: map[string]*discoveryv1.Endpoint{}}
				groups[key] = g
				groupOrder = append(groupOrder, key)
			}
			ek := endpointutil.EndpointKey(e)
			if _, dup := g.endpoints[ek]; !dup {
				g.order = append(g.order, ek)
			}
			g.endpoints[ek] = e
		}
		for _, a := range subset.Addresses {
			add(a, true)
		}
		for _, a := range subset.NotReadyAddresses {
			add(a, false)
		}
	}

	existingByKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		key := string(s.AddressType) + "|" + endpointutil.PortMapKey(s.Ports)
		existingByKey[key] = append(existingByKey[key], s)
	}
	for _, key := range groupOrder {
		g := groups[key]
		have := existingByKey[key]
		want := newSlice(ep, g.ports, g.at)
		for _, ek := range g.order {
			if len(want.Endpoints) >= maxPerSubset {
				break
			}
			want.Endpoints = append(want.Endpoints, *g.endpoints[ek])
		}
		if len(have) == 0 {
			plan.Create = append(plan.Create, want)
			continue
		}
		plan.Delete = append(plan.Delete, have[1:]...)
		if mirrors(have[0], want) {
			continue
		}
		want.Name, want.GenerateName, want.ResourceVersion = have[0].Name, "", have[0].ResourceVersion
		plan.Update = append(plan.Update, want)
	}
	for _, key := range slices.Sorted(maps.Keys(existingByKey)) {
		if _, ok := groups[key]; !ok {
			plan.Delete = append(plan.Delete, existingByKey[key]...)
		}
	}

	// Reuse slices about to be deleted for slices about to be created.
	for i := 0; i < len(plan.Create); {
		j := slices.IndexFunc(plan.Delete, func(s *discoveryv1.EndpointSlice) bool { return s.AddressType == plan.Create[i].AddressType })
		if j < 0 {
			i++
			continue
		}
		s := plan.Create[i]
		s.Name, s.GenerateName, s.ResourceVersion = plan.Delete[j].Name, "", plan.Delete[j].ResourceVersion
		plan.Update = append(plan.Update, s)
		plan.Create = slices.Delete(plan.Create, i, i+1)
		plan.Delete = slices.Delete(plan.Delete, j, j+1)
	}
	return plan
}

// mirrors reports whether an existing slice already is the wanted one:
// same endpoints (in any order), ports, labels and annotations.
func mirrors(have, want *discoveryv1.EndpointSlice) bool {
	if !maps.Equal(have.Labels, want.Labels) || !maps.Equal(have.Annotations, want.Annotations) ||
		len(have.Endpoints) != len(want.Endpoints) || !apiequality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences) {
		return false
	}
	byKey := make(map[string]*discoveryv1.Endpoint, len(want.Endpoints))
	for i := range want.Endpoints {
		byKey[endpointutil.EndpointKey(&want.Endpoints[i])] = &want.Endpoints[i]
	}
	for i := range have.Endpoints {
		w := byKey[endpointutil.EndpointKey(&have.Endpoints[i])]
		if w == nil || !apiequality.Semantic.DeepEqual(w, &have.Endpoints[i]) {
			return false
		}
	}
	return true
}

func newSlice(ep *corev1.Endpoints, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       ep.Namespace,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	maps.Copy(s.Labels, ep.Labels)
	s.Labels[discoveryv1.LabelServiceName] = ep.Name
	s.Labels[discoveryv1.LabelManagedBy] = ControllerName
	for k, v := range ep.Annotations {
		if k != corev1.EndpointsLastChangeTriggerTime && k != corev1.LastAppliedConfigAnnotation {
			s.Annotations[k] = v
		}
	}
	s.GenerateName = ep.Name + "-"
	if len(validation.NameIsDNSSubdomain(s.GenerateName, true)) != 0 {
		s.GenerateName = ep.Name
	}
	return s
}

// addressToEndpoint turns an Endpoints address into a slice endpoint,
// normalising the IP; ok is false for an address that is not an IP.
func addressToEndpoint(addr corev1.EndpointAddress, ready bool) (*discoveryv1.Endpoint, discoveryv1.AddressType, bool) {
	ip := utilnet.ParseIPSloppy(addr.IP)
	if ip == nil {
		return nil, "", false
	}
	at := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		at = discoveryv1.AddressTypeIPv6
	}
	e := &discoveryv1.Endpoint{
		Addresses:  []string{ip.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef:  addr.TargetRef,
		NodeName:   addr.NodeName,
	}
	if addr.Hostname != "" {
		h := addr.Hostname
		e.Hostname = &h
	}
	return e, at, true
}

func mirrorPorts(ports []corev1.EndpointPort) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for _, p := range ports {
		p := p
		out = append(out, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol, AppProtocol: p.AppProtocol})
	}
	return out
}
