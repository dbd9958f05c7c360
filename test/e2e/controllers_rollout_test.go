package e2e

// The steps of TestControllers about the Deployment after S1: its YAML
// (S19), a rolling update watched at every step, scale, undo and history,
// and deleting it with each propagation policy.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// stepDeploymentYAML is S19's Deployment with today's defaults: replicas
// 10, RollingUpdate 25%/25%, revisionHistoryLimit 10, and conditions
// Available (MinimumReplicasAvailable) and Progressing
// (NewReplicaSetAvailable).
func stepDeploymentYAML(t *testing.T, sc *ctrlScenario) {
	out := sc.k.run(t, "get", "deployment", "kuard", "-o", "yaml")
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(out), &d); err != nil {
		t.Fatalf("get deployment -o yaml: %v\n%s", err, out)
	}
	wantMatch(t, out, `(?m)^  replicas: 10$`, `(?m)^  revisionHistoryLimit: 10$`,
		`(?m)^  strategy:\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 25%\n    type: RollingUpdate$`)
	spec := d.Spec
	if deref(spec.Replicas) != int32(10) || deref(spec.RevisionHistoryLimit) != int32(10) || deref(spec.ProgressDeadlineSeconds) != int32(600) {
		t.Errorf("replicas %v revisionHistoryLimit %v progressDeadlineSeconds %v, want 10, 10, 600",
			deref(spec.Replicas), deref(spec.RevisionHistoryLimit), deref(spec.ProgressDeadlineSeconds))
	}
	if a := d.Annotations["deployment.kubernetes.io/revision"]; a != "1" {
		t.Errorf("revision annotation %q, want 1", a)
	}
	st := d.Status
	if st.ObservedGeneration != d.Generation || st.Replicas != 10 || st.UpdatedReplicas != 10 || st.ReadyReplicas != 10 || st.AvailableReplicas != 10 || st.UnavailableReplicas != 0 {
		t.Errorf("status %+v (generation %d), want observedGeneration = generation, replicas, updated, ready, available 10", st, d.Generation)
	}
	conds := map[appsv1.DeploymentConditionType]appsv1.DeploymentCondition{}
	for _, c := range st.Conditions {
		conds[c.Type] = c
	}
	want := []struct {
		typ             appsv1.DeploymentConditionType
		reason, message string
	}{
		{appsv1.DeploymentAvailable, "MinimumReplicasAvailable", "Deployment has minimum availability."},
		{appsv1.DeploymentProgressing, "NewReplicaSetAvailable", `ReplicaSet "kuard-` + sc.hash1 + `" has successfully progressed.`},
	}
	for _, w := range want {
		c := conds[w.typ]
		if c.Status != corev1.ConditionTrue || c.Reason != w.reason || c.Message != w.message {
			t.Errorf("condition %s: %s %s %q, want True %s %q", w.typ, c.Status, c.Reason, c.Message, w.reason, w.message)
		}
	}
	if len(st.Conditions) != 2 {
		t.Errorf("conditions %+v, want Available and Progressing", st.Conditions)
	}
}

// rolloutWatch follows the pods and ReplicaSets of a deployment through
// watches, so it sees every state the API server stored, and remembers the
// extremes: the largest sum of the ReplicaSets' spec.replicas, the most
// pods that exist and the fewest ready at any one moment. Terminating pods
// are not counted, as upstream's deployment controller does not count them.
//
// maxSurge bounds what the deployment controller asks for (the ReplicaSets'
// replicas), not the pods at each instant: the ReplicaSet controller
// creates the new ReplicaSet's pods and deletes the old one's
// concurrently, so a new pod may be stored just before the old pod it
// replaces is marked for deletion. Upstream behaves the same.
type rolloutWatch struct {
	done      chan struct{}
	cancel    context.CancelFunc
	maxWanted int // sum of the ReplicaSets' spec.replicas
	maxTotal  int
	minReady  int
	timeline  []string // every state seen, for messages
	err       error
}

