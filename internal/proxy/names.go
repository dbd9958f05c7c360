package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strconv"
)

// maxNFTName is the kernel's limit on nftables chain and set names
// (NFT_CHAIN_MAXNAMELEN, NFT_SET_MAXNAMELEN), terminator included.
const maxNFTName = 256 - 1

// hash16 is a deterministic 16-character name component: the first 80 bits
// of a SHA-256, in base32 (upper case and digits, valid in iptables and
// nftables names alike).
func hash16(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base32.StdEncoding.EncodeToString(h.Sum(nil))[:16]
}

// portHash identifies a service port; endpointHash one endpoint of it.
func portHash(k PortKey) string { return hash16(k.Namespace, k.Name, k.Port, string(k.Protocol)) }
func endpointHash(k PortKey, ep netip.AddrPort) string {
	return hash16(k.Namespace, k.Name, k.Port, string(k.Protocol), ep.String())
}

// nftName builds a readable, unique nftables name: prefix, hash, then a
// human-readable suffix cut to the kernel's limit (the hash alone is what
// makes it unique). nft identifiers take letters, digits and "/_-.".
func nftName(prefix, hash, readable string) string {
	n := prefix + "-" + hash + "-" + readable
	if len(n) > maxNFTName {
		n = n[:maxNFTName]
	}
	return n
}

// readablePort is "<ns>/<svc>/<proto>[/<port name>]".
func readablePort(k PortKey) string {
	s := k.Namespace + "/" + k.Name + "/" + k.proto()
	if k.Port != "" {
		s += "/" + k.Port
	}
	return s
}

func nftServiceChain(k PortKey) string  { return nftName("svc", portHash(k), readablePort(k)) }
func nftLocalChain(k PortKey) string    { return nftName("local", portHash(k), readablePort(k)) }
func nftExternalChain(k PortKey) string { return nftName("ext", portHash(k), readablePort(k)) }
func nftEndpointChain(k PortKey, ep netip.AddrPort) string {
	return nftName("ep", endpointHash(k, ep), readablePort(k)+"__"+ep.Addr().String()+"/"+strconv.Itoa(int(ep.Port())))
}

// The timeout is hashed into an affinity set's name, so that a new timeout
// is a new set (sets referenced by rules cannot be redefined in place).
func nftAffinitySet(k PortKey, ep netip.AddrPort, timeout int32) string {
	return nftName("affinity", hash16(endpointHash(k, ep), strconv.Itoa(int(timeout))), readablePort(k)+"__"+ep.Addr().String()+"/"+strconv.Itoa(int(ep.Port())))
}

// iptables chain names are at most 28 characters: a prefix and the hash.
func iptServiceChain(k PortKey) string  { return "KUBE-SVC-" + portHash(k) }
func iptLocalChain(k PortKey) string    { return "KUBE-SVL-" + portHash(k) }
func iptExternalChain(k PortKey) string { return "KUBE-EXT-" + portHash(k) }
func iptEndpointChain(k PortKey, ep netip.AddrPort) string {
	return "KUBE-SEP-" + endpointHash(k, ep)
}
