package validation

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidatePodTemplateSpec validates a workload's pod template at p (for
// example spec.template). Like upstream, template labels are reported at
// p.labels, not p.metadata.labels.
func ValidatePodTemplateSpec(t *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := labels(t.Labels, p.Child("labels"))
	errs = append(errs, annotations(t.Annotations, p.Child("annotations"))...)
	errs = append(errs, podAnnotations(t.Annotations, &t.Spec, p.Child("annotations"))...)
	errs = append(errs, ValidatePodSpec(&t.Spec, p.Child("spec"))...)
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return errs
}

// ValidatePodSpec validates a pod spec that is not (yet) a pod's: a
// template's. Pods get a few more checks, see ValidatePod.
func ValidatePodSpec(spec *corev1.PodSpec, p *field.Path) field.ErrorList {
	return validatePodSpec(spec, nil, p)
}

// validatePodSpec checks a spec; pod is the owning pod's metadata, nil for
// templates.
func validatePodSpec(spec *corev1.PodSpec, pod *metav1.ObjectMeta, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.TerminationGracePeriodSeconds == nil {
		errs = append(errs, field.Required(p.Child("terminationGracePeriodSeconds"), ""))
	}
	podName := ""
	if pod != nil {
		podName = pod.Name
	}
	vols, verrs := validateVolumes(spec.Volumes, podName, pod != nil, p.Child("volumes"))
	errs = append(errs, verrs...)
	cc := containerContext{
		volumes:       vols,
		gracePeriod:   spec.TerminationGracePeriodSeconds,
		restartPolicy: spec.RestartPolicy,
		hostUsers:     spec.HostUsers == nil || *spec.HostUsers,
	}
	errs = append(errs, validateContainers(spec.Containers, cc, p.Child("containers"))...)
	errs = append(errs, validateInitContainers(spec.InitContainers, spec.Containers, cc, p.Child("initContainers"))...)
	errs = append(errs, validateEphemeralContainers(spec, cc, p.Child("ephemeralContainers"))...)
	if spec.Resources != nil {
		errs = append(errs, validatePodResources(spec.Resources, p.Child("resources"))...)
	}
	errs = append(errs, hostNetworkPorts(spec, pod != nil, p)...)
	errs = append(errs, oneOf(spec.RestartPolicy, p.Child("restartPolicy"),
		corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)...)
	errs = append(errs, oneOf(spec.DNSPolicy, p.Child("dnsPolicy"),
		corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone)...)
	errs = append(errs, labels(spec.NodeSelector, p.Child("nodeSelector"))...)
	errs = append(errs, validatePodSecurityContext(spec, p.Child("securityContext"))...)
	errs = append(errs, validateAffinity(spec.Affinity, p.Child("affinity"))...)
	errs = append(errs, validateDNSConfig(spec, p.Child("dnsConfig"))...)
	for i, g := range spec.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), p.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	errs = append(errs, validateSchedulingGates(spec.SchedulingGates, p.Child("schedulingGates"))...)
	errs = append(errs, validateTopologySpread(spec.TopologySpreadConstraints, p.Child("topologySpreadConstraints"))...)
	errs = append(errs, validateHostUsers(spec, p)...)
	if spec.ServiceAccountName != "" {
		errs = append(errs, nameAt(spec.ServiceAccountName, p.Child("serviceAccountName"), nameIsDNSSubdomain)...)
	}
	if spec.NodeName != "" {
		errs = append(errs, nameAt(spec.NodeName, p.Child("nodeName"), nameIsDNSSubdomain)...)
	}
	if ads := spec.ActiveDeadlineSeconds; ads != nil && (*ads < 1 || *ads > math.MaxInt32) {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *ads, utilvalidation.InclusiveRangeError(1, math.MaxInt32)))
	}
	if spec.Hostname != "" {
		errs = append(errs, dnsLabel(spec.Hostname, p.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, dnsLabel(spec.Subdomain, p.Child("subdomain"))...)
	}
	errs = append(errs, validateTolerations(spec.Tolerations, p.Child("tolerations"))...)
	errs = append(errs, validateHostAliases(spec.HostAliases, p.Child("hostAliases"))...)
	if spec.PriorityClassName != "" {
		errs = append(errs, nameAt(spec.PriorityClassName, p.Child("priorityClassName"), nameIsDNSSubdomain)...)
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, nameAt(*spec.RuntimeClassName, p.Child("runtimeClassName"), nameIsDNSSubdomain)...)
	}
	if pp := spec.PreemptionPolicy; pp != nil {
		errs = append(errs, oneOf(*pp, p.Child("preemptionPolicy"), corev1.PreemptLowerPriority, corev1.PreemptNever)...)
	}
	if spec.Overhead != nil {
		errs = append(errs, validateContainerResources(&corev1.ResourceRequirements{Limits: spec.Overhead}, p.Child("overhead"))...)
	}
	if os := spec.OS; os != nil {
		if os.Name == "" {
			errs = append(errs, field.Required(p.Child("os", "name"), "cannot be empty"))
		} else {
			errs = append(errs, supported(os.Name, p.Child("os"), corev1.Linux, corev1.Windows)...)
		}
	}
	return errs
}

