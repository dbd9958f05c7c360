package lb

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// announce broadcasts a gratuitous ARP request for ip from the interface:
// a neighbour that already asked for the address (a client that saw it in
// the Service's status a few milliseconds before it was added here) learns
// it at once instead of after its next ARP retry, a second later. Linux
// updates an incomplete neighbour entry from it even with arp_accept 0.
func announce(iface *net.Interface, ip netip.Addr) error {
	if !ip.Is4() || len(iface.HardwareAddr) != 6 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
	}
	defer unix.Close(fd)
	broadcast := [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	addr := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: iface.Index, Halen: 6, Addr: broadcast}
	if err := unix.Sendto(fd, garpFrame(iface.HardwareAddr, ip), 0, addr); err != nil {
		return fmt.Errorf("gratuitous ARP for %s on %s: %w", ip, iface.Name, err)
	}
	return nil
}

// garpFrame is an Ethernet broadcast ARP request whose sender and target
// address are both ip. Pure.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // destination: broadcast
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware: Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol: IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, 1) // request
	a := ip.As4()
	f = append(f, mac...)
	f = append(f, a[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, a[:]...)
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
