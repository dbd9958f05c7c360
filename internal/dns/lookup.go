package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Label and name constants of the zone's tree.
const (
	svcLabel        = "svc"
	podLabel        = "pod"
	versionLabel    = "dns-version"
	reverseV4Suffix = "in-addr.arpa."
	reverseV6Suffix = "ip6.arpa."
	// soaSerial is constant: the zone is never transferred, and a serial
	// that changes per Service update would only make answers differ.
	soaSerial = 1
	// maxCNAMEChain bounds following ExternalNames that point into the
	// zone (one pointing at another, or at itself).
	maxCNAMEChain = 8
)

// zone answers the cluster zone from a Store. It holds no state of its
// own; lookup is a pure function of the store's contents and the question.
type zone struct {
	origin string // "cluster.local."
	ttl    uint32
}

func newZone(name string, ttlSeconds uint32) *zone {
	return &zone{origin: dns.Fqdn(strings.ToLower(name)), ttl: ttlSeconds}
}

// result is the zone's answer to one question.
type result struct {
	Rcode             int
	Answer, Ns, Extra []dns.RR
	// Forward: the name is not ours (outside the zone, or an address the
	// cluster does not own): the server asks the upstreams.
	Forward bool
	// Chase is a CNAME target outside the zone, to be resolved upstream
	// and appended to Answer (an ExternalName's target).
	Chase string
}

// lookup answers one question from the store.
func (z *zone) lookup(s *Store, q dns.Question) result {
	name := strings.ToLower(q.Name)
	rel, ours := z.relative(name)
	if !ours {
		if strings.HasSuffix(name, reverseV4Suffix) || strings.HasSuffix(name, reverseV6Suffix) {
			return z.reverse(s, q, name)
		}
		return result{Forward: true}
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return result{Rcode: dns.RcodeRefused}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()

	var res result
	owner := q.Name
	for range maxCNAMEChain {
		rrs, extra, exists := z.records(s, rel, owner)
		if !exists {
			res.Rcode = dns.RcodeNameError
			res.Ns = []dns.RR{z.soa()}
			return res
		}
		if cname, ok := onlyCNAME(rrs); ok && q.Qtype != dns.TypeCNAME {
			res.Answer = append(res.Answer, cname)
			target := cname.Target
			if rel, ours = z.relative(target); !ours {
				res.Chase = target
				return res
			}
			owner = target
			continue
		}
		res.Answer = append(res.Answer, filter(rrs, q.Qtype)...)
		if len(res.Answer) == 0 {
			res.Ns = []dns.RR{z.soa()} // NODATA: the name exists with other types
		} else if q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY {
			res.Extra = extra
		}
		return res
	}
	res.Rcode = dns.RcodeServerFailure // a CNAME loop inside the zone
	return res
}

// relative is name (lower case, fully qualified) relative to the zone,
// "" for the apex; ours is false outside the zone.
func (z *zone) relative(name string) (rel string, ours bool) {
	if name == z.origin {
		return "", true
	}
	if rel, ok := strings.CutSuffix(name, "."+z.origin); ok {
		return rel, true
	}
	return "", false
}

// records are all records at a name of the zone (rel, relative and lower
// case), with owner as written in the question; extra holds the addresses
// of SRV targets. exists is false for names that do not exist (NXDOMAIN).
// Called with the store's read lock held.
func (z *zone) records(s *Store, rel, owner string) (rrs, extra []dns.RR, exists bool) {
	if rel == "" {
		return []dns.RR{z.soaAt(owner)}, nil, true
	}
	labels := strings.Split(rel, ".")
	switch n := len(labels); {
	case rel == versionLabel:
		return []dns.RR{&dns.TXT{Hdr: z.hdr(owner, dns.TypeTXT), Txt: []string{SchemaVersion}}}, nil, true
	case labels[n-1] == svcLabel:
		return z.serviceRecords(s, labels[:n-1], owner)
	case labels[n-1] == podLabel:
		return z.podRecords(labels[:n-1], owner)
	}
	return nil, nil, false
}

// serviceRecords answers names under svc.<zone>: labels is what precedes
// "svc", e.g. [_http _tcp kuard default].
func (z *zone) serviceRecords(s *Store, labels []string, owner string) (rrs, extra []dns.RR, exists bool) {
	n := len(labels)
	switch n {
	case 0: // svc.<zone>: an empty non-terminal
		return nil, nil, true
	case 1: // <ns>.svc.<zone>: exists while the namespace has a Service
		for _, e := range s.services[labels[0]] {
			if e.svc != nil {
				return nil, nil, true
			}
		}
		return nil, nil, false
	}
	e := s.services[labels[n-1]][labels[n-2]]
	if e == nil || e.svc == nil {
		return nil, nil, false
	}
	svc := e.svc
	// A headless Service without ready endpoints has no name at all
	// (specification 2.4.1: NXDOMAIN).
	if svc.Kind == kindHeadless && len(e.ready) == 0 {
		return nil, nil, false
	}
	if svc.Kind == kindExternalName {
		if n > 2 {
			return nil, nil, false
		}
		return []dns.RR{&dns.CNAME{Hdr: z.hdr(owner, dns.TypeCNAME), Target: svc.ExternalName}}, nil, true
	}
	switch n {
	case 2: // <svc>.<ns>.svc.<zone>
		if svc.Kind == kindClusterIP {
			return z.addrRecords(owner, svc.ClusterIPs), nil, true
		}
		addrs := make([]netip.Addr, len(e.ready))
		for i, ep := range e.ready {
			addrs[i] = ep.Addr
		}
		return z.addrRecords(owner, addrs), nil, true
	case 3: // <endpoint>.<svc>.<ns>.svc.<zone>, or _<proto>.<svc>...
		if addrs, ok := e.byHost[labels[0]]; ok {
			return z.addrRecords(owner, addrs), nil, true
		}
		for _, p := range svc.Ports {
			if "_"+p.Protocol == labels[0] {
				return nil, nil, true // an empty non-terminal above SRV names
			}
		}
	case 4: // _<port>._<proto>.<svc>.<ns>.svc.<zone>
		base := labels[2] + "." + labels[3] + "." + svcLabel + "." + z.origin
		for _, p := range svc.Ports {
			if "_"+p.Name != labels[0] || "_"+p.Protocol != labels[1] {
				continue
			}
			if svc.Kind == kindClusterIP {
				rrs = append(rrs, z.srv(owner, p.Port, base))
				if extra == nil {
					extra = z.addrRecords(base, svc.ClusterIPs)
				}
				continue
			}
			for _, l := range sortedKeys(e.byHost) {
				rrs = append(rrs, z.srv(owner, p.Port, l+"."+base))
				if !exists {
					extra = append(extra, z.addrRecords(l+"."+base, e.byHost[l])...)
				}
			}
			exists = true
		}
		return rrs, extra, exists || len(rrs) > 0
	}
	return nil, nil, false
}

// podRecords answers <a-b-c-d>.<ns>.pod.<zone> with the address written
// in the name, for any namespace, as CoreDNS's "pods insecure" mode does:
// it needs no Pod informer, and the name tells nothing its asker did not
// already know.
func (z *zone) podRecords(labels []string, owner string) (rrs, extra []dns.RR, exists bool) {
	switch len(labels) {
	case 0, 1: // pod.<zone> and <ns>.pod.<zone>: empty non-terminals
		return nil, nil, true
	case 2:
		if a, ok := undashed(labels[0]); ok {
			return z.addrRecords(owner, []netip.Addr{a}), nil, true
		}
	}
	return nil, nil, false
}

// reverse answers PTR for the cluster's own addresses and forwards the
// rest of in-addr.arpa and ip6.arpa.
func (z *zone) reverse(s *Store, q dns.Question, name string) result {
	a, ok := reverseAddr(name)
	if !ok {
		return result{Forward: true}
	}
	s.mu.RLock()
	refs := s.ptr[a]
	var answer []dns.RR
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		for _, r := range refs {
			target := r.name + "." + r.namespace + "." + svcLabel + "." + z.origin
			if r.label != "" {
				target = r.label + "." + target
			}
			answer = append(answer, &dns.PTR{Hdr: z.hdr(q.Name, dns.TypePTR), Ptr: target})
		}
	}
	s.mu.RUnlock()
	switch {
	case len(refs) == 0:
		return result{Forward: true}
	case len(answer) == 0:
		apex := reverseV4Suffix
		if a.Is6() {
			apex = reverseV6Suffix
		}
		return result{Ns: []dns.RR{z.soaAt(apex)}}
	}
	return result{Answer: answer}
}

