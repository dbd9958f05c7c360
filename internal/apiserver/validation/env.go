package validation

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Downward API fields an environment variable may read.
var envFieldPaths = []string{
	"metadata.name", "metadata.namespace", "metadata.uid",
	"spec.nodeName", "spec.serviceAccountName",
	"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}

// Fields a pod's downward API knows at all (in v1); others fail the
// conversion upstream runs before checking envFieldPaths.
var podFieldLabels = map[string]bool{
	"metadata.annotations": true, "metadata.labels": true, "metadata.name": true,
	"metadata.namespace": true, "metadata.uid": true, "spec.nodeName": true,
	"spec.restartPolicy": true, "spec.serviceAccountName": true, "spec.schedulerName": true,
	"status.phase": true, "status.hostIP": true, "status.hostIPs": true,
	"status.podIP": true, "status.podIPs": true, "spec.host": true,
}

var containerResourceFields = []string{
	"limits.cpu", "limits.ephemeral-storage", "limits.memory",
	"requests.cpu", "requests.ephemeral-storage", "requests.memory",
}

func validateEnv(env []corev1.EnvVar, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		ep := p.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		} else {
			// RelaxedEnvironmentVariableValidation is on by default.
			errs = append(errs, invalidFor(ev.Name, ep.Child("name"), utilvalidation.IsRelaxedEnvVarName(ev.Name))...)
		}
		errs = append(errs, validateEnvValueFrom(ev, ep.Child("valueFrom"))...)
	}
	return errs
}

func validateEnvValueFrom(ev corev1.EnvVar, p *field.Path) field.ErrorList {
	vf := ev.ValueFrom
	if vf == nil {
		return nil
	}
	var errs field.ErrorList
	n := 0
	if vf.FieldRef != nil {
		n++
		errs = append(errs, validateFieldSelector(vf.FieldRef, envFieldPaths, p.Child("fieldRef"))...)
	}
	if vf.ResourceFieldRef != nil {
		n++
		errs = append(errs, validateResourceFieldSelector(vf.ResourceFieldRef, false, p.Child("resourceFieldRef"))...)
	}
	if vf.ConfigMapKeyRef != nil {
		n++
		errs = append(errs, validateKeySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, p.Child("configMapKeyRef"))...)
	}
	if vf.SecretKeyRef != nil {
		n++
		errs = append(errs, validateKeySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, p.Child("secretKeyRef"))...)
	}
	if vf.FileKeyRef != nil {
		n++
	}
	switch {
	case n == 0:
		errs = append(errs, field.Invalid(p, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
	case ev.Value != "":
		errs = append(errs, field.Invalid(p, "", "may not be specified when `value` is not empty"))
	case n > 1:
		errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
	}
	return errs
}

// subscripted splits "metadata.labels['key']" into its path and key.
func subscripted(fieldPath string) (string, string, bool) {
	if !strings.HasSuffix(fieldPath, "']") {
		return fieldPath, "", false
	}
	base, key, ok := strings.Cut(strings.TrimSuffix(fieldPath, "']"), "['")
	if !ok || base == "" {
		return fieldPath, "", false
	}
	return base, key, true
}

func validateFieldSelector(fs *corev1.ObjectFieldSelector, allowed []string, p *field.Path) field.ErrorList {
	if fs.APIVersion == "" {
		return field.ErrorList{field.Required(p.Child("apiVersion"), "")}
	}
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(p.Child("fieldPath"), "")}
	}
	base, key, isSub := subscripted(fs.FieldPath)
	var convErr string
	switch {
	case fs.APIVersion != "v1":
		convErr = "unsupported pod version: " + fs.APIVersion
	case isSub && base != "metadata.annotations" && base != "metadata.labels":
		convErr = "field label does not support subscript: " + fs.FieldPath
	case !isSub && !podFieldLabels[fs.FieldPath]:
		convErr = "field label not supported: " + fs.FieldPath
	}
	if convErr != "" {
		return field.ErrorList{field.Invalid(p.Child("fieldPath"), fs.FieldPath, "error converting fieldPath: "+convErr)}
	}
	switch {
	case isSub && base == "metadata.annotations":
		return qualifiedName(strings.ToLower(key), p)
	case isSub:
		return qualifiedName(key, p)
	}
	if base == "spec.host" {
		base = "spec.nodeName"
	}
	for _, a := range allowed {
		if base == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p.Child("fieldPath"), base, allowed)}
}

func validateResourceFieldSelector(fs *corev1.ResourceFieldSelector, volume bool, p *field.Path) field.ErrorList {
	switch {
	case volume && fs.ContainerName == "":
		return field.ErrorList{field.Required(p.Child("containerName"), "")}
	case fs.Resource == "":
		return field.ErrorList{field.Required(p.Child("resource"), "")}
	case strings.HasPrefix(fs.Resource, "requests.hugepages-"), strings.HasPrefix(fs.Resource, "limits.hugepages-"):
		return nil
	}
	for _, r := range containerResourceFields {
		if fs.Resource == r {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p.Child("resource"), fs.Resource, containerResourceFields)}
}

func validateKeySelector(name, key string, p *field.Path) field.ErrorList {
	// An empty name fails the subdomain check, as upstream.
	errs := nameAt(name, p.Child("name"), nameIsDNSSubdomain)
	if key == "" {
		return append(errs, field.Required(p.Child("key"), ""))
	}
	return append(errs, invalidFor(key, p.Child("key"), utilvalidation.IsConfigMapKey(key))...)
}

func validateEnvFrom(froms []corev1.EnvFromSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range froms {
		ep := p.Index(i)
		if ef.Prefix != "" {
			errs = append(errs, invalidFor(ef.Prefix, ep.Child("prefix"), utilvalidation.IsRelaxedEnvVarName(ef.Prefix))...)
		}
		n := 0
		if ef.ConfigMapRef != nil {
			n++
			errs = append(errs, refName(ef.ConfigMapRef.Name, ep.Child("configMapRef", "name"))...)
		}
		if ef.SecretRef != nil {
			n++
			errs = append(errs, refName(ef.SecretRef.Name, ep.Child("secretRef", "name"))...)
		}
		// Upstream reports these on the list, not the item.
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

// refName checks a required reference to a ConfigMap or Secret.
func refName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return invalidFor(name, p, nameIsDNSSubdomain(name, true))
}
