package podnet

import (
	"errors"
	"fmt"
	"net/netip"
)

// dataplane is the kernel as the reconcile sees it. Listings hold only
// what podnet owns: routes of RouteProtocol in the main table, permanent
// neighbour and FDB entries on the VXLAN device. The netlink
// implementation is kernel.go; tests use a fake.
type dataplane interface {
	// Routes lists podnet's IPv4 routes, and the destinations of every
	// other route in the main table (which podnet must not replace).
	Routes() (own []Route, foreign []netip.Prefix, err error)
	// ReplaceRoute adds r, or replaces podnet's route to r.Dst.
	ReplaceRoute(r Route) error
	DeleteRoute(r Route) error
	// Unreachable says why gw is not directly connected ("" when it is):
	// host-gw needs the remote node on a link of this node.
	Unreachable(gw netip.Addr) (string, error)

	// EnsureVXLAN creates the VXLAN device, or adopts the one there,
	// making it match spec (recreating it if its VNI, port or local
	// address differ), and returns its MAC and MTU.
	EnsureVXLAN(spec vxlanSpec) (vtep, []string, error)
	// DeleteVXLAN removes the device if it exists.
	DeleteVXLAN() (bool, error)
	// Neighs and FDB list the device's entries; none without the device.
	Neighs() ([]Neigh, error)
	SetNeigh(n Neigh) error
	DeleteNeigh(n Neigh) error
	FDB() ([]FDB, error)
	SetFDB(f FDB) error
	DeleteFDB(f FDB) error
}

// vxlanSpec is the VXLAN device a node needs.
type vxlanSpec struct {
	Name  string
	ID    int
	Port  int
	Local netip.Addr   // underlay source address: the node IP
	Addr  netip.Prefix // the device's own address; invalid: none yet
	MTU   int          // 0: the underlay link's MTU - VXLANOverhead
}

// vtep is what a VXLAN device ended up with.
type vtep struct {
	MAC string
	MTU int
}

// problem is why a node's pods cannot be reached from here.
type problem struct {
	Reason  string // an Event reason; "" for a skipped node (logged only)
	Message string
}

// result is what one reconcile did and found.
type result struct {
	Changes  []string           // what was changed, for logs
	Problems map[string]problem // by node name
	VTEP     vtep               // this node's VTEP (VXLAN mode)
}

func (r *result) changed(format string, args ...any) {
	r.Changes = append(r.Changes, fmt.Sprintf(format, args...))
}

func (r *result) problem(node, reason, format string, args ...any) {
	r.Problems[node] = problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// reconcile makes the kernel match the plan: list what is, delete what is
// wrong, add what is missing. Entries are replaced in place, never deleted
// and re-added, so a restart over a correct table changes nothing. A node
// whose entries cannot be programmed gets a problem and the others go on;
// the error (failures the kernel reported) asks for a retry.
func reconcile(dp dataplane, p Plan, spec vxlanSpec) (result, error) {
	res := result{Problems: map[string]problem{}}
	for _, s := range p.Skipped {
		res.Problems[s.Node] = problem{Message: s.Reason}
	}
	if p.Mode != ModeVXLAN {
		err := syncRoutes(dp, p.Routes, &res)
		// Left from an earlier VXLAN run: the device is podnet's, by name.
		if gone, derr := dp.DeleteVXLAN(); derr != nil {
			err = errors.Join(err, derr)
		} else if gone {
			res.changed("delete VXLAN device %s", spec.Name)
		}
		return res, err
	}
	v, changes, err := dp.EnsureVXLAN(spec)
	res.Changes = append(res.Changes, changes...)
	if err != nil {
		return res, fmt.Errorf("VXLAN device %s: %w", spec.Name, err)
	}
	res.VTEP = v
	// Forwarding and neighbour entries first, so a new route never sends
	// a packet the device cannot deliver.
	return res, errors.Join(
		syncFDB(dp, p.FDB, &res),
		syncNeighs(dp, p.Neighs, &res),
		syncRoutes(dp, p.Routes, &res))
}

// syncRoutes makes podnet's routes exactly want. A destination some other
// route already holds is left to it and reported.
func syncRoutes(dp dataplane, want []Route, res *result) error {
	own, foreign, err := dp.Routes()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	wanted := map[netip.Prefix]Route{}
	for _, r := range want {
		wanted[r.Dst] = r
	}
	var errs []error
	have := map[netip.Prefix]Route{}
	for _, r := range own {
		_, ok := wanted[r.Dst]
		if _, dup := have[r.Dst]; ok && !dup {
			have[r.Dst] = r // right, or replaced in place below
			continue
		}
		if err := dp.DeleteRoute(r); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
			continue
		}
		res.changed("delete route %s", r)
	}
	taken := map[netip.Prefix]bool{}
	for _, d := range foreign {
		taken[d] = true
	}
	for _, w := range want {
		h, ok := have[w.Dst]
		if ok && h.same(w) {
			continue
		}
		if !ok && taken[w.Dst] {
			res.problem(w.Node, EventRouteConflict, "a route to node %s's podCIDR %s exists that kite does not own (not proto %d); kite leaves it alone", w.Node, w.Dst, RouteProtocol)
			continue
		}
		if !w.Encap {
			why, err := dp.Unreachable(w.Gw)
			if err != nil {
				errs = append(errs, fmt.Errorf("route to %s: %w", w.Gw, err))
				continue
			}
			if why != "" {
				res.problem(w.Node, EventHostGWUnreachable, "host-gw: node %s (%s) %s; host-gw needs every node on one L2 segment: use the vxlan pod network", w.Node, w.Gw, why)
				continue
			}
		}
		if err := dp.ReplaceRoute(w); err != nil {
			res.problem(w.Node, EventRouteFailed, "route %s: %v", w, err)
			errs = append(errs, fmt.Errorf("route %s for node %s: %w", w, w.Node, err))
			continue
		}
		if ok {
			res.changed("replace route %s (was %s)", w, h)
		} else {
			res.changed("add route %s", w)
		}
	}
	return errors.Join(errs...)
}

