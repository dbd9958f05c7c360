package defaults

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestDeployment(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}}}
	Deployment(d)
	quarter := intstr.FromString("25%")
	want := appsv1.DeploymentSpec{
		Replicas: ptrTo(int32(1)),
		Strategy: appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &quarter, MaxSurge: &quarter},
		},
		RevisionHistoryLimit:    ptrTo(int32(10)),
		ProgressDeadlineSeconds: ptrTo(int32(600)),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{defaultedContainer("c", "nginx", corev1.PullAlways)},
			RestartPolicy:                 corev1.RestartPolicyAlways,
			DNSPolicy:                     corev1.DNSClusterFirst,
			TerminationGracePeriodSeconds: ptrTo(int64(30)),
			SchedulerName:                 "default-scheduler",
			SecurityContext:               &corev1.PodSecurityContext{},
		}},
	}
	if diff := cmp.Diff(want, d.Spec); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDeploymentRecreateKeepsNoRollingUpdate(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: ptrTo(int32(0)),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
	}}
	Deployment(d)
	if d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("Recreate got rollingUpdate %+v", d.Spec.Strategy.RollingUpdate)
	}
	if *d.Spec.Replicas != 0 {
		t.Errorf("replicas = %d, want the explicit 0", *d.Spec.Replicas)
	}
}

func TestReplicaSet(t *testing.T) {
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
	}}}
	ReplicaSet(rs)
	if *rs.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *rs.Spec.Replicas)
	}
	if rs.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("template not defaulted: %+v", rs.Spec.Template.Spec)
	}
}