func watchRollout(t *testing.T, c *cluster, selector string) *rolloutWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pods := c.client.CoreV1().Pods(c.k.ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("watch pods: %v", err)
	}
	rsets := c.client.AppsV1().ReplicaSets(c.k.ns)
	rsList, err := rsets.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list replicasets: %v", err)
	}
	rsw, err := rsets.Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: rsList.ResourceVersion})
	if err != nil {
		t.Fatalf("watch replicasets: %v", err)
	}
	rw := &rolloutWatch{done: make(chan struct{}), cancel: cancel, minReady: 1 << 30}
	state := map[string]*corev1.Pod{}
	for i := range list.Items {
		state[list.Items[i].Name] = &list.Items[i]
	}
	wanted := map[string]int32{}
	for _, rs := range rsList.Items {
		wanted[rs.Name] = ptr.Deref(rs.Spec.Replicas, 0)
	}
	observeRS := func(why string) {
		sum := 0
		for _, n := range wanted {
			sum += int(n)
		}
		rw.maxWanted = max(rw.maxWanted, sum)
		rw.timeline = append(rw.timeline, fmt.Sprintf("%-40s replicasets want %d: %v", why, sum, wanted))
	}
	observeRS("initial list")
	observe := func(why string) {
		total, ready := 0, 0
		perHash := map[string]string{}
		for _, p := range state {
			if p.DeletionTimestamp != nil {
				continue
			}
			total++
			h := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			var n, r int
			fmt.Sscanf(perHash[h], "%d/%d", &r, &n)
			if podReady(p) {
				ready++
				r++
			}
			perHash[h] = fmt.Sprintf("%d/%d", r, n+1)
		}
		rw.maxTotal = max(rw.maxTotal, total)
		rw.minReady = min(rw.minReady, ready)
		rw.timeline = append(rw.timeline, fmt.Sprintf("%-40s %2d pods, %2d ready; ready/pods by hash %v", why, total, ready, perHash))
	}
	observe("initial list")
	go func() {
		defer close(rw.done)
		defer w.Stop()
		defer rsw.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-rsw.ResultChan():
				if !ok {
					rw.err = fmt.Errorf("watch of replicasets %s ended early", selector)
					return
				}
				rs, ok := ev.Object.(*appsv1.ReplicaSet)
				if !ok {
					rw.err = fmt.Errorf("watch event %s of %T", ev.Type, ev.Object)
					return
				}
				if ev.Type == "DELETED" {
					delete(wanted, rs.Name)
				} else {
					wanted[rs.Name] = ptr.Deref(rs.Spec.Replicas, 0)
				}
				observeRS(fmt.Sprintf("%s %s", ev.Type, rs.Name))
			case ev, ok := <-w.ResultChan():
				if !ok {
					rw.err = fmt.Errorf("watch of pods %s ended early", selector)
					return
				}
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					rw.err = fmt.Errorf("watch event %s of %T", ev.Type, ev.Object)
					return
				}
				if ev.Type == "DELETED" {
					delete(state, p.Name)
				} else {
					state[p.Name] = p
				}
				observe(fmt.Sprintf("%s %s", ev.Type, p.Name))
			}
		}
	}()
	t.Cleanup(rw.stop)
	return rw
}

// scalingEvents returns the messages of the deployment controller's
// ScalingReplicaSet events, oldest first (event names end in the hex
// UnixNano time they were made at).
func (c *cluster) scalingEvents(t *testing.T) []string {
	list, err := c.client.CoreV1().Events(c.k.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=ScalingReplicaSet"})
	if err != nil {
		return []string{err.Error()}
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("  %s (×%d)", e.Message, e.Count))
	}
	return out
}

func (rw *rolloutWatch) stop() {
	rw.cancel()
	<-rw.done
}

