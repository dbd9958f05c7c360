package printers

import (
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// columnString renders column definitions as "Name:type", with ":name"
// for the name format and " (wide)" for Priority 1.
func columnString(cols []metav1.TableColumnDefinition) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.Name + ":" + c.Type
		if c.Format != "" {
			s[i] += ":" + c.Format
		}
		if c.Priority == 1 {
			s[i] += " (wide)"
		} else if c.Priority != 0 {
			s[i] += " (priority?)"
		}
	}
	return strings.Join(s, ", ")
}

// TestColumns pins every resource's columns: names, types, the name
// format, and which columns only -o wide shows. They are upstream's.
func TestColumns(t *testing.T) {
	for _, tc := range []struct {
		gr   schema.GroupResource
		want string
	}{
		{podsGR, "Name:string:name, Ready:string, Status:string, Restarts:string, Age:string, IP:string (wide), Node:string (wide), Nominated Node:string (wide), Readiness Gates:string (wide)"},
		{servicesGR, "Name:string:name, Type:string, Cluster-IP:string, External-IP:string, Port(s):string, Age:string, Selector:string (wide)"},
		{endpointsGR, "Name:string:name, Endpoints:string, Age:string"},
		{endpointSlicesGR, "Name:string:name, AddressType:string, Ports:string, Endpoints:string, Age:string"},
		{deploymentsGR, "Name:string:name, Ready:string, Up-to-date:string, Available:string, Age:string, Containers:string (wide), Images:string (wide), Selector:string (wide)"},
		{replicaSetsGR, "Name:string:name, Desired:integer, Current:integer, Ready:integer, Age:string, Containers:string (wide), Images:string (wide), Selector:string (wide)"},
		{nodesGR, "Name:string:name, Status:string, Roles:string, Age:string, Version:string, Internal-IP:string (wide), External-IP:string (wide), OS-Image:string (wide), Kernel-Version:string (wide), Container-Runtime:string (wide)"},
		{namespacesGR, "Name:string:name, Status:string, Age:string"},
		{coreEventsGR, "Last Seen:string, Type:string, Reason:string, Object:string, Subobject:string (wide), Source:string (wide), Message:string, First Seen:string (wide), Count:string (wide), Name:string:name (wide)"},
		{eventsGR, "Last Seen:string, Type:string, Reason:string, Object:string, Subobject:string (wide), Source:string (wide), Message:string, First Seen:string (wide), Count:string (wide), Name:string:name (wide)"},
		{configMapsGR, "Name:string:name, Data:string, Age:string"},
		{secretsGR, "Name:string:name, Type:string, Data:string, Age:string"},
		{serviceAccountGR, "Name:string:name, Secrets:string, Age:string"},
		{leasesGR, "Name:string:name, Holder:string, Age:string"},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "roles"}, "Name:string:name, Created At:date"},
		{schema.GroupResource{Group: "apps", Resource: "pods"}, "Name:string:name, Created At:date"}, // group matters
	} {
		p := For(tc.gr)
		if got := columnString(p.Columns); got != tc.want {
			t.Errorf("%s columns:\n got %s\nwant %s", tc.gr, got, tc.want)
		}
		for _, c := range p.Columns {
			if c.Description == "" {
				t.Errorf("%s column %q has no description", tc.gr, c.Name)
			}
		}
	}
}

// TestCellTypes checks the JSON type of the cells upstream sends as numbers
// (some in columns typed "string", as upstream does).
func TestCellTypes(t *testing.T) {
	for _, tc := range []struct {
		gr      schema.GroupResource
		obj     runtime.Object
		numbers []int // indexes of int64 cells; all others are strings
	}{
		{podsGR, testPod(corev1.PodRunning), nil},
		{deploymentsGR, &appsv1.Deployment{}, []int{2, 3}},
		{replicaSetsGR, &appsv1.ReplicaSet{}, []int{1, 2, 3}},
		{coreEventsGR, &corev1.Event{}, []int{8}},
		{configMapsGR, &corev1.ConfigMap{}, []int{1}},
		{secretsGR, &corev1.Secret{}, []int{2}},
		{serviceAccountGR, &corev1.ServiceAccount{}, []int{1}},
	} {
		cells, err := For(tc.gr).Cells(tc.obj, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.gr, err)
		}
		numbers := map[int]bool{}
		for _, i := range tc.numbers {
			numbers[i] = true
		}
		for i, c := range cells {
			switch c.(type) {
			case int64:
				if !numbers[i] {
					t.Errorf("%s cell %d: got int64 %v, want a string", tc.gr, i, c)
				}
			case string:
				if numbers[i] {
					t.Errorf("%s cell %d: got string %q, want an int64", tc.gr, i, c)
				}
			default:
				t.Errorf("%s cell %d: got %T", tc.gr, i, c)
			}
		}
	}
}

func TestDefaultPrinter(t *testing.T) {
	role := &unstructured.Unstructured{}
	role.SetAPIVersion("rbac.authorization.k8s.io/v1")
	role.SetKind("Role")
	role.SetName("reader")
	role.SetCreationTimestamp(metav1.NewTime(time.Date(2026, 1, 1, 13, 30, 0, 0, time.FixedZone("CET", 3600))))

	gr := schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "roles"}
	if got, want := printRow(t, gr, role), "reader | 2026-01-01T12:30:00Z"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := For(gr).Cells(&metav1.Status{}, now); err == nil {
		t.Error("an object without metadata printed without error")
	}
}

