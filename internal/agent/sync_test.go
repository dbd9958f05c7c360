package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// Unit tier: the pod worker's sync over fakes (runtime.Fake, a fake CNI,
// fake images, a fake clientset), one sync at a time with a clock the
// test moves.

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	if c := findCondition(st.Conditions, t); c != nil {
		return c.Status
	}
	return ""
}

func TestSyncStartsPod(t *testing.T) {
	h := newHarness(t)
	h.addService("kube-system", "kube-dns", "10.96.0.10", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP})
	pod := h.create(newPod("web", func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello $(MY_POD)"},
			{Name: "MY_POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "MY_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
		p.Spec.Containers[0].WorkingDir = "/tmp"
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(2000))}
	}))
	st := h.status(pod)

	if got := h.rt.Calls(); !slices.Contains(got, "CreateSandbox "+string(pod.UID)) || !slices.Contains(got, "StartContainer "+containerID(pod.UID, "app", 0)) {
		t.Errorf("runtime calls: %q", got)
	}
	if got := h.net.Calls(); !slices.Equal(got, []string{"ADD " + string(pod.UID)}) {
		t.Errorf("CNI calls: %q", got)
	}
	sb := h.rt.Sandboxes()
	if len(sb) != 1 || sb[0].Hostname != "web" || sb[0].Labels[labelPodUID] != string(pod.UID) {
		t.Errorf("sandboxes: %+v", sb)
	}
	cfg, _ := h.rt.ContainerConfig(containerID(pod.UID, "app", 0))
	if !slices.Equal(cfg.Args, []string{"sh", "-c", "sleep 1000"}) || cfg.Cwd != "/tmp" || cfg.UID != 1000 || cfg.GID != 2000 {
		t.Errorf("config: args %q cwd %q uid %d gid %d", cfg.Args, cfg.Cwd, cfg.UID, cfg.GID)
	}
	for _, want := range []string{"HOSTNAME=web", "GREETING=hello $(MY_POD)", "MY_POD=web", "MY_IP=10.244.1.10",
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
		if !slices.Contains(cfg.Env, want) {
			t.Errorf("env lacks %s: %q", want, cfg.Env)
		}
	}
	var dsts []string
	for _, m := range cfg.Mounts {
		dsts = append(dsts, m.Destination)
	}
	if !slices.Equal(dsts, []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}) {
		t.Errorf("mounts: %v", cfg.Mounts)
	}
	if !strings.HasSuffix(cfg.LogPath, "/logs/default_web_"+string(pod.UID)+"/app/0.log") {
		t.Errorf("log path %s", cfg.LogPath)
	}
	etc := filepath.Join(h.m.podDir(pod.UID), "etc")
	for file, want := range map[string]string{
		"hosts":       "10.244.1.10\tweb\n",
		"hostname":    "web\n",
		"resolv.conf": "search default.svc.cluster.local svc.cluster.local cluster.local example.org\nnameserver 10.96.0.10\noptions ndots:5\n",
	} {
		data, _ := os.ReadFile(filepath.Join(etc, file))
		if !strings.Contains(string(data), want) {
			t.Errorf("%s: %q lacks %q", file, data, want)
		}
	}

	if st.Phase != corev1.PodRunning || st.PodIP != "10.244.1.10" || st.HostIP != "10.9.0.2" || st.StartTime == nil {
		t.Errorf("status: phase %s podIP %s hostIP %s start %v", st.Phase, st.PodIP, st.HostIP, st.StartTime)
	}
	for _, c := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if condition(st, c) != corev1.ConditionTrue {
			t.Errorf("condition %s: %v", c, st.Conditions)
		}
	}
	cs := st.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.Ready || !*cs.Started || cs.ContainerID != "kite://"+containerID(pod.UID, "app", 0) ||
		cs.Image != "docker.io/library/busybox:latest" || cs.ImageID != "docker.io/library/busybox@sha256:0123" {
		t.Errorf("container status: %+v", cs)
	}
	events := h.eventList()
	for _, want := range []string{`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Created container app", "Normal Started Started container app"} {
		if !slices.Contains(events, want) {
			t.Errorf("no event %q in %q", want, events)
		}
	}

	// Nothing changed: a second sync does nothing and writes nothing.
	h.rt.ResetCalls()
	rv := h.get(pod).ResourceVersion
	h.sync(pod)
	if got := callsWith(h.rt.Calls(), "Create"); len(got) > 0 {
		t.Errorf("second sync created %q", got)
	}
	if h.get(pod).ResourceVersion != rv {
		t.Error("second sync wrote the status again")
	}
}

// A container that keeps failing is restarted at once, then after 10 s,
// 20 s, …, with CrashLoopBackOff meanwhile and restarts counted; only
// the instance before the latest is kept.
func TestCrashLoopBackOff(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("crash"))
	h.sync(pod)
	id := func(n int) string { return containerID(pod.UID, "app", n) }

	h.rt.Exit(id(0), 1, false)
	st := h.status(pod)
	if cs := st.ContainerStatuses[0]; cs.RestartCount != 1 || cs.State.Running == nil || cs.LastTerminationState.Terminated == nil ||
		cs.LastTerminationState.Terminated.ExitCode != 1 || cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Fatalf("after the first exit: %+v", cs)
	}

	h.advance(time.Second)
	h.rt.Exit(id(1), 1, false)
	next, _ := h.sync(pod)
	st = h.get(pod).Status
	cs := st.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 1 ||
		!strings.HasPrefix(cs.State.Waiting.Message, "back-off 10s restarting failed container=app pod=crash_default") {
		t.Fatalf("after the second exit: %+v", cs)
	}
	if next != 10*time.Second || st.Phase != corev1.PodRunning || condition(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("next %v phase %s ready %s", next, st.Phase, condition(st, corev1.PodReady))
	}
	if _, ok := h.rt.ContainerConfig(id(2)); ok {
		t.Fatal("restarted during back-off")
	}

	h.advance(10 * time.Second)
	st = h.status(pod)
	if cs := st.ContainerStatuses[0]; cs.RestartCount != 2 || cs.State.Running == nil {
		t.Fatalf("after the back-off: %+v", cs)
	}
	if _, ok := h.rt.ContainerConfig(id(0)); ok {
		t.Error("instance 0 kept after instance 2 started")
	}
	h.advance(time.Second)
	h.rt.Exit(id(2), 1, false)
	h.sync(pod)
	if w := h.get(pod).Status.ContainerStatuses[0].State.Waiting; w == nil || !strings.HasPrefix(w.Message, "back-off 20s") {
		t.Errorf("third back-off: %+v", w)
	}
	if ev := h.eventList(); !slices.ContainsFunc(ev, func(e string) bool {
		return strings.HasPrefix(e, "Warning BackOff Back-off restarting failed container app")
	}) {
		t.Errorf("no BackOff event: %q", ev)
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy  corev1.RestartPolicy
		code    int
		phase   corev1.PodPhase
		restart bool
	}{
		{corev1.RestartPolicyAlways, 0, corev1.PodRunning, true},
		{corev1.RestartPolicyOnFailure, 0, corev1.PodSucceeded, false},
		{corev1.RestartPolicyOnFailure, 3, corev1.PodRunning, true},
		{corev1.RestartPolicyNever, 0, corev1.PodSucceeded, false},
		{corev1.RestartPolicyNever, 3, corev1.PodFailed, false},
	} {
		t.Run(string(tc.policy)+"-"+string(rune('0'+tc.code)), func(t *testing.T) {
			h := newHarness(t)
			pod := h.create(newPod("job", func(p *corev1.Pod) { p.Spec.RestartPolicy = tc.policy }))
			h.sync(pod)
			h.rt.Exit(containerID(pod.UID, "app", 0), tc.code, false)
			st := h.status(pod)
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			_, restarted := h.rt.ContainerConfig(containerID(pod.UID, "app", 1))
			if restarted != tc.restart {
				t.Errorf("restarted %v, want %v", restarted, tc.restart)
			}
			if isTerminal(tc.phase) {
				cs := st.ContainerStatuses[0]
				reason := map[int]string{0: "Completed", 3: "Error"}[tc.code]
				if cs.State.Terminated == nil || cs.State.Terminated.Reason != reason || cs.Ready {
					t.Errorf("container: %+v", cs)
				}
				want := map[corev1.PodPhase]string{corev1.PodSucceeded: "PodCompleted", corev1.PodFailed: "PodFailed"}[tc.phase]
				if c := findCondition(st.Conditions, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != want {
					t.Errorf("Ready: %+v", c)
				}
				// A finished pod gives its address back and keeps its IP in
				// the status.
				if got := h.net.Calls(); !slices.Contains(got, "DEL "+string(pod.UID)) || st.PodIP == "" {
					t.Errorf("CNI calls %q podIP %q", got, st.PodIP)
				}
				h.sync(pod)
				if got := callsWith(h.net.Calls(), "DEL"); len(got) != 1 {
					t.Errorf("DEL %d times", len(got))
				}
			}
		})
	}
}

func TestInitContainers(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("init", func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{
			{Name: "one", Image: "busybox", Command: []string{"true"}},
			{Name: "two", Image: "busybox", Command: []string{"true"}},
		}
	}))
	st := h.status(pod)
	if _, ok := h.rt.ContainerConfig(containerID(pod.UID, "two", 0)); ok {
		t.Fatal("second init container started with the first")
	}
	if st.Phase != corev1.PodPending || condition(st, corev1.PodInitialized) != corev1.ConditionFalse ||
		st.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" || st.InitContainerStatuses[1].State.Waiting.Reason != "PodInitializing" {
		t.Fatalf("while initializing: %+v", st)
	}
	if c := findCondition(st.Conditions, corev1.PodInitialized); c.Message != "containers with incomplete status: [one two]" {
		t.Errorf("Initialized: %+v", c)
	}

	// A failing init container is retried (restartPolicy Always).
	h.rt.Exit(containerID(pod.UID, "one", 0), 1, false)
	h.sync(pod)
	if _, ok := h.rt.ContainerConfig(containerID(pod.UID, "one", 1)); !ok {
		t.Fatal("failed init container not retried")
	}
	h.rt.Exit(containerID(pod.UID, "one", 1), 0, false)
	h.sync(pod)
	h.rt.Exit(containerID(pod.UID, "two", 0), 0, false)
	st = h.status(pod)
	if st.Phase != corev1.PodRunning || condition(st, corev1.PodInitialized) != corev1.ConditionTrue || condition(st, corev1.PodReady) != corev1.ConditionTrue {
		t.Fatalf("after init: %+v", st)
	}
	if is := st.InitContainerStatuses[0]; is.State.Terminated == nil || is.State.Terminated.Reason != "Completed" || !is.Ready || is.RestartCount != 1 {
		t.Errorf("init status: %+v", is)
	}
}

func TestInitContainerFailsPodWithRestartNever(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("init", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.InitContainers = []corev1.Container{{Name: "one", Image: "busybox", Command: []string{"false"}}}
	}))
	h.sync(pod)
	h.rt.Exit(containerID(pod.UID, "one", 0), 1, false)
	st := h.status(pod)
	if st.Phase != corev1.PodFailed {
		t.Errorf("phase %s", st.Phase)
	}
	if _, ok := h.rt.ContainerConfig(containerID(pod.UID, "app", 0)); ok {
		t.Error("container started after its init container failed")
	}
}

func TestImagePullBackOff(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("img", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "example.com/nothing:1" }))
	st := h.status(pod)
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "ErrImagePull" || !strings.Contains(w.Message, "no such host") {
		t.Fatalf("first: %+v", st.ContainerStatuses[0])
	}
	if st.Phase != corev1.PodPending || condition(st, corev1.PodReadyToStartContainers) != corev1.ConditionTrue {
		t.Errorf("phase %s conditions %v", st.Phase, st.Conditions)
	}
	h.advance(time.Second)
	if w := h.status(pod).ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ImagePullBackOff" || w.Message != `Back-off pulling image "example.com/nothing:1"` {
		t.Fatalf("in back-off: %+v", w)
	}
	if n := len(h.images.calls); n != 1 {
		t.Errorf("pulled %d times during back-off", n)
	}
	h.advance(10 * time.Second)
	if w := h.status(pod).ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ErrImagePull" || len(h.images.calls) != 2 {
		t.Fatalf("after back-off: %+v, %d pulls", w, len(h.images.calls))
	}
	// The image appears: the container starts.
	h.images.images["example.com/nothing:1"] = busyboxImage("/layers/x")
	h.advance(20 * time.Second)
	if st := h.status(pod); st.Phase != corev1.PodRunning {
		t.Errorf("phase %s", st.Phase)
	}
	if ev := h.eventList(); !slices.ContainsFunc(ev, func(e string) bool {
		return strings.HasPrefix(e, `Warning Failed Failed to pull image "example.com/nothing:1"`)
	}) {
		t.Errorf("events %q", ev)
	}
}

func TestCreateContainerConfigError(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("cfg", func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k"}}}}
	}))
	w := h.status(pod).ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, `configmap "missing"`) {
		t.Fatalf("%+v", w)
	}
	h.client.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "missing"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	h.advance(10 * time.Second)
	if st := h.status(pod); st.Phase != corev1.PodRunning {
		t.Fatalf("%+v", st.ContainerStatuses)
	}
	cfg, _ := h.rt.ContainerConfig(containerID(pod.UID, "app", 0))
	if !slices.Contains(cfg.Env, "X=v") {
		t.Errorf("env %q", cfg.Env)
	}
}

// runc failing to create a container counts as an instance that exited
// with 128: restarts are counted, then back-off.
func TestStartErrorCrashLoops(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("bad"))
	h.rt.FailNext("CreateContainer", errors.New(`runc create: exec: "nope": executable file not found in $PATH`))
	h.rt.FailNext("CreateContainer", errors.New(`runc create: exec: "nope": executable file not found in $PATH`))
	if next, _ := h.sync(pod); next != 0 {
		t.Errorf("after a start error: next sync in %v, want at once", next)
	}
	h.sync(pod)         // retried at once (first restart), fails again
	st := h.status(pod) // back-off
	cs := st.ContainerStatuses[0]
	if cs.RestartCount != 1 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" ||
		cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.Reason != "StartError" ||
		cs.LastTerminationState.Terminated.ExitCode != 128 || !strings.Contains(cs.LastTerminationState.Terminated.Message, "executable file not found") {
		t.Fatalf("%+v", cs)
	}
	h.advance(10 * time.Second)
	if cs := h.status(pod).ContainerStatuses[0]; cs.RestartCount != 2 || cs.State.Running == nil {
		t.Fatalf("%+v", cs)
	}
}

func TestGracefulDeletion(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("bye", func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox", Command: []string{"sleep", "1000"}})
	}))
	h.sync(pod)
	h.rt.ResetCalls()

	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(17))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)

	calls := h.rt.Calls()
	stops := callsWith(calls, "StopContainer")
	slices.Sort(stops)
	want := []string{"StopContainer " + containerID(pod.UID, "app", 0) + " 17s", "StopContainer " + containerID(pod.UID, "side", 0) + " 17s"}
	if !slices.Equal(stops, want) {
		t.Errorf("stops %q, want %q", stops, want)
	}
	if got := callsWith(calls, "Remove"); len(got) != 3 || got[2] != "RemoveSandbox "+string(pod.UID) {
		t.Errorf("removals %q", got)
	}
	if got := h.net.Calls(); !slices.Equal(got, []string{"ADD " + string(pod.UID), "DEL " + string(pod.UID)}) {
		t.Errorf("CNI calls %q", got)
	}
	if h.get(pod) != nil {
		t.Error("pod object not deleted")
	}
	if _, err := os.Stat(h.m.podDir(pod.UID)); !os.IsNotExist(err) {
		t.Errorf("pod dir left: %v", err)
	}
	if _, done := h.sync(pod); !done {
		t.Error("worker not done once the pod is gone")
	}
	if ev := h.eventList(); !slices.Contains(ev, "Normal Killing Stopping container app") {
		t.Errorf("events %q", ev)
	}
}

// What the runtime holds for a pod that no longer exists is removed.
func TestOrphanCleanup(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("gone"))
	h.sync(pod)
	h.client.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
	if _, done := h.sync(pod); !done {
		t.Fatal("not done")
	}
	if sb := h.rt.Sandboxes(); len(sb) != 0 {
		t.Errorf("sandboxes left: %v", sb)
	}
	if cs, _ := h.rt.ListContainers(context.Background()); len(cs) != 0 {
		t.Errorf("containers left: %v", cs)
	}
	if got := h.net.Calls(); !slices.Contains(got, "DEL "+string(pod.UID)) {
		t.Errorf("CNI calls %q", got)
	}
}

// A new agent over the same runtime and state adopts a running pod: no
// new sandbox, no second ADD, no restart, the same IP, no status write.
func TestAdoption(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("stay"))
	before := h.status(pod)
	rv := h.get(pod).ResourceVersion

	h2 := newHarness(t)
	h2.rt, h2.m.rt = h.rt, h.rt
	h2.net, h2.m.net = h.net, h.net
	h2.client, h2.m.client = h.client, h.client
	h2.m.cfg.StateDir = h.m.cfg.StateDir
	h.rt.ResetCalls()
	h2.m.podIndexer.Add(h.get(pod))
	h2.sync(pod)
	if got := callsWith(h.rt.Calls(), "Create"); len(got) != 0 {
		t.Errorf("adoption created %q", got)
	}
	if got := h.net.Calls(); !slices.Equal(got, []string{"ADD " + string(pod.UID), "CHECK " + string(pod.UID)}) {
		t.Errorf("CNI calls %q", got)
	}
	after := h.get(pod)
	if after.ResourceVersion != rv {
		t.Errorf("status rewritten: %s", cmp.Diff(before, after.Status))
	}
}

// Liveness failures restart the container; readiness failures make it
// unready and back.
func TestProbes(t *testing.T) {
	h := newHarness(t)
	var healthy, ready = true, true
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	h.rt.ExecFunc = func(id string, cfg runtime.ExecConfig) (int, error) {
		<-mu
		defer func() { mu <- struct{}{} }()
		switch {
		case cfg.Cmd[0] == "live" && !healthy, cfg.Cmd[0] == "ready" && !ready:
			return 1, nil
		}
		return 0, nil
	}
	set := func(p *bool, v bool) { <-mu; *p = v; mu <- struct{}{} }
	probe := func(cmd string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}},
			PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	}
	pod := h.create(newPod("probed", func(p *corev1.Pod) {
		p.Spec.Containers[0].LivenessProbe = probe("live")
		p.Spec.Containers[0].ReadinessProbe = probe("ready")
	}))
	st := h.status(pod)
	if condition(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("ready before the first probe: %v", st.Conditions)
	}
	waitCond(t, "Ready", func() bool { return condition(h.status(pod), corev1.PodReady) == corev1.ConditionTrue })
	set(&ready, false)
	waitCond(t, "not Ready", func() bool { return condition(h.status(pod), corev1.PodReady) == corev1.ConditionFalse })
	set(&ready, true)
	waitCond(t, "Ready again", func() bool { return condition(h.status(pod), corev1.PodReady) == corev1.ConditionTrue })

	set(&healthy, false)
	waitCond(t, "restart", func() bool { return h.status(pod).ContainerStatuses[0].RestartCount == 1 })
	if ev := h.eventList(); !slices.Contains(ev, "Normal Killing Container app failed liveness probe, will be restarted") ||
		!slices.Contains(ev, "Warning Unhealthy Readiness probe failed: ") {
		t.Errorf("events %q", ev)
	}
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