// reverseAddr parses a full reverse name (d.c.b.a.in-addr.arpa., or 32
// nibbles under ip6.arpa.).
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, "."+reverseV4Suffix); ok {
		l := strings.Split(rest, ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(l[3] + "." + l[2] + "." + l[1] + "." + l[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, "."+reverseV6Suffix); ok {
		l := strings.Split(rest, ".")
		if len(l) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, nib := range l {
			if len(nib) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", nib[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // the first label is the last nibble
			b[pos/2] |= byte(v) << (4 * (1 - pos%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func (z *zone) hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

func (z *zone) addrRecords(owner string, addrs []netip.Addr) []dns.RR {
	rrs := make([]dns.RR, 0, len(addrs))
	for _, a := range addrs {
		if a.Is4() {
			rrs = append(rrs, &dns.A{Hdr: z.hdr(owner, dns.TypeA), A: a.AsSlice()})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: z.hdr(owner, dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// srv is an SRV record; priority 0 and equal weights make every target
// equally likely (RFC 2782), which is what a Service means.
func (z *zone) srv(owner string, port uint16, target string) dns.RR {
	return &dns.SRV{Hdr: z.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: port, Target: target}
}

func (z *zone) soa() dns.RR { return z.soaAt(z.origin) }

// soaAt is the zone's SOA with another owner (the apex as asked, or a
// reverse zone we answer for). Its minimum, the negative-caching TTL, is
// the record TTL: a name that appears is found as soon as a record would
// have expired.
func (z *zone) soaAt(owner string) dns.RR {
	return &dns.SOA{
		Hdr:     z.hdr(owner, dns.TypeSOA),
		Ns:      "ns.dns." + z.origin,
		Mbox:    "hostmaster." + z.origin,
		Serial:  soaSerial,
		Refresh: 7200, Retry: 1800, Expire: 86400,
		Minttl: z.ttl,
	}
}

// onlyCNAME reports whether a name's records are a CNAME (which then is
// its only record).
func onlyCNAME(rrs []dns.RR) (*dns.CNAME, bool) {
	if len(rrs) == 1 {
		c, ok := rrs[0].(*dns.CNAME)
		return c, ok
	}
	return nil, false
}

func filter(rrs []dns.RR, qtype uint16) []dns.RR {
	if qtype == dns.TypeANY {
		return rrs
	}
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}
