package printers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	cliprinters "k8s.io/cli-runtime/pkg/printers"
	"k8s.io/kubectl/pkg/cmd/get"
)

// kubectlPrint sends table through JSON and prints it the way `kubectl get`
// does: the response is decoded as unstructured, kubectl's TablePrinter
// turns it into a metav1.Table (decoding each row's object), and the
// cli-runtime table printer lays it out.
func kubectlPrint(t *testing.T, table *metav1.Table, opts cliprinters.PrintOptions) string {
	t.Helper()
	data, err := json.Marshal(table)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, data)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	var out bytes.Buffer
	p := &get.TablePrinter{Delegate: cliprinters.NewTablePrinter(opts)}
	if err := p.PrintObj(obj, &out); err != nil {
		t.Fatalf("print: %v", err)
	}
	return out.String()
}

func kubectlPods(t *testing.T) []runtime.Object {
	t.Helper()
	web := onNode(testPod(corev1.PodRunning, status("app", running, true)))
	web.Labels = map[string]string{"app": "web"}
	db := testPod(corev1.PodPending, restarted(status("db", waiting("CrashLoopBackOff"), false), 3, 5*time.Minute))
	db.Name, db.Namespace = "db", "data"
	db.CreationTimestamp = ago(2 * time.Hour)
	for _, p := range []*corev1.Pod{web, db} {
		p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	}
	return []runtime.Object{web, db}
}

