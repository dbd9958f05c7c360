package validation

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidateDeployment(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.Deployment)
		want []string
	}{
		{"valid", func(*appsv1.Deployment) {}, nil},
		{"zero replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo(int32(0)) }, nil},
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo(int32(-1)) }, []string{"Invalid spec.replicas"}},
		{"no selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil },
			// A missing selector matches nothing, so not the template either.
			[]string{"Required spec.selector", "Invalid spec.template.metadata.labels"}},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, []string{"Invalid spec.selector"}},
		{"bad selector", func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
		}, []string{"Invalid spec.selector.matchExpressions[0].operator", "Invalid spec.selector"}},
		{"selector does not match", func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "other"} },
			[]string{"Invalid spec.template.metadata.labels"}},
		{"template labels", func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["bad key!"] = "x"
		}, []string{"Invalid spec.template.labels"}},
		{"template restart policy", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure },
			[]string{"NotSupported spec.template.spec.restartPolicy"}},
		{"template deadline", func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptrTo(int64(10)) },
			[]string{"Forbidden spec.template.spec.activeDeadlineSeconds"}},
		{"template pod spec", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers = nil },
			[]string{"Required spec.template.spec.containers"}},
		{"template image whitespace is tolerated", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = " " }, nil},
		{"template host port 0 under hostNetwork", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.HostNetwork = true
			d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "TCP"}}
		}, nil},
		{"strategy type", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }, []string{"NotSupported spec.strategy"}},
		{"recreate with rolling update", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType },
			[]string{"Forbidden spec.strategy.rollingUpdate"}},
		{"rolling update values", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("150%"))
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("lots"))
		}, []string{"Invalid spec.strategy.rollingUpdate.maxUnavailable", "Invalid spec.strategy.rollingUpdate.maxSurge"}},
		{"both zero", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("0%"))
		}, []string{"Invalid spec.strategy.rollingUpdate.maxUnavailable"}},
		{"progress deadline", func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 600 },
			[]string{"Invalid spec.progressDeadlineSeconds"}},
		{"revision history", func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptrTo(int32(-1)) },
			[]string{"Invalid spec.revisionHistoryLimit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDeployment()
			tt.edit(d)
			expectErrors(t, ValidateDeployment(d), tt.want...)
		})
	}
}

func TestSelectorMismatchMessage(t *testing.T) {
	d := validDeployment()
	d.Spec.Template.Labels = map[string]string{"app": "other"}
	expectMessage(t, ValidateDeployment(d),
		"spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`")
}

func TestValidateDeploymentUpdate(t *testing.T) {
	old := validDeployment()
	d := old.DeepCopy()
	d.Spec.Replicas = ptrTo(int32(5))
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	expectErrors(t, ValidateDeploymentUpdate(d, old))

	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
	d.Spec.Template.Labels["tier"] = "front"
	expectErrors(t, ValidateDeploymentUpdate(d, old), "Invalid spec.selector")
}

func TestValidateReplicaSet(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.ReplicaSet)
		want []string
	}{
		{"valid", func(*appsv1.ReplicaSet) {}, nil},
		{"negative", func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas, rs.Spec.MinReadySeconds = ptrTo(int32(-2)), -1 },
			[]string{"Invalid spec.replicas", "Invalid spec.minReadySeconds"}},
		{"selector mismatch", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = nil },
			[]string{"Invalid spec.template.metadata.labels"}},
		{"restart policy", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			[]string{"NotSupported spec.template.spec.restartPolicy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := validReplicaSet()
			tt.edit(rs)
			expectErrors(t, ValidateReplicaSet(rs), tt.want...)
		})
	}

	old := validReplicaSet()
	rs := old.DeepCopy()
	rs.Spec.Selector.MatchLabels["pod-template-hash"] = "5d8f"
	rs.Spec.Template.Labels["pod-template-hash"] = "5d8f"
	expectErrors(t, ValidateReplicaSetUpdate(rs, old), "Invalid spec.selector")
}
