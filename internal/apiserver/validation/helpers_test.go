package validation

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kite/internal/apiserver/defaults"
)

// Tests compare errors as "<Type> <path>" lines, e.g.
// "Invalid spec.ports[0].port"; tests of exact messages use Error().
var shortType = map[field.ErrorType]string{
	field.ErrorTypeInvalid:      "Invalid",
	field.ErrorTypeRequired:     "Required",
	field.ErrorTypeNotSupported: "NotSupported",
	field.ErrorTypeDuplicate:    "Duplicate",
	field.ErrorTypeForbidden:    "Forbidden",
	field.ErrorTypeTooLong:      "TooLong",
	field.ErrorTypeTooMany:      "TooMany",
	field.ErrorTypeNotFound:     "NotFound",
	field.ErrorTypeInternal:     "Internal",
}

func summarize(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, shortType[e.Type]+" "+e.Field)
	}
	slices.Sort(out)
	return out
}

// expectErrors fails unless errs are exactly want (in any order).
func expectErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	slices.Sort(want)
	got := summarize(errs)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n  got  %q\n  want %q\nfull:\n%s", got, want, render(errs))
	}
}

func render(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

// expectMessage fails unless one of errs renders exactly as msg.
func expectMessage(t *testing.T, errs field.ErrorList, msg string) {
	t.Helper()
	for _, e := range errs {
		if e.Error() == msg {
			return
		}
	}
	t.Errorf("no error %q in:\n%s", msg, render(errs))
}

// Fixtures: minimal valid objects, defaulted as the server would.

func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"}
}

func validPod() *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: objMeta("web"),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	defaults.Pod(pod)
	return pod
}

func validService() *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: objMeta("web"),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	defaults.Service(svc)
	return svc
}

func validTemplate() corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	defaults.PodSpec(&t.Spec)
	return t
}

func validDeployment() *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: objMeta("web"),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: validTemplate(),
		},
	}
	defaults.Deployment(d)
	return d
}

func validReplicaSet() *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: objMeta("web-5d8f"),
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: validTemplate(),
		},
	}
	defaults.ReplicaSet(rs)
	return rs
}

func ptrTo[T any](v T) *T { return &v }
