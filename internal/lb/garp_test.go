package lb

import (
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
)

func TestGARPFrame(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:ac:1e:00:fa")
	got := hex.EncodeToString(garpFrame(mac, netip.MustParseAddr("172.30.0.200")))
	want := "ffffffffffff" + "0242ac1e00fa" + "0806" + // Ethernet: broadcast, from us, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"0242ac1e00fa" + "ac1e00c8" + "000000000000" + "ac1e00c8" // sender = target = the address
	if got != want {
		t.Errorf("frame\n got %s\nwant %s", got, want)
	}
}
