package validation

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateDeployment validates an apps/v1 Deployment being created.
func ValidateDeployment(d *appsv1.Deployment) field.ErrorList {
	errs := objectMeta(&d.ObjectMeta, true, nameIsDNSSubdomain)
	spec := &d.Spec
	errs = append(errs, replicas(spec.Replicas)...)
	errs = append(errs, selectorAndTemplate(spec.Selector, &spec.Template, "deployment", "Deployment")...)
	errs = append(errs, validateDeploymentStrategy(&spec.Strategy, specPath.Child("strategy"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	if rhl := spec.RevisionHistoryLimit; rhl != nil {
		errs = append(errs, nonNegative(int64(*rhl), specPath.Child("revisionHistoryLimit"))...)
	}
	if pds := spec.ProgressDeadlineSeconds; pds != nil {
		p := specPath.Child("progressDeadlineSeconds")
		errs = append(errs, nonNegative(int64(*pds), p)...)
		if *pds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(p, *pds, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

// ValidateDeploymentUpdate validates d replacing old: in apps/v1 the
// selector is immutable.
func ValidateDeploymentUpdate(d, old *appsv1.Deployment) field.ErrorList {
	errs := metaUpdate(&d.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, immutable(d.Spec.Selector, old.Spec.Selector, specPath.Child("selector"))...)
	return append(errs, ValidateDeployment(d)...)
}

// ValidateReplicaSet validates an apps/v1 ReplicaSet being created.
func ValidateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	errs := objectMeta(&rs.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, replicas(rs.Spec.Replicas)...)
	errs = append(errs, nonNegative(int64(rs.Spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	// Upstream says "deployment" here too.
	return append(errs, selectorAndTemplate(rs.Spec.Selector, &rs.Spec.Template, "deployment", "ReplicaSet")...)
}

// ValidateReplicaSetUpdate validates rs replacing old: in apps/v1 the
// selector is immutable.
func ValidateReplicaSetUpdate(rs, old *appsv1.ReplicaSet) field.ErrorList {
	errs := metaUpdate(&rs.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, immutable(rs.Spec.Selector, old.Spec.Selector, specPath.Child("selector"))...)
	return append(errs, ValidateReplicaSet(rs)...)
}

// replicas may be 0, not negative; nil only before defaulting.
func replicas(n *int32) field.ErrorList {
	if n == nil {
		return nil
	}
	return nonNegative(int64(*n), specPath.Child("replicas"))
}

// selectorAndTemplate checks what Deployments and ReplicaSets share: a
// non-empty selector, and a pod template the selector matches, whose pods
// restart always.
func selectorAndTemplate(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, selectorKind, templateKind string) field.ErrorList {
	var errs field.ErrorList
	selPath := specPath.Child("selector")
	if sel == nil {
		errs = append(errs, field.Required(selPath, ""))
	} else {
		errs = append(errs, labelSelector(sel, selPath)...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for "+selectorKind))
		}
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(selPath, sel, "invalid label selector"))
	}
	tp := specPath.Child("template")
	if !selector.Empty() && !selector.Matches(k8slabels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, ValidatePodTemplateSpec(t, tp)...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(tp.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+templateKind+" is not Supported"))
	}
	return errs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			return field.ErrorList{field.Required(p.Child("rollingUpdate"), "this should be defaulted and never be nil")}
		}
		return validateRollingUpdate(s.RollingUpdate, p.Child("rollingUpdate"))
	default:
		// Upstream reports the whole strategy at its own path.
		return field.ErrorList{field.NotSupported(p, s, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)})}
	}
	return nil
}

func validateRollingUpdate(ru *appsv1.RollingUpdateDeployment, p *field.Path) field.ErrorList {
	var unavailable, surge intstr.IntOrString
	if ru.MaxUnavailable != nil {
		unavailable = *ru.MaxUnavailable
	}
	if ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	errs := intOrPercent(unavailable, p.Child("maxUnavailable"))
	errs = append(errs, intOrPercent(surge, p.Child("maxSurge"))...)
	if intOrPercentValue(unavailable) == 0 && intOrPercentValue(surge) == 0 {
		errs = append(errs, field.Invalid(p.Child("maxUnavailable"), unavailable, "may not be 0 when `maxSurge` is 0"))
	}
	if v, isPercent := percent(unavailable); isPercent && v > 100 {
		errs = append(errs, field.Invalid(p.Child("maxUnavailable"), unavailable, "must not be greater than 100%"))
	}
	return errs
}

// intOrPercent: a non-negative number or a percentage like "25%".
func intOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if v.Type == intstr.String {
		return invalidFor(v, p, utilvalidation.IsValidPercent(v.StrVal))
	}
	return nonNegative(int64(v.IntValue()), p)
}

func percent(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(utilvalidation.IsValidPercent(v.StrVal)) > 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percent(v); ok {
		return n
	}
	return v.IntValue()
}
