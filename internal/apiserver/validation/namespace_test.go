package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateNamespace(t *testing.T) {
	tests := []struct {
		name string
		ns   corev1.Namespace
		want []string
	}{
		{"valid", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, nil},
		{"label, not subdomain", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team.a"}}, []string{"Invalid metadata.name"}},
		{"cluster-scoped", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b"}}, []string{"Forbidden metadata.namespace"}},
		{"spec finalizers", corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"},
			Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes", "cleanup", "bad name/x"}}},
			[]string{"Invalid spec.finalizers", "Invalid spec.finalizers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, ValidateNamespace(&tt.ns), tt.want...)
		})
	}

	old := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", ResourceVersion: "1"}}
	ns := old.DeepCopy()
	ns.Name = "team-b"
	expectErrors(t, ValidateNamespaceUpdate(ns, old), "Invalid metadata.name")
}
