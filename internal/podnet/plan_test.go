package podnet

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// node builds a Node: name, InternalIP, podCIDR (either may be ""), then
// annotation key/value pairs.
func node(name, ip, cidr string, annotations ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	if cidr != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	}
	for i := 0; i+1 < len(annotations); i += 2 {
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[annotations[i]] = annotations[i+1]
	}
	return n
}

// vtepNode is a node that published its VTEP.
func vtepNode(name, ip, cidr, mac string) *corev1.Node {
	return node(name, ip, cidr, AnnotationVXLANMAC, mac, AnnotationVXLANIP, ip)
}

func TestDesired(t *testing.T) {
	self := node("a", "172.31.0.11", "10.244.1.0/24")
	older := node("old", "172.31.0.20", "10.244.9.0/24")
	older.CreationTimestamp = metav1.NewTime(time.Unix(1000, 0))
	newer := node("aaa-new", "172.31.0.21", "10.244.9.0/24")
	newer.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	dualStack := node("ds", "172.31.0.14", "")
	dualStack.Spec.PodCIDRs = []string{"fd00:10:244:4::/64", "10.244.4.0/24"}
	dualStack.Spec.PodCIDR = dualStack.Spec.PodCIDRs[0]
	v6only := node("v6", "fd00::15", "fd00:10:244:5::/64")

	tests := []struct {
		name  string
		self  *corev1.Node
		nodes []*corev1.Node
		mode  string
		want  string // Plan.String()
	}{{
		name:  "host-gw: a route per other node, via its InternalIP; self skipped",
		self:  self,
		nodes: []*corev1.Node{self, node("c", "172.31.0.13", "10.244.3.0/24"), node("b", "172.31.0.12", "10.244.2.0/24")},
		mode:  ModeHostGW,
		want: `mode host-gw local 172.31.0.11 vtep 10.244.1.0/32
route 10.244.2.0/24 via 172.31.0.12 # b
route 10.244.3.0/24 via 172.31.0.13 # c
`,
	}, {
		name:  "host-gw: nodes lacking a podCIDR or an IPv4 address wait",
		self:  self,
		nodes: []*corev1.Node{node("b", "172.31.0.12", ""), node("c", "", "10.244.3.0/24"), v6only, dualStack},
		mode:  ModeHostGW,
		want: `mode host-gw local 172.31.0.11 vtep 10.244.1.0/32
route 10.244.4.0/24 via 172.31.0.14 # ds
skip b: no IPv4 podCIDR yet
skip c: no IPv4 InternalIP yet
skip v6: no IPv4 podCIDR yet
`,
	}, {
		name:  "host-gw: a node without its own podCIDR still reaches the others",
		self:  node("a", "172.31.0.11", ""),
		nodes: []*corev1.Node{node("b", "172.31.0.12", "10.244.2.0/24")},
		mode:  ModeHostGW,
		want: `mode host-gw local 172.31.0.11
route 10.244.2.0/24 via 172.31.0.12 # b
`,
	}, {
		name: "clashes: overlapping podCIDRs (the older node wins), this node's CIDR, this node's IP",
		self: self,
		nodes: []*corev1.Node{newer, older, node("mine", "172.31.0.30", "10.244.1.0/25"),
			node("twin", "172.31.0.11", "10.244.7.0/24"), node("wide", "172.31.0.31", "10.244.0.0/16")},
		mode: ModeHostGW,
		want: `mode host-gw local 172.31.0.11 vtep 10.244.1.0/32
route 10.244.9.0/24 via 172.31.0.20 # old
skip aaa-new: podCIDR 10.244.9.0/24 overlaps node old's 10.244.9.0/24
skip mine: podCIDR 10.244.1.0/25 overlaps node a's 10.244.1.0/24
skip twin: has this node's InternalIP 172.31.0.11
skip wide: podCIDR 10.244.0.0/16 overlaps node a's 10.244.1.0/24
`,
	}, {
		name: "vxlan: route via the remote VTEP address on-link, its neighbour and FDB entry",
		self: self,
		nodes: []*corev1.Node{self,
			vtepNode("b", "172.31.0.12", "10.244.2.0/24", "0E:6B:AC:1F:00:0C"),
			node("c", "172.31.1.13", "10.244.3.0/24", AnnotationVXLANMAC, "0e:6b:ac:1f:01:0d")},
		mode: ModeVXLAN,
		want: `mode vxlan local 172.31.0.11 vtep 10.244.1.0/32
fdb 0e:6b:ac:1f:00:0c dst 172.31.0.12 # b
fdb 0e:6b:ac:1f:01:0d dst 172.31.1.13 # c
neigh 10.244.2.0 lladdr 0e:6b:ac:1f:00:0c # b
neigh 10.244.3.0 lladdr 0e:6b:ac:1f:01:0d # c
route 10.244.2.0/24 via 10.244.2.0 onlink encap # b
route 10.244.3.0/24 via 10.244.3.0 onlink encap # c
`,
	}, {
		name:  "vxlan: the VTEP IP annotation wins over the InternalIP",
		self:  self,
		nodes: []*corev1.Node{node("b", "172.31.0.12", "10.244.2.0/24", AnnotationVXLANMAC, "0e:6b:00:00:00:02", AnnotationVXLANIP, "192.168.7.2")},
		mode:  ModeVXLAN,
		want: `mode vxlan local 172.31.0.11 vtep 10.244.1.0/32
fdb 0e:6b:00:00:00:02 dst 192.168.7.2 # b
neigh 10.244.2.0 lladdr 0e:6b:00:00:00:02 # b
route 10.244.2.0/24 via 10.244.2.0 onlink encap # b
`,
	}, {
		name: "vxlan: nodes without a usable VTEP wait; a duplicate MAC loses to the older node",
		self: self,
		nodes: []*corev1.Node{
			node("b", "172.31.0.12", "10.244.2.0/24"),
			node("c", "172.31.0.13", "10.244.3.0/24", AnnotationVXLANMAC, "ff:ff:ff:ff:ff:ff"),
			node("d", "172.31.0.14", "10.244.4.0/24", AnnotationVXLANMAC, "0e:6b:00:00:00:04", AnnotationVXLANIP, "nope"),
			vtepNode("e", "172.31.0.15", "10.244.5.0/24", "0e:6b:00:00:00:05"),
			vtepNode("f", "172.31.0.16", "10.244.6.0/24", "0e:6b:00:00:00:05"),
			vtepNode("g", "172.31.0.11", "10.244.7.0/24", "0e:6b:00:00:00:07"),
		},
		mode: ModeVXLAN,
		want: `mode vxlan local 172.31.0.11 vtep 10.244.1.0/32
fdb 0e:6b:00:00:00:05 dst 172.31.0.15 # e
neigh 10.244.5.0 lladdr 0e:6b:00:00:00:05 # e
route 10.244.5.0/24 via 10.244.5.0 onlink encap # e
skip b: no VTEP MAC yet (annotation kite.dev/vxlan-mac; is its podnet in vxlan mode?)
skip c: annotation kite.dev/vxlan-mac="ff:ff:ff:ff:ff:ff" is not a unicast Ethernet address
skip d: annotation kite.dev/vxlan-ip="nope" is not an IPv4 address
skip f: VTEP MAC 0e:6b:00:00:00:05 is also node e's
skip g: has this node's VTEP address 172.31.0.11
`,
	}, {
		name:  "alone: nothing to do",
		self:  self,
		nodes: []*corev1.Node{self},
		mode:  ModeVXLAN,
		want:  "mode vxlan local 172.31.0.11 vtep 10.244.1.0/32\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Desired(tt.self, tt.nodes, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, p.String()); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesiredErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		self *corev1.Node
		mode string
		want string
	}{
		{"no InternalIP", node("a", "", "10.244.1.0/24"), ModeHostGW, "node a has no IPv4 InternalIP yet"},
		{"IPv6 InternalIP only", node("a", "fd00::1", "10.244.1.0/24"), ModeVXLAN, "node a has no IPv4 InternalIP yet"},
		{"unknown mode", node("a", "172.31.0.11", "10.244.1.0/24"), "ipip", `mode "ipip"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Desired(tt.self, nil, tt.mode)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Client: nil, NodeName: "a"}.withDefaults()
	if err := ok.Validate(); err == nil || !strings.Contains(err.Error(), "Client is required") {
		t.Errorf("missing client: %v", err)
	}
	bad := Config{NodeName: "a", Mode: "ipip", VXLANDevice: "a-name-too-long-for-linux", VXLANID: 1 << 24, VXLANPort: 70000, MTU: 100}.withDefaults()
	err := bad.Validate()
	for _, want := range []string{`mode "ipip"`, "the kernel allows 15", "VXLAN ID 16777216", "port 70000", "MTU 100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	d := Config{}.withDefaults()
	if d.Mode != ModeHostGW || d.VXLANDevice != "kite.vxlan" || d.VXLANID != 1 || d.VXLANPort != 8472 || d.ResyncPeriod != DefaultResyncPeriod {
		t.Errorf("defaults: %+v", d)
	}
}
