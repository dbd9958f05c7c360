package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"kite/internal/storage"
)

// Events of both groups are one resource, stored as core/v1 Events (as
// upstream stores them): events.k8s.io/v1 is a view with other field names.
// eventsCodec converts at the storage boundary, so every path (get, list,
// watch, update) sees its own group's type.
type eventsCodec struct{ storage.Codec }

func (c eventsCodec) Encode(obj runtime.Object) ([]byte, error) {
	if e, ok := obj.(*eventsv1.Event); ok {
		return c.Codec.Encode(toCoreEvent(e))
	}
	return c.Codec.Encode(obj)
}

func (c eventsCodec) Decode(data []byte, into runtime.Object) error {
	e, ok := into.(*eventsv1.Event)
	if !ok {
		return c.Codec.Decode(data, into)
	}
	core := &corev1.Event{}
	if err := c.Codec.Decode(data, core); err != nil {
		return err
	}
	*e = *fromCoreEvent(core)
	return nil
}

func toCoreEvent(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta: e.ObjectMeta, InvolvedObject: e.Regarding, Related: e.Related,
		Reason: e.Reason, Message: e.Note, Type: e.Type, Action: e.Action, EventTime: e.EventTime,
		ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
		Source: e.DeprecatedSource, FirstTimestamp: e.DeprecatedFirstTimestamp, LastTimestamp: e.DeprecatedLastTimestamp,
		Count: e.DeprecatedCount,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	out.APIVersion, out.Kind = "v1", "Event"
	return out
}

func fromCoreEvent(e *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		ObjectMeta: e.ObjectMeta, Regarding: e.InvolvedObject, Related: e.Related,
		Reason: e.Reason, Note: e.Message, Type: e.Type, Action: e.Action, EventTime: e.EventTime,
		ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
		DeprecatedSource: e.Source, DeprecatedFirstTimestamp: e.FirstTimestamp, DeprecatedLastTimestamp: e.LastTimestamp,
		DeprecatedCount: e.Count,
	}
	if e.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	out.APIVersion, out.Kind = "events.k8s.io/v1", "Event"
	return out
}
