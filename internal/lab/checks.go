package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PrereqError lists what this machine lacks for a lab cluster, each item
// with what to do about it.
type PrereqError struct {
	Command  string // "kite up" when empty
	Problems []string
}

func (e *PrereqError) Error() string {
	cmd := cmp.Or(e.Command, "kite up")
	if len(e.Problems) == 1 {
		return cmd + " cannot run here: " + e.Problems[0]
	}
	return cmd + " cannot run here:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// IsPrereq reports whether err is a missing prerequisite.
func IsPrereq(err error) bool {
	var p *PrereqError
	return errors.As(err, &p)
}

// commands the lab runs, with the Debian package that has each.
var commands = []struct{ name, pkg, why string }{
	{"ip", "iproute2", "it makes the underlay bridge, the veths and the node network namespaces"},
	{"nsenter", "util-linux", "it runs the server, the agents and node shells inside the nodes"},
	{"unshare", "util-linux", "it makes the nodes' mount namespaces"},
	{"runc", "runc", "the agents run pods with it"},
	{"nft", "nftables", "the agents program Service and masquerade rules with it"},
}

// kernelCheck is run in a throwaway network namespace: each line it
// prints names a link type or feature the kernel refused.
const kernelCheck = `
ip link add kite-chk-br type bridge >/dev/null 2>&1 || echo bridge
ip link add kite-chk-v0 type veth peer name kite-chk-v1 >/dev/null 2>&1 || echo veth
ip link add kite-chk-vx type vxlan id 42 dstport 4789 local 127.0.0.1 >/dev/null 2>&1 || echo vxlan
nft add table ip kite-chk >/dev/null 2>&1 || echo nftables
true`

var kernelFixes = map[string]string{
	"bridge":   "the kernel cannot make a bridge: load it with `modprobe bridge` (CONFIG_BRIDGE)",
	"veth":     "the kernel cannot make veth pairs: load it with `modprobe veth` (CONFIG_VETH)",
	"nftables": "nftables does not work: load it with `modprobe nf_tables` (CONFIG_NF_TABLES)",
}

// checkPrereqs checks, without changing anything, that this machine can
// run a lab: root, the commands, the kernel's namespaces, link types,
// nftables and overlayfs. Warnings are things that work partly.
func checkPrereqs(ctx context.Context, binary string) (warnings []string, err error) {
	var problems []string
	root := os.Geteuid() == 0
	if !root {
		problems = append(problems, "it must run as root (it makes network namespaces, links and mounts): run it with sudo")
	}
	have := map[string]bool{}
	for _, c := range commands {
		if _, err := exec.LookPath(c.name); err != nil {
			problems = append(problems, fmt.Sprintf("%s is missing (%s): install %s, e.g. `apt-get install %s`", c.name, c.why, c.pkg, c.pkg))
			continue
		}
		have[c.name] = true
	}
	if st, err := os.Stat(binary); err != nil || st.Mode()&0o111 == 0 {
		problems = append(problems, fmt.Sprintf("the kite binary %s is missing or not executable", binary))
	}
	if fss, err := os.ReadFile("/proc/filesystems"); err == nil && !strings.Contains(string(fss), "\toverlay\n") {
		problems = append(problems, "the kernel has no overlayfs (nodes and containers need it): load it with `modprobe overlay`")
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		problems = append(problems, "/sys/fs/cgroup is missing: runc needs the cgroup file systems mounted")
	}
	if root && have["ip"] && have["nft"] && have["unshare"] {
		out, err := exec.CommandContext(ctx, "unshare", "--net", "--", "sh", "-c", kernelCheck).CombinedOutput()
		if err != nil {
			problems = append(problems, fmt.Sprintf("cannot make a network namespace (%v: %s): the kernel needs CONFIG_NET_NS", err, strings.TrimSpace(string(out))))
		}
		for _, f := range strings.Fields(string(out)) {
			if fix, ok := kernelFixes[f]; ok {
				problems = append(problems, fix)
			} else if f == "vxlan" {
				warnings = append(warnings, "the kernel cannot make VXLAN devices (`modprobe vxlan`): only the host-gw pod network will work")
			}
		}
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil && root {
		warnings = append(warnings, "br_netfilter is not loaded (`modprobe br_netfilter`): a pod reaching a Service whose endpoint is on its own node may get no answer")
	}
	if len(problems) > 0 {
		return warnings, &PrereqError{Problems: problems}
	}
	return warnings, nil
}

// usedRange is an address range in use on the host, and by what.
type usedRange struct {
	Prefix netip.Prefix
	What   string
}

// hostRanges lists the IPv4 routes (every table) and addresses of the
// current network namespace, except default routes.
func hostRanges() ([]usedRange, error) {
	names := map[int]string{}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	var used []usedRange
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst.IP, r.Dst.Mask)
		if !ok || p.Bits() == 0 {
			continue
		}
		what := "the host's route " + p.String()
		if n := names[r.LinkIndex]; n != "" {
			what += " dev " + n
		}
		used = append(used, usedRange{p, what})
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IP, a.Mask)
		if !ok {
			continue
		}
		used = append(used, usedRange{p.Masked(), fmt.Sprintf("the host's address %s on %s", p, names[a.LinkIndex])})
	}
	return used, nil
}

func prefixOf(ip []byte, mask []byte) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones := 0
	for _, b := range mask {
		for ; b != 0; b <<= 1 {
			ones++
		}
	}
	if !a.Is4() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// otherClusters lists the underlays recorded by other lab clusters in
// DefaultStateRoot, running or not (a cluster that is down keeps its
// underlay for its next `kite up`).
func otherClusters(root, self string) []usedRange {
	var used []usedRange
	dirs, _ := filepath.Glob(filepath.Join(root, "*", recordFile))
	for _, f := range dirs {
		dir := filepath.Dir(f)
		if dir == self {
			continue
		}
		cl, err := loadCluster(dir)
		if err != nil {
			continue
		}
		if p, err := netip.ParsePrefix(cl.Underlay); err == nil {
			used = append(used, usedRange{p, fmt.Sprintf("the underlay of kite cluster %q (%s)", cl.Name, dir)})
		}
	}
	return used
}

// wanted is a range the new cluster needs, by flag.
type wanted struct {
	flag   string
	prefix netip.Prefix
}

// checkOverlaps reports the first range of the cluster that overlaps
// another of its ranges or one in use. Pure.
func checkOverlaps(want []wanted, used []usedRange) error {
	for i, a := range want {
		for _, b := range want[i+1:] {
			if a.prefix.Overlaps(b.prefix) {
				return fmt.Errorf("%s %s overlaps %s %s: choose ranges that do not overlap", a.flag, a.prefix, b.flag, b.prefix)
			}
		}
	}
	for _, a := range want {
		for _, u := range used {
			if a.prefix.Overlaps(u.Prefix) {
				return fmt.Errorf("%s %s overlaps %s: choose another with %s", a.flag, a.prefix, u.What, a.flag)
			}
		}
	}
	return nil
}

// pickUnderlay is the first 172.30.N.0/24 that overlaps nothing in use
// and none of the cluster's other ranges. Pure.
func pickUnderlay(used []usedRange, others ...netip.Prefix) (netip.Prefix, error) {
	for n := 0; n < 256; n++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 30, byte(n), 0}), 24)
		free := true
		for _, u := range used {
			free = free && !p.Overlaps(u.Prefix)
		}
		for _, o := range others {
			free = free && !p.Overlaps(o)
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 172.30.N.0/24 for the underlay: choose one with --underlay")
}
