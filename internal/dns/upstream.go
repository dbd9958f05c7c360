package dns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Choosing upstreams. The rules, in order (README.md, "Upstreams"):
//
//  1. Config.Upstreams, when set, is taken as given.
//  2. Otherwise the nameservers of Config.ResolvConf. When all of them are
//     loopback addresses (systemd-resolved's stub 127.0.0.53, a local
//     dnsmasq), they are only reachable from the node's own namespace and,
//     from a pod, point at the pod itself: Config.StubResolvConf (systemd's
//     list of the real upstreams) is read instead. Loopback entries mixed
//     with others are dropped for the same reason.
//  3. Never ourselves: an upstream equal to our listen address (or, when
//     we listen on every address, to any local address at our port) is
//     refused. A loop through a Service address is caught at run time by
//     the loop probe (server.go).

// dnsPort is the port of a nameserver in resolv.conf, which has no syntax
// for another.
const dnsPort = "53"

// resolvConfServers is the nameserver addresses of a resolv.conf.
func resolvConfServers(data []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// upstreamSource reads files; tests fake it.
type upstreamSource struct {
	readFile   func(string) ([]byte, error)
	localAddrs func() []netip.Addr
}

var hostSource = upstreamSource{readFile: os.ReadFile, localAddrs: interfaceAddrs}

// upstreams applies the rules above; from names the file(s) used, for the
// log. No upstream is not an error: the zone is still answered, and other
// names get SERVFAIL.
func (src upstreamSource) upstreams(cfg Config) (ups []string, from string, err error) {
	var cands []string
	if len(cfg.Upstreams) > 0 {
		for _, u := range cfg.Upstreams {
			a, err := upstreamAddr(u)
			if err != nil {
				return nil, "", err
			}
			cands = append(cands, a)
		}
		from = "config"
	} else {
		data, err := src.readFile(cfg.ResolvConf)
		if err != nil {
			return nil, "", fmt.Errorf("read resolv.conf %s: %w", cfg.ResolvConf, err)
		}
		servers := resolvConfServers(data)
		from = cfg.ResolvConf
		if len(servers) > 0 && allLoopback(servers) {
			stub, err := src.readFile(cfg.StubResolvConf)
			if err != nil {
				return nil, "", fmt.Errorf("%s lists only the local stub resolver %s, and its upstream list %s cannot be read: %w",
					cfg.ResolvConf, servers[0], cfg.StubResolvConf, err)
			}
			servers, from = resolvConfServers(stub), cfg.StubResolvConf
		} else {
			servers = dropLoopback(servers)
		}
		for _, a := range servers {
			cands = append(cands, net.JoinHostPort(a.String(), dnsPort))
		}
	}
	return src.notSelf(cfg, cands), from, nil
}

// notSelf drops the upstreams that are our own listen address.
func (src upstreamSource) notSelf(cfg Config, cands []string) []string {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return cands
	}
	self := map[netip.AddrPort]bool{}
	if h, err := netip.ParseAddr(host); err == nil && !h.IsUnspecified() {
		if p, err := netip.ParseAddrPort(net.JoinHostPort(h.Unmap().String(), port)); err == nil {
			self[p] = true
		}
	} else {
		for _, a := range src.localAddrs() {
			if p, err := netip.ParseAddrPort(net.JoinHostPort(a.String(), port)); err == nil {
				self[p] = true
			}
		}
	}
	var out []string
	for _, c := range cands {
		if p, err := netip.ParseAddrPort(c); err == nil && self[netip.AddrPortFrom(p.Addr().Unmap(), p.Port())] {
			continue
		}
		out = append(out, c)
	}
	return out
}

// upstreamAddr is an upstream as ip:port (port 53 when left out).
func upstreamAddr(u string) (string, error) {
	if a, err := netip.ParseAddr(u); err == nil {
		return net.JoinHostPort(a.Unmap().String(), dnsPort), nil
	}
	p, err := netip.ParseAddrPort(u)
	if err != nil {
		return "", fmt.Errorf("upstream %q: want an IP address, with or without a port: %w", u, err)
	}
	if p.Port() == 0 {
		return "", errors.New("upstream " + u + ": port 0")
	}
	return netip.AddrPortFrom(p.Addr().Unmap(), p.Port()).String(), nil
}

func allLoopback(as []netip.Addr) bool {
	for _, a := range as {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

func dropLoopback(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
