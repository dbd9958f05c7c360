package e2e

// The steps of TestControllers about Services: Endpoints and EndpointSlices
// (S11, S13), readiness, and the Service's allocations (S14, S18).

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"
)

// endpointsYAML returns `kubectl get endpoints kuard -o yaml`, decoded.
func (c *cluster) endpointsYAML(t *testing.T, name string) corev1.Endpoints {
	t.Helper()
	out := c.k.run(t, "get", "endpoints", name, "-o", "yaml")
	var ep corev1.Endpoints
	if err := yaml.UnmarshalStrict([]byte(out), &ep); err != nil {
		t.Fatalf("get endpoints -o yaml: %v\n%s", err, out)
	}
	return ep
}

// endpointSlicesYAML returns the Service's EndpointSlices, from
// `kubectl get endpointslices -l kubernetes.io/service-name=... -o yaml`.
func (c *cluster) endpointSlicesYAML(t *testing.T, service string) []discoveryv1.EndpointSlice {
	t.Helper()
	out := c.k.run(t, "get", "endpointslices", "-l", "kubernetes.io/service-name="+service, "-o", "yaml")
	var list discoveryv1.EndpointSliceList
	if err := yaml.UnmarshalStrict([]byte(out), &list); err != nil {
		t.Fatalf("get endpointslices -o yaml: %v\n%s", err, out)
	}
	return list.Items
}

// endpointCounts is what waiting on endpoints looks at: addresses and
// notReadyAddresses over all subsets.
func endpointCounts(ep corev1.Endpoints) (ready, notReady int) {
	for _, s := range ep.Subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	return ready, notReady
}

