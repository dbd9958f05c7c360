package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kite/internal/runtime"
)

func running() corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
}
func exited(code int32) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
}
func waiting(reason string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

// kubelet's getPhase, case by case.
func TestPodPhase(t *testing.T) {
	cs := func(name string, st corev1.ContainerState, last ...corev1.ContainerState) corev1.ContainerStatus {
		s := corev1.ContainerStatus{Name: name, State: st}
		if len(last) > 0 {
			s.LastTerminationState = last[0]
		}
		return s
	}
	spec := func(policy corev1.RestartPolicy, inits ...string) *corev1.PodSpec {
		s := &corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}
		for _, n := range inits {
			s.InitContainers = append(s.InitContainers, corev1.Container{Name: n})
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		spec   *corev1.PodSpec
		init   []corev1.ContainerStatus
		status []corev1.ContainerStatus
		want   corev1.PodPhase
	}{
		{"nothing yet", spec(corev1.RestartPolicyAlways), nil, nil, corev1.PodPending},
		{"creating", spec(corev1.RestartPolicyAlways), nil, []corev1.ContainerStatus{cs("a", waiting("ContainerCreating")), cs("b", running())}, corev1.PodPending},
		{"running", spec(corev1.RestartPolicyAlways), nil, []corev1.ContainerStatus{cs("a", running()), cs("b", running())}, corev1.PodRunning},
		{"crash loop counts as stopped", spec(corev1.RestartPolicyAlways), nil,
			[]corev1.ContainerStatus{cs("a", waiting("CrashLoopBackOff"), exited(1)), cs("b", running())}, corev1.PodRunning},
		{"all done, Always", spec(corev1.RestartPolicyAlways), nil, []corev1.ContainerStatus{cs("a", exited(0)), cs("b", exited(0))}, corev1.PodRunning},
		{"all succeeded", spec(corev1.RestartPolicyOnFailure), nil, []corev1.ContainerStatus{cs("a", exited(0)), cs("b", exited(0))}, corev1.PodSucceeded},
		{"one failed, Never", spec(corev1.RestartPolicyNever), nil, []corev1.ContainerStatus{cs("a", exited(0)), cs("b", exited(2))}, corev1.PodFailed},
		{"one failed, OnFailure", spec(corev1.RestartPolicyOnFailure), nil, []corev1.ContainerStatus{cs("a", exited(0)), cs("b", exited(2))}, corev1.PodRunning},
		{"one still running", spec(corev1.RestartPolicyNever), nil, []corev1.ContainerStatus{cs("a", exited(0)), cs("b", running())}, corev1.PodRunning},
		{"init running", spec(corev1.RestartPolicyAlways, "i"), []corev1.ContainerStatus{cs("i", running())},
			[]corev1.ContainerStatus{cs("a", waiting("PodInitializing")), cs("b", waiting("PodInitializing"))}, corev1.PodPending},
		{"init failed, Never", spec(corev1.RestartPolicyNever, "i"), []corev1.ContainerStatus{cs("i", exited(1))},
			[]corev1.ContainerStatus{cs("a", waiting("PodInitializing")), cs("b", waiting("PodInitializing"))}, corev1.PodFailed},
		{"init crash-looping", spec(corev1.RestartPolicyAlways, "i"), []corev1.ContainerStatus{cs("i", waiting("CrashLoopBackOff"), exited(1))},
			[]corev1.ContainerStatus{cs("a", waiting("PodInitializing")), cs("b", waiting("PodInitializing"))}, corev1.PodPending},
	} {
		if got := podPhase(tc.spec, tc.init, tc.status); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Conditions keep their transition time while their status holds, and
// Ready waits for the readiness gates.
func TestConditions(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
		Containers:     []corev1.Container{{Name: "app"}},
		ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}}}
	inst := &runtime.ContainerStatus{ID: "c1", State: runtime.StateRunning, StartedAt: t0, Labels: map[string]string{labelAttempt: "0"}}
	in := statusInput{Pod: pod, HostIP: "10.9.0.2", PodIPs: []string{"10.244.1.5"}, SandboxReady: true, Now: t0,
		Containers: []containerView{{Spec: &pod.Spec.Containers[0], Latest: inst, Ready: true, Started: true}}}
	st := buildStatus(in)
	if c := findCondition(st.Conditions, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Errorf("Ready without the gate: %+v", c)
	}
	if c := findCondition(st.Conditions, corev1.ContainersReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("ContainersReady: %+v", c)
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionTrue})
	pod.Status = st
	in.Now = t0.Add(time.Minute)
	st = buildStatus(in)
	if c := findCondition(st.Conditions, corev1.PodReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("Ready with the gate: %+v", c)
	}
	if c := findCondition(st.Conditions, corev1.ContainersReady); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("ContainersReady moved: %+v", c)
	}
	if st.PodIP != "10.244.1.5" || st.StartTime == nil || !st.StartTime.Time.Equal(t0) || len(st.HostIPs) != 1 {
		t.Errorf("status: %+v", st)
	}
	// Finished pods stay finished.
	pod.Status.Phase = corev1.PodSucceeded
	if st := buildStatus(in); st.Phase != corev1.PodSucceeded || st.ContainerStatuses[0].Ready {
		t.Errorf("phase %s", st.Phase)
	}
}

func TestTerminatedReasons(t *testing.T) {
	for _, tc := range []struct {
		st     runtime.ContainerStatus
		reason string
		code   int32
	}{
		{runtime.ContainerStatus{ExitCode: 0}, "Completed", 0},
		{runtime.ContainerStatus{ExitCode: 2}, "Error", 2},
		{runtime.ContainerStatus{ExitCode: 137, OOMKilled: true}, "OOMKilled", 137},
		{runtime.ContainerStatus{ExitCode: -1, Message: "lost"}, "ContainerStatusUnknown", 137},
		{runtime.ContainerStatus{ExitCode: 128, Labels: map[string]string{labelStartError: "true"}}, "StartError", 128},
	} {
		got := terminated(&tc.st, nil)
		if got.Reason != tc.reason || got.ExitCode != tc.code {
			t.Errorf("%+v: %s %d", tc.st, got.Reason, got.ExitCode)
		}
	}
}
