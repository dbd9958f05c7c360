package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"kite/internal/apiserver/defaults"
)

func TestValidateEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		subsets []corev1.EndpointSubset
		want    []string
	}{
		{"valid", []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "10.244.1.5", Hostname: "web-0", NodeName: ptrTo("node-1")}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "fd00::5"}},
			Ports:             []corev1.EndpointPort{{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}},
		}}, nil},
		{"no addresses", []corev1.EndpointSubset{{Ports: []corev1.EndpointPort{{Port: 80}}}}, []string{"Required subsets[0]"}},
		{"addresses", []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{
			{IP: "127.0.0.1"}, {IP: "10.0.0.256"}, {IP: "10.0.0.1", Hostname: "A_B", NodeName: ptrTo("Node 1")},
		}}}, []string{
			"Invalid subsets[0].addresses[0].ip",
			"Invalid subsets[0].addresses[1].ip", "Invalid subsets[0].addresses[1].ip",
			"Invalid subsets[0].addresses[2].hostname", "Invalid subsets[0].addresses[2].nodeName",
		}},
		{"ports", []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}},
			Ports: []corev1.EndpointPort{{Port: 0}, {Name: "x", Port: 1, Protocol: "ICMP"}}}},
			[]string{"Required subsets[0].ports[0].name", "Invalid subsets[0].ports[0].port", "NotSupported subsets[0].ports[1].protocol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: tt.subsets}
			defaults.Endpoints(ep)
			expectErrors(t, ValidateEndpoints(ep), tt.want...)
		})
	}
}

func TestValidateEndpointSlice(t *testing.T) {
	ready := discoveryv1.EndpointConditions{Ready: ptrTo(true)}
	tests := []struct {
		name string
		edit func(*discoveryv1.EndpointSlice)
		want []string
	}{
		{"valid", func(*discoveryv1.EndpointSlice) {}, nil},
		{"no address type", func(es *discoveryv1.EndpointSlice) { es.AddressType = "" }, []string{"Required addressType"}},
		{"address type", func(es *discoveryv1.EndpointSlice) { es.AddressType = "IP" }, []string{"NotSupported addressType"}},
		{"IPv4 addresses", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"fd00::1", "0.0.0.0"}}, {}}
		}, []string{"Invalid endpoints[0].addresses[0]", "Invalid endpoints[0].addresses[1]", "Required endpoints[1].addresses"}},
		{"IPv6 addresses", func(es *discoveryv1.EndpointSlice) {
			es.AddressType = discoveryv1.AddressTypeIPv6
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"fd00::1", "10.0.0.1", "::1"}}}
		}, []string{"Invalid endpoints[0].addresses[1]", "Invalid endpoints[0].addresses[2]"}},
		{"FQDN", func(es *discoveryv1.EndpointSlice) {
			es.AddressType = discoveryv1.AddressTypeFQDN
			es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"db.example.com", "not_a_host"}}}
		}, []string{"Invalid endpoints[0].addresses[1]"}},
		{"too many endpoints", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints = make([]discoveryv1.Endpoint, 1001)
		}, []string{"TooMany endpoints"}},
		{"endpoint fields", func(es *discoveryv1.EndpointSlice) {
			es.Endpoints[0].Hostname, es.Endpoints[0].NodeName = ptrTo("A.B"), ptrTo("Node_1")
			es.Endpoints[0].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}, {Name: "a"}}}
		}, []string{"Invalid endpoints[0].hostname", "Invalid endpoints[0].nodeName", "Duplicate endpoints[0].hints.forZones[1].name"}},
		{"ports", func(es *discoveryv1.EndpointSlice) {
			es.Ports = []discoveryv1.EndpointPort{{Name: ptrTo("http")}, {Name: ptrTo("http")}, {Name: ptrTo("Bad"), Protocol: ptrTo(corev1.Protocol("ICMP"))}}
			defaults.EndpointSlice(es)
		}, []string{"Duplicate ports[1].name", "Invalid ports[2].name", "NotSupported ports[2].protocol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := &discoveryv1.EndpointSlice{
				ObjectMeta:  objMeta("web-abc12"),
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, Conditions: ready}},
				Ports:       []discoveryv1.EndpointPort{{Port: ptrTo(int32(80))}},
			}
			defaults.EndpointSlice(es)
			tt.edit(es)
			expectErrors(t, ValidateEndpointSlice(es), tt.want...)
		})
	}
}

func TestValidateEndpointSliceUpdate(t *testing.T) {
	old := &discoveryv1.EndpointSlice{ObjectMeta: objMeta("web-abc12"), AddressType: discoveryv1.AddressTypeIPv4}
	es := old.DeepCopy()
	es.AddressType = discoveryv1.AddressTypeIPv6
	expectErrors(t, ValidateEndpointSliceUpdate(es, old), "Invalid addressType")
}
