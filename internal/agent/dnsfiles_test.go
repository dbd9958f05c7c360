package agent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPodResolvConf(t *testing.T) {
	node := parseResolvConf([]byte("# node\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions edns0\n"))
	dnsConfig := &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.99"}, Searches: []string{"extra.example"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "rotate"}}}
	for _, tc := range []struct {
		name        string
		policy      corev1.DNSPolicy
		hostNetwork bool
		clusterDNS  string
		dnsConfig   *corev1.PodDNSConfig
		want        string
	}{
		{name: "ClusterFirst", policy: corev1.DNSClusterFirst, clusterDNS: "10.96.0.10",
			want: "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{name: "ClusterFirst without a DNS Service falls back to Default", policy: corev1.DNSClusterFirst,
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0\n"},
		{name: "ClusterFirst on the host network is Default", policy: corev1.DNSClusterFirst, hostNetwork: true, clusterDNS: "10.96.0.10",
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0\n"},
		{name: "ClusterFirstWithHostNet", policy: corev1.DNSClusterFirstWithHostNet, hostNetwork: true, clusterDNS: "10.96.0.10",
			want: "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{name: "Default", policy: corev1.DNSDefault, clusterDNS: "10.96.0.10",
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0\n"},
		{name: "None", policy: corev1.DNSNone, clusterDNS: "10.96.0.10", dnsConfig: dnsConfig,
			want: "search extra.example\nnameserver 192.0.2.99\noptions ndots:2 rotate\n"},
		{name: "ClusterFirst with dnsConfig", policy: corev1.DNSClusterFirst, clusterDNS: "10.96.0.10", dnsConfig: dnsConfig,
			want: "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\nnameserver 10.96.0.10\nnameserver 192.0.2.99\noptions ndots:2 rotate\n"},
		{name: "at most three nameservers", policy: corev1.DNSDefault, dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2"}},
			want: "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nnameserver 192.0.2.1\noptions edns0\n"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"},
			Spec: corev1.PodSpec{DNSPolicy: tc.policy, HostNetwork: tc.hostNetwork, DNSConfig: tc.dnsConfig}}
		if got := string(podResolvConf(pod, tc.clusterDNS, "cluster.local", node).render()); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestHostsFile(t *testing.T) {
	header := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0"}}
	h, d := podHostname(pod, "cluster.local")
	if got := string(hostsFile([]string{"10.244.1.5"}, h, d, nil)); got != header+"10.244.1.5\tweb-0\n" {
		t.Errorf("plain:\n%s", got)
	}
	pod.Spec.Hostname, pod.Spec.Subdomain = "db", "backend"
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "192.0.2.7", Hostnames: []string{"foo.local", "bar.local"}}}
	h, d = podHostname(pod, "cluster.local")
	want := header + "10.244.1.5\tdb.backend.shop.svc.cluster.local\tdb\n\n# Entries added by HostAliases.\n192.0.2.7\tfoo.local\tbar.local\n"
	if got := string(hostsFile([]string{"10.244.1.5"}, h, d, pod.Spec.HostAliases)); got != want {
		t.Errorf("subdomain and aliases:\n%s", got)
	}
	pod.Spec.SetHostnameAsFQDN = ptr.To(true)
	if got := utsHostname(pod, "cluster.local"); got != "db.backend.shop.svc.cluster.local" {
		t.Errorf("FQDN hostname %q", got)
	}
}

func TestPodHostnameTruncated(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 62) + "-bcd"}}
	if h, _ := podHostname(pod, "cluster.local"); h != strings.Repeat("a", 62) {
		t.Errorf("hostname %q (%d)", h, len(h))
	}
}
