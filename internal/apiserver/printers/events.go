package printers

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Events are served in two shapes, core/v1 and events.k8s.io/v1, and
// upstream prints both with the same columns. Both are read into an
// eventView first, so there is one way to print them.
func eventPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			column("Last Seen", "string", "Time since the event was last seen."),
			column("Type", "string", "Normal or Warning."),
			column("Reason", "string", "Why the event happened, in CamelCase."),
			column("Object", "string", "The object the event is about, as kind/name."),
			wide(column("Subobject", "string", "The part of the object the event is about, such as a container.")),
			wide(column("Source", "string", "The component (and host) that reported the event.")),
			column("Message", "string", "What happened, for humans."),
			wide(column("First Seen", "string", "Time since the event was first seen.")),
			wide(column("Count", "string", "How many times the event was seen.")),
			wide(metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the event object."}),
		},
		Cells: func(obj runtime.Object, now time.Time) ([]interface{}, error) {
			e, err := viewEvent(obj)
			if err != nil {
				return nil, err
			}
			return e.cells(now), nil
		},
	}
}

// eventView is the part of an Event that the table shows, in core/v1 terms.
type eventView struct {
	name                string
	eventType, reason   string
	message             string
	regarding           corev1.ObjectReference
	source              corev1.EventSource
	reportingController string
	reportingInstance   string
	firstSeen, lastSeen metav1.Time
	eventTime           metav1.MicroTime
	count               int32
	series              *eventsv1.EventSeries // core's EventSeries has the same fields
}

func viewEvent(obj runtime.Object) (eventView, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if u.GroupVersionKind().Group == eventsv1.GroupName {
			e, err := as[eventsv1.Event](obj)
			if err != nil {
				return eventView{}, err
			}
			obj = e
		} else {
			e, err := as[corev1.Event](obj)
			if err != nil {
				return eventView{}, err
			}
			obj = e
		}
	}
	switch e := obj.(type) {
	case *corev1.Event:
		v := eventView{
			name: e.Name, eventType: e.Type, reason: e.Reason, message: e.Message,
			regarding: e.InvolvedObject, source: e.Source,
			reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
			firstSeen: e.FirstTimestamp, lastSeen: e.LastTimestamp, eventTime: e.EventTime,
			count: e.Count,
		}
		if e.Series != nil {
			v.series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
		}
		return v, nil
	case *eventsv1.Event:
		// The deprecated fields are where events.k8s.io keeps core's.
		return eventView{
			name: e.Name, eventType: e.Type, reason: e.Reason, message: e.Note,
			regarding: e.Regarding, source: e.DeprecatedSource,
			reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
			firstSeen: e.DeprecatedFirstTimestamp, lastSeen: e.DeprecatedLastTimestamp, eventTime: e.EventTime,
			count: e.DeprecatedCount, series: e.Series,
		}, nil
	}
	return eventView{}, fmt.Errorf("cannot print %T as an event", obj)
}

// cells follows upstream: an event from the newer API has only eventTime
// (and a series when it recurred), an older one first/last timestamps and a
// count; a count of 0 means the event was seen once.
func (e eventView) cells(now time.Time) []interface{} {
	first := age(e.firstSeen, now)
	if e.firstSeen.IsZero() {
		first = microAge(e.eventTime, now)
	}
	last := age(e.lastSeen, now)
	if e.lastSeen.IsZero() {
		last = first
	}
	count := e.count
	if e.series != nil {
		last = microAge(e.series.LastObservedTime, now)
		count = e.series.Count
	} else if count == 0 {
		count = 1
	}

	object := strings.ToLower(e.regarding.Kind)
	if e.regarding.Name != "" {
		object += "/" + e.regarding.Name
	}

	source := orDefault(e.source.Component, e.reportingController)
	if host := orDefault(e.source.Host, e.reportingInstance); host != "" {
		source += ", " + host
	}

	return []interface{}{
		last,
		e.eventType,
		e.reason,
		object,
		e.regarding.FieldPath,
		source,
		strings.TrimSpace(e.message),
		first,
		int64(count),
		e.name,
	}
}
