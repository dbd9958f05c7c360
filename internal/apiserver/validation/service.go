package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxClientIPAffinitySeconds caps sessionAffinityConfig.clientIP.timeoutSeconds (a day).
const maxClientIPAffinitySeconds = 86400

var (
	serviceTypes = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName,
		corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort}
	ipFamilyPolicies = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack,
		corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}
	trafficDistributions = []string{corev1.ServiceTrafficDistributionPreferClose,
		corev1.ServiceTrafficDistributionPreferSameNode, corev1.ServiceTrafficDistributionPreferSameZone}
)

// clusterIPs is the service's cluster IPs as upstream's strategy leaves
// them before validation: spec.clusterIPs, or spec.clusterIP alone when the
// client set only that.
func clusterIPs(svc *corev1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 {
		return svc.Spec.ClusterIPs
	}
	if svc.Spec.ClusterIP != "" {
		return []string{svc.Spec.ClusterIP}
	}
	return nil
}

func isHeadless(svc *corev1.Service) bool {
	ips := clusterIPs(svc)
	return len(ips) == 1 && ips[0] == corev1.ClusterIPNone
}

// externallyAccessible: see defaults.ExternallyAccessible.
func externallyAccessible(svc *corev1.Service) bool {
	t := svc.Spec.Type
	return t == corev1.ServiceTypeLoadBalancer || t == corev1.ServiceTypeNodePort ||
		(t == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
}

func needsHealthCheck(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// ValidateService validates a service being created (and, through
// ValidateServiceUpdate, after every update). Allocation comes first
// upstream; here a LoadBalancer service with externalTrafficPolicy Local may
// still lack its healthCheckNodePort, and node ports are not range-checked.
func ValidateService(svc *corev1.Service) field.ErrorList {
	errs := objectMeta(&svc.ObjectMeta, true, nameIsDNS1035Label)
	spec := &svc.Spec
	ipsPath := specPath.Child("clusterIPs")
	if len(spec.Ports) == 0 && !isHeadless(svc) && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(specPath.Child("ports"), ""))
	}
	switch spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if isHeadless(svc) {
			errs = append(errs, field.Invalid(ipsPath.Index(0), corev1.ClusterIPNone, fmt.Sprintf("may not be set to 'None' for %s services", spec.Type)))
		}
	case corev1.ServiceTypeExternalName:
		if len(clusterIPs(svc)) > 0 {
			errs = append(errs, field.Forbidden(ipsPath, "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A trailing dot marks the name fully qualified.
		if cname := strings.TrimSuffix(spec.ExternalName, "."); cname != "" {
			errs = append(errs, dnsSubdomain(cname, specPath.Child("externalName"))...)
		} else {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		}
	}
	errs = append(errs, validateServicePorts(svc)...)
	if spec.Selector != nil {
		errs = append(errs, labels(spec.Selector, specPath.Child("selector"))...)
	}
	errs = append(errs, validateSessionAffinity(spec)...)
	errs = append(errs, validateClusterIPs(svc)...)
	for i, ip := range spec.ExternalIPs {
		ep := specPath.Child("externalIPs").Index(i)
		if ipErrs := utilvalidation.IsValidIP(ep, ip); len(ipErrs) > 0 {
			errs = append(errs, ipErrs...)
		} else {
			errs = append(errs, nonSpecialIP(ip, ep)...)
		}
	}
	errs = append(errs, oneOf(spec.Type, specPath.Child("type"), serviceTypes...)...)
	errs = append(errs, validateLoadBalancerFields(svc)...)
	errs = append(errs, validateTrafficPolicies(svc)...)
	return errs
}

func validateServicePorts(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	ports := svc.Spec.Ports
	names := map[string]bool{}
	nodePorts := map[corev1.ServicePort]bool{}
	portKeys := map[corev1.ServicePort]bool{}
	for i, sp := range ports {
		pp := specPath.Child("ports").Index(i)
		if len(ports) > 1 && sp.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else if sp.Name != "" {
			errs = append(errs, dnsLabel(sp.Name, pp.Child("name"))...)
			if names[sp.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), sp.Name))
			}
			names[sp.Name] = true
		}
		errs = append(errs, portNumber(sp.Port, pp.Child("port"))...)
		errs = append(errs, oneOf(sp.Protocol, pp.Child("protocol"), portProtocols...)...)
		errs = append(errs, portNumOrName(sp.TargetPort, pp.Child("targetPort"))...)
		if sp.AppProtocol != nil {
			errs = append(errs, qualifiedName(*sp.AppProtocol, pp.Child("appProtocol"))...)
		}
		if svc.Spec.Type == corev1.ServiceTypeClusterIP && sp.NodePort != 0 {
			errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
		}
	}
	// Duplicates are (protocol, port) pairs, reported after the per-port
	// checks as upstream does.
	for i, sp := range ports {
		if sp.NodePort == 0 {
			continue
		}
		key := corev1.ServicePort{Protocol: sp.Protocol, NodePort: sp.NodePort}
		if nodePorts[key] {
			errs = append(errs, field.Duplicate(specPath.Child("ports").Index(i).Child("nodePort"), sp.NodePort))
		}
		nodePorts[key] = true
	}
	for i, sp := range ports {
		key := corev1.ServicePort{Protocol: sp.Protocol, Port: sp.Port}
		if portKeys[key] {
			errs = append(errs, field.Duplicate(specPath.Child("ports").Index(i), key))
		}
		portKeys[key] = true
	}
	return errs
}

