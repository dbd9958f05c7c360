package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource names without a domain that upstream knows (quota names
// included), and the subset a container may ask for.
var (
	standardResources = map[corev1.ResourceName]bool{
		"cpu": true, "memory": true, "ephemeral-storage": true, "storage": true,
		"requests.cpu": true, "requests.memory": true, "requests.ephemeral-storage": true, "requests.storage": true,
		"limits.cpu": true, "limits.memory": true, "limits.ephemeral-storage": true,
		"pods": true, "services": true, "replicationcontrollers": true, "resourcequotas": true,
		"secrets": true, "configmaps": true, "persistentvolumeclaims": true,
		"services.nodeports": true, "services.loadbalancers": true,
	}
	containerResources = map[corev1.ResourceName]bool{"cpu": true, "memory": true, "ephemeral-storage": true}
)

const hugePagesPrefix = corev1.ResourceHugePagesPrefix

func isHugePages(n corev1.ResourceName) bool { return strings.HasPrefix(string(n), hugePagesPrefix) }

// isNative: no domain, or a kubernetes.io domain.
func isNative(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), corev1.ResourceDefaultNamespacePrefix)
}

// isExtended: a device-plugin style name (example.com/gpu).
func isExtended(n corev1.ResourceName) bool {
	if isNative(n) || strings.HasPrefix(string(n), corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(utilvalidation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+string(n))) == 0
}

// overcommitAllowed: requests may be below limits. Not for huge pages and
// extended resources, whose request must equal the limit.
func overcommitAllowed(n corev1.ResourceName) bool { return isNative(n) && !isHugePages(n) }

func validateContainerResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := invalidFor(n, p, utilvalidation.IsQualifiedName(string(n)))
	if len(errs) > 0 {
		return errs
	}
	if !strings.Contains(string(n), "/") {
		if !standardResources[n] && !isHugePages(n) {
			errs = append(errs, field.Invalid(p, n, "must be a standard resource type or fully qualified"))
		}
		if !containerResources[n] && !isHugePages(n) {
			errs = append(errs, field.Invalid(p, n, "must be a standard resource for containers"))
		}
	} else if !isNative(n) && !isExtended(n) {
		errs = append(errs, field.Invalid(p, n, "doesn't follow extended resource name standard"))
	}
	return errs
}

// quantity checks a resource value: not negative, and whole for extended
// resources.
func quantity(n corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), "must be greater than or equal to 0"))
	}
	if isExtended(n) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(p, q, "must be an integer"))
	}
	return errs
}

// hugePagesValue requires a multiple of the page size in the name
// (hugepages-2Mi).
func hugePagesValue(n corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	size, err := resource.ParseQuantity(strings.TrimPrefix(string(n), hugePagesPrefix))
	if err != nil || size.Value() <= 0 || q.Value()%size.Value() != 0 {
		return field.ErrorList{field.Invalid(p, q.String(), fmt.Sprintf("%s is not positive integer multiple of %s", q.String(), n))}
	}
	return nil
}

// validateContainerResources checks names and values of limits and
// requests, and that a request does not exceed its limit.
func validateContainerResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	return validateResourceRequirements(r, validateContainerResourceName, p)
}

func validateResourceRequirements(r *corev1.ResourceRequirements, nameFn func(corev1.ResourceName, *field.Path) field.ErrorList, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := p.Child("limits"), p.Child("requests")
	cpuOrMemory, hugePages := false, false
	for n, q := range r.Limits {
		qp := limPath.Key(string(n))
		errs = append(errs, nameFn(n, qp)...)
		errs = append(errs, quantity(n, q, qp)...)
		if isHugePages(n) {
			hugePages = true
			errs = append(errs, hugePagesValue(n, q, qp)...)
		}
		cpuOrMemory = cpuOrMemory || n == corev1.ResourceCPU || n == corev1.ResourceMemory
	}
	for n, q := range r.Requests {
		qp := reqPath.Key(string(n))
		errs = append(errs, nameFn(n, qp)...)
		errs = append(errs, quantity(n, q, qp)...)
		// Upstream reports these two on requests, not requests[name].
		if lim, ok := r.Limits[n]; ok {
			if q.Cmp(lim) != 0 && !overcommitAllowed(n) {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", n, lim.String())))
			} else if q.Cmp(lim) > 0 {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", n, lim.String())))
			}
		} else if !overcommitAllowed(n) {
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		if isHugePages(n) {
			hugePages = true
			errs = append(errs, hugePagesValue(n, q, qp)...)
		}
		cpuOrMemory = cpuOrMemory || n == corev1.ResourceCPU || n == corev1.ResourceMemory
	}
	if hugePages && !cpuOrMemory {
		errs = append(errs, field.Forbidden(p, "HugePages require cpu or memory"))
	}
	return errs
}

// validatePodResources checks pod-level resources (spec.resources): only
// cpu, memory and huge pages may be set there.
func validatePodResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.Claims != nil {
		errs = append(errs, field.Forbidden(p.Child("claims"), "claims cannot be set for Resources at pod-level"))
	}
	podName := func(n corev1.ResourceName, p *field.Path) field.ErrorList {
		if errs := invalidFor(n, p, utilvalidation.IsQualifiedName(string(n))); len(errs) > 0 {
			return errs
		}
		if n == corev1.ResourceCPU || n == corev1.ResourceMemory || isHugePages(n) {
			return nil
		}
		return field.ErrorList{field.NotSupported(p, n, []corev1.ResourceName{corev1.ResourceCPU, "hugepages-*", corev1.ResourceMemory})}
	}
	return append(errs, validateResourceRequirements(r, podName, p)...)
}
