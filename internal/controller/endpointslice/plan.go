package endpointslice

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kite/internal/controller/internal/endpointutil"
)

// Plan is the writes that bring a Service's slices to the desired state.
// Slices in Create have only a generateName; those in Update are copies of
// existing slices (same name) with new content.
type Plan struct {
	Create, Update, Delete []*discoveryv1.EndpointSlice
}

// Empty reports a plan that writes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// NodeGetter looks a node up by name; a missing node is a NotFound error.
type NodeGetter func(name string) (*corev1.Node, error)

// PlanSlices computes the slices of svc from the pods its selector matches
// and the slices that exist (those labelled as its and managed by this
// controller), as upstream's reconciler does, churning as little as it can:
//
//   - Endpoints are grouped by their resolved port list; each group fills
//     slices of at most maxPerSlice endpoints.
//   - An endpoint that changed (readiness, zone, ...) is updated in the
//     slice that holds it; gone endpoints are removed; a slice left empty
//     is deleted; new endpoints first top up slices being updated anyway
//     (fullest first), then go into the unchanged slice they fit best, and
//     only then into new slices.
//   - A create and a delete of the same address type become one update of
//     the slice that would have been deleted.
//   - A Service with no endpoints keeps one empty placeholder slice per
//     address type.
//
// Pods on nodes that getNode does not know are left out (unless
// publishNotReadyAddresses) and reported in the error, so the caller
// retries; the plan is still valid for the rest.
func PlanSlices(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, getNode NodeGetter, maxPerSlice int) (Plan, error) {
	var plan Plan
	supported := addressTypes(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	var unsupported []*discoveryv1.EndpointSlice
	for _, s := range existing {
		if !slices.Contains(supported, s.AddressType) {
			unsupported = append(unsupported, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	var errs []error
	for _, at := range supported {
		p, err := planAddressType(svc, pods, byType[at], getNode, maxPerSlice, at)
		if err != nil {
			errs = append(errs, err)
		}
		plan.Create = append(plan.Create, p.Create...)
		plan.Update = append(plan.Update, p.Update...)
		plan.Delete = append(plan.Delete, p.Delete...)
	}
	plan.Delete = append(plan.Delete, unsupported...)
	return plan, errors.Join(errs...)
}

func planAddressType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, getNode NodeGetter, maxPerSlice int, at discoveryv1.AddressType) (Plan, error) {
	var plan Plan
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if ownedBy(s, svc) {
			k := endpointutil.PortMapKey(s.Ports)
			existingByPorts[k] = append(existingByPorts[k], s)
		} else {
			plan.Delete = append(plan.Delete, s)
		}
	}

	desired := map[string]*endpointSet{}
	portsByKey := map[string][]discoveryv1.EndpointPort{}
	var errs []error
	for _, pod := range pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, true) {
			continue
		}
		ports := EndpointPorts(svc, pod)
		k := endpointutil.PortMapKey(ports)
		if desired[k] == nil {
			desired[k] = newEndpointSet()
			portsByKey[k] = ports
		}
		node, err := getNode(pod.Spec.NodeName)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				return Plan{}, err
			}
			if !svc.Spec.PublishNotReadyAddresses {
				errs = append(errs, fmt.Errorf("pod %s/%s left out of service %s/%s: node %q not found", pod.Namespace, pod.Name, svc.Namespace, svc.Name, pod.Spec.NodeName))
				continue
			}
			node = nil
		}
		ep := PodToEndpoint(pod, node, svc, at)
		if len(ep.Addresses) > 0 {
			desired[k].insert(&ep)
		}
	}

	for _, k := range slices.Sorted(maps.Keys(desired)) {
		p := planPortMapping(svc, existingByPorts[k], desired[k], portsByKey[k], at, maxPerSlice)
		plan.Create = append(plan.Create, p.Create...)
		plan.Update = append(plan.Update, p.Update...)
		plan.Delete = append(plan.Delete, p.Delete...)
	}
	for _, k := range slices.Sorted(maps.Keys(existingByPorts)) {
		if _, ok := desired[k]; !ok {
			plan.Delete = append(plan.Delete, existingByPorts[k]...)
		}
	}

	// No slices would be left: keep (or make) an empty placeholder.
	if len(existing) == len(plan.Delete) && len(plan.Create) == 0 {
		placeholder := newSlice(svc, []discoveryv1.EndpointPort{}, at)
		if len(plan.Delete) == 1 && isPlaceholder(plan.Delete[0], placeholder) {
			plan.Delete = nil
		} else {
			plan.Create = append(plan.Create, placeholder)
		}
	}

	// Turn create+delete pairs into updates of the slice to be deleted.
	for i := 0; i < len(plan.Delete) && len(plan.Create) > 0; {
		old := plan.Delete[i]
		s := plan.Create[len(plan.Create)-1]
		if old.AddressType == s.AddressType && ownedBy(old, svc) {
			s.Name, s.GenerateName, s.ResourceVersion = old.Name, "", old.ResourceVersion
			plan.Create = plan.Create[:len(plan.Create)-1]
			plan.Update = append(plan.Update, s)
			plan.Delete = slices.Delete(plan.Delete, i, i+1)
		} else {
			i++
		}
	}
	return plan, errors.Join(errs...)
}

