package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Event field limits.
const (
	reportingInstanceLengthLimit = 128
	actionLengthLimit            = 128
	reasonLengthLimit            = 128
	noteLengthLimit              = 1024
)

// event is an Event in upstream's internal shape: both API versions are
// checked through it, and errors use its field names (involvedObject,
// message, source, ...) whichever version the client sent, as upstream's do.
type event struct {
	meta                                   *metav1.ObjectMeta
	involvedNamespace                      string
	eventTime                              metav1.MicroTime
	reportingController, reportingInstance string
	action, reason, message, typ           string
	firstTimestamp, lastTimestamp          metav1.Time
	count                                  int32
	source                                 corev1.EventSource
	seriesSet                              bool
	seriesCount                            int32
	seriesLastObserved                     metav1.MicroTime
}

func fromCoreEvent(e *corev1.Event) event {
	ev := event{
		meta: &e.ObjectMeta, involvedNamespace: e.InvolvedObject.Namespace, eventTime: e.EventTime,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		action: e.Action, reason: e.Reason, message: e.Message, typ: e.Type,
		firstTimestamp: e.FirstTimestamp, lastTimestamp: e.LastTimestamp, count: e.Count, source: e.Source,
	}
	if s := e.Series; s != nil {
		ev.seriesSet, ev.seriesCount, ev.seriesLastObserved = true, s.Count, s.LastObservedTime
	}
	return ev
}

func fromEventV1(e *eventsv1.Event) event {
	ev := event{
		meta: &e.ObjectMeta, involvedNamespace: e.Regarding.Namespace, eventTime: e.EventTime,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		action: e.Action, reason: e.Reason, message: e.Note, typ: e.Type,
		firstTimestamp: e.DeprecatedFirstTimestamp, lastTimestamp: e.DeprecatedLastTimestamp,
		count: e.DeprecatedCount, source: e.DeprecatedSource,
	}
	if s := e.Series; s != nil {
		ev.seriesSet, ev.seriesCount, ev.seriesLastObserved = true, s.Count, s.LastObservedTime
	}
	return ev
}

// ValidateEvent validates a core/v1 Event, on create and update. For
// compatibility with old clients upstream checks only the namespaces and,
// for new-style events (eventTime set), the reporting fields; in
// particular it does not check the name, so neither does this, beyond
// requiring one.
func ValidateEvent(e *corev1.Event) field.ErrorList {
	ev := fromCoreEvent(e)
	errs := legacyEvent(&ev)
	if e.Name == "" && e.GenerateName == "" {
		errs = append(errs, field.Required(metaPath.Child("name"), "name or generateName is required"))
	}
	return errs
}

// ValidateEventUpdate validates a core/v1 Event replacing old: any change
// that passes ValidateEvent is allowed.
func ValidateEventUpdate(e, old *corev1.Event) field.ErrorList {
	return append(metaUpdate(&e.ObjectMeta, &old.ObjectMeta), ValidateEvent(e)...)
}

