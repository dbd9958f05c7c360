package validation

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateEvent(t *testing.T) {
	now := metav1.NewMicroTime(time.Unix(1700000000, 0))
	tests := []struct {
		name string
		edit func(*corev1.Event)
		want []string
	}{
		{"old-style", func(*corev1.Event) {}, nil},
		{"names are not checked", func(e *corev1.Event) { e.Name = "Web.17A_B" }, nil},
		{"no name", func(e *corev1.Event) { e.Name = "" }, []string{"Required metadata.name"}},
		{"namespace mismatch", func(e *corev1.Event) { e.InvolvedObject.Namespace = "other" }, []string{"Invalid involvedObject.namespace"}},
		{"cluster-scoped object in default", func(e *corev1.Event) { e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "n1"} }, nil},
		{"cluster-scoped object elsewhere", func(e *corev1.Event) {
			e.Namespace, e.InvolvedObject = "kube-system", corev1.ObjectReference{Kind: "Node", Name: "n1"}
		}, []string{"Invalid involvedObject.namespace"}},
		{"new-style without reporter", func(e *corev1.Event) { e.EventTime = now },
			[]string{"Required reportingController", "Invalid reportingController", "Invalid reportingController",
				"Required reportingInstance", "Required action"}},
		{"new-style", func(e *corev1.Event) {
			e.EventTime, e.ReportingController, e.ReportingInstance, e.Action = now, "kubelet", "node-1", "Pulling"
		}, nil},
		{"new-style long fields", func(e *corev1.Event) {
			e.EventTime, e.ReportingController, e.ReportingInstance, e.Action = now, "kubelet", "node-1", "Pulling"
			e.Message = strings.Repeat("x", 1025)
			e.Reason = strings.Repeat("x", 129)
		}, []string{"Invalid message", "Invalid reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &corev1.Event{
				ObjectMeta:     objMeta("web.17a3"),
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
				Reason:         "Pulled", Message: "pulled", Type: corev1.EventTypeNormal, Count: 1,
			}
			tt.edit(e)
			expectErrors(t, ValidateEvent(e), tt.want...)
		})
	}
}

func validEventV1() *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta: objMeta("web.17a3"),
		EventTime:  metav1.NewMicroTime(time.Unix(1700000000, 0)),
		Regarding:  corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
		Reason:     "Scheduled", Note: "assigned", Type: corev1.EventTypeNormal, Action: "Binding",
		ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-cp",
	}
}

func TestValidateEventV1(t *testing.T) {
	tests := []struct {
		name string
		edit func(*eventsv1.Event)
		want []string
	}{
		{"valid", func(*eventsv1.Event) {}, nil},
		{"name", func(e *eventsv1.Event) { e.Name = "Web" }, []string{"Invalid metadata.name"}},
		{"no event time", func(e *eventsv1.Event) { e.EventTime = metav1.MicroTime{} }, []string{"Required eventTime"}},
		{"type", func(e *eventsv1.Event) { e.Type = "Info" }, []string{"Invalid type"}},
		{"deprecated fields", func(e *eventsv1.Event) {
			e.DeprecatedCount, e.DeprecatedSource = 2, corev1.EventSource{Component: "kubelet"}
		}, []string{"Invalid count", "Invalid source"}},
		{"series", func(e *eventsv1.Event) { e.Series = &eventsv1.EventSeries{Count: 1} },
			[]string{"Invalid series.count", "Required series.lastObservedTime"}},
		{"note length uses core name", func(e *eventsv1.Event) { e.Note = strings.Repeat("x", 1025) }, []string{"Invalid message"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEventV1()
			tt.edit(e)
			expectErrors(t, ValidateEventV1(e), tt.want...)
		})
	}

	old := validEventV1()
	e := old.DeepCopy()
	e.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(time.Unix(1700000100, 0))}
	expectErrors(t, ValidateEventV1Update(e, old))
	e.Note, e.Regarding.Name = "changed", "other"
	expectErrors(t, ValidateEventV1Update(e, old), "Invalid message", "Invalid involvedObject")
}
