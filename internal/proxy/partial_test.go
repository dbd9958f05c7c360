package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"
)

// cluster is a changing set of Services and EndpointSlices, for
// comparing partial syncs with full ones.
type cluster struct {
	rnd      *rand.Rand
	services map[ServiceKey]*v1.Service
	slices   map[ServiceKey][]*discovery.EndpointSlice
}

const partialServices = 12

func (c *cluster) key(i int) ServiceKey {
	return ServiceKey{"ns" + fmt.Sprint(i%2), fmt.Sprintf("svc-%02d", i)}
}

// change makes one random change and returns the Service it touches.
func (c *cluster) change() ServiceKey {
	i := c.rnd.IntN(partialServices)
	k := c.key(i)
	switch c.rnd.IntN(6) {
	case 0: // the Service (re)created, with random features
		c.services[k] = c.randomService(i, k)
	case 1:
		delete(c.services, k)
	case 2:
		delete(c.slices, k)
	default: // endpoints changed in one of its (up to two) slices
		n := c.rnd.IntN(2)
		sl := c.slices[k]
		for len(sl) <= n {
			sl = append(sl, nil)
		}
		sl[n] = c.randomSlice(k, n)
		c.slices[k] = sl
	}
	return k
}

func (c *cluster) randomService(i int, k ServiceKey) *v1.Service {
	ports := []v1.ServicePort{port("http", v1.ProtocolTCP, 80, intstr.FromString("http"), int32(30000+2*i))}
	if c.rnd.IntN(2) == 0 {
		ports = append(ports, port("dns", v1.ProtocolUDP, 53, intstr.FromInt32(5353), int32(30001+2*i)))
	}
	var opts []svcOpt
	switch c.rnd.IntN(4) {
	case 1:
		opts = append(opts, nodePortType)
	case 2:
		opts = append(opts, loadBalancer(fmt.Sprintf("192.168.60.%d", i+1)))
		if c.rnd.IntN(2) == 0 {
			opts = append(opts, externalLocal(int32(31000+i)))
		}
	}
	if c.rnd.IntN(4) == 0 {
		opts = append(opts, internalLocal)
	}
	if c.rnd.IntN(4) == 0 {
		opts = append(opts, affinity(int32(60+c.rnd.IntN(3))))
	}
	s := service(k.Namespace, k.Name, fmt.Sprintf("10.96.0.%d", i+1), ports, opts...)
	if s.Spec.Type == v1.ServiceTypeClusterIP {
		for j := range s.Spec.Ports {
			s.Spec.Ports[j].NodePort = 0
		}
	}
	return s
}

// randomSlice draws endpoints from a small pool, so that Services share
// endpoints (and hairpin elements).
func (c *cluster) randomSlice(k ServiceKey, n int) *discovery.EndpointSlice {
	var eps []ep
	for range c.rnd.IntN(5) {
		e := readyEP(fmt.Sprintf("10.244.%d.%d", 1+c.rnd.IntN(2), 10+c.rnd.IntN(6)), []string{thisNode, otherNode}[c.rnd.IntN(2)])
		if c.rnd.IntN(5) == 0 {
			e.ready, e.terminating = false, true
		}
		eps = append(eps, e)
	}
	return slice(k.Namespace, k.Name, fmt.Sprintf("%s-%d", k.Name, n),
		[]slicePort{{"http", v1.ProtocolTCP, 8080}, {"dns", v1.ProtocolUDP, 5353}}, eps...)
}

// input is the objects of keys (all Services when keys is nil).
func (c *cluster) input(keys []ServiceKey) ModelInput {
	in := ModelInput{NodeName: thisNode, ClusterCIDR: testClusterCIDR}
	pick := func(k ServiceKey) bool { return keys == nil || slices.Contains(keys, k) }
	for i := range partialServices {
		k := c.key(i)
		if !pick(k) {
			continue
		}
		if s := c.services[k]; s != nil {
			in.Services = append(in.Services, s)
		}
		for _, sl := range c.slices[k] {
			if sl != nil {
				in.Slices = append(in.Slices, sl)
			}
		}
	}
	return in
}

