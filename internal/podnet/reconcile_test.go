package podnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// fakeDataplane is an inspectable kernel: tables of what podnet owns, the
// foreign routes, and the log of every change asked for.
type fakeDataplane struct {
	own         []Route
	foreign     []netip.Prefix
	unreachable map[netip.Addr]string // gateway → why
	device      *vtep
	neighs      []Neigh
	fdb         []FDB
	fail        map[string]error // operation text → error
	ops         []string
}

var _ dataplane = (*fakeDataplane)(nil)

func (f *fakeDataplane) do(op string) error {
	if err := f.fail[op]; err != nil {
		return err
	}
	f.ops = append(f.ops, op)
	return nil
}

func (f *fakeDataplane) Routes() ([]Route, []netip.Prefix, error) {
	return slices.Clone(f.own), f.foreign, nil
}

func (f *fakeDataplane) ReplaceRoute(r Route) error {
	if err := f.do("replace route " + r.String()); err != nil {
		return err
	}
	f.own = slices.DeleteFunc(f.own, func(o Route) bool { return o.Dst == r.Dst })
	f.own = append(f.own, Route{Dst: r.Dst, Gw: r.Gw, Encap: r.Encap})
	return nil
}

func (f *fakeDataplane) DeleteRoute(r Route) error {
	if err := f.do("delete route " + r.Dst.String()); err != nil {
		return err
	}
	f.own = slices.DeleteFunc(f.own, func(o Route) bool { return o.Dst == r.Dst })
	return nil
}

func (f *fakeDataplane) Unreachable(gw netip.Addr) (string, error) { return f.unreachable[gw], nil }

func (f *fakeDataplane) EnsureVXLAN(spec vxlanSpec) (vtep, []string, error) {
	if f.device != nil {
		return *f.device, nil, nil
	}
	if err := f.do("create device " + spec.Name); err != nil {
		return vtep{}, nil, err
	}
	f.device = &vtep{MAC: vtepMAC(spec.Local).String(), MTU: 1450}
	return *f.device, []string{"create device"}, nil
}

func (f *fakeDataplane) DeleteVXLAN() (bool, error) {
	if f.device == nil {
		return false, nil
	}
	f.device, f.neighs, f.fdb = nil, nil, nil
	return true, f.do("delete device")
}

func (f *fakeDataplane) Neighs() ([]Neigh, error) { return slices.Clone(f.neighs), nil }

func (f *fakeDataplane) SetNeigh(n Neigh) error {
	if err := f.do("set " + n.String()); err != nil {
		return err
	}
	f.neighs = slices.DeleteFunc(f.neighs, func(o Neigh) bool { return o.IP == n.IP })
	f.neighs = append(f.neighs, Neigh{IP: n.IP, MAC: n.MAC})
	return nil
}

func (f *fakeDataplane) DeleteNeigh(n Neigh) error {
	f.neighs = slices.DeleteFunc(f.neighs, func(o Neigh) bool { return o.IP == n.IP })
	return f.do("delete " + n.String())
}

func (f *fakeDataplane) FDB() ([]FDB, error) { return slices.Clone(f.fdb), nil }

func (f *fakeDataplane) SetFDB(e FDB) error {
	if err := f.do("set " + e.String()); err != nil {
		return err
	}
	// Replace semantics, as the kernel's: the MAC's first destination.
	if i := slices.IndexFunc(f.fdb, func(o FDB) bool { return o.MAC == e.MAC }); i >= 0 {
		f.fdb[i].Dst = e.Dst
		return nil
	}
	f.fdb = append(f.fdb, FDB{MAC: e.MAC, Dst: e.Dst})
	return nil
}

func (f *fakeDataplane) DeleteFDB(e FDB) error {
	f.fdb = slices.DeleteFunc(f.fdb, func(o FDB) bool { return o.MAC == e.MAC && o.Dst == e.Dst })
	return f.do("delete " + e.String())
}

func route(dst, gw string, encap bool) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw), Encap: encap}
}