// wantAddresses checks Endpoints addresses against the pods they stand
// for: ip, nodeName and targetRef (kind Pod, name, namespace, uid), sorted
// by IP as upstream packs them.
func wantAddresses(t *testing.T, what string, addrs []corev1.EndpointAddress, pods map[string]corev1.Pod) {
	t.Helper()
	if err := checkAddresses(addrs, pods); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// checkAddresses is wantAddresses for use while waiting.
func checkAddresses(addrs []corev1.EndpointAddress, pods map[string]corev1.Pod) error {
	var errs []error
	if len(addrs) != len(pods) {
		errs = append(errs, fmt.Errorf("%d addresses, want %d", len(addrs), len(pods)))
	}
	for i, a := range addrs {
		if a.TargetRef == nil {
			errs = append(errs, fmt.Errorf("address %s has no targetRef", a.IP))
			continue
		}
		p, ok := pods[a.TargetRef.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("address %s targets %s, which is not one of %v", a.IP, a.TargetRef.Name, slices.Sorted(maps.Keys(pods))))
			continue
		}
		want := corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
		got := *a.TargetRef
		got.ResourceVersion = "" // S13 shows one; upstream stopped setting it (1.22)
		if a.IP != p.Status.PodIP || a.NodeName == nil || *a.NodeName != p.Spec.NodeName || got != want {
			errs = append(errs, fmt.Errorf("address %s (nodeName %v targetRef %+v), want ip %s nodeName %s targetRef %+v",
				a.IP, deref(a.NodeName), *a.TargetRef, p.Status.PodIP, p.Spec.NodeName, want))
		}
		if i > 0 && addrs[i-1].IP > a.IP {
			errs = append(errs, fmt.Errorf("addresses not sorted by IP: %s before %s", addrs[i-1].IP, a.IP))
		}
	}
	return errors.Join(errs...)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// byName indexes pods by name.
func byName(pods []corev1.Pod) map[string]corev1.Pod {
	m := map[string]corev1.Pod{}
	for _, p := range pods {
		m[p.Name] = p
	}
	return m
}

// stepEndpoints is S11 and S13: expose the deployment, and its Endpoints
// list the ten ready pods in one subset with ports [{8080 TCP}].
func stepEndpoints(t *testing.T, sc *ctrlScenario) {
	wantLines(t, sc.k.run(t, "expose", "deployment", "kuard", "--type=LoadBalancer", "--port=80", "--target-port=8080"), "service/kuard exposed")
	var ep corev1.Endpoints
	waitFor(t, controllerTimeout, "ten addresses in endpoints kuard", func() error {
		ep = sc.endpointsYAML(t, "kuard")
		if ready, notReady := endpointCounts(ep); ready != 10 || notReady != 0 {
			return fmt.Errorf("%d addresses, %d not ready", ready, notReady)
		}
		return nil
	})
	if len(ep.Subsets) != 1 {
		t.Fatalf("endpoints kuard has %d subsets, want 1: %+v", len(ep.Subsets), ep.Subsets)
	}
	s := ep.Subsets[0]
	wantAddresses(t, "endpoints kuard", s.Addresses, byName(sc.pods(t, "app=kuard", false)))
	if want := []corev1.EndpointPort{{Port: 8080, Protocol: corev1.ProtocolTCP}}; !slices.Equal(s.Ports, want) {
		t.Errorf("endpoints kuard ports %+v, want %+v", s.Ports, want)
	}
	if ep.Labels["app"] != "kuard" {
		t.Errorf("endpoints kuard labels %v, want the Service's (app=kuard)", ep.Labels)
	}
	// Since 1.33 the API server warns on every use of v1 Endpoints.
	r := sc.k.try(t, nil, "", "get", "endpoints", "kuard")
	wantMatch(t, r.stderr, `(?m)^Warning: v1 Endpoints is deprecated in v1\.33\+; use discovery\.k8s\.io/v1 EndpointSlice$`)
}

// stepEndpointSlices: the EndpointSlice of kuard carries the same ten
// endpoints, ready and serving, with the controller's labels and the
// Service as owner.
func stepEndpointSlices(t *testing.T, sc *ctrlScenario) {
	var eps []discoveryv1.EndpointSlice
	waitFor(t, controllerTimeout, "ten ready endpoints in the slice of kuard", func() error {
		eps = sc.endpointSlicesYAML(t, "kuard")
		if len(eps) != 1 {
			return fmt.Errorf("%d slices, want 1", len(eps))
		}
		n := 0
		for _, e := range eps[0].Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				n++
			}
		}
		if n != 10 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	s := eps[0]
	svcUID := sc.jsonpath(t, `{.metadata.uid}`, "service", "kuard")
	if !regexp.MustCompile(`^kuard-` + safeChars + `{5}$`).MatchString(s.Name) {
		t.Errorf("slice name %q, want kuard-<5 chars>", s.Name)
	}
	if s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("addressType %q, want IPv4", s.AddressType)
	}
	if s.Labels[discoveryv1.LabelManagedBy] != "endpointslice-controller.k8s.io" || s.Labels[discoveryv1.LabelServiceName] != "kuard" {
		t.Errorf("slice labels %v, want managed-by endpointslice-controller.k8s.io and service-name kuard", s.Labels)
	}
	if _, ok := s.Annotations["endpoints.kubernetes.io/last-change-trigger-time"]; !ok {
		t.Errorf("slice annotations %v lack endpoints.kubernetes.io/last-change-trigger-time", s.Annotations)
	}
	if o := s.OwnerReferences; len(o) != 1 || o[0].Kind != "Service" || o[0].Name != "kuard" || string(o[0].UID) != svcUID ||
		o[0].Controller == nil || !*o[0].Controller || o[0].BlockOwnerDeletion == nil || !*o[0].BlockOwnerDeletion {
		t.Errorf("slice ownerReferences %+v, want the Service kuard (uid %s) as controller, blocking deletion", o, svcUID)
	}
	if p := s.Ports; len(p) != 1 || deref(p[0].Name) != "" || deref(p[0].Port) != int32(8080) || deref(p[0].Protocol) != corev1.ProtocolTCP {
		t.Errorf("slice ports %+v, want [{name: \"\", port: 8080, protocol: TCP}]", p)
	}
	pods := byName(sc.pods(t, "app=kuard", false))
	if len(s.Endpoints) != len(pods) {
		t.Errorf("slice has %d endpoints, want %d", len(s.Endpoints), len(pods))
	}
	for _, e := range s.Endpoints {
		if e.TargetRef == nil {
			t.Errorf("endpoint %v has no targetRef", e.Addresses)
			continue
		}
		p := pods[e.TargetRef.Name]
		got := fmt.Sprintf("%v %v %s/%s/%s/%s ready=%v serving=%v terminating=%v", e.Addresses, deref(e.NodeName),
			e.TargetRef.Kind, e.TargetRef.Namespace, e.TargetRef.Name, e.TargetRef.UID,
			deref(e.Conditions.Ready), deref(e.Conditions.Serving), deref(e.Conditions.Terminating))
		want := fmt.Sprintf("[%s] %s Pod/%s/%s/%s ready=true serving=true terminating=false", p.Status.PodIP, p.Spec.NodeName,
			p.Namespace, p.Name, p.UID)
		if got != want {
			t.Errorf("slice endpoint %s, want %s", got, want)
		}
	}
}

