package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// msgNoNodes is upstream's message when the cluster has no nodes at all.
const msgNoNodes = "no nodes available to schedule pods"

// fitError says why no node fits a pod: how many nodes were considered and
// how many rejected the pod for each reason.
type fitError struct {
	numNodes int
	reasons  map[string]int
}

// Error formats the diagnosis as upstream does:
//
//	0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) had untolerated taint {dedicated: gpu}.
//
// The "count reason" strings are sorted as strings, as upstream sorts them.
// Upstream appends a "preemption: ..." sentence from its preemption
// plugin; kite does not preempt, so there is none.
func (e *fitError) Error() string {
	if e.numNodes == 0 {
		return msgNoNodes
	}
	parts := make([]string, 0, len(e.reasons))
	for reason, n := range e.reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available:", e.numNodes)
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, ", ") + "."
	}
	return msg
}
