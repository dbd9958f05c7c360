package lab

import (
	"strings"
	"testing"
)

func TestPlanNode(t *testing.T) {
	three := testCluster(t, "kite", 3, "172.30.0.0/24")
	// A cluster that lost its kite-worker: the name, address and veth
	// it had are free again.
	gap := testCluster(t, "kite", 3, "172.30.0.0/24")
	gap.Nodes = withoutNode(gap.Nodes, "kite-worker")
	full := testCluster(t, "big", MaxNodes, "10.0.0.0/24")
	// --lb-pool put the LoadBalancer addresses right after the nodes.
	lowPool := testCluster(t, "kite", 3, "172.30.0.0/24")
	lowPool.LBPool = "172.30.0.5-172.30.0.6,172.30.0.8/32"
	for _, tc := range []struct {
		name    string
		cl      *Cluster
		node    string
		want    Node
		wantErr string
	}{
		{name: "next worker", cl: three, want: Node{Name: "kite-worker3", IP: "172.30.0.5", Veth: "kite-kite-3"}},
		{name: "given name", cl: three, node: "kite-gpu", want: Node{Name: "kite-gpu", IP: "172.30.0.5", Veth: "kite-kite-3"}},
		{name: "reuses a removed node's name, address and veth", cl: gap, want: Node{Name: "kite-worker", IP: "172.30.0.3", Veth: "kite-kite-1"}},
		{name: "name taken", cl: three, node: "kite-worker2", wantErr: `already has a node "kite-worker2"`},
		{name: "kite lb's name", cl: three, node: "kite-lb", wantErr: `already has a node "kite-lb"`},
		{name: "not a DNS label", cl: three, node: "Worker_9", wantErr: "want a DNS label"},
		{name: "too long", cl: three, node: strings.Repeat("a", 64), wantErr: "want a DNS label"},
		{name: "no address below the LoadBalancer pool", cl: full, wantErr: "no free node address"},
		{name: "skips a pool given with --lb-pool", cl: lowPool, want: Node{Name: "kite-worker3", IP: "172.30.0.7", Veth: "kite-kite-3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cl.planNode(tc.node)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("planNode(%q) = %+v, %v; want an error with %q", tc.node, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("planNode(%q) = %+v, %v; want %+v", tc.node, got, err, tc.want)
			}
		})
	}
}

func TestRemovableNode(t *testing.T) {
	cl := testCluster(t, "kite", 3, "172.30.0.0/24")
	if n, err := cl.removableNode("kite-worker2"); err != nil || n.IP != "172.30.0.4" {
		t.Errorf("removableNode(kite-worker2) = %+v, %v", n, err)
	}
	for node, want := range map[string]string{
		"kite-control-plane": "kite-control-plane is the control-plane node of cluster \"kite\" and cannot be removed",
		"kite-worker9":       `cluster "kite" has no node "kite-worker9" (its nodes: kite-control-plane, kite-worker, kite-worker2)`,
		"kite-lb":            `has no node "kite-lb"`,
	} {
		if _, err := cl.removableNode(node); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("removableNode(%s) = %v, want %q", node, err, want)
		}
	}
}

func TestNodeBatches(t *testing.T) {
	cl := testCluster(t, "kite", 1, "172.30.0.0/24")
	n := Node{Name: "kite-worker3", IP: "172.30.0.5", Veth: "kite-kite-3"}
	want := "netns add kite-worker3\nlink add kite-kite-3 type veth peer name eth0 netns kite-worker3\nlink set kite-kite-3 master kite-kite up\n"
	if got := hostNodeBatch(cl, n); got != want {
		t.Errorf("hostNodeBatch:\n%s\nwant:\n%s", got, want)
	}
	if got := hostNodeDownBatch(n, map[string]bool{"kite-kite-3": true}, map[string]bool{"kite-worker3": true}); got != "link del kite-kite-3\nnetns del kite-worker3\n" {
		t.Errorf("hostNodeDownBatch: %q", got)
	}
	if got := hostNodeDownBatch(n, nil, nil); got != "" {
		t.Errorf("hostNodeDownBatch of nothing left: %q", got)
	}
}
