package validation

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNode validates a node (cluster-scoped) on create and after every
// update: taints, capacity and allocatable values, and pod CIDRs.
func ValidateNode(n *corev1.Node) field.ErrorList {
	errs := objectMeta(&n.ObjectMeta, false, nameIsDNSSubdomain)
	// Upstream reports taints under metadata (metadata.taints[i]), kept.
	errs = append(errs, validateTaints(n.Spec.Taints, metaPath.Child("taints"))...)
	errs = append(errs, nodeResources(n)...)
	errs = append(errs, podCIDRs(n.Spec.PodCIDRs)...)
	return errs
}

// ValidateNodeUpdate validates n replacing old. Pod CIDRs and the provider
// ID may be set once; status addresses must be unique.
func ValidateNodeUpdate(n, old *corev1.Node) field.ErrorList {
	errs := metaUpdate(&n.ObjectMeta, &old.ObjectMeta)
	seen := map[corev1.NodeAddress]bool{}
	for i, a := range n.Status.Addresses {
		if seen[a] {
			errs = append(errs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		seen[a] = true
	}
	if len(old.Spec.PodCIDRs) > 0 {
		changed := len(old.Spec.PodCIDRs) != len(n.Spec.PodCIDRs)
		for i := 0; !changed && i < len(old.Spec.PodCIDRs); i++ {
			changed = old.Spec.PodCIDRs[i] != n.Spec.PodCIDRs[i]
		}
		if changed {
			errs = append(errs, field.Forbidden(specPath.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
		}
	}
	if old.Spec.ProviderID != "" && old.Spec.ProviderID != n.Spec.ProviderID {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	if n.Spec.DoNotUseExternalID != old.Spec.DoNotUseExternalID {
		errs = append(errs, field.Forbidden(specPath.Child("externalID"), "may not be updated"))
	}
	return append(errs, ValidateNode(n)...)
}

func validateTaints(taints []corev1.Taint, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.TaintEffect]map[string]bool{}
	for i, t := range taints {
		tp := p.Index(i)
		errs = append(errs, labelName(t.Key, tp.Child("key"))...)
		if msgs := utilvalidation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			errs = append(errs, field.Invalid(tp.Child("value"), t.Value, strings.Join(msgs, ";")))
		}
		errs = append(errs, taintEffect(t.Effect, false, tp.Child("effect"))...)
		if seen[t.Effect][t.Key] {
			dup := field.Duplicate(tp, t)
			dup.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, dup)
			continue
		}
		if seen[t.Effect] == nil {
			seen[t.Effect] = map[string]bool{}
		}
		seen[t.Effect][t.Key] = true
	}
	return errs
}

func nodeResources(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	// Upstream's paths are status.capacity.cpu, not status.capacity[cpu].
	for name, q := range n.Status.Capacity {
		errs = append(errs, quantity(name, q, field.NewPath("status", "capacity", string(name)))...)
	}
	for name, q := range n.Status.Allocatable {
		errs = append(errs, quantity(name, q, field.NewPath("status", "allocatable", string(name)))...)
	}
	return errs
}

func podCIDRs(cidrs []string) field.ErrorList {
	if len(cidrs) == 0 {
		return nil
	}
	p := specPath.Child("podCIDRs")
	var errs field.ErrorList
	for i, c := range cidrs {
		errs = append(errs, utilvalidation.IsValidCIDR(p.Index(i), c)...)
	}
	if len(cidrs) > 1 {
		prefixes := make([]string, len(cidrs))
		for i, c := range cidrs {
			prefixes[i], _, _ = strings.Cut(c, "/")
		}
		if !dualStack(prefixes) || len(cidrs) > 2 {
			errs = append(errs, field.Invalid(p, cidrs, "may specify no more than one CIDR for each IP family"))
		}
		seen := map[string]bool{}
		for i, c := range cidrs {
			if seen[c] {
				errs = append(errs, field.Duplicate(p.Index(i), c))
			}
			seen[c] = true
		}
	}
	return errs
}
