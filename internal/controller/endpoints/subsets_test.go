package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func svc(mod func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kuard"},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"run": "kuard"},
			ClusterIP:  "10.96.0.20",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func pod(name, ip string, ready bool, mod func(*corev1.Pod)) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "7",
			Labels: map[string]string{"run": "kuard"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

// addr is the address DesiredSubsets makes for pod(name, ip, ...).
func addr(name, ip string) corev1.EndpointAddress {
	node := "node-1"
	return corev1.EndpointAddress{IP: ip, NodeName: &node, TargetRef: &corev1.ObjectReference{
		Kind: "Pod", Namespace: "default", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "7"}}
}

func tcp(name string, port int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: name, Port: port, Protocol: corev1.ProtocolTCP}
}

func TestDesiredSubsets(t *testing.T) {
	deleting := func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }
	named := func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("http") }
	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want []corev1.EndpointSubset
	}{{
		name: "ready and not ready pods share one subset",
		svc:  svc(nil),
		pods: []*corev1.Pod{pod("b", "10.244.1.3", true, nil), pod("a", "10.244.1.2", true, nil), pod("c", "10.244.1.4", false, nil)},
		want: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{addr("a", "10.244.1.2"), addr("b", "10.244.1.3")},
			NotReadyAddresses: []corev1.EndpointAddress{addr("c", "10.244.1.4")},
			Ports:             []corev1.EndpointPort{tcp("", 8080)},
		}},
	}, {
		name: "pods without IP, finished or terminating are left out",
		svc:  svc(nil),
		pods: []*corev1.Pod{
			pod("a", "10.244.1.2", true, nil),
			pod("noip", "", true, func(p *corev1.Pod) { p.Status.PodIPs = nil }),
			pod("done", "10.244.1.5", false, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
			pod("bye", "10.244.1.6", true, deleting),
		},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.244.1.2")}, Ports: []corev1.EndpointPort{tcp("", 8080)}}},
	}, {
		name: "publishNotReadyAddresses lists every pod, terminating too, as ready",
		svc:  svc(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }),
		pods: []*corev1.Pod{pod("a", "10.244.1.2", false, nil), pod("bye", "10.244.1.6", true, deleting)},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.244.1.2"), addr("bye", "10.244.1.6")}, Ports: []corev1.EndpointPort{tcp("", 8080)}}},
	}, {
		name: "a named port resolves per pod; pods resolving it differently get their own subsets; pods without it none",
		svc:  svc(named),
		pods: []*corev1.Pod{
			pod("a", "10.244.1.2", true, nil),
			pod("b", "10.244.1.3", true, func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 9090 }),
			pod("c", "10.244.1.4", true, func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }),
		},
		want: SortSubsets([]corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{addr("a", "10.244.1.2")}, Ports: []corev1.EndpointPort{tcp("", 8080)}},
			{Addresses: []corev1.EndpointAddress{addr("b", "10.244.1.3")}, Ports: []corev1.EndpointPort{tcp("", 9090)}},
		}),
	}, {
		name: "two service ports make one subset with both ports",
		svc: svc(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
			}
		}),
		pods: []*corev1.Pod{pod("a", "10.244.1.2", true, nil)},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.244.1.2")},
			Ports: SortSubsets([]corev1.EndpointSubset{{Ports: []corev1.EndpointPort{tcp("http", 8080), {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}})[0].Ports}},
	}, {
		name: "headless without ports lists addresses only; hostname set for the service's subdomain",
		svc: svc(func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.Ports = corev1.ClusterIPNone, nil
		}),
		pods: []*corev1.Pod{pod("a", "10.244.1.2", true, func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "kuard" })},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{func() corev1.EndpointAddress {
			a := addr("a", "10.244.1.2")
			a.Hostname = "web-0"
			return a
		}()}}},
	}, {
		name: "no pods, no subsets",
		svc:  svc(nil),
		want: []corev1.EndpointSubset{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _ := DesiredSubsets(tt.svc, tt.pods)
			if !apiequality.Semantic.DeepEqual(got, tt.want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(tt.want)
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestRepackSubsets(t *testing.T) {
	a, b, c := addr("a", "10.0.0.1"), addr("b", "10.0.0.2"), addr("c", "10.0.0.3")
	tests := []struct {
		name string
		in   []corev1.EndpointSubset
		want []corev1.EndpointSubset
	}{{
		name: "same port merges",
		in: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{b}, Ports: []corev1.EndpointPort{tcp("", 80)}},
			{Addresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{tcp("", 80)}},
		},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{a, b}, Ports: []corev1.EndpointPort{tcp("", 80)}}},
	}, {
		name: "duplicates collapse; not ready on one subset wins",
		in: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{a, a}, Ports: []corev1.EndpointPort{tcp("", 80)}},
			{NotReadyAddresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{tcp("", 80)}},
		},
		want: []corev1.EndpointSubset{{NotReadyAddresses: []corev1.EndpointAddress{a}, Ports: []corev1.EndpointPort{tcp("", 80)}}},
	}, {
		name: "addresses serving the same set of ports share a subset",
		in: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{a, b}, Ports: []corev1.EndpointPort{tcp("http", 80)}},
			{Addresses: []corev1.EndpointAddress{a, b}, Ports: []corev1.EndpointPort{tcp("https", 443)}},
			{Addresses: []corev1.EndpointAddress{c}, Ports: []corev1.EndpointPort{tcp("http", 80)}},
		},
		want: SortSubsets([]corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{a, b, c}, Ports: []corev1.EndpointPort{tcp("http", 80)}},
			{Addresses: []corev1.EndpointAddress{a, b}, Ports: []corev1.EndpointPort{tcp("https", 443)}},
		}),
	}, {
		name: "same IP, different pods stay apart",
		in: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{a, func() corev1.EndpointAddress { x := addr("z", "10.0.0.1"); return x }()}, Ports: []corev1.EndpointPort{tcp("", 80)}},
		},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{a, addr("z", "10.0.0.1")}, Ports: []corev1.EndpointPort{tcp("", 80)}}},
	}, {
		name: "port-less addresses are kept",
		in:   []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{b}}, {Addresses: []corev1.EndpointAddress{a}}},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{a, b}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RepackSubsets(tt.in)
			if !apiequality.Semantic.DeepEqual(got, tt.want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(tt.want)
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestRepackSubsetsIsDeterministic(t *testing.T) {
	var in []corev1.EndpointSubset
	for i := range 20 {
		in = append(in, corev1.EndpointSubset{
			Addresses: []corev1.EndpointAddress{addr(fmt.Sprint(i), fmt.Sprintf("10.0.0.%d", i))},
			Ports:     []corev1.EndpointPort{tcp("", int32(8000+i%4))},
		})
	}
	first := RepackSubsets(in)
	if len(first) != 4 {
		t.Fatalf("want 4 subsets (one per port), got %d", len(first))
	}
	for range 20 {
		if got := RepackSubsets(in); !apiequality.Semantic.DeepEqual(got, first) {
			t.Fatal("RepackSubsets order changed between runs")
		}
	}
}

func addresses(prefix string, n int) []corev1.EndpointAddress {
	out := make([]corev1.EndpointAddress, n)
	for i := range out {
		out[i] = corev1.EndpointAddress{IP: fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)}
	}
	return out
}