// syncNeighs makes the device's permanent neighbours exactly want.
func syncNeighs(dp dataplane, want []Neigh, res *result) error {
	have, err := dp.Neighs()
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	wanted := map[netip.Addr]Neigh{}
	for _, n := range want {
		wanted[n.IP] = n
	}
	var errs []error
	current := map[netip.Addr]string{}
	for _, n := range have {
		if _, ok := wanted[n.IP]; ok {
			current[n.IP] = n.MAC // right, or replaced below
			continue
		}
		if err := dp.DeleteNeigh(n); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", n, err))
			continue
		}
		res.changed("delete %s", n)
	}
	for _, w := range want {
		if current[w.IP] == w.MAC {
			continue
		}
		if err := dp.SetNeigh(w); err != nil {
			res.problem(w.Node, EventRouteFailed, "%s: %v", w, err)
			errs = append(errs, fmt.Errorf("%s for node %s: %w", w, w.Node, err))
			continue
		}
		res.changed("set %s", w)
	}
	return errors.Join(errs...)
}

// syncFDB makes the device's permanent forwarding entries exactly want:
// one destination per MAC. A MAC's only entry pointing elsewhere is
// replaced in place (the remote node's IP changed).
func syncFDB(dp dataplane, want []FDB, res *result) error {
	have, err := dp.FDB()
	if err != nil {
		return fmt.Errorf("list FDB: %w", err)
	}
	wanted := map[string]FDB{}
	for _, f := range want {
		wanted[f.MAC] = f
	}
	perMAC := map[string]int{}
	for _, f := range have {
		perMAC[f.MAC]++
	}
	var errs []error
	right := map[string]bool{}
	for _, f := range have {
		w, ok := wanted[f.MAC]
		switch {
		case ok && w.Dst == f.Dst && !right[f.MAC]:
			right[f.MAC] = true
			continue
		case ok && perMAC[f.MAC] == 1:
			continue // replaced below
		}
		if err := dp.DeleteFDB(f); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", f, err))
			continue
		}
		res.changed("delete %s", f)
	}
	for _, w := range want {
		if right[w.MAC] {
			continue
		}
		if err := dp.SetFDB(w); err != nil {
			res.problem(w.Node, EventRouteFailed, "%s: %v", w, err)
			errs = append(errs, fmt.Errorf("%s for node %s: %w", w, w.Node, err))
			continue
		}
		res.changed("set %s", w)
	}
	return errors.Join(errs...)
}
