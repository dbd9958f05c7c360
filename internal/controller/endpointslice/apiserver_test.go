package endpointslice

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kite/internal/testutil/apitest"
)

// TestAPIServerEndpointSliceGeneration asserts upstream's
// endpointSliceStrategy: a slice is created at generation 1, and its
// generation grows when anything but its metadata — or its labels —
// changes. (Upstream's controllers track their own writes by generation;
// kite's track resourceVersion, so they do not depend on this.)
func TestAPIServerEndpointSliceGeneration(t *testing.T) {
	srv := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	slices := srv.Client.DiscoveryV1().EndpointSlices("default")
	ready := true
	s, err := slices.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "gen", Labels: map[string]string{"a": "1"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Generation != 1 {
		t.Errorf("created slice has generation %d, want 1", s.Generation)
	}
	s.Endpoints[0].Addresses = []string{"10.244.0.3"}
	if s, err = slices.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.Generation != 2 {
		t.Errorf("after an endpoints change generation is %d, want 2", s.Generation)
	}
	s.Labels["a"] = "2"
	if s, err = slices.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.Generation != 3 {
		t.Errorf("after a label change generation is %d, want 3", s.Generation)
	}
	s.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: "2024-01-01T00:00:00Z"}
	if s, err = slices.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.Generation != 3 {
		t.Errorf("an annotation change must not bump generation: %d, want 3", s.Generation)
	}
}
