package l2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The responder answers ARP in userspace, on an AF_PACKET socket bound to
// the node's underlay interface, rather than by adding the addresses to
// the interface (see README.md, "Why a userspace responder"): the node's
// own address set, routes and source-address choice stay as they were,
// the proxy's DNAT (which matches the ingress addresses in prerouting)
// stays the only thing that takes the traffic, and giving an address up
// is just not answering any more.

// ARP frame layout (Ethernet + ARP for IPv4, RFC 826): 14 + 28 bytes.
const (
	ethHeaderLen = 14
	arpLen       = 28
	frameLen     = ethHeaderLen + arpLen
	arpRequest   = 1
	arpReply     = 2
)

// arpPacket is the part of an ARP frame for IPv4 over Ethernet we use.
type arpPacket struct {
	op       uint16
	sha, tha net.HardwareAddr // sender and target hardware addresses
	spa, tpa netip.Addr       // sender and target protocol addresses
}

// parseARP reads an Ethernet frame holding an ARP packet for IPv4 over
// Ethernet; ok is false for anything else. Pure.
func parseARP(f []byte) (arpPacket, bool) {
	if len(f) < frameLen || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_ARP {
		return arpPacket{}, false
	}
	a := f[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != unix.ETH_P_IP || a[4] != 6 || a[5] != 4 {
		return arpPacket{}, false
	}
	return arpPacket{
		op:  binary.BigEndian.Uint16(a[6:]),
		sha: net.HardwareAddr(append([]byte(nil), a[8:14]...)),
		spa: netip.AddrFrom4([4]byte(a[14:18])),
		tha: net.HardwareAddr(append([]byte(nil), a[18:24]...)),
		tpa: netip.AddrFrom4([4]byte(a[24:28])),
	}, true
}

// frame is the Ethernet frame carrying p from src to dst. Pure.
func (p arpPacket) frame(src, dst net.HardwareAddr) []byte {
	f := make([]byte, 0, frameLen)
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1) // Ethernet
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IP)
	f = append(f, 6, 4, byte(p.op>>8), byte(p.op))
	spa, tpa := p.spa.As4(), p.tpa.As4()
	f = append(f, p.sha...)
	f = append(f, spa[:]...)
	f = append(f, p.tha...)
	f = append(f, tpa[:]...)
	return f
}

// replyTo is the answer to request q for an address owned at mac, sent
// straight back to the asker. Pure.
func replyTo(q arpPacket, mac net.HardwareAddr) []byte {
	r := arpPacket{op: arpReply, sha: mac, spa: q.tpa, tha: q.sha, tpa: q.spa}
	return r.frame(mac, q.sha)
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// gratuitous is a broadcast ARP request whose sender and target are both
// ip at mac: neighbours holding an entry for ip update it (Linux does
// with arp_accept 0 too; it only refuses to create entries from it). Pure.
func gratuitous(ip netip.Addr, mac net.HardwareAddr) []byte {
	g := arpPacket{op: arpRequest, sha: mac, spa: ip, tha: net.HardwareAddr{0, 0, 0, 0, 0, 0}, tpa: ip}
	return g.frame(mac, broadcastMAC)
}

// responder answers ARP requests for the addresses in owned, on one
// interface.
type responder struct {
	iface *net.Interface
	fd    int
	// owned is the set of addresses this node answers for, replaced as a
	// whole by the speaker.
	owned atomic.Pointer[map[netip.Addr]bool]
	// answered counts replies sent (for tests and logs).
	answered atomic.Int64
}

// pollInterval bounds how long a read blocks, so that Run notices its
// context ending.
const pollInterval = 200 * time.Millisecond

func newResponder(iface *net.Interface) (*responder, error) {
	if len(iface.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", iface.Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("ARP socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: iface.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ARP socket on %s: %w", iface.Name, err)
	}
	tv := unix.NsecToTimeval(pollInterval.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ARP socket on %s: %w", iface.Name, err)
	}
	r := &responder{iface: iface, fd: fd}
	r.owned.Store(&map[netip.Addr]bool{})
	return r, nil
}

// serve answers requests until stop is closed, then closes the socket.
func (r *responder) serve(stop <-chan struct{}) error {
	defer unix.Close(r.fd)
	buf := make([]byte, 1500)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n, from, err := unix.Recvfrom(r.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ARP socket on %s: %w", r.iface.Name, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own replies and gratuitous ARPs
		}
		q, ok := parseARP(buf[:n])
		if !ok || q.op != arpRequest || q.spa == q.tpa || !(*r.owned.Load())[q.tpa] {
			continue
		}
		if err := r.send(replyTo(q, r.iface.HardwareAddr), q.sha); err == nil {
			r.answered.Add(1)
		}
	}
}

// Announce sends one gratuitous ARP for ip from iface, on a socket of its
// own, for a caller without a responder: kite lb, which adds the address
// to the interface, so that a neighbour that already asked for it (a
// client that saw it in the Service's status a few milliseconds earlier)
// learns it at once instead of at its next ARP retry, a second later.
// IPv6 addresses and interfaces without an Ethernet address are skipped.
func Announce(iface *net.Interface, ip netip.Addr) error {
	if !ip.Is4() || len(iface.HardwareAddr) != 6 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
	}
	defer unix.Close(fd)
	r := responder{iface: iface, fd: fd}
	return r.announce(ip)
}

// announce sends a gratuitous ARP for ip.
func (r *responder) announce(ip netip.Addr) error {
	return r.send(gratuitous(ip, r.iface.HardwareAddr), broadcastMAC)
}

func (r *responder) send(frame []byte, dst net.HardwareAddr) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: r.iface.Index, Halen: 6}
	copy(to.Addr[:], dst)
	if err := unix.Sendto(r.fd, frame, 0, to); err != nil {
		return fmt.Errorf("ARP on %s: %w", r.iface.Name, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
