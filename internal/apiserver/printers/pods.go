package printers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// nodeLostReason is the pod status reason the node lifecycle controller sets
// on pods of a node that stopped reporting; such pods print as "Unknown"
// once they are being deleted.
const nodeLostReason = "NodeLost"

func podPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			column("Ready", "string", "Ready containers out of all containers (sidecars included)."),
			column("Status", "string", "What the pod is doing, from its phase and its containers' states."),
			column("Restarts", "string", "Container restarts, and how long ago the last one was."),
			ageColumn(),
			wide(column("IP", "string", "The pod's first IP address.")),
			wide(column("Node", "string", "The node the pod is bound to.")),
			wide(column("Nominated Node", "string", "The node the scheduler plans to preempt pods on for this pod.")),
			wide(column("Readiness Gates", "string", "Readiness gates that are true, out of all of them.")),
		},
		Cells: typed(podCells),
		Conditions: func(obj runtime.Object) []metav1.TableRowCondition {
			pod, err := as[corev1.Pod](obj)
			if err != nil {
				return nil
			}
			return podRowConditions(pod)
		},
	}
}

func podCells(pod *corev1.Pod, now time.Time) []interface{} {
	s := summarizePod(pod)
	restarts := fmt.Sprint(s.restarts)
	if s.restarts != 0 && !s.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", s.restarts, age(s.lastRestart, now))
	}
	return []interface{}{
		pod.Name,
		fmt.Sprintf("%d/%d", s.ready, s.total),
		s.status,
		restarts,
		age(pod.CreationTimestamp, now),
		orDefault(podIP(pod), none),
		orDefault(pod.Spec.NodeName, none),
		orDefault(pod.Status.NominatedNodeName, none),
		readinessGates(pod),
	}
}

// podRowConditions marks pods that have finished, as upstream does.
func podRowConditions(pod *corev1.Pod) []metav1.TableRowCondition {
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		return []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodSucceeded), Message: "All containers of the pod exited successfully."}}
	case corev1.PodFailed:
		return []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodFailed), Message: "The pod has failed."}}
	}
	return nil
}

// podSummary is what the READY, STATUS and RESTARTS columns show.
type podSummary struct {
	ready, total int
	status       string
	restarts     int
	lastRestart  metav1.Time // when a counted container last terminated
}

// summarizePod works out a pod's STATUS the way kubectl users know it.
// Starting from the phase (or the pod's reason), later steps override it:
//  1. a scheduling-gated pod is "SchedulingGated";
//  2. the first init container that has not finished names the status
//     ("Init:1/3", "Init:CrashLoopBackOff", "Init:Error", ...), and while
//     that is so, only init containers' restarts are counted;
//  3. otherwise the regular containers' states: a waiting or terminated
//     reason ("ContainerCreating", "CrashLoopBackOff", "Completed",
//     "Error", or "ExitCode:N"/"Signal:N" when there is no reason). The
//     first container in the spec wins. A pod that reads "Completed" while
//     some container still runs is "Running" (or "NotReady");
//  4. a pod being deleted is "Terminating" ("Unknown" if its node was
//     lost), unless it already finished.
func summarizePod(pod *corev1.Pod) podSummary {
	s := podSummary{total: len(pod.Spec.Containers), status: string(pod.Status.Phase)}
	if pod.Status.Reason != "" {
		s.status = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			s.status = corev1.PodReasonSchedulingGated
		}
	}

	sidecars := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(c) {
			sidecars[c.Name] = true
			s.total++
		}
	}

	// Init containers, in order, up to the first one not done.
	var sidecarRestarts int
	var sidecarLastRestart metav1.Time
	initializing := false
	for i, c := range pod.Status.InitContainerStatuses {
		s.restarts += int(c.RestartCount)
		s.lastRestart = later(s.lastRestart, lastTermination(c))
		if sidecars[c.Name] {
			sidecarRestarts += int(c.RestartCount)
			sidecarLastRestart = later(sidecarLastRestart, lastTermination(c))
		}
		if t := c.State.Terminated; t != nil && t.ExitCode == 0 {
			continue // finished successfully
		}
		if sidecars[c.Name] && c.Started != nil && *c.Started {
			if c.Ready {
				s.ready++
			}
			continue // a running sidecar does not block the next init container
		}
		initializing = true
		switch w, t := c.State.Waiting, c.State.Terminated; {
		case t != nil:
			s.status = "Init:" + terminatedReason(t)
		case w != nil && w.Reason != "" && w.Reason != "PodInitializing":
			s.status = "Init:" + w.Reason
		default:
			s.status = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		break
	}

	if !initializing || podConditionTrue(pod, corev1.PodInitialized) {
		// Past initialization only sidecars' restarts still count among
		// the init containers'.
		s.restarts, s.lastRestart = sidecarRestarts, sidecarLastRestart
		running := false
		// Backwards, so that the first container's state is the one left.
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			c := pod.Status.ContainerStatuses[i]
			s.restarts += int(c.RestartCount)
			s.lastRestart = later(s.lastRestart, lastTermination(c))
			switch w, t := c.State.Waiting, c.State.Terminated; {
			case w != nil && w.Reason != "":
				s.status = w.Reason
			case t != nil:
				s.status = terminatedReason(t)
			case c.Ready && c.State.Running != nil:
				running = true
				s.ready++
			}
		}
		if s.status == "Completed" && running {
			s.status = "NotReady"
			if podConditionTrue(pod, corev1.PodReady) {
				s.status = "Running"
			}
		}
	}

	if pod.DeletionTimestamp != nil {
		switch {
		case pod.Status.Reason == nodeLostReason:
			s.status = "Unknown"
		case pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed:
			s.status = "Terminating"
		}
	}
	return s
}

// isSidecar reports whether an init container keeps running beside the
// regular ones (restartPolicy: Always).
func isSidecar(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// terminatedReason is a terminated container's reason, or its signal or exit
// code when it has none.
func terminatedReason(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	}
	return fmt.Sprintf("ExitCode:%d", t.ExitCode)
}

// lastTermination is when the container's previous run ended, or zero.
func lastTermination(c corev1.ContainerStatus) metav1.Time {
	if t := c.LastTerminationState.Terminated; t != nil {
		return t.FinishedAt
	}
	return metav1.Time{}
}

func later(a, b metav1.Time) metav1.Time {
	if a.Before(&b) {
		return b
	}
	return a
}

func podConditionTrue(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podIP is the pod's primary IP; older writers set only status.podIP.
func podIP(pod *corev1.Pod) string {
	if len(pod.Status.PodIPs) > 0 {
		return pod.Status.PodIPs[0].IP
	}
	return pod.Status.PodIP
}

// readinessGates is "true/all" over the pod's readiness gates, or "<none>".
func readinessGates(pod *corev1.Pod) string {
	if len(pod.Spec.ReadinessGates) == 0 {
		return none
	}
	ok := 0
	for _, g := range pod.Spec.ReadinessGates {
		if podConditionTrue(pod, g.ConditionType) {
			ok++
		}
	}
	return fmt.Sprintf("%d/%d", ok, len(pod.Spec.ReadinessGates))
}
