package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"

	"kite/internal/cni/ipam"
)

// Names and defaults, in one place.
const (
	// PluginType is the plugin's "type" in a network config, and the name
	// of its binary in the CNI bin dir.
	PluginType = "kite"
	// DefaultBridge is the bridge pods are attached to.
	DefaultBridge = "cni0"
	// DefaultMTU is the MTU of the bridge and of both ends of every veth.
	DefaultMTU = 1500
	// DefaultDataDirRoot holds one IPAM directory per network name.
	DefaultDataDirRoot = "/var/lib/cni/networks"

	// hostVethPrefix starts the name of every host-side veth kite makes;
	// the rest is derived from the attachment (see HostVethName).
	hostVethPrefix = "kite"
	// aliasPrefix starts the alias (ifalias) of every host-side veth; the
	// rest is "<container ID>/<ifname>", so GC can tell whose veth it is.
	aliasPrefix = "kite:"
)

// SupportedVersions are the CNI spec versions of the configs the plugin
// accepts, and that VERSION reports.
func SupportedVersions() []string { return []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} }

// HostVethName is the name of the host end of an attachment's veth: the
// prefix "kite" and 11 hex digits of a hash of the container ID and the
// interface name, 15 characters in all (the kernel's limit). Deriving it
// lets DEL find the veth without the container's namespace or any cached
// result.
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return hostVethPrefix + hex.EncodeToString(sum[:])[:15-len(hostVethPrefix)]
}

// hostVethAlias is the alias set on an attachment's host veth.
func hostVethAlias(a ipam.Attachment) string { return aliasPrefix + a.ContainerID + "/" + a.IfName }

// parseHostVethAlias reads hostVethAlias back.
func parseHostVethAlias(alias string) (ipam.Attachment, bool) {
	rest, ok := strings.CutPrefix(alias, aliasPrefix)
	if !ok {
		return ipam.Attachment{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return ipam.Attachment{}, false
	}
	return ipam.Attachment{ContainerID: rest[:i], IfName: rest[i+1:]}, true
}

// MACFor is the hardware address kite gives the interface holding the IPv4
// address ip: 0a:58 followed by the four bytes of the address (a locally
// administered unicast address). The pod's eth0 gets the MAC of its IP and
// the bridge the MAC of the gateway, so a pod that comes back with the same
// address has the same MAC, and the bridge's MAC never changes as ports
// come and go; neighbours' ARP caches stay right.
func MACFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]}
}
