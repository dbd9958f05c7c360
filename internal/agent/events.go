package agent

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// newRecorder makes the recorder of the events the agent reports on pods
// (Pulled, Created, Started, Killing, BackOff, Unhealthy,
// FailedCreatePodSandBox, …), from "kubelet" on this node as kubectl
// describe expects. Events reach the API server once startEvents runs.
func newRecorder(node string) (record.EventBroadcaster, record.EventRecorder) {
	b := record.NewBroadcaster()
	return b, b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: node})
}

func startEvents(b record.EventBroadcaster, client kubernetes.Interface) {
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
}
