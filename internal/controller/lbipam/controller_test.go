package lbipam

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"kite/internal/controller/internal/ctrltest"
)

const waitTime = 10 * time.Second

type env struct {
	t      *testing.T
	client *fake.Clientset
	events chan string
}

// start runs a controller over pool against a fake clientset holding objs.
func start(t *testing.T, pool string, objs ...runtime.Object) *env {
	t.Helper()
	client := fake.NewClientset(objs...)
	rec := record.NewFakeRecorder(100)
	c, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client), Recorder: rec, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Run(t, c.Run)
	return &env{t: t, client: client, events: rec.Events}
}

type svcOpt func(*corev1.Service)

func withAnnotation(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}
func withClass(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func withLBIP(ip string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }
func withType(ty corev1.ServiceType) svcOpt {
	return func(s *corev1.Service) { s.Spec.Type = ty }
}
func withPorts(ps ...corev1.ServicePort) svcOpt {
	return func(s *corev1.Service) { s.Spec.Ports = ps }
}
func withStatus(ip string) svcOpt {
	return func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
}
func withCreated(sec int64) svcOpt {
	return func(s *corev1.Service) { s.CreationTimestamp = metav1.Unix(sec, 0) }
}

func svc(name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (e *env) create(s *corev1.Service) {
	e.t.Helper()
	if _, err := e.client.CoreV1().Services(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(name string) *corev1.Service {
	e.t.Helper()
	s, err := e.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) update(name string, mutate func(*corev1.Service)) {
	e.t.Helper()
	s := e.get(name)
	mutate(s)
	if _, err := e.client.CoreV1().Services("default").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) delete(name string) {
	e.t.Helper()
	if err := e.client.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// ingress is the Service's status ingress IPs joined with commas, and
// whether every entry has ipMode VIP.
func ingress(s *corev1.Service) (string, bool) {
	var ips []string
	vip := true
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
		vip = vip && in.IPMode != nil && *in.IPMode == corev1.LoadBalancerIPModeVIP
	}
	return strings.Join(ips, ","), vip
}

// waitIngress waits until the Service's ingress is want ("" = none).
func (e *env) waitIngress(name, want string) {
	e.t.Helper()
	var got string
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, waitTime, true, func(context.Context) (bool, error) {
		var vip bool
		got, vip = ingress(e.get(name))
		return got == want && (want == "" || vip), nil
	})
	if err != nil {
		e.t.Fatalf("service %s: ingress %q, want %q with ipMode VIP", name, got, want)
	}
}

// waitEvent waits for an event containing every part and returns it.
func (e *env) waitEvent(parts ...string) string {
	e.t.Helper()
	timeout := time.After(waitTime)
	for {
		select {
		case ev := <-e.events:
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(ev, p)
			}
			if ok {
				return ev
			}
		case <-timeout:
			e.t.Fatalf("no event with %q", parts)
		}
	}
}

// settle makes sure the controller has handled everything before the
// marker Service: syncs run one at a time in queue order, and a Service is
// queued when created, so once the marker has its address the earlier
// Services' syncs have run.
func (e *env) settle(marker string) {
	e.t.Helper()
	e.create(svc(marker, withAnnotation(AnnotationIP, markerIP)))
	e.waitIngress(marker, markerIP)
	e.delete(marker)
}

// markerIP is kept out of the tests' own allocations: pools end below it.
const markerIP = "172.18.255.254"

const pool = "172.18.255.200-172.18.255.202," + markerIP

func TestAllocatesFromPool(t *testing.T) {
	e := start(t, pool)
	e.create(svc("a"))
	e.waitIngress("a", "172.18.255.200")
	e.waitEvent("Normal", EventIPAllocated, "172.18.255.200")
	e.create(svc("ours", withClass(DefaultClass)))
	e.waitIngress("ours", "172.18.255.201")

	// Left alone: other types, other classes (even with a status).
	e.create(svc("cluster-ip", withType(corev1.ServiceTypeClusterIP)))
	e.create(svc("nodeport", withType(corev1.ServiceTypeNodePort)))
	e.create(svc("other", withClass("example.com/other")))
	e.create(svc("other-with-status", withClass("example.com/other"), withStatus("172.18.255.202")))
	e.settle("marker")
	for _, name := range []string{"cluster-ip", "nodeport", "other"} {
		if got, _ := ingress(e.get(name)); got != "" {
			t.Errorf("service %s got ingress %q", name, got)
		}
	}
	if got, _ := ingress(e.get("other-with-status")); got != "172.18.255.202" {
		t.Errorf("other class's status changed to %q", got)
	}
	// Its address is not ours to track: the pool still has it.
	e.create(svc("b"))
	e.waitIngress("b", "172.18.255.202")
}

func TestRequestedIP(t *testing.T) {
	e := start(t, pool)
	// The annotation wins over spec.loadBalancerIP.
	e.create(svc("annotated", withLBIP("172.18.255.200"), withAnnotation(AnnotationIP, "172.18.255.202")))
	e.waitIngress("annotated", "172.18.255.202")
	e.create(svc("spec", withLBIP("172.18.255.201")))
	e.waitIngress("spec", "172.18.255.201")

	e.create(svc("outside", withAnnotation(AnnotationIP, "10.9.9.9")))
	e.waitEvent("Warning", EventAllocationFailed, "default/outside", "10.9.9.9 is not in the pool")
	e.create(svc("taken", withLBIP("172.18.255.202")))
	e.waitEvent("Warning", EventAllocationFailed, "default/taken", "172.18.255.202 is already in use by default/annotated")
	e.create(svc("bad", withAnnotation(AnnotationIP, "nope")))
	e.waitEvent("Warning", EventAllocationFailed, "default/bad", `annotation lb.kite.dev/ip "nope" is not an IP address`)
	e.settle("marker")
	for _, name := range []string{"outside", "taken", "bad"} {
		if got, _ := ingress(e.get(name)); got != "" {
			t.Errorf("service %s got ingress %q", name, got)
		}
	}

	// The holder goes: the waiting Service gets its address.
	e.delete("annotated")
	e.waitIngress("taken", "172.18.255.202")

	// A Service asking for another address moves to it.
	e.update("spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.18.255.200" })
	e.waitIngress("spec", "172.18.255.200")
}

func TestSharedIP(t *testing.T) {
	e := start(t, pool)
	dnsTCP := withPorts(corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP})
	dnsUDP := withPorts(corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP})
	e.create(svc("dns-tcp", dnsTCP, withAnnotation(AnnotationAllowSharedIP, "dns")))
	e.waitIngress("dns-tcp", "172.18.255.200")
	e.create(svc("dns-udp", dnsUDP, withAnnotation(AnnotationAllowSharedIP, "dns")))
	e.waitIngress("dns-udp", "172.18.255.200")

	// Without the annotation, or with a clash, no sharing.
	e.create(svc("plain", dnsUDP, withLBIP("172.18.255.200")))
	e.waitEvent("Warning", EventAllocationFailed, "default/plain", "in use by default/dns-tcp", AnnotationAllowSharedIP)
	e.create(svc("clash", dnsUDP, withLBIP("172.18.255.200"), withAnnotation(AnnotationAllowSharedIP, "dns")))
	e.waitEvent("Warning", EventAllocationFailed, "default/clash", "port clash", "53/UDP")
	e.settle("marker")
	if got, _ := ingress(e.get("clash")); got != "" {
		t.Errorf("clashing service got ingress %q", got)
	}
	// Once the UDP one goes, the clash is gone.
	e.delete("dns-udp")
	e.waitIngress("clash", "172.18.255.200")
}

