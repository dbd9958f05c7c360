package l2

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"time"
)

// The election is pure: given the Services' ingress addresses, which
// nodes are alive, and which nodes have ready endpoints of each Service,
// every speaker computes the same owner for every address without talking
// to the others. Speakers agree as long as they see the same objects;
// while their views differ (for a watch latency), two nodes may answer
// for one address, and the last gratuitous ARP wins.

// Service is what the election needs of one LoadBalancer Service.
type Service struct {
	// Key is namespace/name, for logs.
	Key string
	// IPs are its IPv4 ingress addresses.
	IPs []netip.Addr
	// Local: externalTrafficPolicy Local, so only nodes with a ready
	// endpoint of it may take its traffic (the others drop it).
	Local bool
	// EndpointNodes are the nodes with a ready endpoint of the Service.
	EndpointNodes map[string]bool
}

// Assign elects, for every address, one node among live (the nodes that
// may announce: Ready, not excluded, heartbeat fresh). For each address
// the candidates are the live nodes, narrowed for every Local Service on
// the address to those with its endpoints; when Services sharing the
// address leave no common node, any live node with an endpoint of one of
// them. An address without candidates is absent from the result: nobody
// answers for it. Pure.
func Assign(services []Service, live []string) map[netip.Addr]string {
	type group struct {
		local   bool
		common  map[string]bool // live nodes fit for every Service on the address
		anyEnds map[string]bool // live nodes with an endpoint of a Local Service
	}
	groups := map[netip.Addr]*group{}
	for _, s := range services {
		for _, ip := range s.IPs {
			g := groups[ip]
			if g == nil {
				g = &group{common: set(live), anyEnds: map[string]bool{}}
				groups[ip] = g
			}
			if !s.Local {
				continue
			}
			g.local = true
			for n := range g.common {
				if !s.EndpointNodes[n] {
					delete(g.common, n)
				}
			}
			for _, n := range live {
				if s.EndpointNodes[n] {
					g.anyEnds[n] = true
				}
			}
		}
	}
	out := map[netip.Addr]string{}
	for ip, g := range groups {
		cands := g.common
		if len(cands) == 0 && g.local {
			cands = g.anyEnds
		}
		if winner := Elect(ip, keys(cands)); winner != "" {
			out[ip] = winner
		}
	}
	return out
}

// Elect picks the owner of ip among nodes by rendezvous (highest random
// weight) hashing: each node scores hash(node, ip) and the highest wins.
// Every speaker gets the same answer from the same set; when the winner
// leaves, only its addresses move, each to its own runner-up, so the
// addresses of a dead node spread over the survivors. "" for no nodes.
// Pure.
func Elect(ip netip.Addr, nodes []string) string {
	best, bestScore := "", uint64(0)
	for _, n := range nodes {
		s := score(n, ip)
		if best == "" || s > bestScore || s == bestScore && n < best {
			best, bestScore = n, s
		}
	}
	return best
}

// score is the node's weight for ip: FNV-1a of both, then a 64-bit
// finalizer (splitmix64's) so that names differing in one character get
// unrelated weights.
func score(node string, ip netip.Addr) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	b, _ := ip.MarshalBinary()
	h.Write(b)
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Heartbeats judges the speakers' Leases by when this process saw them
// renewed, on its own clock, as client-go's leader election does: other
// machines' clocks may be off by more than a lease lasts. A Lease first
// seen counts from its renewTime (capped at now), so a dead node's old
// Lease is not taken as fresh when a speaker starts. Not safe for
// concurrent use.
type Heartbeats struct {
	seen map[string]heartbeat
}

type heartbeat struct {
	renew    time.Time // the Lease's spec.renewTime
	observed time.Time // when this process saw that renewTime first
}

// Observe records node's Lease renewTime as seen at now.
func (h *Heartbeats) Observe(node string, renew, now time.Time) {
	if h.seen == nil {
		h.seen = map[string]heartbeat{}
	}
	old, ok := h.seen[node]
	switch {
	case !ok:
		h.seen[node] = heartbeat{renew: renew, observed: minTime(renew, now)}
	case !renew.Equal(old.renew):
		h.seen[node] = heartbeat{renew: renew, observed: now}
	}
}

// Forget drops a node whose Lease is gone.
func (h *Heartbeats) Forget(node string) { delete(h.seen, node) }

// Fresh reports whether node's Lease was seen renewed within d before now.
func (h *Heartbeats) Fresh(node string, now time.Time, d time.Duration) bool {
	hb, ok := h.seen[node]
	return ok && now.Sub(hb.observed) < d
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
