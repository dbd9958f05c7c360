// Package dns is kite's cluster DNS: it answers the Kubernetes
// DNS-Based Service Discovery specification for one cluster zone and
// forwards every other name to the node's resolvers.
//
// The design follows the shape of CoreDNS's kubernetes plugin, in three
// layers that can be tested apart:
//
//   - records.go turns Services and EndpointSlices into slim records
//     (names, addresses, ports) and store.go indexes them; no API object is
//     kept, so memory grows with what DNS needs, not with object size;
//   - lookup.go is a pure function from a question to an answer over the
//     store: tests call it directly with tables of (name, type) → (rcode,
//     zone-file records);
//   - server.go is a thin miekg/dns wrapper (UDP and TCP, EDNS0,
//     truncation) that hands names outside the zone to forward.go.
//
// README.md states the contract: what is answered, from which objects, on
// which ports, and how upstreams are chosen without ever looping.
package dns