// stepPodNotReady is S13's sanity filter: a pod whose readiness probe
// fails moves to notReadyAddresses and is ready: false (and not serving)
// in the slice; when it passes again it is back.
func stepPodNotReady(t *testing.T, sc *ctrlScenario) {
	pods := sc.pods(t, "app=kuard", false)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	sick := pods[0]
	node := sc.nodes[sick.Spec.NodeName]
	node.setReady(sick.Namespace, sick.Name, false)
	var ep corev1.Endpoints
	waitFor(t, controllerTimeout, "pod "+sick.Name+" in notReadyAddresses", func() error {
		ep = sc.endpointsYAML(t, "kuard")
		if ready, notReady := endpointCounts(ep); ready != 9 || notReady != 1 {
			return fmt.Errorf("%d addresses, %d not ready", ready, notReady)
		}
		return nil
	})
	rest := byName(pods[1:])
	if len(ep.Subsets) != 1 {
		t.Errorf("endpoints kuard has %d subsets, want 1", len(ep.Subsets))
	} else {
		wantAddresses(t, "addresses", ep.Subsets[0].Addresses, rest)
		wantAddresses(t, "notReadyAddresses", ep.Subsets[0].NotReadyAddresses, byName(pods[:1]))
	}
	parseTable(t, sc.k.run(t, "get", "pod", sick.Name)).wantRow(t, sick.Name, map[string]string{"READY": "0/1", "STATUS": "Running"})
	waitFor(t, controllerTimeout, "pod "+sick.Name+" not ready in the slice", func() error {
		for _, s := range sc.endpointSlicesYAML(t, "kuard") {
			for _, e := range s.Endpoints {
				if e.TargetRef == nil || e.TargetRef.Name != sick.Name {
					continue
				}
				got := fmt.Sprintf("ready=%v serving=%v terminating=%v", deref(e.Conditions.Ready), deref(e.Conditions.Serving), deref(e.Conditions.Terminating))
				if want := "ready=false serving=false terminating=false"; got != want {
					return fmt.Errorf("endpoint of %s: %s, want %s", sick.Name, got, want)
				}
				return nil
			}
		}
		return fmt.Errorf("no endpoint for pod %s", sick.Name)
	})

	node.setReady(sick.Namespace, sick.Name, true)
	waitFor(t, controllerTimeout, "pod "+sick.Name+" back in addresses", func() error {
		if ready, notReady := endpointCounts(sc.endpointsYAML(t, "kuard")); ready != 10 || notReady != 0 {
			return fmt.Errorf("%d addresses, %d not ready", ready, notReady)
		}
		return nil
	})
}

// stepServiceAllocation is S14 and S18: the Service's clusterIP is in the
// service CIDR and its nodePort in 30000–32767; a second Service asking
// for either is refused with 422; headless and ExternalName Services get
// no address.
func stepServiceAllocation(t *testing.T, sc *ctrlScenario) {
	out := sc.k.run(t, "get", "svc", "kuard", "-o", "yaml")
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(out), &svc); err != nil {
		t.Fatalf("get svc -o yaml: %v\n%s", err, out)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !serviceCIDR.Contains(ip) {
		t.Errorf("clusterIP %q, want an address in %s", svc.Spec.ClusterIP, serviceCIDR)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("ports %+v, want one", svc.Spec.Ports)
	}
	np := svc.Spec.Ports[0].NodePort
	if np < 30000 || np > 32767 {
		t.Errorf("nodePort %d, want one in 30000-32767", np)
	}
	parseTable(t, sc.k.run(t, "get", "svc", "kuard")).wantRow(t, "kuard", map[string]string{
		"TYPE": "LoadBalancer", "CLUSTER-IP": svc.Spec.ClusterIP, "EXTERNAL-IP": "<pending>", "PORT(S)": fmt.Sprintf("80:%d/TCP", np),
	})

	takenPort := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"taken-port"},"spec":{"type":"NodePort","selector":{"app":"kuard"},"ports":[{"port":80,"nodePort":%d}]}}`, np)
	r := sc.k.try(t, nil, takenPort, "create", "-f", "-")
	wantMatch(t, r.stderr, fmt.Sprintf(`The Service "taken-port" is invalid: spec\.ports\[0\]\.nodePort: Invalid value: %d: provided port is already allocated`, np))
	takenIP := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"taken-ip"},"spec":{"clusterIP":%q,"selector":{"app":"kuard"},"ports":[{"port":80}]}}`, svc.Spec.ClusterIP)
	r = sc.k.try(t, nil, takenIP, "create", "-f", "-")
	// Upstream names the whole spec.clusterIPs list (rendered as JSON).
	wantMatch(t, r.stderr, `The Service "taken-ip" is invalid: spec\.clusterIPs: Invalid value: \["`+regexp.QuoteMeta(svc.Spec.ClusterIP)+`"\]: failed to allocate IP `+regexp.QuoteMeta(svc.Spec.ClusterIP)+`: provided IP is already allocated`)
	if r.err == nil {
		t.Error("creating a Service with a taken clusterIP succeeded")
	}

	sc.k.run(t, "create", "service", "clusterip", "headless", "--clusterip=None")
	sc.k.run(t, "create", "service", "externalname", "outside", "--external-name=kuard.example.com")
	tb := parseTable(t, sc.k.run(t, "get", "svc", "headless", "outside"))
	tb.wantRow(t, "headless", map[string]string{"TYPE": "ClusterIP", "CLUSTER-IP": "None", "EXTERNAL-IP": "<none>"})
	tb.wantRow(t, "outside", map[string]string{"TYPE": "ExternalName", "CLUSTER-IP": "<none>", "EXTERNAL-IP": "kuard.example.com"})
	sc.k.run(t, "delete", "service", "headless", "outside")
}