// planPortMapping reconciles the slices of one port list with the
// endpoints desired for it.
func planPortMapping(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, want *endpointSet, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType, maxPerSlice int) Plan {
	byName := map[string]*discoveryv1.EndpointSlice{}
	unchanged, toUpdate, toDelete := map[string]bool{}, map[string]bool{}, map[string]bool{}
	labels := desiredLabels(svc)

	// 1. Keep the endpoints still wanted (in their current slice), update
	// the changed ones, drop the rest.
	for _, s := range existing {
		byName[s.Name] = s
		kept := make([]discoveryv1.Endpoint, 0, len(s.Endpoints))
		changed := false
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			got := want.get(ep)
			if got == nil {
				continue
			}
			kept = append(kept, *got)
			if !apiequality.Semantic.DeepEqual(got, ep) {
				changed = true
			}
			want.remove(ep)
		}
		labelsChanged := !labelsEqual(s.Labels, labels)
		switch {
		case changed || len(kept) != len(s.Endpoints):
			if len(kept) == 0 {
				toDelete[s.Name] = true
				continue
			}
			c := s.DeepCopy()
			c.Endpoints, c.Labels = kept, maps.Clone(labels)
			byName[s.Name] = c
			toUpdate[s.Name] = true
		case labelsChanged:
			c := s.DeepCopy()
			c.Labels = maps.Clone(labels)
			byName[s.Name] = c
			toUpdate[s.Name] = true
		default:
			unchanged[s.Name] = true
		}
	}

	remaining := want.sorted()
	pop := func() discoveryv1.Endpoint {
		ep := *remaining[0]
		remaining = remaining[1:]
		return ep
	}

	// 2. Top up the slices being written anyway, fullest first.
	if len(remaining) > 0 && len(toUpdate) > 0 {
		updating := make([]*discoveryv1.EndpointSlice, 0, len(toUpdate))
		for _, name := range slices.Sorted(maps.Keys(toUpdate)) {
			updating = append(updating, byName[name])
		}
		sort.SliceStable(updating, func(i, j int) bool { return len(updating[i].Endpoints) > len(updating[j].Endpoints) })
		for _, s := range updating {
			for len(remaining) > 0 && len(s.Endpoints) < maxPerSlice {
				s.Endpoints = append(s.Endpoints, pop())
			}
		}
	}

	// 3. Put what is left into the unchanged slice it fits best, else new
	// slices.
	var toCreate []*discoveryv1.EndpointSlice
	for len(remaining) > 0 {
		var fill *discoveryv1.EndpointSlice
		if len(remaining) < maxPerSlice && len(unchanged) > 0 {
			candidates := make([]*discoveryv1.EndpointSlice, 0, len(unchanged))
			for _, name := range slices.Sorted(maps.Keys(unchanged)) {
				candidates = append(candidates, byName[name])
			}
			if best := bestFit(candidates, len(remaining), maxPerSlice); best != nil {
				fill = best.DeepCopy()
				byName[fill.Name] = fill
			}
		}
		if fill == nil {
			fill = newSlice(svc, ports, at)
		}
		for len(remaining) > 0 && len(fill.Endpoints) < maxPerSlice {
			fill.Endpoints = append(fill.Endpoints, pop())
		}
		if fill.Name != "" {
			toUpdate[fill.Name] = true
			delete(unchanged, fill.Name)
		} else {
			toCreate = append(toCreate, fill)
		}
	}

	plan := Plan{Create: toCreate}
	for _, name := range slices.Sorted(maps.Keys(toUpdate)) {
		plan.Update = append(plan.Update, byName[name])
	}
	for _, name := range slices.Sorted(maps.Keys(toDelete)) {
		plan.Delete = append(plan.Delete, byName[name])
	}
	return plan
}

// bestFit is the slice with the least room left after taking n endpoints,
// or nil if none has room for all of them.
func bestFit(candidates []*discoveryv1.EndpointSlice, n, maxPerSlice int) *discoveryv1.EndpointSlice {
	var best *discoveryv1.EndpointSlice
	bestRoom := maxPerSlice
	for _, s := range candidates {
		room := maxPerSlice - (n + len(s.Endpoints))
		if room >= 0 && room < bestRoom {
			best, bestRoom = s, room
			if room == 0 {
				break
			}
		}
	}
	return best
}

// isPlaceholder reports whether existing is the placeholder we would
// create: same namespace, labels, owners and address type, no ports, no
// endpoints.
func isPlaceholder(existing, placeholder *discoveryv1.EndpointSlice) bool {
	if existing.Namespace != placeholder.Namespace || existing.AddressType != placeholder.AddressType ||
		len(existing.Endpoints) != 0 || len(existing.Ports) != 0 || !labelsEqual(existing.Labels, placeholder.Labels) ||
		len(existing.OwnerReferences) != len(placeholder.OwnerReferences) {
		return false
	}
	for i := range existing.OwnerReferences {
		if existing.OwnerReferences[i].String() != placeholder.OwnerReferences[i].String() {
			return false
		}
	}
	return true
}

// endpointSet holds desired endpoints by identity (endpointKey).
type endpointSet struct {
	byKey map[string]*discoveryv1.Endpoint
}

func newEndpointSet() *endpointSet { return &endpointSet{byKey: map[string]*discoveryv1.Endpoint{}} }

func (s *endpointSet) insert(ep *discoveryv1.Endpoint) { s.byKey[endpointutil.EndpointKey(ep)] = ep }

func (s *endpointSet) get(ep *discoveryv1.Endpoint) *discoveryv1.Endpoint {
	return s.byKey[endpointutil.EndpointKey(ep)]
}

func (s *endpointSet) remove(ep *discoveryv1.Endpoint) { delete(s.byKey, endpointutil.EndpointKey(ep)) }

func (s *endpointSet) len() int { return len(s.byKey) }

// sorted lists the endpoints in key order, so plans are deterministic.
func (s *endpointSet) sorted() []*discoveryv1.Endpoint {
	out := make([]*discoveryv1.Endpoint, 0, len(s.byKey))
	for _, k := range slices.Sorted(maps.Keys(s.byKey)) {
		out = append(out, s.byKey[k])
	}
	return out
}
