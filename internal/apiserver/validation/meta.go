package validation

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Name rules, by kind. A nameFunc returns what is wrong with a name; prefix
// means it is a generateName, which may end in '-'.
type nameFunc = apimachineryvalidation.ValidateNameFunc

var (
	// Most kinds: a DNS-1123 subdomain ("a lowercase RFC 1123 subdomain ...").
	nameIsDNSSubdomain nameFunc = apimachineryvalidation.NameIsDNSSubdomain
	// Namespaces: a DNS-1123 label.
	nameIsDNSLabel nameFunc = apimachineryvalidation.NameIsDNSLabel
	// Services: a DNS-1035 label (must start with a letter), because the
	// name becomes a DNS label and an environment variable prefix.
	nameIsDNS1035Label nameFunc = apimachineryvalidation.NameIsDNS1035Label
)

var metaPath = field.NewPath("metadata")

// objectMeta validates the metadata of an object of a core, apps or
// discovery kind: name (or generateName), namespace presence, labels,
// annotations, owner references and finalizer names.
func objectMeta(m *metav1.ObjectMeta, namespaced bool, nameFn nameFunc) field.ErrorList {
	errs := apimachineryvalidation.ValidateObjectMeta(m, namespaced, nameFn, metaPath)
	for i, f := range m.Finalizers {
		errs = append(errs, kubeFinalizerName(f, metaPath.Child("finalizers").Index(i))...)
	}
	return errs
}

// standardFinalizers are the finalizer names that need no domain.
var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

func kubeFinalizerName(name string, p *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !standardFinalizers[name] {
		return field.ErrorList{field.Invalid(p, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// metaUpdate checks what an update may not change in metadata. The new
// metadata's own validity (labels, annotations, ...) is checked by the
// kind's create validation, which every update runs too; the
// resourceVersion precondition is the storage layer's.
func metaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	if old.DeletionTimestamp != nil {
		errs = append(errs, apimachineryvalidation.ValidateNoNewFinalizers(m.Finalizers, old.Finalizers, metaPath.Child("finalizers"))...)
	}
	if m.Generation < old.Generation {
		errs = append(errs, field.Invalid(metaPath.Child("generation"), m.Generation, "must not be decremented"))
	}
	errs = append(errs, immutable(m.Name, old.Name, metaPath.Child("name"))...)
	errs = append(errs, immutable(m.Namespace, old.Namespace, metaPath.Child("namespace"))...)
	errs = append(errs, immutable(m.UID, old.UID, metaPath.Child("uid"))...)
	errs = append(errs, immutable(m.CreationTimestamp, old.CreationTimestamp, metaPath.Child("creationTimestamp"))...)
	errs = append(errs, immutable(m.DeletionTimestamp, old.DeletionTimestamp, metaPath.Child("deletionTimestamp"))...)
	errs = append(errs, immutable(m.DeletionGracePeriodSeconds, old.DeletionGracePeriodSeconds, metaPath.Child("deletionGracePeriodSeconds"))...)
	return errs
}

// immutable reports "field is immutable" when v differs (semantically)
// from old.
func immutable(v, old any, p *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateImmutableField(v, old, p)
}

func nonNegative(v int64, p *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateNonnegativeField(v, p)
}

// dnsLabel, dnsSubdomain and qualifiedName turn the apimachinery string
// checks into field errors.
func dnsLabel(v string, p *field.Path) field.ErrorList {
	return invalidFor(v, p, utilvalidation.IsDNS1123Label(v))
}

func dnsSubdomain(v string, p *field.Path) field.ErrorList {
	return invalidFor(v, p, utilvalidation.IsDNS1123Subdomain(v))
}

func qualifiedName(v string, p *field.Path) field.ErrorList {
	return invalidFor(v, p, utilvalidation.IsQualifiedName(v))
}

// nameAt checks a reference to another object's name with that kind's rule.
func nameAt(v string, p *field.Path, fn nameFunc) field.ErrorList {
	return invalidFor(v, p, fn(v, false))
}

func invalidFor(v any, p *field.Path, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func labels(m map[string]string, p *field.Path) field.ErrorList {
	return metav1validation.ValidateLabels(m, p)
}

func annotations(m map[string]string, p *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateAnnotations(m, p)
}

func labelSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	return metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p)
}

func labelName(v string, p *field.Path) field.ErrorList {
	return metav1validation.ValidateLabelName(v, p)
}

// oneOf reports Required for an empty value and NotSupported for one not in
// valid.
func oneOf[T ~string](v T, p *field.Path, valid ...T) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	for _, ok := range valid {
		if v == ok {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, valid)}
}

// supported is oneOf for fields where empty is itself a bad value (it
// reports NotSupported, not Required).
func supported[T ~string](v T, p *field.Path, valid ...T) field.ErrorList {
	for _, ok := range valid {
		if v == ok {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, valid)}
}