// ValidateEventV1 validates an events.k8s.io/v1 Event being created: the
// legacy checks plus the strict ones of the new API.
func ValidateEventV1(e *eventsv1.Event) field.ErrorList {
	ev := fromEventV1(e)
	errs := legacyEvent(&ev)
	errs = append(errs, objectMeta(&e.ObjectMeta, true, nameIsDNSSubdomain)...)
	errs = append(errs, eventSeries(&ev)...)
	if ev.eventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if ev.typ != corev1.EventTypeNormal && ev.typ != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", ev.typ)))
	}
	if !ev.firstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !ev.lastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if ev.count != 0 {
		errs = append(errs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if ev.source.Component != "" || ev.source.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return errs
}

// ValidateEventV1Update validates an events.k8s.io/v1 Event replacing old:
// only the series (and metadata) may change.
func ValidateEventV1Update(e, old *eventsv1.Event) field.ErrorList {
	ev := fromEventV1(e)
	errs := legacyEvent(&ev)
	errs = append(errs, metaUpdate(&e.ObjectMeta, &old.ObjectMeta)...)
	errs = append(errs, objectMeta(&e.ObjectMeta, true, nameIsDNSSubdomain)...)
	if !equalSeries(e.Series, old.Series) {
		errs = append(errs, eventSeries(&ev)...)
	}
	for _, f := range []struct {
		name     string
		new, old any
	}{
		{"involvedObject", e.Regarding, old.Regarding},
		{"reason", e.Reason, old.Reason},
		{"message", e.Note, old.Note},
		{"source", e.DeprecatedSource, old.DeprecatedSource},
		{"firstTimestamp", e.DeprecatedFirstTimestamp, old.DeprecatedFirstTimestamp},
		{"lastTimestamp", e.DeprecatedLastTimestamp, old.DeprecatedLastTimestamp},
		{"count", e.DeprecatedCount, old.DeprecatedCount},
		{"type", e.Type, old.Type},
		{"eventTime", e.EventTime, old.EventTime},
		{"action", e.Action, old.Action},
		{"related", e.Related, old.Related},
		{"reportingController", e.ReportingController, old.ReportingController},
		{"reportingInstance", e.ReportingInstance, old.ReportingInstance},
	} {
		errs = append(errs, immutable(f.new, f.old, field.NewPath(f.name))...)
	}
	return errs
}

func equalSeries(a, b *eventsv1.EventSeries) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Count == b.Count && a.LastObservedTime.Equal(&b.LastObservedTime)
}

func eventSeries(ev *event) field.ErrorList {
	if !ev.seriesSet {
		return nil
	}
	var errs field.ErrorList
	if ev.seriesCount < 2 {
		errs = append(errs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
	}
	if ev.seriesLastObserved.IsZero() {
		errs = append(errs, field.Required(field.NewPath("series.lastObservedTime"), ""))
	}
	return errs
}

// legacyEvent: the involved object's namespace agrees with the event's,
// and new-style events (eventTime set) say who reported what.
func legacyEvent(ev *event) field.ErrorList {
	var errs field.ErrorList
	ns := ev.meta.Namespace
	nsMismatch := field.Invalid(field.NewPath("involvedObject", "namespace"), ev.involvedNamespace, "does not match event.namespace")
	if ev.eventTime.IsZero() {
		// Events about cluster-scoped objects live in "default" for old
		// clients' sake.
		if ev.involvedNamespace == "" {
			if ns != metav1.NamespaceNone && ns != metav1.NamespaceDefault {
				errs = append(errs, nsMismatch)
			}
		} else if ns != ev.involvedNamespace {
			errs = append(errs, nsMismatch)
		}
	} else {
		if ev.involvedNamespace == "" && ns != metav1.NamespaceDefault && ns != metav1.NamespaceSystem {
			errs = append(errs, nsMismatch)
		}
		if ev.reportingController == "" {
			errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
		}
		errs = append(errs, invalidFor(ev.reportingController, field.NewPath("reportingController"), utilvalidation.IsQualifiedName(ev.reportingController))...)
		errs = append(errs, requiredWithin(ev.reportingInstance, "reportingInstance", reportingInstanceLengthLimit)...)
		errs = append(errs, requiredWithin(ev.action, "action", actionLengthLimit)...)
		errs = append(errs, requiredWithin(ev.reason, "reason", reasonLengthLimit)...)
		if len(ev.message) > noteLengthLimit {
			errs = append(errs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", noteLengthLimit)))
		}
	}
	return append(errs, invalidFor(ns, field.NewPath("namespace"), utilvalidation.IsDNS1123Subdomain(ns))...)
}

func requiredWithin(v, name string, limit int) field.ErrorList {
	var errs field.ErrorList
	if v == "" {
		errs = append(errs, field.Required(field.NewPath(name), ""))
	}
	if len(v) > limit {
		errs = append(errs, field.Invalid(field.NewPath(name), "", fmt.Sprintf("can have at most %v characters", limit)))
	}
	return errs
}
