package printers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Container states.
var running = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}

func waiting(reason string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

func terminated(reason string, code int32) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}
}

// status is a container status; ready marks it ready.
func status(name string, state corev1.ContainerState, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: state, Ready: ready}
}

// restarted gives s n restarts, the last one ending d ago.
func restarted(s corev1.ContainerStatus, n int32, d time.Duration) corev1.ContainerStatus {
	s.RestartCount = n
	s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(d)}}
	return s
}

// testPod is pod "web" in phase with one spec container per status.
func testPod(phase corev1.PodPhase, statuses ...corev1.ContainerStatus) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: objectMeta("web"), Status: corev1.PodStatus{Phase: phase, ContainerStatuses: statuses}}
	for _, s := range statuses {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: s.Name})
	}
	if len(statuses) == 0 {
		p.Spec.Containers = []corev1.Container{{Name: "app"}}
	}
	return p
}

// withInit adds init containers: one spec container per status, plus the
// named sidecars (restartPolicy: Always) among them.
func withInit(p *corev1.Pod, statuses []corev1.ContainerStatus, sidecars ...string) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	for _, s := range statuses {
		c := corev1.Container{Name: s.Name}
		for _, sc := range sidecars {
			if sc == s.Name {
				c.RestartPolicy = &always
			}
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	p.Status.InitContainerStatuses = statuses
	return p
}

func withConditions(p *corev1.Pod, conds ...corev1.PodCondition) *corev1.Pod {
	p.Status.Conditions = append(p.Status.Conditions, conds...)
	return p
}

func cond(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s}
}

func deleting(p *corev1.Pod) *corev1.Pod {
	p.DeletionTimestamp = ptr(ago(time.Second))
	return p
}

func onNode(p *corev1.Pod) *corev1.Pod {
	p.Spec.NodeName = "node-1"
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}, {IP: "fd00::5"}}
	return p
}