func TestTruncate(t *testing.T) {
	count := func(ss []corev1.EndpointSubset) (ready, notReady []int) {
		for _, s := range ss {
			ready = append(ready, len(s.Addresses))
			notReady = append(notReady, len(s.NotReadyAddresses))
		}
		return
	}
	tests := []struct {
		name                  string
		in                    []corev1.EndpointSubset
		truncated             bool
		wantReady, wantNotRdy []int
	}{{
		name:      "at capacity: untouched",
		in:        []corev1.EndpointSubset{{Addresses: addresses("10.1", 600), NotReadyAddresses: addresses("10.2", 400)}},
		wantReady: []int{600}, wantNotRdy: []int{400},
	}, {
		name:      "not-ready addresses go first",
		in:        []corev1.EndpointSubset{{Addresses: addresses("10.1", 900), NotReadyAddresses: addresses("10.2", 300)}},
		truncated: true, wantReady: []int{900}, wantNotRdy: []int{100},
	}, {
		name: "ready addresses cut in proportion, all not-ready dropped",
		in: []corev1.EndpointSubset{
			{Addresses: addresses("10.1", 1500), NotReadyAddresses: addresses("10.2", 10)},
			{Addresses: addresses("10.3", 500)},
		},
		truncated: true, wantReady: []int{750, 250}, wantNotRdy: []int{0, 0},
	}, {
		name: "rounding up: the last subset takes what is left",
		in: []corev1.EndpointSubset{
			{Addresses: addresses("10.1", 700)}, {Addresses: addresses("10.2", 700)}, {Addresses: addresses("10.3", 700)},
		},
		truncated: true, wantReady: []int{334, 334, 332}, wantNotRdy: []int{0, 0, 0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Truncate(tt.in); got != tt.truncated {
				t.Fatalf("Truncate = %v, want %v", got, tt.truncated)
			}
			r, n := count(tt.in)
			if fmt.Sprint(r) != fmt.Sprint(tt.wantReady) || fmt.Sprint(n) != fmt.Sprint(tt.wantNotRdy) {
				t.Errorf("ready %v notReady %v, want %v %v", r, n, tt.wantReady, tt.wantNotRdy)
			}
		})
	}
}

func TestSubsetsEqualIgnoresPodResourceVersion(t *testing.T) {
	a := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")}, Ports: []corev1.EndpointPort{tcp("", 80)}}}
	b := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr("a", "10.0.0.1")}, Ports: []corev1.EndpointPort{tcp("", 80)}}}
	b[0].Addresses[0].TargetRef.ResourceVersion = "99"
	if !SubsetsEqual(a, b) {
		t.Error("subsets differing only in the pod's resourceVersion must compare equal")
	}
	if a[0].Addresses[0].TargetRef.ResourceVersion != "7" || b[0].Addresses[0].TargetRef.ResourceVersion != "99" {
		t.Error("SubsetsEqual must not change its arguments")
	}
	b[0].Addresses[0].IP = "10.0.0.2"
	if SubsetsEqual(a, b) {
		t.Error("different IPs must differ")
	}
}
