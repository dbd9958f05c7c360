package printers

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Printer renders one resource's objects as Table rows.
type Printer struct {
	// Columns are the table's columns. Priority 0 columns are always shown;
	// Priority 1 columns only with -o wide.
	Columns []metav1.TableColumnDefinition
	// Cells returns one cell per column, in order, for obj. now is the
	// instant ages are measured from.
	Cells func(obj runtime.Object, now time.Time) ([]interface{}, error)
	// Conditions, when set, returns the row conditions for obj (pods mark
	// finished pods as Completed). Most printers leave it nil.
	Conditions func(obj runtime.Object) []metav1.TableRowCondition
}

// For returns the Printer for a resource. Resources without a printer of
// their own get the default one, as kube-apiserver's default table
// convertor: Name and Created At.
func For(gr schema.GroupResource) Printer {
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		return podPrinter()
	case schema.GroupResource{Resource: "services"}:
		return servicePrinter()
	case schema.GroupResource{Resource: "endpoints"}:
		return endpointsPrinter()
	case schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}:
		return endpointSlicePrinter()
	case schema.GroupResource{Group: "apps", Resource: "deployments"}:
		return deploymentPrinter()
	case schema.GroupResource{Group: "apps", Resource: "replicasets"}:
		return replicaSetPrinter()
	case schema.GroupResource{Resource: "nodes"}:
		return nodePrinter()
	case schema.GroupResource{Resource: "namespaces"}:
		return namespacePrinter()
	case schema.GroupResource{Resource: "events"},
		schema.GroupResource{Group: "events.k8s.io", Resource: "events"}:
		return eventPrinter()
	case schema.GroupResource{Resource: "configmaps"}:
		return configMapPrinter()
	case schema.GroupResource{Resource: "secrets"}:
		return secretPrinter()
	case schema.GroupResource{Resource: "serviceaccounts"}:
		return serviceAccountPrinter()
	case schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}:
		return leasePrinter()
	}
	return defaultPrinter()
}

// The includeObject values of metav1.TableOptions.
const (
	IncludeNone     = string(metav1.IncludeNone)
	IncludeMetadata = string(metav1.IncludeMetadata)
	IncludeObject   = string(metav1.IncludeObject)
)

// ErrUnknownIncludeObject is returned (wrapped) by ToTable for an
// includeObject value other than None, Metadata, Object or "". It is the
// client's mistake: answer it with 400 Bad Request.
var ErrUnknownIncludeObject = errors.New("unknown includeObject")

// IsUnknownIncludeObject reports whether err comes from a bad includeObject.
func IsUnknownIncludeObject(err error) bool { return errors.Is(err, ErrUnknownIncludeObject) }

// ToTable builds a meta.k8s.io/v1 Table of objs (one object, or the items of
// a list) as resource gr prints them. Each row's Object is set per
// includeObject:
//   - "None": no object;
//   - "Metadata" or "": a PartialObjectMetadata (apiVersion meta.k8s.io/v1)
//     with the object's metadata, which kubectl uses for --show-labels and
//     the NAMESPACE column;
//   - "Object": the object itself. kubectl decodes it (for --sort-by), so it
//     must carry its apiVersion and kind.
//
// The Table's list metadata (resourceVersion, continue, remainingItemCount)
// is the caller's to set. An empty objs gives a Table with no rows.
func ToTable(gr schema.GroupResource, objs []runtime.Object, includeObject string, now time.Time) (*metav1.Table, error) {
	switch includeObject {
	case IncludeNone, IncludeMetadata, IncludeObject, "":
	default:
		return nil, fmt.Errorf("%w %q: want None, Metadata or Object", ErrUnknownIncludeObject, includeObject)
	}
	p := For(gr)
	table := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: "Table"},
		ColumnDefinitions: append([]metav1.TableColumnDefinition(nil), p.Columns...),
		Rows:              make([]metav1.TableRow, 0, len(objs)),
	}
	for _, obj := range objs {
		cells, err := p.Cells(obj, now)
		if err != nil {
			return nil, fmt.Errorf("printing %s %s: %w", gr, describe(obj), err)
		}
		row := metav1.TableRow{Cells: cells}
		if p.Conditions != nil {
			row.Conditions = p.Conditions(obj)
		}
		switch includeObject {
		case IncludeObject:
			row.Object = runtime.RawExtension{Object: obj}
		case IncludeMetadata, "":
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, fmt.Errorf("metadata of %s %s: %w", gr, describe(obj), err)
			}
			partial := meta.AsPartialObjectMetadata(m)
			partial.TypeMeta = metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: "PartialObjectMetadata"}
			row.Object = runtime.RawExtension{Object: partial}
		}
		table.Rows = append(table.Rows, row)
	}
	return table, nil
}

// describe names obj in error messages: "ns/name", "name" or its Go type.
func describe(obj runtime.Object) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	if m.GetNamespace() != "" {
		return m.GetNamespace() + "/" + m.GetName()
	}
	return m.GetName()
}

// defaultPrinter is kube-apiserver's default table convertor: the name and
// the creation time as an RFC 3339 date (not an age).
func defaultPrinter() Printer {
	return Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			{Name: "Created At", Type: "date", Description: "When the object was created."},
		},
		Cells: func(obj runtime.Object, _ time.Time) ([]interface{}, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}, nil
		},
	}
}

// typed adapts a cell function over a concrete API type to Printer.Cells.
// It accepts the typed object or its unstructured form.
func typed[T any, PT interface {
	*T
	runtime.Object
}](cells func(obj PT, now time.Time) []interface{}) func(runtime.Object, time.Time) ([]interface{}, error) {
	return func(obj runtime.Object, now time.Time) ([]interface{}, error) {
		o, err := as[T, PT](obj)
		if err != nil {
			return nil, err
		}
		return cells(o, now), nil
	}
}

// as returns obj as the API type PT, converting it from unstructured form
// when needed.
func as[T any, PT interface {
	*T
	runtime.Object
}](obj runtime.Object) (PT, error) {
	switch o := obj.(type) {
	case PT:
		return o, nil
	case *unstructured.Unstructured:
		out := PT(new(T))
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
			return nil, fmt.Errorf("converting %s to %T: %w", o.GetKind(), out, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot print %T as %T", obj, PT(nil))
}

// Column helpers. Types and formats follow upstream; descriptions are ours.

func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the object, unique in its namespace."}
}

func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "Time since the object was created."}
}

func column(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// wide marks a column as shown only with -o wide.
func wide(c metav1.TableColumnDefinition) metav1.TableColumnDefinition {
	c.Priority = 1
	return c
}

// Cell values shared by several printers.
const (
	none    = "<none>"
	unknown = "<unknown>"
	unset   = "<unset>"
)

// age is how long ago t was, as kubectl shows it ("5m", "3d12h"), or
// "<unknown>" for the zero time.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is age for a MicroTime.
func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
