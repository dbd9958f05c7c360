package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"kite/internal/cni/ipam"
)

// NetConf is the kite plugin's network configuration, as a runtime passes
// it on stdin:
//
//	{
//	  "cniVersion": "1.0.0",
//	  "name": "kite",
//	  "type": "kite",
//	  "bridge": "cni0",
//	  "mtu": 1500,
//	  "ipam": {"subnet": "10.244.1.0/24"},
//	  "dns": {"nameservers": ["10.96.0.10"]}
//	}
//
// Fields other than these (capabilities, runtimeConfig, args, …) are
// accepted and ignored.
type NetConf struct {
	CNIVersion string    `json:"cniVersion"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Bridge     string    `json:"bridge,omitempty"`
	MTU        int       `json:"mtu,omitempty"`
	IPAM       IPAMConf  `json:"ipam"`
	DNS        types.DNS `json:"dns,omitempty"`

	// RawPrevResult is the previous plugin's result in a chain (ADD), or
	// the attachment's result (CHECK, DEL).
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
	// ValidAttachments is set for GC: the attachments still in use.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	// LegacyAttachments is the key libcni also sends for GC, from an older
	// text of the spec; it is read when ValidAttachments is absent.
	LegacyAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`

	// rng is IPAM's range, set by ParseConfig.
	rng ipam.Range
	// hasAttachmentList records that the config carries a GC attachment
	// list (maybe empty, maybe null), as opposed to none at all.
	hasAttachmentList bool
}

// IPAMConf configures kite's own address allocator.
type IPAMConf struct {
	// Type is empty or "kite": no other IPAM plugin is delegated to.
	Type string `json:"type,omitempty"`
	// Subnet is the node's podCIDR, an IPv4 network such as
	// 10.244.1.0/24. Required.
	Subnet string `json:"subnet"`
	// Gateway is the bridge's address; default the subnet's first
	// address.
	Gateway string `json:"gateway,omitempty"`
	// DataDir holds the reservations; default
	// /var/lib/cni/networks/<network name>.
	DataDir string `json:"dataDir,omitempty"`
}

// ParseConfig decodes and validates a network config and fills in the
// defaults. Its errors are CNI errors with code 7 (invalid network
// config) naming the offending field.
func ParseConfig(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, newError(types.ErrInvalidNetworkConfig, "invalid network config", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err == nil {
		_, valid := keys["cni.dev/valid-attachments"]
		_, legacy := keys["cni.dev/attachments"]
		c.hasAttachmentList = valid || legacy
	}
	if err := c.complete(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *NetConf) complete() *types.Error {
	invalid := func(format string, args ...any) *types.Error {
		return errorf(types.ErrInvalidNetworkConfig, "invalid network config %q: "+format, append([]any{c.Name}, args...)...)
	}
	if c.Name == "" {
		return invalid("name is missing")
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if err := validIfName(c.Bridge); err != nil {
		return invalid("bridge %q: %v", c.Bridge, err)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 68 || c.MTU > 65535 {
		return invalid("mtu %d is outside 68–65535", c.MTU)
	}
	if c.IPAM.Type != "" && c.IPAM.Type != PluginType {
		return invalid("ipam.type %q: the kite plugin has its own IPAM; leave ipam.type empty or %q", c.IPAM.Type, PluginType)
	}
	if c.IPAM.Subnet == "" {
		return invalid("ipam.subnet is missing (the node's podCIDR, e.g. 10.244.1.0/24)")
	}
	subnet, err := netip.ParsePrefix(c.IPAM.Subnet)
	if err != nil {
		return invalid("ipam.subnet %q is not a CIDR", c.IPAM.Subnet)
	}
	var gw netip.Addr
	if c.IPAM.Gateway != "" {
		if gw, err = netip.ParseAddr(c.IPAM.Gateway); err != nil {
			return invalid("ipam.gateway %q is not an IP address", c.IPAM.Gateway)
		}
	}
	if c.rng, err = ipam.NewRange(subnet, gw); err != nil {
		return invalid("ipam: %v", err)
	}
	c.IPAM.Gateway = c.rng.Gateway.String()
	if c.IPAM.DataDir == "" {
		c.IPAM.DataDir = filepath.Join(DefaultDataDirRoot, c.Name)
	}
	if !filepath.IsAbs(c.IPAM.DataDir) {
		return invalid("ipam.dataDir %q is not an absolute path", c.IPAM.DataDir)
	}
	if c.ValidAttachments == nil {
		c.ValidAttachments = c.LegacyAttachments
	}
	return nil
}

// validIfName applies the kernel's rules for interface names.
func validIfName(name string) error {
	switch {
	case len(name) > 15:
		return fmt.Errorf("longer than 15 characters")
	case name == "." || name == "..":
		return fmt.Errorf("not a valid interface name")
	case strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("contains '/', ':' or whitespace")
	}
	return nil
}

// Range is the address range the config's IPAM hands out from.
func (c *NetConf) Range() ipam.Range { return c.rng }

// prevResult parses RawPrevResult into the current result type, or returns
// nil when there is none.
func (c *NetConf) prevResult() (*current.Result, error) {
	if c.RawPrevResult == nil {
		return nil, nil
	}
	pc := &types.PluginConf{CNIVersion: c.CNIVersion, RawPrevResult: c.RawPrevResult}
	if err := version.ParsePrevResult(pc); err != nil {
		return nil, newError(types.ErrDecodingFailure, "prevResult", err)
	}
	r, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, newError(types.ErrDecodingFailure, "prevResult", err)
	}
	return r, nil
}

// allocator opens the config's IPAM store.
func (c *NetConf) allocator() (*ipam.Allocator, *ipam.DiskStore, error) {
	store, err := ipam.NewDiskStore(c.IPAM.DataDir)
	if err != nil {
		return nil, nil, newError(CodeIPAMStore, "open IPAM store", err)
	}
	return &ipam.Allocator{Range: c.rng, Store: store}, store, nil
}

// ListConfig describes the conflist a node writes for the kite plugin:
// kite first, then (optionally) the reference portmap plugin for hostPort.
type ListConfig struct {
	Name       string // default "kite"
	CNIVersion string // default "1.0.0" (Debian's portmap 1.1.1 knows no later one)
	Bridge     string
	MTU        int
	Subnet     string // the node's podCIDR; required
	DataDir    string
	DNS        types.DNS
	PortMap    bool // chain portmap with capabilities {portMappings: true}
}

// JSON renders the conflist, after checking that its kite plugin config
// is valid.
func (l ListConfig) JSON() ([]byte, error) {
	if l.Name == "" {
		l.Name = PluginType
	}
	if l.CNIVersion == "" {
		l.CNIVersion = "1.0.0"
	}
	c := NetConf{CNIVersion: l.CNIVersion, Name: l.Name, Type: PluginType, Bridge: l.Bridge, MTU: l.MTU,
		IPAM: IPAMConf{Subnet: l.Subnet, DataDir: l.DataDir}}
	if err := c.complete(); err != nil {
		return nil, err
	}
	kite := map[string]any{"type": PluginType, "bridge": c.Bridge, "mtu": c.MTU, "ipam": map[string]string{"subnet": c.IPAM.Subnet}}
	if l.DataDir != "" {
		kite["ipam"] = map[string]string{"subnet": c.IPAM.Subnet, "dataDir": l.DataDir}
	}
	if !l.DNS.IsEmpty() {
		kite["dns"] = l.DNS
	}
	plugins := []any{kite}
	if l.PortMap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
	}
	return json.MarshalIndent(map[string]any{"cniVersion": l.CNIVersion, "name": l.Name, "plugins": plugins}, "", "  ")
}
