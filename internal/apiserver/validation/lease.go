package validation

import (
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var leaseStrategies = []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}

// ValidateLease validates a coordination/v1 Lease. Leases use the generic
// metadata rules (no check of finalizer names beyond the generic one).
func ValidateLease(l *coordinationv1.Lease) field.ErrorList {
	errs := apimachineryvalidation.ValidateObjectMeta(&l.ObjectMeta, true, nameIsDNSSubdomain, metaPath)
	return append(errs, leaseSpec(&l.Spec)...)
}

// ValidateLeaseUpdate validates l replacing old.
func ValidateLeaseUpdate(l, old *coordinationv1.Lease) field.ErrorList {
	return append(metaUpdate(&l.ObjectMeta, &old.ObjectMeta), ValidateLease(l)...)
}

func leaseSpec(s *coordinationv1.LeaseSpec) field.ErrorList {
	var errs field.ErrorList
	if d := s.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := s.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if st := s.Strategy; st != nil {
		// Upstream nests the path (spec.strategy.strategy), kept.
		p := specPath.Child("strategy").Child("strategy")
		if strings.Contains(string(*st), "/") {
			errs = append(errs, qualifiedName(string(*st), p)...)
		} else {
			errs = append(errs, supported(*st, p, leaseStrategies...)...)
		}
	}
	if ph := s.PreferredHolder; ph != nil && *ph != "" && (s.Strategy == nil || *s.Strategy == "") {
		errs = append(errs, field.Forbidden(specPath.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}