func TestPodStatus(t *testing.T) {
	started := func(s corev1.ContainerStatus) corev1.ContainerStatus { s.Started = ptr(true); return s }
	gated := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}
	evicted := testPod(corev1.PodFailed)
	evicted.Status.Reason = "Evicted"
	nodeLost := deleting(testPod(corev1.PodRunning, status("app", running, true)))
	nodeLost.Status.Reason = "NodeLost"
	signalled := testPod(corev1.PodFailed, status("app", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Signal: 9, ExitCode: 137}}, false))
	created := testPod(corev1.PodPending)
	created.CreationTimestamp = metav1.Time{}

	runRowCases(t, podsGR, []rowCase{
		{"pending, not scheduled", testPod(corev1.PodPending),
			"web | 0/1 | Pending | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"scheduling gated", withConditions(testPod(corev1.PodPending), gated),
			"web | 0/1 | SchedulingGated | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"container creating", onNode(testPod(corev1.PodPending, status("app", waiting("ContainerCreating"), false))),
			"web | 0/1 | ContainerCreating | 0 | 10m | 10.244.1.5 | node-1 | <none> | <none>"},
		{"running and ready", onNode(testPod(corev1.PodRunning, status("app", running, true))),
			"web | 1/1 | Running | 0 | 10m | 10.244.1.5 | node-1 | <none> | <none>"},
		{"running, one of two ready", testPod(corev1.PodRunning, status("app", running, true), status("proxy", running, false)),
			"web | 1/2 | Running | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"restarts with last restart", testPod(corev1.PodRunning, restarted(status("app", running, true), 3, 5*time.Minute)),
			"web | 1/1 | Running | 3 (5m ago) | 10m | <none> | <none> | <none> | <none>"},
		{"restarts without a last termination", testPod(corev1.PodRunning, corev1.ContainerStatus{Name: "app", State: running, Ready: true, RestartCount: 2}),
			"web | 1/1 | Running | 2 | 10m | <none> | <none> | <none> | <none>"},
		{"restarts summed, latest time wins", testPod(corev1.PodRunning,
			restarted(status("app", running, true), 1, 8*time.Minute), restarted(status("proxy", running, true), 2, 90*time.Second)),
			"web | 2/2 | Running | 3 (90s ago) | 10m | <none> | <none> | <none> | <none>"},
		{"crash loop", testPod(corev1.PodRunning, restarted(status("app", waiting("CrashLoopBackOff"), false), 4, 30*time.Second)),
			"web | 0/1 | CrashLoopBackOff | 4 (30s ago) | 10m | <none> | <none> | <none> | <none>"},
		{"first container's state wins", testPod(corev1.PodPending, status("app", waiting("ImagePullBackOff"), false), status("proxy", waiting("ErrImagePull"), false)),
			"web | 0/2 | ImagePullBackOff | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"completed", testPod(corev1.PodSucceeded, status("app", terminated("Completed", 0), false)),
			"web | 0/1 | Completed | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"error", testPod(corev1.PodFailed, status("app", terminated("Error", 1), false)),
			"web | 0/1 | Error | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"exit code without reason", testPod(corev1.PodFailed, status("app", terminated("", 2), false)),
			"web | 0/1 | ExitCode:2 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"signal without reason", signalled,
			"web | 0/1 | Signal:9 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"completed container beside a running one, pod ready",
			withConditions(testPod(corev1.PodRunning, status("job", terminated("Completed", 0), false), status("app", running, true)), cond(corev1.PodReady, corev1.ConditionTrue)),
			"web | 1/2 | Running | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"completed container beside a running one, pod not ready",
			testPod(corev1.PodRunning, status("job", terminated("Completed", 0), false), status("app", running, true)),
			"web | 1/2 | NotReady | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"pod reason", evicted,
			"web | 0/1 | Evicted | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"terminating", deleting(testPod(corev1.PodRunning, status("app", running, true))),
			"web | 1/1 | Terminating | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"deleted after finishing stays completed", deleting(testPod(corev1.PodSucceeded, status("app", terminated("Completed", 0), false))),
			"web | 0/1 | Completed | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"deleted on a lost node", nodeLost,
			"web | 1/1 | Unknown | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"unknown creation time", created,
			"web | 0/1 | Pending | 0 | <unknown> | <none> | <none> | <none> | <none>"},

		// Init containers.
		{"first init container running",
			withInit(testPod(corev1.PodPending, status("app", waiting("PodInitializing"), false)),
				[]corev1.ContainerStatus{status("init-a", running, false), status("init-b", waiting("PodInitializing"), false)}),
			"web | 0/1 | Init:0/2 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"second init container running",
			withInit(testPod(corev1.PodPending, status("app", waiting("PodInitializing"), false)),
				[]corev1.ContainerStatus{status("init-a", terminated("Completed", 0), false), status("init-b", running, false)}),
			"web | 0/1 | Init:1/2 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"init container waiting to initialize",
			withInit(testPod(corev1.PodPending), []corev1.ContainerStatus{status("init", waiting("PodInitializing"), false)}),
			"web | 0/1 | Init:0/1 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"init container crash loop counts init restarts",
			withInit(testPod(corev1.PodPending, restarted(status("app", waiting("PodInitializing"), false), 7, time.Hour)),
				[]corev1.ContainerStatus{restarted(status("init", waiting("CrashLoopBackOff"), false), 2, 40*time.Second)}),
			"web | 0/1 | Init:CrashLoopBackOff | 2 (40s ago) | 10m | <none> | <none> | <none> | <none>"},
		{"init container failed",
			withInit(testPod(corev1.PodPending), []corev1.ContainerStatus{status("init", terminated("Error", 1), false)}),
			"web | 0/1 | Init:Error | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"init container failed without reason",
			withInit(testPod(corev1.PodPending), []corev1.ContainerStatus{status("init", terminated("", 3), false)}),
			"web | 0/1 | Init:ExitCode:3 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"init container killed by signal",
			withInit(testPod(corev1.PodPending), []corev1.ContainerStatus{status("init", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Signal: 15, ExitCode: 143}}, false)}),
			"web | 0/1 | Init:Signal:15 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"init done, app running",
			withInit(testPod(corev1.PodRunning, status("app", running, true)),
				[]corev1.ContainerStatus{restarted(status("init", terminated("Completed", 0), false), 1, time.Hour)}),
			"web | 1/1 | Running | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"terminating while initializing",
			deleting(withInit(testPod(corev1.PodPending), []corev1.ContainerStatus{status("init", running, false)})),
			"web | 0/1 | Terminating | 0 | 10m | <none> | <none> | <none> | <none>"},

		// Sidecars: init containers with restartPolicy Always count as
		// containers, and their restarts count after initialization.
		{"sidecar running beside the app",
			withInit(testPod(corev1.PodRunning, status("app", running, true)),
				[]corev1.ContainerStatus{restarted(started(status("mesh", running, true)), 1, 2*time.Minute)}, "mesh"),
			"web | 2/2 | Running | 1 (2m ago) | 10m | <none> | <none> | <none> | <none>"},
		{"sidecar started, next init container running",
			withInit(testPod(corev1.PodPending, status("app", waiting("PodInitializing"), false)),
				[]corev1.ContainerStatus{started(status("mesh", running, true)), status("init", running, false)}, "mesh"),
			"web | 1/2 | Init:1/2 | 0 | 10m | <none> | <none> | <none> | <none>"},
		{"sidecar not started yet",
			withInit(testPod(corev1.PodPending, status("app", waiting("PodInitializing"), false)),
				[]corev1.ContainerStatus{status("mesh", running, false)}, "mesh"),
			"web | 0/2 | Init:0/1 | 0 | 10m | <none> | <none> | <none> | <none>"},
		// Once the pod is Initialized, restarts are the app containers'
		// even if an init container's state still names the status.
		{"initialized pod counts app restarts",
			withConditions(withInit(testPod(corev1.PodRunning, restarted(status("app", running, true), 1, 3*time.Minute)),
				[]corev1.ContainerStatus{restarted(status("init", waiting("CrashLoopBackOff"), false), 5, time.Minute)}),
				cond(corev1.PodInitialized, corev1.ConditionTrue)),
			"web | 1/1 | Init:CrashLoopBackOff | 1 (3m ago) | 10m | <none> | <none> | <none> | <none>"},
	})
}

