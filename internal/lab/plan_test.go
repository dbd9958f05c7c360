package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testCluster(t *testing.T, name string, nodes int, underlay string) *Cluster {
	t.Helper()
	cl, err := newCluster(Config{Name: name, Nodes: nodes, Underlay: underlay, StateDir: "/var/lib/kite/lab/" + name,
		PodCIDR: DefaultPodCIDR, ServiceCIDR: DefaultServiceCIDR, Binary: "/usr/local/bin/kite", Helper: "/usr/local/bin/kite",
		Kubeconfig: "/root/.kube/config"})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestNewCluster(t *testing.T) {
	cl := testCluster(t, "kite", 3, "172.30.0.0/24")
	want := []Node{
		{Name: "kite-control-plane", IP: "172.30.0.2", Veth: "kite-kite-0", ControlPlane: true},
		{Name: "kite-worker", IP: "172.30.0.3", Veth: "kite-kite-1"},
		{Name: "kite-worker2", IP: "172.30.0.4", Veth: "kite-kite-2"},
	}
	if diff := cmp.Diff(want, cl.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if cl.Bridge != "kite-kite" || cl.Gateway != "172.30.0.1" || cl.Context != "kite" || cl.APIServer() != "https://172.30.0.2:6443" {
		t.Errorf("bridge %s gateway %s context %s api %s", cl.Bridge, cl.Gateway, cl.Context, cl.APIServer())
	}
	if got := testCluster(t, "dev", 1, "172.31.200.0/24").Context; got != "kite-dev" {
		t.Errorf("context of cluster dev = %q, want kite-dev", got)
	}
	full := testCluster(t, "big", MaxNodes, "10.0.0.0/24")
	if last := full.Nodes[MaxNodes-1]; last.IP != "10.0.0.199" || last.Name != "big-worker197" {
		t.Errorf("last node = %+v", last)
	}
	// kite lb and its pool sit above the nodes.
	if full.LB == nil || full.LB.IP != "10.0.0.250" || full.LB.Name != "big-lb" || full.LBPool != "10.0.0.200-10.0.0.249" {
		t.Errorf("LB = %+v, pool %q; want big-lb at 10.0.0.250, pool 10.0.0.200-10.0.0.249", full.LB, full.LBPool)
	}
}

func TestLinkNames(t *testing.T) {
	for _, name := range []string{"kite", "a", "abcdefghij", "x-y"} {
		for _, i := range []int{0, 9, 252} {
			v := vethName(name, i)
			if len(v) > maxLinkName {
				t.Errorf("vethName(%q, %d) = %q: longer than %d", name, i, v, maxLinkName)
			}
			if v == vethName(name, i+1) || v == vethName(name+"z", i) {
				t.Errorf("vethName(%q, %d) = %q is not unique", name, i, v)
			}
		}
		if b := bridgePrefix + name; len(b) > maxLinkName {
			t.Errorf("bridge %q too long", b)
		}
	}
	if v := vethName("kite", 1); v != "kite-kite-1" {
		t.Errorf("vethName(kite, 1) = %q", v)
	}
}

func TestClusterOfNode(t *testing.T) {
	for node, want := range map[string]string{
		"kite-control-plane": "kite", "kite-worker": "kite", "kite-worker2": "kite", "kite-worker17": "kite",
		"dev-worker": "dev", "a-b-worker3": "a-b", "two-control-plane": "two", "something": "kite",
	} {
		if got := clusterOfNode(node); got != want {
			t.Errorf("clusterOfNode(%q) = %q, want %q", node, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "kite", Nodes: 3, PodCIDR: DefaultPodCIDR, ServiceCIDR: DefaultServiceCIDR}
	for _, tc := range []struct {
		mod  func(*Config)
		want string // "" = valid
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.Name = "Kite" }, "cluster name"},
		{func(c *Config) { c.Name = "elevenchars" }, "cluster name"},
		{func(c *Config) { c.Name = "-x" }, "cluster name"},
		{func(c *Config) { c.Nodes = 254 }, "--nodes 254"},
		{func(c *Config) { c.PodCIDR = "10.244.0.0/23"; c.Nodes = 3 }, "room for 2 node"},
		{func(c *Config) { c.PodCIDR = "10.244.1.0/16" }, "not a network address (did you mean 10.244.0.0/16?)"},
		{func(c *Config) { c.ServiceCIDR = "fd00::/108" }, "only IPv4"},
		{func(c *Config) { c.Underlay = "172.30.0.0/16" }, "want a /24"},
		{func(c *Config) { c.Underlay = "nonsense" }, "--underlay"},
		{func(c *Config) { c.LBMode = LBModeL2 }, ""},
		{func(c *Config) { c.LBMode = "bgp" }, `--lb-mode "bgp": want lb or l2`},
	} {
		c := ok
		tc.mod(&c)
		err := c.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("validate(%+v) = %v, want %q", c, err, tc.want)
		}
	}
}

func TestSameShape(t *testing.T) {
	cl := testCluster(t, "kite", 3, "172.30.0.0/24")
	if err := sameShape(Config{}, cl); err != nil {
		t.Errorf("no flags: %v", err)
	}
	if err := sameShape(Config{Nodes: 3, Underlay: "172.30.0.0/24"}, cl); err != nil {
		t.Errorf("same flags: %v", err)
	}
	err := sameShape(Config{Nodes: 5}, cl)
	if err == nil || !strings.Contains(err.Error(), "has 3 nodes, not 5") || !strings.Contains(err.Error(), "kite node add") || !strings.Contains(err.Error(), "kite down --purge") {
		t.Errorf("other --nodes: %v", err)
	}
}

func TestBatches(t *testing.T) {
	cl := testCluster(t, "kite", 2, "172.30.0.0/24")
	if diff := cmp.Diff(`link add kite-kite type bridge
addr add 172.30.0.1/24 dev kite-kite
link set kite-kite up
netns add kite-control-plane
link add kite-kite-0 type veth peer name eth0 netns kite-control-plane
link set kite-kite-0 master kite-kite up
netns add kite-worker
link add kite-kite-1 type veth peer name eth0 netns kite-worker
link set kite-kite-1 master kite-kite up
netns add kite-lb
link add kite-kite-999 type veth peer name eth0 netns kite-lb
link set kite-kite-999 master kite-kite up
`, hostUpBatch(cl)); diff != "" {
		t.Errorf("hostUpBatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`link set lo up
addr add 172.30.0.3/24 dev eth0
link set eth0 up
route add default via 172.30.0.1
`, nodeUpBatch(cl, cl.Nodes[1])); diff != "" {
		t.Errorf("nodeUpBatch (-want +got):\n%s", diff)
	}
	// Down deletes only what exists, veths first.
	got := hostDownBatch(cl, map[string]bool{"kite-kite": true, "kite-kite-1": true, "kite-kite-999": true, "eth9": true},
		map[string]bool{"kite-control-plane": true, "kite-lb": true})
	if diff := cmp.Diff("link del kite-kite-1\nlink del kite-kite-999\nnetns del kite-control-plane\nnetns del kite-lb\nlink del kite-kite\n", got); diff != "" {
		t.Errorf("hostDownBatch (-want +got):\n%s", diff)
	}
	if got := hostDownBatch(cl, nil, nil); got != "" {
		t.Errorf("hostDownBatch with nothing left = %q", got)
	}
}

func TestNodeMounts(t *testing.T) {
	cl := testCluster(t, "kite", 2, "172.30.0.0/24")
	var got []string
	for _, m := range nodeMounts(cl, "kite-worker") {
		got = append(got, m.String())
	}
	want := []string{
		"/etc/cni/net.d <- /var/lib/kite/lab/kite/nodes/kite-worker/etc/cni/net.d",
		"/opt/cni/bin <- /var/lib/kite/lab/kite/nodes/kite-worker/opt/cni/bin",
		"/var/lib/kite <- /var/lib/kite/lab/kite/nodes/kite-worker/var/lib/kite",
		"/var/lib/cni <- /var/lib/kite/lab/kite/nodes/kite-worker/var/lib/cni",
		"/var/log/pods <- /var/lib/kite/lab/kite/nodes/kite-worker/var/log/pods",
		"/etc/kubernetes <- /var/lib/kite/lab/kite/nodes/kite-worker/etc/kubernetes",
		"/root/.kube <- /var/lib/kite/lab/kite/nodes/kite-worker/root/.kube",
		"/var/lib/kite/images <- /var/lib/kite/lab/kite/images",
		"/opt/kite/bin <- /var/lib/kite/lab/kite/bin/node (ro)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodeMounts (-want +got):\n%s", diff)
	}
}

func TestOverlayRoots(t *testing.T) {
	host := map[string]bool{"/etc": true, "/opt": true, "/var": true, "/var/lib": true, "/var/log": true, "/root": true, "/root/.kube": true, "/etc/kubernetes": true}
	exists := func(p string) bool { return host[p] }
	got, err := overlayRoots(nodePaths, exists)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/etc", "/opt", "/var/lib", "/var/log"}, got); diff != "" {
		t.Errorf("overlayRoots (-want +got):\n%s", diff)
	}
	// A missing target below another missing one's ancestor: one overlay.
	got, _ = overlayRoots([]string{"/etc/a/b", "/etc/kubernetes/x"}, exists)
	if diff := cmp.Diff([]string{"/etc"}, got); diff != "" {
		t.Errorf("nested (-want +got):\n%s", diff)
	}
	got, _ = overlayRoots([]string{"/etc/kubernetes/x", "/etc/a/b"}, func(p string) bool { return p == "/etc" || p == "/etc/kubernetes" })
	if diff := cmp.Diff([]string{"/etc", "/etc/kubernetes"}[:1], got); diff != "" {
		t.Errorf("covered root (-want +got):\n%s", diff)
	}
	if got, _ := overlayRoots(nodePaths, func(string) bool { return true }); len(got) != 0 {
		t.Errorf("all present: %v", got)
	}
	if _, err := overlayRoots([]string{"/nonexistent/x"}, exists); err == nil {
		t.Error("a target with no ancestor but / must be refused")
	}
}

func TestMountinfo(t *testing.T) {
	mi := `22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw
25 22 0:22 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs rw
26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
40 1 8:1 /etc/hosts /etc/hosts rw - ext4 /dev/sda1 rw
41 1 8:1 /x /etc/with\040space rw - ext4 /dev/sda1 rw
50 1 0:4 net:[4026532000] /run/netns/a rw - nsfs nsfs rw
`
	ms := parseMountinfo(mi)
	if len(ms) != 6 || ms[4].Point != "/etc/with space" || ms[5].FSType != "nsfs" || ms[1].Parent != 22 {
		t.Fatalf("parseMountinfo = %+v", ms)
	}
	if diff := cmp.Diff([]string{"/sys/fs/cgroup"}, topSubmounts(ms, "/sys")); diff != "" {
		t.Errorf("topSubmounts(/sys) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/etc/hosts", "/etc/with space"}, topSubmounts(ms, "/etc")); diff != "" {
		t.Errorf("topSubmounts(/etc) (-want +got):\n%s", diff)
	}
}

func TestOverlaps(t *testing.T) {
	p := netip.MustParsePrefix
	want := []wanted{{"--underlay", p("172.30.0.0/24")}, {"--pod-cidr", p("10.244.0.0/16")}, {"--service-cidr", p("10.96.0.0/16")}}
	for _, tc := range []struct {
		name string
		want []wanted
		used []usedRange
		err  string
	}{
		{"free", want, []usedRange{{p("192.168.1.0/24"), "the host's route 192.168.1.0/24 dev eth0"}}, ""},
		{"vpn", want, []usedRange{{p("10.0.0.0/8"), "the host's route 10.0.0.0/8 dev tun0"}},
			"--pod-cidr 10.244.0.0/16 overlaps the host's route 10.0.0.0/8 dev tun0: choose another with --pod-cidr"},
		{"other cluster", want, []usedRange{{p("172.30.0.0/24"), `the underlay of kite cluster "dev"`}},
			`--underlay 172.30.0.0/24 overlaps the underlay of kite cluster "dev"`},
		{"own", []wanted{{"--pod-cidr", p("10.0.0.0/8")}, {"--service-cidr", p("10.96.0.0/16")}}, nil,
			"--pod-cidr 10.0.0.0/8 overlaps --service-cidr 10.96.0.0/16"},
	} {
		err := checkOverlaps(tc.want, tc.used)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: checkOverlaps = %v, want %q", tc.name, err, tc.err)
		}
	}

	got, err := pickUnderlay([]usedRange{{p("172.30.0.0/23"), "a"}, {p("172.30.3.7/32"), "b"}}, p("10.244.0.0/16"))
	if err != nil || got != p("172.30.2.0/24") {
		t.Errorf("pickUnderlay = %v, %v; want 172.30.2.0/24", got, err)
	}
	if _, err := pickUnderlay([]usedRange{{p("172.16.0.0/12"), "vpn"}}); err == nil || !strings.Contains(err.Error(), "--underlay") {
		t.Errorf("pickUnderlay with 172.16/12 taken = %v", err)
	}
}

func TestNodesReady(t *testing.T) {
	cl := testCluster(t, "kite", 2, "172.30.0.0/24")
	start := time.Date(2025, 1, 1, 12, 0, 0, 500_000_000, time.UTC)
	node := func(name string, ready corev1.ConditionStatus) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	lease := func(name string, renewed time.Time) coordinationv1.Lease {
		return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}}}
	}
	for _, tc := range []struct {
		name   string
		nodes  []corev1.Node
		leases []coordinationv1.Lease
		ok     bool
		status string
	}{
		{"none", nil, nil, false, "0 of 2 nodes Ready (not yet: kite-control-plane, kite-worker)"},
		{"one not ready", []corev1.Node{node("kite-control-plane", corev1.ConditionTrue), node("kite-worker", corev1.ConditionFalse)},
			[]coordinationv1.Lease{lease("kite-control-plane", start.Add(time.Millisecond)), lease("kite-worker", start.Add(time.Millisecond))},
			false, "1 of 2 nodes Ready (not yet: kite-worker)"},
		{"stale lease from the last run", []corev1.Node{node("kite-control-plane", corev1.ConditionTrue), node("kite-worker", corev1.ConditionTrue)},
			[]coordinationv1.Lease{lease("kite-control-plane", start.Add(time.Millisecond)), lease("kite-worker", start.Add(-time.Millisecond))},
			false, "1 of 2 nodes Ready (not yet: kite-worker)"},
		{"all", []corev1.Node{node("kite-control-plane", corev1.ConditionTrue), node("kite-worker", corev1.ConditionTrue), node("other", corev1.ConditionFalse)},
			[]coordinationv1.Lease{lease("kite-control-plane", start), lease("kite-worker", start.Add(time.Second))},
			true, ""},
	} {
		ok, status := nodesReady(cl, tc.nodes, tc.leases, start)
		if ok != tc.ok || status != tc.status {
			t.Errorf("%s: nodesReady = %v, %q; want %v, %q", tc.name, ok, status, tc.ok, tc.status)
		}
	}
}

// TestLBPool: --lb-pool must lie on the underlay and hold no address the
// lab uses; --lb-mode l2 makes no kite lb.
func TestLBPool(t *testing.T) {
	base := Config{Name: "kite", Nodes: 3, Underlay: "172.30.0.0/24", StateDir: "/var/lib/kite/lab/kite",
		PodCIDR: DefaultPodCIDR, ServiceCIDR: DefaultServiceCIDR}
	for _, tc := range []struct {
		pool, mode, wantErr string
	}{
		{pool: "172.30.0.10-172.30.0.11"},
		{pool: "172.30.0.128/28,172.30.0.240"},
		{pool: "172.30.0.250", mode: LBModeL2}, // no kite lb there in l2 mode
		{pool: "172.30.0.10-172.30.0.9", wantErr: `--lb-pool "172.30.0.10-172.30.0.9": pool entry "172.30.0.10-172.30.0.9": range ends before it starts`},
		{pool: "nonsense", wantErr: `--lb-pool "nonsense"`},
		{pool: "10.9.0.0/30", wantErr: "--lb-pool 10.9.0.0/30: 10.9.0.0/30 is not on the underlay 172.30.0.0/24"},
		{pool: "172.30.0.0/23", wantErr: "is not on the underlay"},
		{pool: "172.30.0.254-172.30.1.3", wantErr: "is not on the underlay"},
		{pool: "fd00::1", wantErr: "is not on the underlay"},
		{pool: "172.30.0.3", wantErr: "--lb-pool 172.30.0.3 holds 172.30.0.3, node kite-worker's address"},
		{pool: "172.30.0.0/28", wantErr: "holds 172.30.0.0, the underlay's network address"},
		{pool: "172.30.0.1", wantErr: "holds 172.30.0.1, this machine's address on the underlay"},
		{pool: "172.30.0.255", wantErr: "the underlay's broadcast address"},
		{pool: "172.30.0.250", wantErr: "holds 172.30.0.250, kite lb's address"},
	} {
		cfg := base
		cfg.LBPool, cfg.LBMode = tc.pool, tc.mode
		cl, err := newCluster(cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("pool %q: error %v, want one containing %q", tc.pool, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("pool %q: %v", tc.pool, err)
			continue
		}
		if cl.LBPool != tc.pool || (cl.LB == nil) != (tc.mode == LBModeL2) {
			t.Errorf("pool %q mode %q: cluster pool %q, kite lb %+v", tc.pool, tc.mode, cl.LBPool, cl.LB)
		}
	}
}

// TestLBSameShape: bringing a cluster back keeps its pool and mode unless
// a flag contradicts them.
func TestLBSameShape(t *testing.T) {
	cl := &Cluster{Name: "kite", StateDir: "/s", Nodes: make([]Node, 2), LBPool: "172.30.0.10-172.30.0.11", LBMode: LBModeL2}
	if err := sameShape(Config{}, cl); err != nil {
		t.Errorf("no flags: %v", err)
	}
	if err := sameShape(Config{LBMode: LBModeL2, LBPool: cl.LBPool}, cl); err != nil {
		t.Errorf("the same flags: %v", err)
	}
	for _, c := range []Config{{LBMode: LBModeLB}, {LBPool: "172.30.0.12"}} {
		if err := sameShape(c, cl); err == nil || !strings.Contains(err.Error(), "kite down --purge") {
			t.Errorf("%+v: %v, want a refusal", c, err)
		}
	}
	if err := sameShape(Config{LBMode: LBModeLB}, &Cluster{Name: "kite", Nodes: make([]Node, 2)}); err != nil {
		t.Errorf("--lb-mode lb for a cluster recorded without a mode: %v", err)
	}
}
