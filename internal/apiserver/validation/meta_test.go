package validation

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestObjectMeta(t *testing.T) {
	tests := []struct {
		name string
		edit func(*metav1.ObjectMeta)
		want []string
	}{
		{"valid", func(*metav1.ObjectMeta) {}, nil},
		{"generateName only", func(m *metav1.ObjectMeta) { m.Name, m.GenerateName = "", "web-" }, []string{"Required metadata.name"}},
		{"no name", func(m *metav1.ObjectMeta) { m.Name = "" }, []string{"Required metadata.name"}},
		{"bad name", func(m *metav1.ObjectMeta) { m.Name = "Foo_Bar" }, []string{"Invalid metadata.name"}},
		{"bad generateName", func(m *metav1.ObjectMeta) { m.GenerateName = "Web-" }, []string{"Invalid metadata.generateName"}},
		{"no namespace", func(m *metav1.ObjectMeta) { m.Namespace = "" }, []string{"Required metadata.namespace"}},
		{"bad namespace", func(m *metav1.ObjectMeta) { m.Namespace = "a.b" }, []string{"Invalid metadata.namespace"}},
		{"bad label key", func(m *metav1.ObjectMeta) { m.Labels = map[string]string{"a b": "x"} }, []string{"Invalid metadata.labels"}},
		{"bad label value", func(m *metav1.ObjectMeta) { m.Labels = map[string]string{"app": "-x"} }, []string{"Invalid metadata.labels"}},
		{"bad annotation key", func(m *metav1.ObjectMeta) { m.Annotations = map[string]string{"/x": "y"} }, []string{"Invalid metadata.annotations"}},
		{"bad finalizer", func(m *metav1.ObjectMeta) { m.Finalizers = []string{"cleanup"} }, []string{"Invalid metadata.finalizers[0]"}},
		{"qualified finalizer", func(m *metav1.ObjectMeta) { m.Finalizers = []string{"example.com/cleanup", "kubernetes"} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := &corev1.ServiceAccount{ObjectMeta: objMeta("builder")}
			tt.edit(&sa.ObjectMeta)
			expectErrors(t, ValidateServiceAccount(sa), tt.want...)
		})
	}
}

func TestNameMessages(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: objMeta("Foo_Bar")}
	expectMessage(t, ValidateServiceAccount(sa),
		`metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)
	sa.Name = ""
	expectMessage(t, ValidateServiceAccount(sa), `metadata.name: Required value: name or generateName is required`)
}

func TestMetaUpdate(t *testing.T) {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	tests := []struct {
		name string
		edit func(m, old *metav1.ObjectMeta)
		want []string
	}{
		{"labels may change", func(m, _ *metav1.ObjectMeta) { m.Labels = map[string]string{"a": "b"} }, nil},
		{"no resourceVersion is the storage's business", func(m, _ *metav1.ObjectMeta) { m.ResourceVersion = "" }, nil},
		{"name", func(m, _ *metav1.ObjectMeta) { m.Name = "other" }, []string{"Invalid metadata.name"}},
		{"namespace", func(m, _ *metav1.ObjectMeta) { m.Namespace = "other" }, []string{"Invalid metadata.namespace"}},
		{"uid", func(m, old *metav1.ObjectMeta) { old.UID = "u1"; m.UID = "u2" }, []string{"Invalid metadata.uid"}},
		{"creationTimestamp", func(m, _ *metav1.ObjectMeta) { m.CreationTimestamp = now }, []string{"Invalid metadata.creationTimestamp"}},
		{"generation decremented", func(m, old *metav1.ObjectMeta) { old.Generation = 3; m.Generation = 2 }, []string{"Invalid metadata.generation"}},
		{"finalizer added while deleting", func(m, old *metav1.ObjectMeta) {
			old.DeletionTimestamp, m.DeletionTimestamp = &now, &now
			m.Finalizers = []string{"example.com/x"}
		}, []string{"Forbidden metadata.finalizers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := &corev1.ServiceAccount{ObjectMeta: objMeta("builder")}
			sa := old.DeepCopy()
			tt.edit(&sa.ObjectMeta, &old.ObjectMeta)
			expectErrors(t, ValidateServiceAccountUpdate(sa, old), tt.want...)
		})
	}
}
