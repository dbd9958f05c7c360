package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The files the agent writes for every pod and bind-mounts into its
// containers: /etc/hosts, /etc/hostname and /etc/resolv.conf, in
// kubelet's formats. Rendering is pure; writing is in podfiles.go.

// Kubernetes' limits on a pod's resolver configuration.
const (
	maxDNSNameservers = 3
	maxDNSSearches    = 32
)

// podHostname is the pod's hostname and, with a subdomain, its domain
// (<subdomain>.<ns>.svc.<cluster domain>): spec.hostname, else the pod's
// name cut to 63 characters without a trailing '-' or '.'.
func podHostname(pod *corev1.Pod, clusterDomain string) (hostname, domain string) {
	hostname = pod.Name
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
	}
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if pod.Spec.Subdomain != "" {
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, domain
}

// utsHostname is what the sandbox's UTS namespace is set to:
// the FQDN when setHostnameAsFQDN asks for it.
func utsHostname(pod *corev1.Pod, clusterDomain string) string {
	h, d := podHostname(pod, clusterDomain)
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN && d != "" {
		return h + "." + d
	}
	return h
}

// hostsFile renders a pod's /etc/hosts: kubelet's managed file, the
// pod's IPs under its hostname (and FQDN), then spec.hostAliases.
func hostsFile(podIPs []string, hostname, domain string, aliases []corev1.HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	b.Write(hostAliasEntries(aliases))
	return b.Bytes()
}

// hostNetworkHostsFile is a hostNetwork pod's /etc/hosts: the node's own
// plus spec.hostAliases.
func hostNetworkHostsFile(node []byte, aliases []corev1.HostAlias) []byte {
	return append(slices.Clip(node), hostAliasEntries(aliases)...)
}

func hostAliasEntries(aliases []corev1.HostAlias) []byte {
	if len(aliases) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	return b.Bytes()
}

// resolvConf is a resolver configuration.
type resolvConf struct {
	Nameservers, Searches, Options []string
}

// parseResolvConf reads the parts of resolv.conf(5) that pods inherit.
func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				rc.Nameservers = append(rc.Nameservers, f[1])
			}
		case "search", "domain": // the last one wins, as in resolv.conf(5)
			rc.Searches = nil
			for _, s := range f[1:] {
				if s != "." {
					rc.Searches = append(rc.Searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

// podResolvConf is the pod's resolver configuration for its dnsPolicy,
// as kubelet makes it: ClusterFirst (and ClusterFirstWithHostNet for
// hostNetwork pods) use the cluster DNS Service with the search path of
// the pod's namespace and ndots:5, falling back to Default when the
// cluster has no DNS Service; Default is the node's configuration; None
// only spec.dnsConfig, which the other policies merge in too.
func podResolvConf(pod *corev1.Pod, clusterDNS, clusterDomain string, node resolvConf) resolvConf {
	var rc resolvConf
	policy := pod.Spec.DNSPolicy
	clusterFirst := (policy == corev1.DNSClusterFirst || policy == "") && !pod.Spec.HostNetwork ||
		policy == corev1.DNSClusterFirstWithHostNet
	switch {
	case policy == corev1.DNSNone:
	case clusterFirst && clusterDNS != "":
		rc.Nameservers = []string{clusterDNS}
		rc.Searches = append([]string{
			pod.Namespace + ".svc." + clusterDomain, "svc." + clusterDomain, clusterDomain,
		}, node.Searches...)
		rc.Options = []string{"ndots:5"}
	default:
		rc = resolvConf{Nameservers: slices.Clone(node.Nameservers), Searches: slices.Clone(node.Searches), Options: slices.Clone(node.Options)}
	}
	if c := pod.Spec.DNSConfig; c != nil {
		rc.Nameservers = appendNew(rc.Nameservers, c.Nameservers...)
		rc.Searches = appendNew(rc.Searches, c.Searches...)
		for _, o := range c.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			rc.Options = mergeOption(rc.Options, o.Name, opt)
		}
	}
	if len(rc.Nameservers) > maxDNSNameservers {
		rc.Nameservers = rc.Nameservers[:maxDNSNameservers]
	}
	if len(rc.Searches) > maxDNSSearches {
		rc.Searches = rc.Searches[:maxDNSSearches]
	}
	return rc
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

// mergeOption sets option name (a later dnsConfig option replaces one of
// the same name).
func mergeOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

// render writes the configuration in resolv.conf(5) syntax.
func (rc resolvConf) render() []byte {
	var b bytes.Buffer
	if len(rc.Searches) > 0 {
		b.WriteString("search " + strings.Join(rc.Searches, " ") + "\n")
	}
	for _, ns := range rc.Nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(rc.Options) > 0 {
		b.WriteString("options " + strings.Join(rc.Options, " ") + "\n")
	}
	return b.Bytes()
}
