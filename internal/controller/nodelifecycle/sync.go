package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// Event reasons, as upstream's.
const (
	eventNodeNotReady         = "NodeNotReady"
	eventTaintManagerEviction = "TaintManagerEviction"
)

// sync brings one node in step: health → conditions → taints → pods. Each
// step reads what the previous one wrote; a conflict (the agent posted
// status meanwhile) retries the whole sync with the newer node.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Lister().Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(name)
		return nil
	}
	if err != nil {
		return err
	}
	now := time.Now()
	if node, err = c.syncHealth(ctx, node, now); err != nil {
		return err
	}
	if node, err = c.syncTaints(ctx, node, now); err != nil {
		return err
	}
	return c.syncPods(ctx, node, now)
}

// syncHealth declares the node's conditions Unknown once it has been
// silent past its grace period, and otherwise looks again when that
// period would end.
func (c *Controller) syncHealth(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	lease, err := c.leases.Lister().Leases(corev1.NamespaceNodeLease).Get(node.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	probe := c.observe(node, lease, now)
	grace := c.cfg.GracePeriod
	if readyCondition(node) == nil {
		grace = c.cfg.StartupGracePeriod
	}
	if deadline := probe.Add(grace); now.Before(deadline) {
		c.queue.AddAfter(node.Name, deadline.Sub(now))
		return node, nil
	}
	conds, changed := unknownConditions(node, metav1.NewTime(now))
	if !changed {
		return node, nil
	}
	wasReady := readyStatus(node) == corev1.ConditionTrue
	updated := node.DeepCopy()
	updated.Status.Conditions = conds
	out, err := c.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set node %s conditions Unknown: %w", node.Name, err)
	}
	klog.FromContext(ctx).Info("node stopped posting status", "node", node.Name, "lastHeartbeat", probe)
	if wasReady {
		c.cfg.Recorder.Eventf(out, corev1.EventTypeNormal, eventNodeNotReady, "Node %s status is now: %s", node.Name, eventNodeNotReady)
	}
	return out, nil
}

// syncTaints makes the managed taints match the node's conditions.
func (c *Controller) syncTaints(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	nodes, err := c.nodes.Lister().List(labels.Everything())
	if err != nil {
		return nil, err
	}
	taints, changed := reconcileTaints(node, !allNotReady(replaceNode(nodes, node)), metav1.NewTime(now))
	if !changed {
		return node, nil
	}
	updated := node.DeepCopy()
	updated.Spec.Taints = taints
	out, err := c.cfg.Client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update taints of node %s: %w", node.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("node taints updated", "node", node.Name, "taints", taints)
	return out, nil
}

// replaceNode returns nodes with node in place of its cached copy, so a
// status this sync just wrote counts.
func replaceNode(nodes []*corev1.Node, node *corev1.Node) []*corev1.Node {
	out := make([]*corev1.Node, len(nodes))
	for i, n := range nodes {
		if n.Name == node.Name {
			n = node
		}
		out[i] = n
	}
	return out
}

// syncPods marks the pods of an unreachable node not ready, evicts those
// whose tolerations of the node's NoExecute taints ran out, and looks
// again when the next one will.
func (c *Controller) syncPods(ctx context.Context, node *corev1.Node, now time.Time) error {
	unreachable := readyStatus(node) == corev1.ConditionUnknown
	var noExecute []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			noExecute = append(noExecute, t)
		}
	}
	added := c.taintAdded(node, now)
	if !unreachable && len(noExecute) == 0 {
		return nil
	}
	pods, err := c.pods.Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	var next time.Time
	for _, pod := range pods {
		if pod.Spec.NodeName != node.Name || pod.DeletionTimestamp != nil {
			continue
		}
		if unreachable {
			if err := c.markNotReady(ctx, pod); err != nil {
				errs = append(errs, err)
			}
		}
		if len(noExecute) == 0 {
			continue
		}
		at, ok := evictionTime(pod, noExecute, c.defaults, added)
		if !ok {
			continue
		}
		if now.Before(at) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		if err := c.evict(ctx, pod); err != nil {
			errs = append(errs, err)
		}
	}
	if !next.IsZero() {
		c.queue.AddAfter(node.Name, next.Sub(now))
	}
	return errors.Join(errs...)
}
