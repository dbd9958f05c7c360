package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Short node lifecycle periods, so a lost node is seen and its pods
// evicted within seconds (defaults 40 s and 300 s).
const (
	testGracePeriod     = 5 * time.Second
	testEvictionTimeout = 5 * time.Second
)

// TestNodeLifecycle stops one node's heartbeats: after the grace period
// it is Ready=Unknown and tainted unreachable, its pods are not Ready and
// leave the Service's endpoints at once, and after the toleration they are
// evicted and replaced on the other node, which is left alone throughout.
func TestNodeLifecycle(t *testing.T) {
	t.Parallel()
	v := preferredKubectl(t)
	c := startCluster(t, v, "lifecycle",
		"--node-monitor-grace-period="+testGracePeriod.String(), "--pod-eviction-timeout="+testEvictionTimeout.String())
	k, ns := c.k, c.k.ns
	t.Logf("kubectl %s", v.name)

	k.run(t, "create", "deployment", "lost", "--image="+kuardImage1, "--replicas=4")
	k.run(t, "expose", "deployment", "lost", "--port=80", "--target-port=8080")
	c.startPods(t)
	var before []corev1.Pod
	waitFor(t, controllerTimeout, "four ready pods in the endpoints", func() error {
		before = c.pods(t, "app=lost", true)
		ep, err := c.client.CoreV1().Endpoints(ns).Get(context.Background(), "lost", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ready, notReady := endpointCounts(*ep); len(before) != 4 || ready != 4 || notReady != 0 {
			return fmt.Errorf("%d pods; endpoints: %d addresses, %d not ready", len(before), ready, notReady)
		}
		return nil
	})
	onNode := func(pods []corev1.Pod, node string) []corev1.Pod {
		return slices.DeleteFunc(slices.Clone(pods), func(p corev1.Pod) bool { return p.Spec.NodeName != node })
	}
	lostPods, keptPods := onNode(before, "node-b"), onNode(before, "node-a")
	if len(lostPods) != 2 || len(keptPods) != 2 {
		t.Fatalf("pods per node: %d on node-b, %d on node-a, want 2 and 2", len(lostPods), len(keptPods))
	}

	c.nodes["node-b"].stop()
	stopped := time.Now()

	// Ready=Unknown after the grace period (counted from the last renewal,
	// at most leaseRenewInterval before the stop), not before.
	waitFor(t, testGracePeriod+controllerTimeout, "node-b NotReady", func() error {
		if r := parseTable(t, k.run(t, "get", "node", "node-b")).row(t, "node-b"); r["STATUS"] != "NotReady" {
			return fmt.Errorf("node-b is %s", r["STATUS"])
		}
		return nil
	})
	if d := time.Since(stopped); d < testGracePeriod-leaseRenewInterval {
		t.Errorf("node-b NotReady %v after its last heartbeat, before the %v grace period", d.Round(time.Millisecond), testGracePeriod)
	}
	t.Logf("node-b NotReady after %v", time.Since(stopped).Round(time.Millisecond))
	got := c.jsonpath(t, `{range .status.conditions[*]}{.type}={.status}/{.reason}/{.message}{"\n"}{end}`, "node", "node-b")
	for _, typ := range []string{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"} {
		wantMatch(t, got, `(?m)^`+typ+`=Unknown/NodeStatusUnknown/Kubelet stopped posting node status\.$`)
	}
	waitFor(t, controllerTimeout, "node-b tainted unreachable", func() error {
		taints := strings.Fields(c.jsonpath(t, `{range .spec.taints[*]}{.key}:{.effect} {end}`, "node", "node-b"))
		slices.Sort(taints)
		if want := []string{"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}; !slices.Equal(taints, want) {
			return fmt.Errorf("taints %q, want %q", taints, want)
		}
		return nil
	})

	// Its pods are not Ready at once, and leave the endpoints for
	// notReadyAddresses.
	waitFor(t, controllerTimeout, "node-b's pods not ready, out of the endpoints", func() error {
		for _, p := range lostPods {
			ready := c.jsonpath(t, `{.status.conditions[?(@.type=="Ready")].status}`, "pod", p.Name)
			if ready != "False" {
				return fmt.Errorf("pod %s Ready=%s", p.Name, ready)
			}
		}
		ep := c.endpointsYAML(t, "lost")
		if len(ep.Subsets) != 1 {
			return fmt.Errorf("subsets %+v", ep.Subsets)
		}
		if err := checkAddresses(ep.Subsets[0].Addresses, byName(keptPods)); err != nil {
			return err
		}
		if n := len(ep.Subsets[0].NotReadyAddresses); n != 2 {
			return fmt.Errorf("%d notReadyAddresses, want node-b's 2", n)
		}
		return nil
	})
	for _, s := range c.endpointSlicesYAML(t, "lost") {
		for _, e := range s.Endpoints {
			if deref(e.NodeName) == "node-b" && deref(e.Conditions.Ready) != false {
				t.Errorf("slice endpoint %v on node-b ready=%v, want false", e.Addresses, deref(e.Conditions.Ready))
			}
		}
	}

	// Evicted after the toleration: marked for deletion (the node is not
	// there to confirm it, so they stay Terminating), and replaced on
	// node-a.
	waitFor(t, testEvictionTimeout+controllerTimeout, "node-b's pods evicted", func() error {
		for _, p := range lostPods {
			if ts := c.jsonpath(t, `{.metadata.deletionTimestamp}`, "pod", p.Name); ts == "" {
				return fmt.Errorf("pod %s not marked for deletion", p.Name)
			}
		}
		return nil
	})
	evicted := time.Since(stopped)
	t.Logf("node-b's pods evicted after %v", evicted.Round(time.Millisecond))
	// Taint times have one-second precision, and the node is seen
	// silent up to a renew interval before the grace period ends.
	if evicted < testGracePeriod+testEvictionTimeout-leaseRenewInterval-time.Second {
		t.Errorf("pods evicted %v after the last heartbeat, before grace period + toleration (%v)", evicted, testGracePeriod+testEvictionTimeout)
	}
	for _, p := range lostPods {
		got := c.jsonpath(t, `{.status.conditions[?(@.type=="DisruptionTarget")].status}/{.status.conditions[?(@.type=="DisruptionTarget")].reason}`, "pod", p.Name)
		if got != "True/DeletionByTaintManager" {
			t.Errorf("pod %s DisruptionTarget condition %q, want True/DeletionByTaintManager", p.Name, got)
		}
	}
	waitFor(t, controllerTimeout, "TaintManagerEviction events", func() error {
		out := k.run(t, "get", "events", "--field-selector=reason=TaintManagerEviction", "-o", `jsonpath={range .items[*]}{.involvedObject.name} {.message}{"\n"}{end}`)
		for _, p := range lostPods {
			if want := p.Name + " Marking for deletion Pod " + ns + "/" + p.Name; !strings.Contains(out, want+"\n") {
				return fmt.Errorf("events %q lack %q", out, want)
			}
		}
		return nil
	})
	waitFor(t, controllerTimeout, "four ready pods on node-a, alone in the endpoints", func() error {
		live := c.pods(t, "app=lost", false)
		for _, p := range live {
			if p.Spec.NodeName != "node-a" || !podReady(&p) {
				return fmt.Errorf("pod %s on %s ready=%v", p.Name, p.Spec.NodeName, podReady(&p))
			}
		}
		if len(live) != 4 {
			return fmt.Errorf("%d live pods", len(live))
		}
		ep := c.endpointsYAML(t, "lost")
		if ready, notReady := endpointCounts(ep); ready != 4 || notReady != 0 {
			return fmt.Errorf("endpoints: %d addresses, %d not ready", ready, notReady)
		}
		return checkAddresses(ep.Subsets[0].Addresses, byName(live))
	})
	tb := parseTable(t, k.run(t, "get", "pods", "-o", "wide"))
	for _, p := range lostPods {
		tb.wantRow(t, p.Name, map[string]string{"STATUS": "Terminating", "NODE": "node-b"})
	}
	parseTable(t, k.run(t, "get", "deployment", "lost")).wantRow(t, "lost", map[string]string{"READY": "4/4", "AVAILABLE": "4"})

	// node-a was never touched: Ready, untainted, its pods ready all along.
	parseTable(t, k.run(t, "get", "node", "node-a")).wantRow(t, "node-a", map[string]string{"STATUS": "Ready"})
	if taints := c.jsonpath(t, `{.spec.taints}`, "node", "node-a"); taints != "" {
		t.Errorf("node-a taints %s, want none", taints)
	}
	for _, p := range keptPods {
		got := c.jsonpath(t, `{.metadata.uid} {.metadata.deletionTimestamp}{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].lastTransitionTime}`, "pod", p.Name)
		var readySince string
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady {
				readySince = cond.LastTransitionTime.UTC().Format(time.RFC3339)
			}
		}
		if want := string(p.UID) + " True/" + readySince; got != want {
			t.Errorf("pod %s on node-a: uid, deletion, Ready %q, want %q (untouched)", p.Name, got, want)
		}
	}
}

// preferredKubectl is kubectl 1.33 if installed, else the compiled-in one.
func preferredKubectl(t *testing.T) kubectlVersion {
	vs := kubectlVersions(t)
	for _, v := range vs {
		if v.name == "1.33" && v.missing == "" {
			return v
		}
	}
	return vs[0]
}
