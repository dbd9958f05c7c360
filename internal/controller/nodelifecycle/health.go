package nodelifecycle

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeHealth is what the controller remembers of a node's heartbeats. The
// times are compared with what was last seen, never with this clock, so
// the agent's clock may be off; probe is on the controller's clock.
type nodeHealth struct {
	// probe is when a heartbeat was last seen to change.
	probe time.Time
	// heartbeat is the Ready condition's lastHeartbeatTime last seen.
	heartbeat metav1.Time
	// renew is the Lease's renewTime last seen.
	renew time.Time
}

// observe updates the node's heartbeat record from its Ready condition and
// Lease (nil if none) and returns when a heartbeat was last seen. A node
// seen for the first time starts its grace period now (or at its creation
// if it never posted Ready), as upstream does.
func (c *Controller) observe(node *corev1.Node, lease *coordinationv1.Lease, now time.Time) time.Time {
	var hb metav1.Time
	if r := readyCondition(node); r != nil {
		hb = r.LastHeartbeatTime
	}
	var renew time.Time
	if lease != nil && lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health[node.Name]
	if h == nil {
		h = &nodeHealth{probe: now, heartbeat: hb, renew: renew}
		if readyCondition(node) == nil {
			h.probe = node.CreationTimestamp.Time
		}
		c.health[node.Name] = h
		return h.probe
	}
	if !hb.Equal(&h.heartbeat) {
		h.heartbeat, h.probe = hb, now
	}
	if renew.After(h.renew) {
		h.renew, h.probe = renew, now
	}
	return h.probe
}

// taintAdded returns, for the node, when a taint was put there: its
// timeAdded, or when this controller first saw it.
func (c *Controller) taintAdded(node *corev1.Node, now time.Time) func(corev1.Taint) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.taintSeen[node.Name]
	next := map[string]time.Time{}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute && t.TimeAdded == nil {
			at, ok := seen[t.Key]
			if !ok {
				at = now
			}
			next[t.Key] = at
		}
	}
	c.taintSeen[node.Name] = next
	return func(t corev1.Taint) time.Time {
		if t.TimeAdded != nil {
			return t.TimeAdded.Time
		}
		return next[t.Key]
	}
}

// forget drops what is remembered of a deleted node.
func (c *Controller) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.health, name)
	delete(c.taintSeen, name)
}
