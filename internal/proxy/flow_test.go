package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// flowCase: a first packet and every way it may end.
type flowCase struct {
	scenario string
	what     string
	p        tracePacket
	// want lists the ends as "accept <endpoint> masq=<bool>", "reject",
	// "drop", or "accept  masq=false" for untouched traffic.
	want []string
}

var podA = netip.MustParseAddr("10.244.1.2")

func tcp(src, dst string, dport uint16) tracePacket {
	return tracePacket{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), proto: "tcp", dport: dport, iif: "eth0"}
}

func fromNode(p tracePacket) tracePacket { p.fromNode, p.iif = true, ""; return p }

func ends(in []traceEnd) []string {
	var out []string
	for _, e := range in {
		if e.verdict != "accept" {
			out = append(out, e.verdict)
			continue
		}
		out = append(out, fmt.Sprintf("accept %s masq=%v", e.endpoint, e.masq))
	}
	slices.Sort(out)
	return out
}

func TestPacketFlowNFT(t *testing.T) {
	for _, c := range []flowCase{
		{"clusterip", "SYN from pod A to ClusterIP:80 ends at one of the endpoints, masqueraded: no",
			tcp("10.244.1.2", "10.96.0.20", 80),
			[]string{"accept 10.244.1.5:8080 masq=false", "accept 10.244.2.5:8080 masq=false", "accept 10.244.2.6:8080 masq=false"}},
		{"clusterip", "from the node itself: masqueraded (not from the pod network)",
			fromNode(tcp("192.168.50.1", "10.96.0.20", 80)),
			[]string{"accept 10.244.1.5:8080 masq=true", "accept 10.244.2.5:8080 masq=true", "accept 10.244.2.6:8080 masq=true"}},
		{"clusterip", "hairpin: an endpoint landing on itself is masqueraded",
			tcp("10.244.1.5", "10.96.0.20", 80),
			[]string{"accept 10.244.1.5:8080 masq=true", "accept 10.244.2.5:8080 masq=false", "accept 10.244.2.6:8080 masq=false"}},
		{"clusterip", "another port of the ClusterIP is not ours",
			tcp("10.244.1.2", "10.96.0.20", 81), []string{"accept  masq=false"}},
		{"nodeport-lb-externalip", "NodePort from outside, policy Cluster: masqueraded",
			tcp("192.168.70.5", "192.168.50.1", 30361),
			[]string{"accept 10.244.1.7:8080 masq=true", "accept 10.244.2.7:8080 masq=true"}},
		{"nodeport-lb-externalip", "NodePort on localhost from the node",
			fromNode(tcp("127.0.0.1", "127.0.0.1", 30361)),
			[]string{"accept 10.244.1.7:8080 masq=true", "accept 10.244.2.7:8080 masq=true"}},
		{"nodeport-lb-externalip", "a neighbour addressing 127.0.0.1 is dropped (CVE-2020-8558)",
			tcp("192.168.70.5", "127.0.0.1", 30361), []string{"drop"}},
		{"nodeport-lb-externalip", "load-balancer IP",
			tcp("192.168.70.5", "192.168.60.10", 80),
			[]string{"accept 10.244.1.7:8080 masq=true", "accept 10.244.2.7:8080 masq=true"}},
		{"nodeport-lb-externalip", "external IP",
			tcp("192.168.70.5", "192.168.60.20", 80),
			[]string{"accept 10.244.1.7:8080 masq=true", "accept 10.244.2.7:8080 masq=true"}},
		{"external-local", "LB IP, policy Local: local endpoint only, client IP kept",
			tcp("192.168.70.5", "192.168.60.40", 80), []string{"accept 10.244.1.8:8080 masq=false"}},
		{"external-local", "NodePort, policy Local",
			tcp("192.168.70.5", "192.168.50.1", 30400), []string{"accept 10.244.1.8:8080 masq=false"}},
		{"external-local", "a pod to the LB IP goes cluster-wide",
			tcp("10.244.1.2", "192.168.60.40", 80),
			[]string{"accept 10.244.1.8:8080 masq=false", "accept 10.244.2.8:8080 masq=false"}},
		{"external-local", "the node to its localhost NodePort goes cluster-wide, masqueraded",
			fromNode(tcp("127.0.0.1", "127.0.0.1", 30400)),
			[]string{"accept 10.244.1.8:8080 masq=true", "accept 10.244.2.8:8080 masq=true"}},
		{"no-endpoints", "ClusterIP without endpoints: rejected",
			tcp("10.244.1.2", "10.96.0.50", 80), []string{"reject"}},
		{"no-endpoints", "from the node: rejected",
			fromNode(tcp("192.168.50.1", "10.96.0.50", 80)), []string{"reject"}},
		{"no-endpoints", "NodePort without endpoints: rejected",
			tcp("192.168.70.5", "192.168.50.1", 30500), []string{"reject"}},
		{"internal-local", "internalTrafficPolicy Local without a local endpoint: dropped",
			tcp("10.244.1.2", "10.96.0.70", 80), []string{"drop"}},
		{"terminating", "no ready endpoint: the serving terminating one",
			tcp("10.244.1.2", "10.96.0.80", 80), []string{"accept 10.244.1.13:8080 masq=false"}},
		{"dns-udp-tcp", "UDP 53 to its target port",
			tracePacket{src: podA, dst: netip.MustParseAddr("10.96.0.10"), proto: "udp", dport: 53, iif: "eth0"},
			[]string{"accept 10.244.1.11:5353 masq=false", "accept 10.244.2.11:5353 masq=false"}},
		{"dns-udp-tcp", "TCP 53 to its own target port",
			tcp("10.244.1.2", "10.96.0.10", 53),
			[]string{"accept 10.244.1.11:5354 masq=false", "accept 10.244.2.11:5354 masq=false"}},
		{"affinity", "affinity: first packet still spread",
			tcp("10.244.1.2", "10.96.0.60", 80),
			[]string{"accept 10.244.1.10:8080 masq=false", "accept 10.244.2.10:8080 masq=false"}},
	} {
		t.Run(c.scenario+"/"+c.what, func(t *testing.T) {
			tr := newNFTTracer(t, scenarioNamed(c.scenario).model(), testConfig(ModeNFTables))
			if got := ends(tr.trace(c.p)); !slices.Equal(got, c.want) {
				t.Errorf("%s:\n got %s\nwant %s", c.what, strings.Join(got, "; "), strings.Join(c.want, "; "))
			}
		})
	}
}