func TestExhaustedPool(t *testing.T) {
	e := start(t, "172.18.255.200-172.18.255.201,"+markerIP)
	e.create(svc("a"))
	e.waitIngress("a", "172.18.255.200")
	e.create(svc("b"))
	e.waitIngress("b", "172.18.255.201")
	// The marker takes the last address: the pool is full now.
	e.create(svc("marker", withAnnotation(AnnotationIP, markerIP)))
	e.waitIngress("marker", markerIP)
	e.create(svc("c"))
	ev := e.waitEvent("Warning", EventAllocationFailed, "default/c")
	if !strings.Contains(ev, "pool 172.18.255.200-172.18.255.201,"+markerIP) || !strings.Contains(ev, "exhausted") {
		t.Errorf("event %q does not name the pool and say it is exhausted", ev)
	}
	if got, _ := ingress(e.get("c")); got != "" {
		t.Errorf("service c got %q from a full pool", got)
	}
	e.delete("b")
	e.waitIngress("c", "172.18.255.201")
}

func TestReleasedOnTypeChange(t *testing.T) {
	e := start(t, "172.18.255.200")
	e.create(svc("a"))
	e.waitIngress("a", "172.18.255.200")
	e.create(svc("b"))
	e.waitEvent("Warning", EventAllocationFailed, "default/b", "exhausted")
	e.update("a", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	e.waitIngress("a", "")
	e.waitIngress("b", "172.18.255.200")
	// Back to LoadBalancer: it waits its turn like any other.
	e.update("a", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
	e.waitEvent("Warning", EventAllocationFailed, "default/a", "exhausted")
}

func TestRestartKeepsAddresses(t *testing.T) {
	// Status written by an earlier run; "dup" claims the address "old"
	// holds (a foreign write): the older Service keeps it.
	e := start(t, pool,
		svc("dup", withStatus("172.18.255.200"), withCreated(2000)),
		svc("old", withStatus("172.18.255.200"), withCreated(1000)),
		svc("kept", withStatus("172.18.255.202"), withCreated(1500)),
		svc("gone-type", withType(corev1.ServiceTypeClusterIP), withStatus("172.18.255.201"), withCreated(1000)),
	)
	e.waitIngress("gone-type", "")
	e.waitIngress("dup", "172.18.255.201")
	e.settle("marker")
	for name, want := range map[string]string{"old": "172.18.255.200", "kept": "172.18.255.202"} {
		if got, _ := ingress(e.get(name)); got != want {
			t.Errorf("service %s: ingress %q after restart, want %q", name, got, want)
		}
	}
	e.create(svc("new"))
	e.waitIngress("new", markerIP)
	e.create(svc("full"))
	e.waitEvent("Warning", EventAllocationFailed, "default/full", "exhausted")
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New with an empty Config succeeded")
	}
	client := fake.NewClientset()
	_, err := New(Config{Client: client, Informers: ctrltest.Informers(t, client), Pool: "10.0.0.9-10.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "range ends before it starts") {
		t.Errorf("bad pool: %v", err)
	}
}