func TestKubectlPrintsPods(t *testing.T) {
	// The header of a plain `kubectl get pods`.
	single, err := ToTable(podsGR, kubectlPods(t)[:1], IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	got := kubectlPrint(t, single, cliprinters.PrintOptions{})
	if want := "NAME   READY   STATUS    RESTARTS   AGE\nweb    1/1     Running   0          10m\n"; got != want {
		t.Errorf("kubectl output:\n%s\nwant:\n%s", got, want)
	}

	table, err := ToTable(podsGR, kubectlPods(t), IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts cliprinters.PrintOptions
		want string
	}{
		{"default", cliprinters.PrintOptions{}, `
NAME   READY   STATUS             RESTARTS     AGE
web    1/1     Running            0            10m
db     0/1     CrashLoopBackOff   3 (5m ago)   120m
`},
		{"wide", cliprinters.PrintOptions{Wide: true}, `
NAME   READY   STATUS             RESTARTS     AGE    IP           NODE     NOMINATED NODE   READINESS GATES
web    1/1     Running            0            10m    10.244.1.5   node-1   <none>           <none>
db     0/1     CrashLoopBackOff   3 (5m ago)   120m   <none>       <none>   <none>           <none>
`},
		// --all-namespaces and --show-labels read the rows' metadata.
		{"all namespaces, labels", cliprinters.PrintOptions{WithNamespace: true, ShowLabels: true}, `
NAMESPACE   NAME   READY   STATUS             RESTARTS     AGE    LABELS
default     web    1/1     Running            0            10m    app=web
data        db     0/1     CrashLoopBackOff   3 (5m ago)   120m   <none>
`},
		// The name column is found by its format.
		{"with kind", cliprinters.PrintOptions{WithKind: true, Kind: schema.GroupKind{Kind: "Pod"}}, `
NAME      READY   STATUS             RESTARTS     AGE
pod/web   1/1     Running            0            10m
pod/db    0/1     CrashLoopBackOff   3 (5m ago)   120m
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := kubectlPrint(t, table, tc.opts), strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("kubectl output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestKubectlPrintsOtherResources(t *testing.T) {
	svc := testService(corev1.ServiceTypeNodePort, "10.96.1.2", port(80, 30361, corev1.ProtocolTCP), port(443, 0, corev1.ProtocolTCP))
	node := testNode("cp-1", corev1.ConditionTrue, map[string]string{"node-role.kubernetes.io/control-plane": ""})
	node.Status.NodeInfo.KubeletVersion = "v1.37.2"
	ev := &corev1.Event{ObjectMeta: objectMeta("web.1"), InvolvedObject: webPod, Type: "Normal", Reason: "Started",
		Message: "Started container app", LastTimestamp: ago(time.Minute)}

	for _, tc := range []struct {
		gr   schema.GroupResource
		obj  runtime.Object
		want string
	}{
		{servicesGR, svc, `
NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)                AGE
web    NodePort   10.96.1.2    <none>        80:30361/TCP,443/TCP   10m
`},
		{nodesGR, node, `
NAME   STATUS   ROLES           AGE   VERSION
cp-1   Ready    control-plane   10m   v1.37.2
`},
		{coreEventsGR, ev, `
LAST SEEN   TYPE     REASON    OBJECT    MESSAGE
60s         Normal   Started   pod/web   Started container app
`},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "roles"}, &corev1.ConfigMap{ObjectMeta: objectMeta("reader")}, `
NAME     CREATED AT
reader   2026-01-01T11:50:00Z
`},
	} {
		t.Run(tc.gr.String(), func(t *testing.T) {
			table, err := ToTable(tc.gr, []runtime.Object{tc.obj}, IncludeMetadata, now)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := kubectlPrint(t, table, cliprinters.PrintOptions{}), strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("kubectl output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestTableJSONRoundTrip checks the wire shape: what ToTable builds comes
// back unchanged through JSON as kubectl decodes it, in every includeObject
// mode.
func TestTableJSONRoundTrip(t *testing.T) {
	for _, mode := range []string{IncludeNone, IncludeMetadata, IncludeObject} {
		t.Run(mode, func(t *testing.T) {
			table, err := ToTable(podsGR, kubectlPods(t), mode, now)
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(table)
			if err != nil {
				t.Fatal(err)
			}

			// As kubectl: unstructured first, then into a Table.
			obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, data)
			if err != nil {
				t.Fatal(err)
			}
			if gvk := obj.GetObjectKind().GroupVersionKind(); gvk != metav1.SchemeGroupVersion.WithKind("Table") {
				t.Fatalf("decoded kind %v", gvk)
			}
			var back metav1.Table
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.(*unstructured.Unstructured).Object, &back); err != nil {
				t.Fatal(err)
			}

			if got, want := columnString(back.ColumnDefinitions), columnString(table.ColumnDefinitions); got != want {
				t.Errorf("columns %s, want %s", got, want)
			}
			if len(back.Rows) != len(table.Rows) {
				t.Fatalf("%d rows, want %d", len(back.Rows), len(table.Rows))
			}
			for i := range back.Rows {
				got, want := back.Rows[i], table.Rows[i]
				if rowString(got.Cells) != rowString(want.Cells) {
					t.Errorf("row %d cells %s, want %s", i, rowString(got.Cells), rowString(want.Cells))
				}
				if len(got.Conditions) != len(want.Conditions) {
					t.Errorf("row %d conditions %v, want %v", i, got.Conditions, want.Conditions)
				}

				var kind string
				if len(got.Object.Raw) > 0 {
					o, err := runtime.Decode(unstructured.UnstructuredJSONScheme, got.Object.Raw)
					if err != nil {
						t.Fatalf("row %d object: %v", i, err)
					}
					kind = o.GetObjectKind().GroupVersionKind().String()
				}
				wantKind := map[string]string{
					IncludeNone:     "",
					IncludeMetadata: "meta.k8s.io/v1, Kind=PartialObjectMetadata",
					IncludeObject:   "/v1, Kind=Pod",
				}[mode]
				if kind != wantKind {
					t.Errorf("row %d object kind %q, want %q", i, kind, wantKind)
				}
			}

			// The cells are plain JSON values, as upstream sends them (a
			// pod's RESTARTS is text: "0", "3 (5m ago)").
			if !bytes.Contains(data, []byte(`"cells":["web","1/1","Running","0","10m","10.244.1.5","node-1","\u003cnone\u003e","\u003cnone\u003e"]`)) {
				t.Errorf("unexpected cell encoding in %s", data)
			}
		})
	}
}
