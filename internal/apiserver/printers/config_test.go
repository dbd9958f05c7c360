package printers

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestConfigMapRows(t *testing.T) {
	runRowCases(t, configMapsGR, []rowCase{
		{"text and binary keys", &corev1.ConfigMap{ObjectMeta: objectMeta("app"),
			Data: map[string]string{"a": "1", "b": "2"}, BinaryData: map[string][]byte{"c": {0}}},
			"app | 3 | 10m"},
		{"empty", &corev1.ConfigMap{ObjectMeta: objectMeta("kube-root-ca.crt")},
			"kube-root-ca.crt | 0 | 10m"},
	})
}

func TestSecretRows(t *testing.T) {
	runRowCases(t, secretsGR, []rowCase{
		{"tls", &corev1.Secret{ObjectMeta: objectMeta("web-tls"), Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}},
			"web-tls | kubernetes.io/tls | 2 | 10m"},
		{"unset type is opaque", &corev1.Secret{ObjectMeta: objectMeta("creds"), Data: map[string][]byte{"password": nil}},
			"creds | Opaque | 1 | 10m"},
	})
}

func TestServiceAccountRows(t *testing.T) {
	runRowCases(t, serviceAccountGR, []rowCase{
		{"no secrets", &corev1.ServiceAccount{ObjectMeta: objectMeta("default")}, "default | 0 | 10m"},
		{"one secret", &corev1.ServiceAccount{ObjectMeta: objectMeta("builder"), Secrets: []corev1.ObjectReference{{Name: "builder-token"}}},
			"builder | 1 | 10m"},
	})
}

func TestLeaseRows(t *testing.T) {
	runRowCases(t, leasesGR, []rowCase{
		{"held", &coordinationv1.Lease{ObjectMeta: objectMeta("kube-scheduler"),
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("cp-1_4f8e2a")}},
			"kube-scheduler | cp-1_4f8e2a | 10m"},
		{"free", &coordinationv1.Lease{ObjectMeta: objectMeta("idle")}, "idle |  | 10m"},
	})
}
