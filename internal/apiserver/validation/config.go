package validation

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateConfigMap validates a ConfigMap: keys are config keys, no key is
// in both data and binaryData, and the values total at most 1 MiB.
func ValidateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	errs := objectMeta(&cm.ObjectMeta, true, nameIsDNSSubdomain)
	total := 0
	for k, v := range cm.Data {
		p := field.NewPath("data").Key(k)
		errs = append(errs, invalidFor(k, p, utilvalidation.IsConfigMapKey(k))...)
		if _, dup := cm.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(p, k, "duplicate of key present in binaryData"))
		}
		total += len(v)
	}
	for k, v := range cm.BinaryData {
		errs = append(errs, invalidFor(k, field.NewPath("binaryData").Key(k), utilvalidation.IsConfigMapKey(k))...)
		total += len(v)
	}
	if total > corev1.MaxSecretSize {
		// The empty path means the whole object (it renders as "[]"), as upstream.
		errs = append(errs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return errs
}

// ValidateConfigMapUpdate validates cm replacing old: an immutable
// ConfigMap keeps its data and stays immutable.
func ValidateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	errs := metaUpdate(&cm.ObjectMeta, &old.ObjectMeta)
	if old.Immutable != nil && *old.Immutable {
		errs = append(errs, immutableFlag(cm.Immutable)...)
		if !equality.Semantic.DeepEqual(cm.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
		if !equality.Semantic.DeepEqual(cm.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, ValidateConfigMap(cm)...)
}

func immutableFlag(v *bool) field.ErrorList {
	if v == nil || !*v {
		return field.ErrorList{field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set")}
	}
	return nil
}

// ValidateSecret validates a Secret: keys, a total size of at most 1 MiB,
// and the keys its type requires. stringData counts as data (the defaults
// merge it; it is folded in here too in case they have not run).
func ValidateSecret(s *corev1.Secret) field.ErrorList {
	errs := objectMeta(&s.ObjectMeta, true, nameIsDNSSubdomain)
	data := secretData(s)
	dataPath := field.NewPath("data")
	total := 0
	for k, v := range data {
		errs = append(errs, invalidFor(k, dataPath.Key(k), utilvalidation.IsConfigMapKey(k))...)
		total += len(v)
	}
	if total > corev1.MaxSecretSize {
		errs = append(errs, field.TooLong(dataPath, "", corev1.MaxSecretSize))
	}
	require := func(key string) field.ErrorList {
		if _, ok := data[key]; !ok {
			return field.ErrorList{field.Required(dataPath.Key(key), "")}
		}
		return nil
	}
	jsonAt := func(key string) field.ErrorList {
		if err := json.Unmarshal(data[key], &map[string]any{}); err != nil {
			return field.ErrorList{field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error())}
		}
		return nil
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		// The token controller fills the rest in later.
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metaPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		if e := require(corev1.DockerConfigKey); e != nil {
			errs = append(errs, e...)
		} else {
			errs = append(errs, jsonAt(corev1.DockerConfigKey)...)
		}
	case corev1.SecretTypeDockerConfigJson:
		if e := require(corev1.DockerConfigJsonKey); e != nil {
			errs = append(errs, e...)
		} else {
			errs = append(errs, jsonAt(corev1.DockerConfigJsonKey)...)
		}
	case corev1.SecretTypeBasicAuth:
		// Either may be empty, but one must be there.
		_, user := data[corev1.BasicAuthUsernameKey]
		_, pass := data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(data[corev1.SSHAuthPrivateKey]) == 0 {
			errs = append(errs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		errs = append(errs, require(corev1.TLSCertKey)...)
		errs = append(errs, require(corev1.TLSPrivateKeyKey)...)
	}
	return errs
}

func secretData(s *corev1.Secret) map[string][]byte {
	if len(s.StringData) == 0 {
		return s.Data
	}
	data := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	return data
}

// ValidateSecretUpdate validates s replacing old: the type never changes,
// and an immutable Secret keeps its data and stays immutable.
func ValidateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := metaUpdate(&s.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, immutable(s.Type, old.Type, field.NewPath("type"))...)
	if old.Immutable != nil && *old.Immutable {
		errs = append(errs, immutableFlag(s.Immutable)...)
		if !equality.Semantic.DeepEqual(secretData(s), old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, ValidateSecret(s)...)
}

// ValidateServiceAccount validates a ServiceAccount: its metadata only.
func ValidateServiceAccount(sa *corev1.ServiceAccount) field.ErrorList {
	return objectMeta(&sa.ObjectMeta, true, nameIsDNSSubdomain)
}

// ValidateServiceAccountUpdate validates sa replacing old.
func ValidateServiceAccountUpdate(sa, old *corev1.ServiceAccount) field.ErrorList {
	return append(metaUpdate(&sa.ObjectMeta, &old.ObjectMeta), ValidateServiceAccount(sa)...)
}
