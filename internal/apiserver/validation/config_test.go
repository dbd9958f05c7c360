package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidateConfigMap(t *testing.T) {
	tests := []struct {
		name string
		cm   corev1.ConfigMap
		want []string
	}{
		{"valid", corev1.ConfigMap{Data: map[string]string{"app.conf": "x", "KEY_1": "y"}, BinaryData: map[string][]byte{"logo.png": {1}}}, nil},
		{"keys", corev1.ConfigMap{Data: map[string]string{"a/b": "x", "..": "y"}, BinaryData: map[string][]byte{"bad key": nil}},
			[]string{"Invalid data[a/b]", "Invalid data[..]", "Invalid binaryData[bad key]"}},
		{"key in both", corev1.ConfigMap{Data: map[string]string{"k": "x"}, BinaryData: map[string][]byte{"k": {1}}}, []string{"Invalid data[k]"}},
		{"too big", corev1.ConfigMap{Data: map[string]string{"a": strings.Repeat("x", 1<<20), "b": "x"}}, []string{"TooLong []"}}, // upstream's empty path renders as []
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cm.ObjectMeta = objMeta("cfg")
			expectErrors(t, ValidateConfigMap(&tt.cm), tt.want...)
		})
	}
}

func TestValidateConfigMapUpdate(t *testing.T) {
	old := &corev1.ConfigMap{ObjectMeta: objMeta("cfg"), Data: map[string]string{"a": "1"}}
	cm := old.DeepCopy()
	cm.Data["a"] = "2"
	cm.Immutable = ptrTo(true)
	expectErrors(t, ValidateConfigMapUpdate(cm, old))

	old = cm.DeepCopy()
	cm.Data["a"] = "3"
	cm.Immutable = nil
	expectErrors(t, ValidateConfigMapUpdate(cm, old), "Forbidden immutable", "Forbidden data")
}

func TestValidateSecret(t *testing.T) {
	tests := []struct {
		name string
		s    corev1.Secret
		want []string
	}{
		{"opaque", corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("x")}}, nil},
		{"keys, stringData included", corev1.Secret{Type: corev1.SecretTypeOpaque, StringData: map[string]string{"a b": "x"}},
			[]string{"Invalid data[a b]"}},
		{"too big", corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": make([]byte, 1<<20+1)}}, []string{"TooLong data"}},
		{"tls", corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil}}, []string{"Required data[tls.key]"}},
		{"service account token", corev1.Secret{Type: corev1.SecretTypeServiceAccountToken},
			[]string{"Required metadata.annotations[kubernetes.io/service-account.name]"}},
		{"docker config json", corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": []byte("{")}},
			[]string{"Invalid data[.dockerconfigjson]"}},
		{"basic auth", corev1.Secret{Type: corev1.SecretTypeBasicAuth},
			[]string{"Required data[username]", "Required data[password]"}},
		{"custom type", corev1.Secret{Type: "example.com/thing"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.ObjectMeta = objMeta("creds")
			expectErrors(t, ValidateSecret(&tt.s), tt.want...)
		})
	}
}

func TestValidateSecretUpdate(t *testing.T) {
	old := &corev1.Secret{ObjectMeta: objMeta("creds"), Type: corev1.SecretTypeOpaque, Immutable: ptrTo(true),
		Data: map[string][]byte{"a": []byte("1")}}
	s := old.DeepCopy()
	s.Type = corev1.SecretTypeBasicAuth
	s.Data["username"] = []byte("u")
	expectErrors(t, ValidateSecretUpdate(s, old), "Invalid type", "Forbidden data")
}