// TestUnstructured checks that printers read unstructured objects as they
// read typed ones.
func TestUnstructured(t *testing.T) {
	for _, tc := range []struct {
		gr  schema.GroupResource
		obj runtime.Object
	}{
		{podsGR, onNode(withInit(testPod(corev1.PodRunning, restarted(status("app", running, true), 2, time.Minute)),
			[]corev1.ContainerStatus{status("init", terminated("Completed", 0), false)}))},
		{servicesGR, testService(corev1.ServiceTypeNodePort, "10.96.1.2", port(80, 30361, corev1.ProtocolTCP))},
		{deploymentsGR, &appsv1.Deployment{ObjectMeta: objectMeta("web"), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2))}}},
		{coreEventsGR, &corev1.Event{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Event"}, ObjectMeta: objectMeta("e"),
			InvolvedObject: webPod, Count: 3, LastTimestamp: ago(time.Minute)}},
	} {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		if got, want := printRow(t, tc.gr, u), printRow(t, tc.gr, tc.obj); got != want {
			t.Errorf("%s unstructured:\n got %s\nwant %s", tc.gr, got, want)
		}
	}

	// events.k8s.io objects are told apart by their apiVersion.
	ev := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "events.k8s.io/v1", "kind": "Event",
		"metadata":  map[string]interface{}{"name": "e"},
		"regarding": map[string]interface{}{"kind": "Pod", "name": "web"},
		"note":      "hello", "eventTime": now.Add(-2 * time.Minute).Format("2006-01-02T15:04:05.000000Z07:00"),
	}}
	if got, want := printRow(t, eventsGR, ev), "2m |  |  | pod/web |  |  | hello | 2m | 1 | e"; got != want {
		t.Errorf("events.k8s.io unstructured:\n got %s\nwant %s", got, want)
	}
}

func TestWrongType(t *testing.T) {
	_, err := For(podsGR).Cells(&corev1.Service{}, now)
	if err == nil || !strings.Contains(err.Error(), "*v1.Service") {
		t.Errorf("got %v, want an error naming *v1.Service", err)
	}
	_, err = ToTable(podsGR, []runtime.Object{&corev1.Service{ObjectMeta: objectMeta("web")}}, "", now)
	if err == nil || !strings.Contains(err.Error(), "default/web") {
		t.Errorf("ToTable: got %v, want an error naming default/web", err)
	}
}

func TestToTableIncludeObject(t *testing.T) {
	a := testPod(corev1.PodRunning, status("app", running, true))
	a.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	a.Labels = map[string]string{"app": "web"}
	a.UID = "0b0c5a4e-1111-2222-3333-444455556666"
	b := testPod(corev1.PodSucceeded, status("app", terminated("Completed", 0), false))
	b.Name = "job"
	objs := []runtime.Object{a, b}

	for _, mode := range []string{"", IncludeNone, IncludeMetadata, IncludeObject} {
		t.Run("mode "+mode, func(t *testing.T) {
			table, err := ToTable(podsGR, objs, mode, now)
			if err != nil {
				t.Fatal(err)
			}
			if table.APIVersion != "meta.k8s.io/v1" || table.Kind != "Table" {
				t.Errorf("table kind %s %s", table.APIVersion, table.Kind)
			}
			if got, want := columnString(table.ColumnDefinitions), columnString(For(podsGR).Columns); got != want {
				t.Errorf("columns %s, want %s", got, want)
			}
			if len(table.Rows) != 2 {
				t.Fatalf("got %d rows, want 2", len(table.Rows))
			}
			if got := rowString(table.Rows[0].Cells); got != "web | 1/1 | Running | 0 | 10m | <none> | <none> | <none> | <none>" {
				t.Errorf("row 0: %s", got)
			}
			if len(table.Rows[0].Conditions) != 0 || len(table.Rows[1].Conditions) != 1 {
				t.Errorf("conditions: running pod %v, succeeded pod %v", table.Rows[0].Conditions, table.Rows[1].Conditions)
			}

			got := table.Rows[0].Object
			if got.Raw != nil {
				t.Errorf("row object has raw bytes")
			}
			switch mode {
			case IncludeNone:
				if got.Object != nil {
					t.Errorf("got object %T, want none", got.Object)
				}
			case IncludeObject:
				if got.Object != a {
					t.Errorf("got object %T, want the pod itself", got.Object)
				}
			default: // Metadata
				p, ok := got.Object.(*metav1.PartialObjectMetadata)
				if !ok {
					t.Fatalf("got object %T, want *PartialObjectMetadata", got.Object)
				}
				if p.APIVersion != "meta.k8s.io/v1" || p.Kind != "PartialObjectMetadata" {
					t.Errorf("partial kind %s %s", p.APIVersion, p.Kind)
				}
				if p.Name != "web" || p.Namespace != "default" || p.UID != a.UID || p.Labels["app"] != "web" || !p.CreationTimestamp.Equal(&a.CreationTimestamp) {
					t.Errorf("partial metadata %+v", p.ObjectMeta)
				}
			}
		})
	}
}

func TestToTableEdgeCases(t *testing.T) {
	table, err := ToTable(servicesGR, nil, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if table.Rows == nil || len(table.Rows) != 0 || len(table.ColumnDefinitions) != 7 {
		t.Errorf("empty table: rows %#v, %d columns", table.Rows, len(table.ColumnDefinitions))
	}

	_, err = ToTable(servicesGR, nil, "Everything", now)
	if !IsUnknownIncludeObject(err) || !errors.Is(err, ErrUnknownIncludeObject) || !strings.Contains(err.Error(), `"Everything"`) {
		t.Errorf("bad includeObject: got %v", err)
	}

	// Tables do not share column slices with each other.
	table.ColumnDefinitions[0].Name = "Changed"
	if For(servicesGR).Columns[0].Name != "Name" {
		t.Error("changing a table's columns changed the printer's")
	}
}