func validateSessionAffinity(spec *corev1.ServiceSpec) field.ErrorList {
	p := specPath.Child("sessionAffinity")
	errs := oneOf(spec.SessionAffinity, p, corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone)
	cp := specPath.Child("sessionAffinityConfig")
	switch spec.SessionAffinity {
	case corev1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			errs = append(errs, field.Forbidden(cp, "must not be set when session affinity is None"))
		}
	case corev1.ServiceAffinityClientIP:
		const when = "when session affinity type is ClientIP"
		c := spec.SessionAffinityConfig
		switch {
		case c == nil:
			errs = append(errs, field.Required(cp, when))
		case c.ClientIP == nil:
			errs = append(errs, field.Required(cp.Child("clientIP"), when))
		case c.ClientIP.TimeoutSeconds == nil:
			errs = append(errs, field.Required(cp.Child("clientIP", "timeoutSeconds"), when))
		case *c.ClientIP.TimeoutSeconds <= 0 || *c.ClientIP.TimeoutSeconds > maxClientIPAffinitySeconds:
			errs = append(errs, field.Invalid(cp.Child("clientIP", "timeoutSeconds"), *c.ClientIP.TimeoutSeconds,
				fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
		}
	}
	return errs
}

func validateLoadBalancerFields(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := &svc.Spec
	isLB := spec.Type == corev1.ServiceTypeLoadBalancer
	if len(spec.LoadBalancerSourceRanges) > 0 {
		// Upstream's capital L, kept.
		p := specPath.Child("LoadBalancerSourceRanges")
		if !isLB {
			errs = append(errs, field.Forbidden(p, "may only be used when `type` is 'LoadBalancer'"))
		}
		for i, r := range spec.LoadBalancerSourceRanges {
			errs = append(errs, utilvalidation.IsValidCIDR(p.Index(i), strings.TrimSpace(r))...)
		}
	} else if v, ok := svc.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey]; ok {
		p := metaPath.Child("annotations").Key(corev1.AnnotationLoadBalancerSourceRangesKey)
		if !isLB {
			errs = append(errs, field.Forbidden(p, "may only be used when `type` is 'LoadBalancer'"))
		}
		if v = strings.TrimSpace(v); v != "" {
			for _, r := range strings.Split(v, ",") {
				errs = append(errs, utilvalidation.IsValidCIDR(p, strings.TrimSpace(r))...)
			}
		}
	}
	if spec.AllocateLoadBalancerNodePorts != nil && !isLB {
		errs = append(errs, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if isLB && spec.AllocateLoadBalancerNodePorts == nil {
		// Upstream reports this without the "spec." prefix; kept.
		errs = append(errs, field.Required(field.NewPath("allocateLoadBalancerNodePorts"), ""))
	}
	if c := spec.LoadBalancerClass; c != nil {
		if isLB {
			errs = append(errs, qualifiedName(*c, specPath.Child("loadBalancerClass"))...)
		} else {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
		}
	}
	return errs
}

func validateTrafficPolicies(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := &svc.Spec
	etp := specPath.Child("externalTrafficPolicy")
	if !externallyAccessible(svc) {
		if spec.ExternalTrafficPolicy != "" {
			errs = append(errs, field.Invalid(etp, spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
		}
	} else {
		errs = append(errs, oneOf(spec.ExternalTrafficPolicy, etp, corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal)...)
	}
	hc := specPath.Child("healthCheckNodePort")
	if !needsHealthCheck(svc) {
		if spec.HealthCheckNodePort != 0 {
			errs = append(errs, field.Invalid(hc, spec.HealthCheckNodePort, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
		}
	} else if spec.HealthCheckNodePort != 0 {
		errs = append(errs, portNumber(spec.HealthCheckNodePort, hc)...)
	}
	if itp := spec.InternalTrafficPolicy; itp == nil {
		// Not required of ExternalName services: historically unchecked.
		switch spec.Type {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			errs = append(errs, field.Required(specPath.Child("internalTrafficPolicy"), ""))
		}
	} else {
		errs = append(errs, supported(*itp, specPath.Child("internalTrafficPolicy"), corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal)...)
	}
	if td := spec.TrafficDistribution; td != nil {
		errs = append(errs, supported(*td, specPath.Child("trafficDistribution"), trafficDistributions...)...)
	}
	return errs
}

// ValidateServiceUpdate validates svc replacing old. Cluster IPs and IP
// families may gain or lose their secondary (dual-stack up/downgrade) but
// the primary may not change, unless the service moves to or from
// ExternalName (or stays headless). The server must have copied the
// allocated values of old into svc first, as upstream's service REST does.
func ValidateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	errs := metaUpdate(&svc.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, clusterIPsUpdate(svc, old)...)
	errs = append(errs, ipFamiliesUpdate(svc, old)...)
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && old.Spec.Type == corev1.ServiceTypeLoadBalancer {
		c, oc := svc.Spec.LoadBalancerClass, old.Spec.LoadBalancerClass
		if (c == nil) != (oc == nil) || (c != nil && *c != *oc) {
			errs = append(errs, field.Invalid(specPath.Child("loadBalancerClass"), c, "may not change once set"))
		}
	}
	if needsHealthCheck(svc) && needsHealthCheck(old) && svc.Spec.HealthCheckNodePort != 0 &&
		svc.Spec.HealthCheckNodePort != old.Spec.HealthCheckNodePort {
		errs = append(errs, field.Forbidden(specPath.Child("healthCheckNodePort"), "field is immutable"))
	}
	return append(errs, ValidateService(svc)...)
}