func problems(res result) string {
	var lines []string
	for n, p := range res.Problems {
		lines = append(lines, fmt.Sprintf("%s: %s: %s", n, p.Reason, p.Message))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var testSpec = vxlanSpec{Name: "kite.vxlan", ID: 1, Port: 8472, Local: netip.MustParseAddr("172.31.0.11")}

func hostGWPlan(t *testing.T) Plan {
	t.Helper()
	p, err := Desired(node("a", "172.31.0.11", "10.244.1.0/24"), []*corev1.Node{
		node("b", "172.31.0.12", "10.244.2.0/24"),
		node("c", "172.31.1.13", "10.244.3.0/24"),
		node("d", "172.31.0.14", "10.244.4.0/24"),
		node("e", "172.31.0.15", ""),
	}, ModeHostGW)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReconcileHostGW(t *testing.T) {
	dp := &fakeDataplane{
		own: []Route{
			route("10.244.2.0/24", "172.31.0.99", false), // b moved: replace in place
			route("10.244.9.0/24", "172.31.0.19", false), // a deleted node's: delete
		},
		foreign:     []netip.Prefix{netip.MustParsePrefix("10.244.4.0/24"), netip.MustParsePrefix("10.99.0.0/24")},
		unreachable: map[netip.Addr]string{netip.MustParseAddr("172.31.1.13"): "is not on a directly connected subnet (reached via 172.31.0.254)"},
		device:      &vtep{MAC: "0e:6b:ac:1f:00:0b"}, // left from a VXLAN run
	}
	res, err := reconcile(dp, hostGWPlan(t), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	wantOps := []string{
		"delete route 10.244.9.0/24",
		"replace route 10.244.2.0/24 via 172.31.0.12",
		"delete device",
	}
	if diff := cmp.Diff(wantOps, dp.ops); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	wantProblems := `c: HostGatewayUnreachable: host-gw: node c (172.31.1.13) is not on a directly connected subnet (reached via 172.31.0.254); host-gw needs every node on one L2 segment: use the vxlan pod network
d: PodRouteConflict: a route to node d's podCIDR 10.244.4.0/24 exists that kite does not own (not proto 75); kite leaves it alone
e: : no IPv4 podCIDR yet`
	if diff := cmp.Diff(wantProblems, problems(res)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// Level-triggered: the same plan again changes nothing.
	dp.ops = nil
	res, err = reconcile(dp, hostGWPlan(t), testSpec)
	if err != nil || len(dp.ops) != 0 || len(res.Changes) != 0 {
		t.Errorf("second reconcile: err %v, ops %q, changes %q", err, dp.ops, res.Changes)
	}
}

func TestReconcileKernelErrorsStayPerNode(t *testing.T) {
	dp := &fakeDataplane{fail: map[string]error{
		"replace route 10.244.2.0/24 via 172.31.0.12": errors.New("invalid argument"),
	}}
	res, err := reconcile(dp, hostGWPlan(t), testSpec)
	if err == nil || !strings.Contains(err.Error(), "for node b: invalid argument") {
		t.Errorf("error %v, want node b's failure", err)
	}
	if p := res.Problems["b"]; p.Reason != EventRouteFailed {
		t.Errorf("node b's problem %+v, want %s", p, EventRouteFailed)
	}
	// The others are programmed all the same (c is reachable for the fake).
	want := []string{"10.244.3.0/24 via 172.31.1.13", "10.244.4.0/24 via 172.31.0.14"}
	var got []string
	for _, r := range dp.own {
		got = append(got, r.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestReconcileVXLAN(t *testing.T) {
	self := node("a", "172.31.0.11", "10.244.1.0/24")
	nodes := []*corev1.Node{
		vtepNode("b", "172.31.0.12", "10.244.2.0/24", "0e:6b:ac:1f:00:0c"),
		vtepNode("c", "172.31.1.13", "10.244.3.0/24", "0e:6b:ac:1f:01:0d"),
	}
	plan, err := Desired(self, nodes, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	dp := &fakeDataplane{
		// From a host-gw run: b's route becomes an encapsulated one in place.
		own: []Route{route("10.244.2.0/24", "172.31.0.12", false)},
		// A node that left: its entries go.
		neighs: []Neigh{{IP: netip.MustParseAddr("10.244.9.0"), MAC: "0e:6b:ac:1f:00:13"}},
		fdb:    []FDB{{MAC: "0e:6b:ac:1f:00:13", Dst: netip.MustParseAddr("172.31.0.19")}, {MAC: "0e:6b:ac:1f:01:0d", Dst: netip.MustParseAddr("172.31.9.9")}},
	}
	res, err := reconcile(dp, plan, testSpec)
	if err != nil {
		t.Fatal(err)
	}
	// The device first, then forwarding and neighbours, routes last.
	wantOps := []string{
		"create device kite.vxlan",
		"delete fdb 0e:6b:ac:1f:00:13 dst 172.31.0.19",
		"set fdb 0e:6b:ac:1f:00:0c dst 172.31.0.12",
		"set fdb 0e:6b:ac:1f:01:0d dst 172.31.1.13", // replaced in place: c's IP changed
		"delete neigh 10.244.9.0 lladdr 0e:6b:ac:1f:00:13",
		"set neigh 10.244.2.0 lladdr 0e:6b:ac:1f:00:0c",
		"set neigh 10.244.3.0 lladdr 0e:6b:ac:1f:01:0d",
		"replace route 10.244.2.0/24 via 10.244.2.0 onlink encap",
		"replace route 10.244.3.0/24 via 10.244.3.0 onlink encap",
	}
	if diff := cmp.Diff(wantOps, dp.ops); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if res.VTEP.MAC != "0e:6b:ac:1f:00:0b" {
		t.Errorf("VTEP MAC %q, want the one derived from 172.31.0.11", res.VTEP.MAC)
	}
	dp.ops = nil
	if res, err = reconcile(dp, plan, testSpec); err != nil || len(dp.ops) != 0 || len(res.Changes) != 0 {
		t.Errorf("second reconcile: err %v, ops %q, changes %q", err, dp.ops, res.Changes)
	}
}
