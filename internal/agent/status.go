package agent

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// Pod status, computed by a pure function from what the sync observed,
// in kubelet's terms (generateAPIPodStatus, getPhase and the condition
// generators upstream).

// containerView is what the status shows of one container.
type containerView struct {
	Spec *corev1.Container
	// Latest is the newest instance, Previous the one before; nil when
	// there is none.
	Latest, Previous *runtime.ContainerStatus
	// Waiting says why the container is not running when it should be
	// (crash-loop back-off, image or configuration errors); nil means the
	// default reason (ContainerCreating, or PodInitializing).
	Waiting *corev1.ContainerStateWaiting
	// Ready and Started are the probes' verdicts on a running Latest.
	Ready, Started bool
	// TerminationMessages are the instances' termination messages, by
	// container ID.
	TerminationMessages map[string]string
}

type statusInput struct {
	Pod    *corev1.Pod
	HostIP string
	PodIPs []string
	// SandboxReady: the sandbox exists and has its network.
	SandboxReady     bool
	Init, Containers []containerView
	Now              time.Time
}

// Container status reasons kubelet uses.
const (
	reasonContainerCreating = "ContainerCreating"
	reasonPodInitializing   = "PodInitializing"
	reasonCrashLoopBackOff  = "CrashLoopBackOff"
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonCreateConfigError = "CreateContainerConfigError"
	reasonStartError        = "StartError"
)

// labelStartError marks an instance that never ran: runc could not
// create or start it (the agent keeps such instances in memory only).
const labelStartError = "kite.dev/start-error"

func metaTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	// The API keeps seconds; so must the comparison with what it holds.
	return metav1.NewTime(t.Truncate(time.Second))
}

func buildStatus(in statusInput) corev1.PodStatus {
	old := in.Pod.Status
	st := *old.DeepCopy()
	hasInit := len(in.Pod.Spec.InitContainers) > 0
	st.InitContainerStatuses = containerStatuses(in.Init, hasInit, true)
	st.ContainerStatuses = containerStatuses(in.Containers, hasInit, false)
	sort.Slice(st.ContainerStatuses, func(i, j int) bool { return st.ContainerStatuses[i].Name < st.ContainerStatuses[j].Name })
	if in.HostIP != "" {
		st.HostIP, st.HostIPs = in.HostIP, []corev1.HostIP{{IP: in.HostIP}}
	}
	if len(in.PodIPs) > 0 {
		st.PodIP, st.PodIPs = in.PodIPs[0], nil
		for _, ip := range in.PodIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	if st.StartTime == nil {
		t := metaTime(in.Now)
		st.StartTime = &t
	}
	st.Phase = podPhase(&in.Pod.Spec, st.InitContainerStatuses, st.ContainerStatuses)
	if isTerminal(old.Phase) { // a finished pod never runs again
		st.Phase = old.Phase
	}
	if isTerminal(st.Phase) {
		for i := range st.ContainerStatuses {
			st.ContainerStatuses[i].Ready = false
		}
		for i := range st.InitContainerStatuses {
			if c := podContainer(in.Pod, st.InitContainerStatuses[i].Name); c != nil && isSidecar(c) {
				st.InitContainerStatuses[i].Ready = false
			}
		}
	}
	setConditions(&st, in)
	return st
}

func isTerminal(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }

func containerStatuses(views []containerView, hasInit, isInit bool) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(views))
	for _, v := range views {
		out = append(out, containerStatus(v, hasInit, isInit))
	}
	return out
}

func containerStatus(v containerView, hasInit, isInit bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: v.Spec.Name, Image: v.Spec.Image, Started: ptr.To(false)}
	defaultReason := reasonContainerCreating
	if hasInit {
		defaultReason = reasonPodInitializing
	}
	waiting := v.Waiting
	if waiting == nil {
		waiting = &corev1.ContainerStateWaiting{Reason: defaultReason}
	}
	if v.Previous != nil {
		cs.LastTerminationState.Terminated = terminated(v.Previous, v.TerminationMessages)
	}
	c := v.Latest
	if c == nil {
		cs.State.Waiting = waiting
		return cs
	}
	cs.ContainerID = containerIDPrefix + c.ID
	cs.RestartCount = int32(attemptOf(c))
	if img := c.Labels[labelImage]; img != "" {
		cs.Image = img
	}
	cs.ImageID = c.Labels[labelImageID]
	switch c.State {
	case runtime.StateRunning:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metaTime(c.StartedAt)}
		// An init container is ready once it has succeeded; a sidecar
		// as its readiness probe says.
		cs.Ready, cs.Started = v.Ready && (!isInit || isSidecar(v.Spec)), ptr.To(v.Started)
	case runtime.StateExited:
		t := terminated(c, v.TerminationMessages)
		if v.Waiting != nil { // to be restarted
			cs.State.Waiting = v.Waiting
			cs.LastTerminationState = corev1.ContainerState{Terminated: t}
		} else {
			cs.State.Terminated = t
			cs.Ready = isInit && !isSidecar(v.Spec) && c.ExitCode == 0
		}
	case runtime.StateCreated:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerStatusUnknown", Message: c.Message}
	}
	return cs
}

