package validation

import (
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNamespace validates a namespace (cluster-scoped, named by a
// DNS-1123 label) and its spec.finalizers.
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	errs := objectMeta(&ns.ObjectMeta, false, nameIsDNSLabel)
	// Upstream reports these at spec.finalizers, without an index.
	p := specPath.Child("finalizers")
	for _, f := range ns.Spec.Finalizers {
		errs = append(errs, apimachineryvalidation.ValidateFinalizerName(string(f), p)...)
		errs = append(errs, kubeFinalizerName(string(f), p)...)
	}
	return errs
}

// ValidateNamespaceUpdate validates ns replacing old. Spec and status are
// the server's to preserve (they change through /finalize and /status).
func ValidateNamespaceUpdate(ns, old *corev1.Namespace) field.ErrorList {
	return append(metaUpdate(&ns.ObjectMeta, &old.ObjectMeta), ValidateNamespace(ns)...)
}