// stepSetImage: `kubectl set image` rolls the ten pods to a new template
// while the nodes make each new pod ready as it appears; at no moment do
// the ReplicaSets ask for more than 10+3 pods (maxSurge 25% of 10, rounded
// up) or are fewer than 10-2 pods ready (maxUnavailable 25% of 10, rounded
// down). Pods themselves may briefly exceed 13 while the old ReplicaSet's
// deletions catch up with the new one's creations (see rolloutWatch), but
// never by more than one step of the surge.
func stepSetImage(t *testing.T, sc *ctrlScenario) {
	rw := watchRollout(t, sc.cluster, "app=kuard")
	wantLines(t, sc.k.run(t, "set", "image", "deployment/kuard", "kuard-amd64="+kuardImage2), "deployment.apps/kuard image updated")
	wantMatch(t, sc.k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout),
		`deployment "kuard" successfully rolled out\n$`)
	var pods []corev1.Pod
	waitFor(t, controllerTimeout, "ten pods of the new template", func() error {
		pods = sc.pods(t, "app=kuard", true)
		if len(pods) != 10 {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	rw.stop()
	if rw.err != nil {
		t.Error(rw.err)
	}
	t.Logf("rollout: replicasets wanted at most %d, at most %d pods, at least %d ready", rw.maxWanted, rw.maxTotal, rw.minReady)
	if rw.maxWanted > 13 || rw.maxTotal > 13+3 || rw.minReady < 8 {
		t.Errorf("rollout went outside maxSurge/maxUnavailable: replicasets wanted at most %d (want ≤ 13), at most %d pods (want ≤ 16), at least %d ready (want ≥ 8); states seen:\n%s\nscaling events:\n%s",
			rw.maxWanted, rw.maxTotal, rw.minReady, strings.Join(rw.timeline, "\n"), strings.Join(sc.scalingEvents(t), "\n"))
	}
	if rw.maxTotal <= 10 {
		t.Errorf("rollout never surged: at most %d pods", rw.maxTotal)
	}

	hashes := map[string]bool{}
	for _, p := range pods {
		if m := kuardPodName.FindStringSubmatch(p.Name); m != nil {
			hashes[m[1]] = true
		}
		if img := p.Spec.Containers[0].Image; img != kuardImage2 || !podReady(&p) {
			t.Errorf("pod %s: image %s ready %v, want %s and ready", p.Name, img, podReady(&p), kuardImage2)
		}
	}
	if len(hashes) != 1 || hashes[sc.hash1] {
		t.Errorf("pod hashes %v, want one new one (not %s)", hashes, sc.hash1)
	}
	tb := parseTable(t, sc.k.run(t, "get", "rs", "-o", "wide"))
	if len(tb.rows) != 2 {
		t.Errorf("replicasets %v, want the old and the new", tb.rows)
	}
	tb.wantRow(t, "kuard-"+sc.hash1, map[string]string{"DESIRED": "0", "CURRENT": "0", "READY": "0", "IMAGES": kuardImage1})
	for h := range hashes {
		tb.wantRow(t, "kuard-"+h, map[string]string{"DESIRED": "10", "CURRENT": "10", "READY": "10", "IMAGES": kuardImage2})
	}
	if got := sc.jsonpath(t, `{.metadata.annotations.deployment\.kubernetes\.io/revision}`, "deployment", "kuard"); got != "2" {
		t.Errorf("revision %q after set image, want 2", got)
	}
}

// stepScaleDown: kubectl scale to 3 leaves three pods.
func stepScaleDown(t *testing.T, sc *ctrlScenario) {
	wantLines(t, sc.k.run(t, "scale", "deployment", "kuard", "--replicas=3"), "deployment.apps/kuard scaled")
	waitFor(t, controllerTimeout, "three kuard pods", func() error {
		if n := len(sc.pods(t, "app=kuard", true)); n != 3 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	wantMatch(t, sc.k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout),
		`deployment "kuard" successfully rolled out\n$`)
	parseTable(t, sc.k.run(t, "get", "deployment", "kuard")).wantRow(t, "kuard",
		map[string]string{"READY": "3/3", "UP-TO-DATE": "3", "AVAILABLE": "3"})
}

// stepUndo: rollout undo goes back to the first template, reusing its
// ReplicaSet, as revision 3; rollout history lists revisions 2 and 3.
func stepUndo(t *testing.T, sc *ctrlScenario) {
	wantLines(t, sc.k.run(t, "rollout", "undo", "deployment/kuard"), "deployment.apps/kuard rolled back")
	wantMatch(t, sc.k.run(t, "rollout", "status", "deployment/kuard", "--timeout="+rolloutTimeout),
		`deployment "kuard" successfully rolled out\n$`)
	waitFor(t, controllerTimeout, "three pods of the first template", func() error {
		pods := sc.pods(t, "app=kuard", true)
		if len(pods) != 3 {
			return fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			if !strings.HasPrefix(p.Name, "kuard-"+sc.hash1+"-") || p.Spec.Containers[0].Image != kuardImage1 {
				return fmt.Errorf("pod %s has image %s, want kuard-%s-* with %s", p.Name, p.Spec.Containers[0].Image, sc.hash1, kuardImage1)
			}
		}
		return nil
	})
	if got := sc.jsonpath(t, `{.metadata.annotations.deployment\.kubernetes\.io/revision} {.spec.template.spec.containers[0].image}`, "deployment", "kuard"); got != "3 "+kuardImage1 {
		t.Errorf("revision and image %q after undo, want \"3 %s\"", got, kuardImage1)
	}

	out := sc.k.run(t, "rollout", "history", "deployment/kuard")
	header, rest, _ := strings.Cut(out, "\n")
	if strings.TrimSpace(header) != "deployment.apps/kuard" {
		t.Errorf("rollout history first line %q, want deployment.apps/kuard", header)
	}
	tb := parseTable(t, rest)
	tb.wantCols(t, "REVISION", "CHANGE-CAUSE")
	var revs []string
	for _, r := range tb.rows {
		revs = append(revs, r["REVISION"]+" "+r["CHANGE-CAUSE"])
	}
	if want := []string{"2 <none>", "3 <none>"}; !slices.Equal(revs, want) {
		t.Errorf("rollout history %q, want %q", revs, want)
	}
	wantMatch(t, sc.k.run(t, "rollout", "history", "deployment/kuard", "--revision=2"),
		`(?m)^deployment.apps/kuard with revision #2$`, `(?m)^\s+Image:\s+`+regexp.QuoteMeta(kuardImage2)+`$`)
}

// stepDeleteDeployment: deleting the Deployment deletes its ReplicaSets,
// and theirs pods, through the garbage collector; the Service's endpoints
// empty; the bare pod stays.
func stepDeleteDeployment(t *testing.T, sc *ctrlScenario) {
	wantMatch(t, sc.k.run(t, "delete", "deployment", "kuard"), deleted(`deployment.apps "kuard"`))
	waitFor(t, controllerTimeout, "replicasets and pods of kuard gone", func() error {
		if out := sc.k.run(t, "get", "rs,pods", "-l", "app=kuard", "-o", "name"); out != "" {
			return fmt.Errorf("still there:\n%s", out)
		}
		return nil
	})
	waitFor(t, controllerTimeout, "endpoints kuard empty", func() error {
		if ep := sc.endpointsYAML(t, "kuard"); len(ep.Subsets) != 0 {
			return fmt.Errorf("subsets %+v", ep.Subsets)
		}
		return nil
	})
	wantLines(t, sc.k.run(t, "get", "pods", "-o", "name"), "pod/web")
}

// stepDeleteCascade: --cascade=orphan leaves the ReplicaSet and its pods,
// released (no owner); --cascade=foreground deletes the dependents before
// the owner, so they are gone when kubectl has seen the owner go.
func stepDeleteCascade(t *testing.T, sc *ctrlScenario) {
	for _, name := range []string{"orphan", "foreground"} {
		sc.k.run(t, "create", "deployment", name, "--image="+kuardImage1, "--replicas=2")
		waitFor(t, controllerTimeout, "two "+name+" pods running", func() error {
			pods := sc.pods(t, "app="+name, true)
			if len(pods) != 2 || !podReady(&pods[0]) || !podReady(&pods[1]) {
				return fmt.Errorf("%d pods", len(pods))
			}
			return nil
		})
	}
	rs := strings.TrimSpace(sc.k.run(t, "get", "rs", "-l", "app=orphan", "-o", "name"))
	wantMatch(t, sc.k.run(t, "delete", "deployment", "orphan", "--cascade=orphan"), deleted(`deployment.apps "orphan"`))
	waitFor(t, controllerTimeout, "orphaned "+rs+" released", func() error {
		if got := sc.jsonpath(t, `{.metadata.ownerReferences}`, rs); got != "" {
			return fmt.Errorf("ownerReferences %s", got)
		}
		return nil
	})
	if n := len(sc.pods(t, "app=orphan", false)); n != 2 {
		t.Errorf("%d pods of the orphaned %s, want 2", n, rs)
	}
	sc.k.run(t, "delete", rs)

	wantMatch(t, sc.k.run(t, "delete", "deployment", "foreground", "--cascade=foreground"), deleted(`deployment.apps "foreground"`))
	if out := sc.k.run(t, "get", "rs,pods", "-l", "app=foreground", "-o", "name"); out != "" {
		t.Errorf("after a foreground delete returned, still there:\n%s", out)
	}
	waitFor(t, controllerTimeout, "orphan pods gone", func() error {
		if out := sc.k.run(t, "get", "pods", "-l", "app=orphan", "-o", "name"); out != "" {
			return fmt.Errorf("still there:\n%s", out)
		}
		return nil
	})
}