func TestPodWideColumns(t *testing.T) {
	p := onNode(testPod(corev1.PodRunning, status("app", running, true)))
	p.Status.NominatedNodeName = "node-2"
	p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}, {ConditionType: "example.com/dns"}}
	withConditions(p, cond("example.com/lb", corev1.ConditionTrue), cond("example.com/dns", corev1.ConditionFalse))

	legacyIP := testPod(corev1.PodRunning, status("app", running, true))
	legacyIP.Status.PodIP = "10.244.2.7" // written by an old client: podIP without podIPs

	runRowCases(t, podsGR, []rowCase{
		{"ip, node, nominated node, gates", p,
			"web | 1/1 | Running | 0 | 10m | 10.244.1.5 | node-1 | node-2 | 1/2"},
		{"podIP only", legacyIP,
			"web | 1/1 | Running | 0 | 10m | 10.244.2.7 | <none> | <none> | <none>"},
	})
}

func TestPodRowConditions(t *testing.T) {
	for _, tc := range []struct {
		phase corev1.PodPhase
		want  string // reason of the Completed condition, "" for none
	}{
		{corev1.PodRunning, ""},
		{corev1.PodSucceeded, "Succeeded"},
		{corev1.PodFailed, "Failed"},
	} {
		conds := For(podsGR).Conditions(testPod(tc.phase))
		switch {
		case tc.want == "" && len(conds) != 0:
			t.Errorf("%s: got conditions %v, want none", tc.phase, conds)
		case tc.want != "" && (len(conds) != 1 || conds[0].Type != metav1.RowCompleted || conds[0].Status != metav1.ConditionTrue || conds[0].Reason != tc.want):
			t.Errorf("%s: got conditions %v, want Completed=True reason %s", tc.phase, conds, tc.want)
		}
	}
}
