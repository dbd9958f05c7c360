package printers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func template(containers ...string) corev1.PodTemplateSpec {
	var t corev1.PodTemplateSpec
	for i := 0; i+1 < len(containers); i += 2 {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: containers[i], Image: containers[i+1]})
	}
	return t
}

func TestDeploymentRows(t *testing.T) {
	web := &appsv1.Deployment{
		ObjectMeta: objectMeta("web"),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template("nginx", "nginx:1.27", "log", "busybox:1.36"),
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
	}
	expr := &appsv1.Deployment{
		ObjectMeta: objectMeta("api"),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(0)),
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			Template: template("api", "example.com/api:v2"),
		},
	}
	bad := &appsv1.Deployment{
		ObjectMeta: objectMeta("bad"),
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Near"}}}},
	}

	runRowCases(t, deploymentsGR, []rowCase{
		{"two of three ready", web,
			"web | 2/3 | 3 | 2 | 10m | nginx,log | nginx:1.27,busybox:1.36 | app=web"},
		{"scaled to zero, set-based selector", expr,
			"api | 0/0 | 0 | 0 | 10m | api | example.com/api:v2 | tier in (a,b)"},
		{"unset replicas and selector", &appsv1.Deployment{ObjectMeta: objectMeta("new")},
			"new | 0/1 | 0 | 0 | 10m |  |  | "},
		{"invalid selector", bad,
			"bad | 0/1 | 0 | 0 | 10m |  |  | <invalid>"},
	})
}

func TestReplicaSetRows(t *testing.T) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: objectMeta("web-7d4b9c"),
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c"}},
			Template: template("nginx", "nginx:1.27"),
		},
		Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1},
	}
	runRowCases(t, replicaSetsGR, []rowCase{
		{"one of three ready", rs,
			"web-7d4b9c | 3 | 3 | 1 | 10m | nginx | nginx:1.27 | app=web,pod-template-hash=7d4b9c"},
		{"unset replicas and selector", &appsv1.ReplicaSet{ObjectMeta: objectMeta("bare")},
			"bare | 1 | 0 | 0 | 10m |  |  | <none>"},
	})
}
