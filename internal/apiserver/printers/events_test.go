package printers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
)

var webPod = corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", FieldPath: "spec.containers{app}"}

func TestCoreEventRows(t *testing.T) {
	classic := &corev1.Event{
		ObjectMeta:     objectMeta("web.17a3b"),
		InvolvedObject: webPod,
		Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container app\n",
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(2 * time.Minute), Count: 5,
	}
	// Written through events.k8s.io and read back as core/v1.
	modern := &corev1.Event{
		ObjectMeta:     objectMeta("web.17a3c"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web"},
		Type:           corev1.EventTypeNormal, Reason: "Scheduled", Message: "Successfully assigned default/web to node-1",
		ReportingController: "default-scheduler",
		EventTime:           microAgo(3 * time.Minute),
	}
	series := &corev1.Event{
		ObjectMeta:     objectMeta("web.17a3d"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web"},
		Type:           corev1.EventTypeWarning, Reason: "Unhealthy", Message: "Readiness probe failed",
		ReportingController: "kubelet", ReportingInstance: "node-1",
		EventTime: microAgo(20 * time.Minute),
		Series:    &corev1.EventSeries{Count: 4, LastObservedTime: microAgo(time.Minute)},
	}
	nodeEvent := &corev1.Event{
		ObjectMeta:     objectMeta("node-1.17a3e"),
		InvolvedObject: corev1.ObjectReference{Kind: "Node"},
		Type:           corev1.EventTypeNormal, Reason: "RegisteredNode",
		Source:         corev1.EventSource{Host: "node-1"},
		FirstTimestamp: ago(time.Hour),
	}

	runRowCases(t, coreEventsGR, []rowCase{
		{"first and last timestamps", classic,
			"2m | Warning | BackOff | pod/web | spec.containers{app} | kubelet, node-1 | Back-off restarting failed container app | 10m | 5 | web.17a3b"},
		{"event time only, seen once", modern,
			"3m | Normal | Scheduled | pod/web |  | default-scheduler | Successfully assigned default/web to node-1 | 3m | 1 | web.17a3c"},
		{"series", series,
			"60s | Warning | Unhealthy | pod/web |  | kubelet, node-1 | Readiness probe failed | 20m | 4 | web.17a3d"},
		{"object without name, last seen defaults to first", nodeEvent,
			"60m | Normal | RegisteredNode | node |  | , node-1 |  | 60m | 1 | node-1.17a3e"},
		{"no times at all", &corev1.Event{ObjectMeta: objectMeta("empty")},
			"<unknown> |  |  |  |  |  |  | <unknown> | 1 | empty"},
	})
}

func TestEventsAPIRows(t *testing.T) {
	pulled := &eventsv1.Event{
		ObjectMeta: objectMeta("web.17a40"),
		Regarding:  webPod,
		Type:       corev1.EventTypeNormal, Reason: "Pulled", Note: "Container image \"nginx:1.27\" already present on machine",
		ReportingController: "kubelet", ReportingInstance: "node-1",
		EventTime: microAgo(5 * time.Minute),
	}
	recurring := &eventsv1.Event{
		ObjectMeta: objectMeta("web.17a41"),
		Regarding:  corev1.ObjectReference{Kind: "Deployment", Name: "web"},
		Type:       corev1.EventTypeNormal, Reason: "ScalingReplicaSet", Note: "Scaled up replica set web-7d4b9c to 3",
		ReportingController: "deployment-controller",
		EventTime:           microAgo(30 * time.Minute),
		Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: microAgo(4 * time.Minute)},
	}
	// Written through core/v1, read back through events.k8s.io.
	legacy := &eventsv1.Event{
		ObjectMeta: objectMeta("web.17a42"),
		Regarding:  webPod,
		Type:       corev1.EventTypeWarning, Reason: "Failed", Note: "Error: ImagePullBackOff",
		DeprecatedSource:         corev1.EventSource{Component: "kubelet", Host: "node-2"},
		DeprecatedFirstTimestamp: ago(15 * time.Minute), DeprecatedLastTimestamp: ago(3 * time.Minute), DeprecatedCount: 6,
	}

	runRowCases(t, eventsGR, []rowCase{
		{"event time", pulled,
			"5m | Normal | Pulled | pod/web | spec.containers{app} | kubelet, node-1 | Container image \"nginx:1.27\" already present on machine | 5m | 1 | web.17a40"},
		{"series", recurring,
			"4m | Normal | ScalingReplicaSet | deployment/web |  | deployment-controller | Scaled up replica set web-7d4b9c to 3 | 30m | 2 | web.17a41"},
		{"deprecated fields", legacy,
			"3m | Warning | Failed | pod/web | spec.containers{app} | kubelet, node-2 | Error: ImagePullBackOff | 15m | 6 | web.17a42"},
	})

	// The core group's printer reads events.k8s.io objects too, and the
	// other way round: both resources print the same.
	if got, want := printRow(t, coreEventsGR, pulled), printRow(t, eventsGR, pulled); got != want {
		t.Errorf("core printer on events.k8s.io event:\n got %s\nwant %s", got, want)
	}
}
