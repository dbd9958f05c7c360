// Package proxy is kite's service proxy: it turns Services and
// EndpointSlices into kernel rules on one node, the way kube-proxy does, in
// nftables (the default) or iptables (the seed's S16 layout).
//
// The shape is informers → a pure Model (service ports × endpoints, as seen
// from this node) → a backend that renders the Model into the kernel's
// language and applies only the difference from what it applied last, in
// one atomic transaction. The Model and both renderers are pure functions,
// so tests build rules without informers or a kernel; a Dataplane applies
// them (rules, then the conntrack clean-up of stale UDP flows); the Proxier
// feeds a Dataplane from informers, coalescing changes.
//
// README.md states the contract with the rest of the node (tables, chains,
// hook priorities, marks) and how a packet walks the rules.
package proxy