// TestPartialSyncEqualsFull applies random changes as the Proxier does
// between full syncs — the Model updated for the changed Services only
// (UpdateModel), the backend told which Services changed — and checks
// after every step that the Model equals one built from scratch, that the
// table equals a fresh apply of it, and that the conntrack clean-up
// targets the same flows as a whole comparison would.
func TestPartialSyncEqualsFull(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			cfg := testConfig(ModeNFTables)
			c := &cluster{rnd: rand.New(rand.NewPCG(seed, 7)), services: map[ServiceKey]*v1.Service{}, slices: map[ServiceKey][]*discovery.EndpointSlice{}}
			for range partialServices {
				c.change()
			}
			fake := knftables.NewFake(nftFamily, nftTable)
			b := &nftBackend{cfg: cfg, kernel: knftablesKernel{fake}}
			prev := BuildModel(c.input(nil))
			if _, err := b.Sync(context.Background(), prev, true, nil); err != nil {
				t.Fatal(err)
			}
			for step := range 40 {
				var changed []ServiceKey
				for range 1 + c.rnd.IntN(3) {
					changed = append(changed, c.change())
				}
				m := UpdateModel(prev, c.input(changed), changed)
				want := BuildModel(c.input(nil))
				if m.ClusterCIDR != want.ClusterCIDR || !slices.EqualFunc(m.Ports, want.Ports, func(a, b ServicePort) bool { return reflect.DeepEqual(a, b) }) {
					t.Fatalf("step %d (%v): UpdateModel differs from BuildModel:\n%v\n%v", step, changed, m.Ports, want.Ports)
				}
				if got, all := staleUDPTargets(prev, m, cfg, false, changed), staleUDPTargets(prev, m, cfg, false, nil); !reflect.DeepEqual(got, all) {
					t.Fatalf("step %d (%v): conntrack targets of the changed Services %v, of a whole comparison %v", step, changed, got, all)
				}
				res, err := b.Sync(context.Background(), m, false, changed)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				fresh, _ := nftFake(t, want, cfg)
				if got, want := sortedLines(canonBlocks(fake.Dump())), sortedLines(canonBlocks(fresh.Dump())); got != want {
					t.Fatalf("step %d (%v, %d operations): partial sync differs from a fresh apply:\n--- partial\n%s\n--- fresh\n%s", step, changed, res.Operations, got, want)
				}
				prev = m
			}
		})
	}
}

// TestPartialSyncComparesOnlyChanged: a partial sync looks at the listed
// Services only — a difference elsewhere is left for the next full sync,
// which repairs it.
func TestPartialSyncComparesOnlyChanged(t *testing.T) {
	cfg := testConfig(ModeNFTables)
	before := scenarioNamed("clusterip")
	after := scenarioNamed("clusterip")
	after.slices[0].Endpoints = after.slices[0].Endpoints[:1]
	fake := knftables.NewFake(nftFamily, nftTable)
	b := &nftBackend{cfg: cfg, kernel: knftablesKernel{fake}}
	if _, err := b.Sync(context.Background(), before.model(), true, nil); err != nil {
		t.Fatal(err)
	}
	other := ServiceKey{"elsewhere", "unrelated"}
	res, err := b.Sync(context.Background(), after.model(), false, []ServiceKey{other})
	if err != nil || res.Operations != 0 {
		t.Fatalf("a change outside the listed Services sent %d operations (%v)", res.Operations, err)
	}
	res, err = b.Sync(context.Background(), after.model(), true, nil)
	if err != nil || res.Operations == 0 {
		t.Fatalf("the next full sync: %d operations (%v)", res.Operations, err)
	}
	fresh, _ := nftFake(t, after.model(), cfg)
	if got, want := sortedLines(canonBlocks(fake.Dump())), sortedLines(canonBlocks(fresh.Dump())); got != want {
		t.Errorf("result differs from a fresh apply:\n--- partial\n%s\n--- fresh\n%s", got, want)
	}
}
