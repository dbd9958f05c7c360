package printers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Test conventions: every test measures ages from now; ago(d) is a time d
// before it. Pod IPs are from 10.244.0.0/16, service IPs from 10.96.0.0/16,
// node IPs from 192.168.0.0/24, external addresses from 203.0.113.0/24
// (TEST-NET-3).
var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func microAgo(d time.Duration) metav1.MicroTime { return metav1.NewMicroTime(now.Add(-d)) }

// objectMeta is the metadata of a test object created ten minutes ago.
func objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(10 * time.Minute)}
}

func ptr[T any](v T) *T { return &v }

// rowString renders cells as kubectl would show them, joined by " | ", so
// that expected rows read like the output of `kubectl get -o wide`.
func rowString(cells []interface{}) string {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " | ")
}

// printRow prints obj as resource gr and checks that the row has one cell
// per column.
func printRow(t *testing.T, gr schema.GroupResource, obj runtime.Object) string {
	t.Helper()
	p := For(gr)
	cells, err := p.Cells(obj, now)
	if err != nil {
		t.Fatalf("Cells: %v", err)
	}
	if len(cells) != len(p.Columns) {
		t.Fatalf("got %d cells for %d columns: %v", len(cells), len(p.Columns), cells)
	}
	return rowString(cells)
}

// rowCase is one object and the row it should print as.
type rowCase struct {
	name string
	obj  runtime.Object
	want string
}

func runRowCases(t *testing.T, gr schema.GroupResource, cases []rowCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := printRow(t, gr, tc.obj); got != tc.want {
				t.Errorf("row:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

var (
	podsGR           = schema.GroupResource{Resource: "pods"}
	servicesGR       = schema.GroupResource{Resource: "services"}
	endpointsGR      = schema.GroupResource{Resource: "endpoints"}
	endpointSlicesGR = schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
	deploymentsGR    = schema.GroupResource{Group: "apps", Resource: "deployments"}
	replicaSetsGR    = schema.GroupResource{Group: "apps", Resource: "replicasets"}
	nodesGR          = schema.GroupResource{Resource: "nodes"}
	namespacesGR     = schema.GroupResource{Resource: "namespaces"}
	coreEventsGR     = schema.GroupResource{Resource: "events"}
	eventsGR         = schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
	configMapsGR     = schema.GroupResource{Resource: "configmaps"}
	secretsGR        = schema.GroupResource{Resource: "secrets"}
	serviceAccountGR = schema.GroupResource{Resource: "serviceaccounts"}
	leasesGR         = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
)
