package proxy

import (
	"maps"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// TestHandlerNotesChangedServices: every Service or EndpointSlice event
// names the Service(s) it touches — both of them when a slice moves from
// one Service to another, the last known one for a tombstone — so that
// a partial sync looks at exactly those; Node events name none.
func TestHandlerNotesChangedServices(t *testing.T) {
	sc := scenarioNamed("clusterip")
	svc, sl := sc.services[0], sc.slices[0]
	moved := sl.DeepCopy()
	moved.Labels[discovery.LabelServiceName] = "other"
	node := &v1.Node{}
	node.Name = "node-b"

	for _, tc := range []struct {
		name  string
		event func(h cache.ResourceEventHandler)
		want  []ServiceKey
	}{
		{"service added", func(h cache.ResourceEventHandler) { h.OnAdd(svc, false) }, []ServiceKey{{svc.Namespace, svc.Name}}},
		{"slice updated", func(h cache.ResourceEventHandler) { h.OnUpdate(sl, sl) }, []ServiceKey{{sl.Namespace, svc.Name}}},
		{"slice moved to another Service", func(h cache.ResourceEventHandler) { h.OnUpdate(sl, moved) },
			[]ServiceKey{{sl.Namespace, svc.Name}, {sl.Namespace, "other"}}}, // sorted: kuard < other
		{"slice deleted, seen as a tombstone", func(h cache.ResourceEventHandler) {
			h.OnDelete(cache.DeletedFinalStateUnknown{Key: sl.Namespace + "/" + sl.Name, Obj: sl})
		}, []ServiceKey{{sl.Namespace, svc.Name}}},
		{"another node changed", func(h cache.ResourceEventHandler) { h.OnUpdate(node, node) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Proxier{cfg: Config{NodeName: thisNode}, trigger: make(chan struct{}, 1), changed: map[ServiceKey]bool{}}
			tc.event(p.handler())
			got := slices.SortedFunc(maps.Keys(p.changed), compareServiceKeys)
			if !slices.Equal(got, tc.want) {
				t.Errorf("changed Services %v, want %v", got, tc.want)
			}
		})
	}
}
