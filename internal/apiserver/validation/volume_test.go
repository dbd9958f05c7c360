package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidateVolumes(t *testing.T) {
	tests := []struct {
		name    string
		volumes []corev1.Volume
		want    []string
	}{
		{"valid", []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		}, nil},
		{"names", []corev1.Volume{
			{Name: "", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "A", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}, []string{"Required spec.volumes[0].name", "Invalid spec.volumes[1].name", "Duplicate spec.volumes[3].name"}},
		{"no source", []corev1.Volume{{Name: "a"}}, []string{"Required spec.volumes[0]"}},
		{"two sources", []corev1.Volume{{Name: "a", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: "/x"}, EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			[]string{"Forbidden spec.volumes[0].hostPath"}},
		{"sources", []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x/../y", Type: ptrTo(corev1.HostPathType("Pipe"))}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{DefaultMode: ptrTo(int32(0o1777)),
				Items: []corev1.KeyToPath{{Key: "k", Path: "/abs"}}}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptrTo(int64(60))}}}}}},
		}, []string{
			"Invalid spec.volumes[0].hostPath.path", "NotSupported spec.volumes[0].hostPath.type",
			"Required spec.volumes[1].secret.secretName", "Invalid spec.volumes[1].secret.defaultMode",
			"Invalid spec.volumes[1].secret.items[0].path",
			"Required spec.volumes[2].persistentVolumeClaim.claimName",
			"Invalid spec.volumes[3].projected.sources[0].serviceAccountToken.expirationSeconds",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := validPod()
			pod.Spec.ServiceAccountName = "default"
			pod.Spec.Volumes = tt.volumes
			expectErrors(t, ValidatePod(pod), tt.want...)
		})
	}
}

func TestPodProjectedTokenNeedsServiceAccount(t *testing.T) {
	pod := validPod()
	pod.Spec.Volumes = []corev1.Volume{{Name: "t", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}}
	expectErrors(t, ValidatePod(pod), "Forbidden spec.volumes[0].projected.sources[0].serviceAccountToken")
}
