package nodeipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults, as upstream's kube-controller-manager with kite's cluster CIDR.
const (
	DefaultClusterCIDR      = "10.244.0.0/16"
	DefaultNodeMaskSizeIPv4 = 24
	DefaultNodeMaskSizeIPv6 = 64
	// maxSubnetBits bounds how many node subnets one cluster CIDR may hold
	// (2^16), as upstream's cidrset does.
	maxSubnetBits = 16
)

// Config wires the node IPAM controller.
type Config struct {
	// Client patches nodes' spec.podCIDR(s).
	Client kubernetes.Interface
	// Informers supplies the node cache; the caller starts it after New.
	Informers informers.SharedInformerFactory
	// Recorder emits CIDRNotAvailable and CIDRAssignmentFailed events on
	// nodes. Upstream's source component is "cidrAllocator".
	Recorder record.EventRecorder

	// ClusterCIDR is the pod network: comma-separated, at most one CIDR
	// per IP family (dual-stack nodes get one subnet of each). Default
	// 10.244.0.0/16.
	ClusterCIDR string
	// NodeMaskSizeIPv4 and NodeMaskSizeIPv6 are the prefix lengths of a
	// node's subnet. Defaults 24 and 64.
	NodeMaskSizeIPv4, NodeMaskSizeIPv6 int
	// ServiceCIDR (optional, comma-separated): node subnets overlapping it
	// are never handed out, as upstream filters the service range.
	ServiceCIDR string
}

func (c Config) withDefaults() Config {
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	if c.NodeMaskSizeIPv4 == 0 {
		c.NodeMaskSizeIPv4 = DefaultNodeMaskSizeIPv4
	}
	if c.NodeMaskSizeIPv6 == 0 {
		c.NodeMaskSizeIPv6 = DefaultNodeMaskSizeIPv6
	}
	return c
}

// Validate reports a missing dependency or a CIDR configuration that
// cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("nodeipam: Client is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("nodeipam: Informers is required"))
	}
	if c.Recorder == nil {
		errs = append(errs, errors.New("nodeipam: Recorder is required"))
	}
	if _, err := c.ranges(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseCIDRs(c.ServiceCIDR); err != nil {
		errs = append(errs, fmt.Errorf("nodeipam: service CIDR: %w", err))
	}
	return errors.Join(errs...)
}

// ranges parses the cluster CIDRs into node subnet ranges, IPv4 first.
func (c Config) ranges() ([]subnetRange, error) {
	cidrs, err := parseCIDRs(c.ClusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("nodeipam: cluster CIDR: %w", err)
	}
	if len(cidrs) == 0 {
		return nil, errors.New("nodeipam: cluster CIDR is empty")
	}
	var out []subnetRange
	seen := map[bool]bool{}
	for _, p := range cidrs {
		v4 := p.Addr().Is4()
		if seen[v4] {
			return nil, fmt.Errorf("nodeipam: cluster CIDR %q: at most one CIDR per IP family", c.ClusterCIDR)
		}
		seen[v4] = true
		mask := c.NodeMaskSizeIPv6
		if v4 {
			mask = c.NodeMaskSizeIPv4
		}
		r, err := newSubnetRange(p, mask)
		if err != nil {
			return nil, fmt.Errorf("nodeipam: %w", err)
		}
		out = append(out, r)
	}
	if len(out) == 2 && !out[0].cluster.Addr().Is4() {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

// parseCIDRs parses a comma-separated list of CIDRs; empty gives none.
// Host bits are dropped, as upstream's flag parsing drops them.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