// hostNetworkPorts: with the host's network a container port is a host
// port. A pod must say so (or leave it to the defaults); a template may
// leave hostPort 0.
func hostNetworkPorts(spec *corev1.PodSpec, isPod bool, p *field.Path) field.ErrorList {
	if !spec.HostNetwork {
		return nil
	}
	var errs field.ErrorList
	for i, c := range spec.Containers {
		for j, port := range c.Ports {
			if (isPod || port.HostPort != 0) && port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(p.Child("containers").Index(i).Child("ports").Index(j).Child("hostPort"),
					port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
	}
	return errs
}

func validateSchedulingGates(gates []corev1.PodSchedulingGate, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, g := range gates {
		errs = append(errs, qualifiedName(g.Name, p.Index(i))...)
		if seen[g.Name] {
			errs = append(errs, field.Duplicate(p.Index(i), g.Name))
		}
		seen[g.Name] = true
	}
	return errs
}

// Fields an ephemeral container may set; the rest would make it part of
// the workload (ports, probes, lifecycle, resources).
func ephemeralForbidden(ec *corev1.EphemeralContainer) []string {
	var set []string
	c := &ec.EphemeralContainerCommon
	if len(c.Ports) > 0 {
		set = append(set, "ports")
	}
	if len(c.Resources.Limits)+len(c.Resources.Requests)+len(c.Resources.Claims) > 0 {
		set = append(set, "resources")
	}
	if c.LivenessProbe != nil {
		set = append(set, "livenessProbe")
	}
	if c.ReadinessProbe != nil {
		set = append(set, "readinessProbe")
	}
	if c.StartupProbe != nil {
		set = append(set, "startupProbe")
	}
	if c.Lifecycle != nil {
		set = append(set, "lifecycle")
	}
	if len(c.ResizePolicy) > 0 {
		set = append(set, "resizePolicy")
	}
	if c.RestartPolicy != nil {
		set = append(set, "restartPolicy")
	}
	return set
}

func validateEphemeralContainers(spec *corev1.PodSpec, cc containerContext, p *field.Path) field.ErrorList {
	if len(spec.EphemeralContainers) == 0 {
		return nil
	}
	var errs field.ErrorList
	others, all := map[string]bool{}, map[string]bool{}
	for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range cs {
			others[c.Name], all[c.Name] = true, true
		}
	}
	for i := range spec.EphemeralContainers {
		ec, ep := &spec.EphemeralContainers[i], p.Index(i)
		c := (*corev1.Container)(&ec.EphemeralContainerCommon)
		errs = append(errs, validateContainerCommon(c, cc, ep)...)
		errs = append(errs, imageWhitespace(c.Image, ep.Child("image"))...)
		if all[ec.Name] {
			errs = append(errs, field.Duplicate(ep.Child("name"), ec.Name))
		}
		all[ec.Name] = true
		if ec.TargetContainerName != "" && !others[ec.TargetContainerName] {
			errs = append(errs, field.NotFound(ep.Child("targetContainerName"), ec.TargetContainerName))
		}
		for _, f := range ephemeralForbidden(ec) {
			errs = append(errs, field.Forbidden(ep.Child(f), "cannot be set for an Ephemeral Container"))
		}
		for j, m := range ec.VolumeMounts {
			if m.SubPath != "" {
				errs = append(errs, field.Forbidden(ep.Child("volumeMounts").Index(j).Child("subPath"), "cannot be set for an Ephemeral Container"))
			}
			if m.SubPathExpr != "" {
				errs = append(errs, field.Forbidden(ep.Child("volumeMounts").Index(j).Child("subPathExpr"), "cannot be set for an Ephemeral Container"))
			}
		}
	}
	return errs
}
