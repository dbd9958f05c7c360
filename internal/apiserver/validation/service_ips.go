package validation

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateClusterIPs checks cluster IPs, IP families and the family
// policy together (not for ExternalName services, checked above).
func validateClusterIPs(svc *corev1.Service) field.ErrorList {
	spec := &svc.Spec
	if spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var errs field.ErrorList
	ipsPath := specPath.Child("clusterIPs")
	famPath := specPath.Child("ipFamilies")
	if spec.ClusterIP != "" && len(spec.ClusterIPs) > 0 && spec.ClusterIPs[0] != spec.ClusterIP {
		errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, "first value must match `clusterIP`"))
	}
	seen := map[corev1.IPFamily]bool{}
	for i, f := range spec.IPFamilies {
		errs = append(errs, supported(f, famPath.Index(i), corev1.IPv4Protocol, corev1.IPv6Protocol)...)
		if seen[f] {
			errs = append(errs, field.Duplicate(famPath.Index(i), f))
		}
		seen[f] = true
	}
	if pol := spec.IPFamilyPolicy; pol != nil {
		errs = append(errs, supported(*pol, specPath.Child("ipFamilyPolicy"), ipFamilyPolicies...)...)
	}
	ips := clusterIPs(svc)
	bad := false
	for i, ip := range ips {
		if i == 0 && ip == corev1.ClusterIPNone {
			if len(ips) > 1 {
				bad = true
				errs = append(errs, field.Invalid(ipsPath, ips, "'None' must be the first and only value"))
			}
			continue
		}
		ipErrs := utilvalidation.IsValidIPForLegacyField(ipsPath.Index(i), ip, true, nil)
		bad = bad || len(ipErrs) > 0
		errs = append(errs, ipErrs...)
	}
	if len(ips) > 2 {
		errs = append(errs, field.Invalid(ipsPath, ips, "may only hold up to 2 values"))
	}
	if bad {
		// Family checks on bad addresses would only add noise.
		return errs
	}
	if len(ips) > 1 && !dualStack(ips) {
		errs = append(errs, field.Invalid(ipsPath, ips, "may specify no more than one IP for each IP family"))
	}
	if !isHeadless(svc) {
		for i, ip := range ips {
			if i >= len(spec.IPFamilies) {
				break
			}
			v6 := isIPv6(ip)
			if spec.IPFamilies[i] == corev1.IPv4Protocol && v6 {
				errs = append(errs, field.Invalid(ipsPath.Index(i), ip, fmt.Sprintf("expected an IPv4 value as indicated by `ipFamilies[%v]`", i)))
			}
			if spec.IPFamilies[i] == corev1.IPv6Protocol && !v6 {
				errs = append(errs, field.Invalid(ipsPath.Index(i), ip, fmt.Sprintf("expected an IPv6 value as indicated by `ipFamilies[%v]`", i)))
			}
		}
	}
	return errs
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && !a.Is4In6()
}

// dualStack: addresses of both families (counts are checked apart).
func dualStack(ips []string) bool {
	v4, v6 := 0, 0
	for _, ip := range ips {
		if isIPv6(ip) {
			v6++
		} else {
			v4++
		}
	}
	return v4 > 0 && v6 > 0
}

func clusterIPsUpdate(svc, old *corev1.Service) field.ErrorList {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if isHeadless(svc) && isHeadless(old) {
		return nil
	}
	ips, oldIPs := clusterIPs(svc), clusterIPs(old)
	p := specPath.Child("clusterIPs")
	var errs field.ErrorList
	switch {
	case len(oldIPs) == len(ips):
		for i := range oldIPs {
			if ips[i] != oldIPs[i] {
				errs = append(errs, field.Invalid(p.Index(i), ips, "may not change once set"))
			}
		}
	case len(oldIPs) > len(ips):
		if len(ips) == 0 {
			errs = append(errs, field.Invalid(p.Index(0), ips, "primary clusterIP can not be unset"))
		} else if ips[0] != oldIPs[0] {
			errs = append(errs, field.Invalid(p.Index(0), ips, "may not change once set"))
		}
		if len(ips) == 1 && !singleStack(svc) {
			errs = append(errs, field.Invalid(specPath.Child("ipFamilyPolicy"), svc.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary clusterIP"))
		}
	default:
		if len(oldIPs) > 0 && ips[0] != oldIPs[0] {
			errs = append(errs, field.Invalid(p.Index(0), ips, "may not change once set"))
		}
	}
	return errs
}

func singleStack(svc *corev1.Service) bool {
	return svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack
}

func ipFamiliesUpdate(svc, old *corev1.Service) field.ErrorList {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	// Headless services may change families, and so may a move to or from
	// headless.
	if isHeadless(svc) || isHeadless(old) {
		return nil
	}
	fams, oldFams := svc.Spec.IPFamilies, old.Spec.IPFamilies
	p := specPath.Child("ipFamilies")
	var errs field.ErrorList
	switch {
	case len(oldFams) == len(fams):
		for i := range oldFams {
			if fams[i] != oldFams[i] {
				errs = append(errs, field.Invalid(p.Index(0), fams, "may not change once set"))
			}
		}
	case len(oldFams) > len(fams):
		if len(clusterIPs(svc)) == 0 {
			errs = append(errs, field.Invalid(p.Index(0), fams, "primary ipFamily can not be unset"))
		}
		if len(fams) > 0 && fams[0] != oldFams[0] {
			errs = append(errs, field.Invalid(p.Index(0), clusterIPs(svc), "may not change once set"))
		}
		if len(fams) == 1 && !singleStack(svc) {
			errs = append(errs, field.Invalid(specPath.Child("ipFamilyPolicy"), svc.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary ipFamily"))
		}
	default:
		if len(oldFams) > 0 && fams[0] != oldFams[0] {
			errs = append(errs, field.Invalid(p.Index(0), clusterIPs(svc), "may not change once set"))
		}
	}
	return errs
}

// nonSpecialIP rejects addresses no endpoint or external IP can use:
// unspecified, loopback, and link-local ones.
func nonSpecialIP(s string, p *field.Path) field.ErrorList {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return field.ErrorList{field.Invalid(p, s, "must be a valid IP address")}
	}
	a = a.Unmap()
	var errs field.ErrorList
	if a.IsUnspecified() {
		errs = append(errs, field.Invalid(p, s, fmt.Sprintf("may not be unspecified (%v)", s)))
	}
	if a.IsLoopback() {
		errs = append(errs, field.Invalid(p, s, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if a.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(p, s, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if a.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(p, s, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}
