package garbagecollector

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// node is what the collector knows of one object.
type node struct {
	uid        types.UID
	gvr        schema.GroupVersionResource
	kind       schema.GroupVersionKind
	namespace  string
	name       string
	owners     []metav1.OwnerReference
	deleting   bool
	finalizers []string
}

func nodeFromMeta(gvr schema.GroupVersionResource, kind schema.GroupVersionKind, m *metav1.PartialObjectMetadata) *node {
	return &node{
		uid: m.UID, gvr: gvr, kind: kind, namespace: m.Namespace, name: m.Name,
		owners:     slices.Clone(m.OwnerReferences),
		deleting:   m.DeletionTimestamp != nil,
		finalizers: slices.Clone(m.Finalizers),
	}
}

func (n *node) has(finalizer string) bool { return slices.Contains(n.finalizers, finalizer) }

// deletingDependents: being deleted in the foreground.
func (n *node) deletingDependents() bool {
	return n.deleting && n.has(metav1.FinalizerDeleteDependents)
}

func (n *node) orphaning() bool { return n.deleting && n.has(metav1.FinalizerOrphanDependents) }

// blocks reports whether n's reference to owner blocks the owner's
// foreground deletion.
func (n *node) blocks(owner types.UID) bool {
	for _, o := range n.owners {
		if o.UID == owner && o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion {
			return true
		}
	}
	return false
}

// graph is the owner→dependents graph of every object the informers saw.
// Owners need not be known: a dependent's edge to a missing owner is kept
// until the dependent changes or goes.
type graph struct {
	mu         sync.RWMutex
	nodes      map[types.UID]*node
	dependents map[types.UID]map[types.UID]struct{}
}

func newGraph() *graph {
	return &graph{nodes: map[types.UID]*node{}, dependents: map[types.UID]map[types.UID]struct{}{}}
}

func (g *graph) get(uid types.UID) *node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.nodes[uid]
}

// dependentsOf lists the known dependents of uid.
func (g *graph) dependentsOf(uid types.UID) []*node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*node, 0, len(g.dependents[uid]))
	for d := range g.dependents[uid] {
		if n := g.nodes[d]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// upsert records n and returns the work its change makes.
func (g *graph) upsert(n *node) []work {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []work
	// An owner waiting in the foreground re-checks its dependents when one
	// of them changes (it may have stopped blocking, or started deleting).
	wakeOwners := func(owners []metav1.OwnerReference) {
		for _, o := range owners {
			if owner := g.nodes[o.UID]; owner != nil && owner.deletingDependents() {
				out = append(out, work{uid: owner.uid})
			}
		}
	}
	if old := g.nodes[n.uid]; old != nil {
		for _, o := range old.owners {
			g.unlink(o.UID, n.uid)
		}
		wakeOwners(old.owners)
	}
	g.nodes[n.uid] = n
	for _, o := range n.owners {
		deps := g.dependents[o.UID]
		if deps == nil {
			deps = map[types.UID]struct{}{}
			g.dependents[o.UID] = deps
		}
		deps[n.uid] = struct{}{}
	}
	wakeOwners(n.owners)
	return append(out, g.workFor(n)...)
}

// remove forgets uid and returns the work its disappearance makes.
func (g *graph) remove(uid types.UID) []work {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.nodes[uid]
	if n == nil {
		return nil
	}
	delete(g.nodes, uid)
	var out []work
	for _, o := range n.owners {
		g.unlink(o.UID, uid)
		if owner := g.nodes[o.UID]; owner != nil && owner.deletingDependents() {
			out = append(out, work{uid: owner.uid})
		}
	}
	for d := range g.dependents[uid] {
		out = append(out, work{uid: d})
	}
	return out
}

func (g *graph) unlink(owner, dependent types.UID) {
	if deps := g.dependents[owner]; deps != nil {
		delete(deps, dependent)
		if len(deps) == 0 {
			delete(g.dependents, owner)
		}
	}
}

// workFor is the work n's current state calls for (g.mu held).
func (g *graph) workFor(n *node) []work {
	var out []work
	if n.orphaning() {
		out = append(out, work{uid: n.uid, orphan: true})
	}
	if n.deletingDependents() {
		out = append(out, work{uid: n.uid})
		for d := range g.dependents[n.uid] {
			out = append(out, work{uid: d})
		}
	}
	if !n.deleting {
		for _, o := range n.owners {
			owner := g.nodes[o.UID]
			if owner == nil || owner.deletingDependents() {
				out = append(out, work{uid: n.uid})
				break
			}
		}
	}
	return out
}

// pendingWork is the work the whole graph calls for (the periodic sweep).
func (g *graph) pendingWork() []work {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []work
	for _, n := range g.nodes {
		out = append(out, g.workFor(n)...)
	}
	return out
}

// ownersSolid reports whether every owner of n is known and not being
// deleted in the foreground (then n needs nothing).
func (g *graph) ownersSolid(n *node) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, o := range n.owners {
		owner := g.nodes[o.UID]
		if owner == nil || owner.name != o.Name || owner.deletingDependents() {
			return false
		}
	}
	return true
}