// terminated is an exited instance's state.
func terminated(c *runtime.ContainerStatus, messages map[string]string) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode: int32(c.ExitCode), Reason: "Error", Message: messages[c.ID],
		StartedAt: metaTime(c.StartedAt), FinishedAt: metaTime(c.FinishedAt), ContainerID: containerIDPrefix + c.ID,
	}
	switch {
	case c.Labels[labelStartError] != "":
		t.Reason, t.Message = reasonStartError, c.Message
	case c.ExitCode < 0:
		t.Reason, t.ExitCode, t.Message = "ContainerStatusUnknown", 137, c.Message
	case c.OOMKilled:
		t.Reason = "OOMKilled"
	case c.ExitCode == 0:
		t.Reason = "Completed"
	}
	return t
}

// podPhase is kubelet's getPhase. Sidecars keep the pod Pending until
// they have started (before its containers ran), count as running while
// they run, and are ignored once terminated (they are stopped after the
// containers finish).
func podPhase(spec *corev1.PodSpec, initStatuses, statuses []corev1.ContainerStatus) corev1.PodPhase {
	pendingInit, failedInit, pendingSidecars := 0, 0, 0
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		s := findStatus(initStatuses, c.Name)
		if isSidecar(c) {
			switch {
			case s == nil:
				pendingSidecars++
				unknown++
			case s.State.Running != nil:
				if !ptr.Deref(s.Started, false) {
					pendingSidecars++
				}
				running++
			case s.State.Terminated != nil, s.LastTerminationState.Terminated != nil:
			case s.State.Waiting != nil:
				pendingSidecars++
				waiting++
			}
			continue
		}
		switch {
		case s == nil || s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if s.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			if s.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			}
		default:
			pendingInit++
		}
	}
	initialized := false
	for _, s := range statuses {
		if s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil {
			initialized = true
		}
	}
	for _, c := range spec.Containers {
		s := findStatus(statuses, c.Name)
		switch {
		case s == nil:
			unknown++
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			stopped++
		case s.State.Waiting != nil:
			waiting++
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0, pendingSidecars > 0 && !initialized, waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}

func findStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// setConditions sets the conditions the node owns, keeping the
// transition time of those whose status did not change, and every other
// condition (readiness gates' conditions, DisruptionTarget, …).
func setConditions(st *corev1.PodStatus, in statusInput) {
	now := metaTime(in.Now)
	set := func(c corev1.PodCondition) {
		for i := range st.Conditions {
			if old := &st.Conditions[i]; old.Type == c.Type {
				if old.Status == c.Status {
					c.LastTransitionTime = old.LastTransitionTime
				} else {
					c.LastTransitionTime = now
				}
				c.LastProbeTime = old.LastProbeTime
				*old = c
				return
			}
		}
		c.LastTransitionTime = now
		st.Conditions = append(st.Conditions, c)
	}
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		if ok {
			return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
		}
		return corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
	}

	set(cond(corev1.PodReadyToStartContainers, in.SandboxReady && !isTerminal(st.Phase), "", ""))

	var incomplete []string
	for i := range in.Pod.Spec.InitContainers {
		c := &in.Pod.Spec.InitContainers[i]
		s := findStatus(st.InitContainerStatuses, c.Name)
		switch {
		case s == nil:
			incomplete = append(incomplete, c.Name)
		case isSidecar(c):
			if s.State.Running == nil || !ptr.Deref(s.Started, false) {
				incomplete = append(incomplete, c.Name)
			}
		case s.State.Terminated == nil || s.State.Terminated.ExitCode != 0:
			incomplete = append(incomplete, c.Name)
		}
	}
	for _, s := range st.ContainerStatuses {
		if s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil {
			incomplete = nil // regular containers ran: initialized before
		}
	}
	initialized := cond(corev1.PodInitialized, len(incomplete) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: %s", incomplete))
	if st.Phase == corev1.PodSucceeded && len(in.Pod.Spec.InitContainers) > 0 {
		initialized = corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: "PodCompleted"}
	}
	set(initialized)

	var unready []string
	for i := range in.Pod.Spec.InitContainers {
		if c := &in.Pod.Spec.InitContainers[i]; isSidecar(c) {
			if s := findStatus(st.InitContainerStatuses, c.Name); s == nil || !s.Ready {
				unready = append(unready, c.Name)
			}
		}
	}
	for _, s := range st.ContainerStatuses {
		if !s.Ready {
			unready = append(unready, s.Name)
		}
	}
	ready := cond(corev1.ContainersReady, len(unready) == 0, "ContainersNotReady",
		fmt.Sprintf("containers with unready status: %s", unready))
	switch st.Phase {
	case corev1.PodSucceeded:
		ready = corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "PodCompleted"}
	case corev1.PodFailed:
		ready = corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "PodFailed"}
	}
	podReady := ready
	podReady.Type = corev1.PodReady
	if podReady.Status == corev1.ConditionTrue {
		podReady = readinessGates(st, in.Pod.Spec.ReadinessGates)
	}
	set(podReady)
	set(ready)
	if findCondition(st.Conditions, corev1.PodScheduled) == nil {
		set(corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	}
}

// readinessGates is Ready for a pod whose containers are ready: True only
// when every readiness gate's condition is True.
func readinessGates(st *corev1.PodStatus, gates []corev1.PodReadinessGate) corev1.PodCondition {
	for _, g := range gates {
		c := findCondition(st.Conditions, g.ConditionType)
		if c == nil {
			return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady",
				Message: fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)}
		}
		if c.Status != corev1.ConditionTrue {
			return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ReadinessGatesNotReady",
				Message: fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, c.Status)}
		}
	}
	return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
}

func findCondition(list []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range list {
		if list[i].Type == t {
			return &list[i]
		}
	}
	return nil
}
