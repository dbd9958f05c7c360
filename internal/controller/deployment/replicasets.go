package deployment

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// Pure helpers over a Deployment and its ReplicaSets: which is new, which
// are old, how many pods each may have. No API calls here.

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func rsReplicas(rs *appsv1.ReplicaSet) int32 {
	if rs == nil || rs.Spec.Replicas == nil {
		return 0
	}
	return *rs.Spec.Replicas
}

func isRollingUpdate(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType
}

// fenceposts resolves maxSurge (rounded up) and maxUnavailable (rounded
// down) against desired replicas. Both zero would block the rollout, so
// maxUnavailable becomes 1 then.
func fenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	var s, u *intstr.IntOrString
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		s, u = ru.MaxSurge, ru.MaxUnavailable
	}
	zero := intstr.FromInt32(0)
	desired := int(replicas(d))
	sv, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(s, zero), desired, true)
	if err != nil {
		sv = 0 // validation rejects such values
	}
	uv, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(u, zero), desired, false)
	if err != nil {
		uv = 0
	}
	if sv == 0 && uv == 0 {
		uv = 1
	}
	return int32(sv), int32(uv)
}

// maxSurge is how many pods above replicas a rolling update may run.
func maxSurge(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) {
		return 0
	}
	s, _ := fenceposts(d)
	return s
}

// maxUnavailable is how many of replicas may be unavailable during a
// rolling update.
func maxUnavailable(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) || replicas(d) == 0 {
		return 0
	}
	_, u := fenceposts(d)
	return min(u, replicas(d))
}

// byCreation orders ReplicaSets oldest first, then by name.
func byCreation(a, b *appsv1.ReplicaSet) int {
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return cmp.Compare(a.Name, b.Name)
	}
	if a.CreationTimestamp.Before(&b.CreationTimestamp) {
		return -1
	}
	return 1
}

// bySizeOlder: larger first; equal sizes oldest first (scaling down takes
// from old ReplicaSets first).
func bySizeOlder(a, b *appsv1.ReplicaSet) int {
	if c := cmp.Compare(rsReplicas(b), rsReplicas(a)); c != 0 {
		return c
	}
	return byCreation(a, b)
}

// bySizeNewer: larger first; equal sizes newest first (scaling up gives to
// new ReplicaSets first).
func bySizeNewer(a, b *appsv1.ReplicaSet) int {
	if c := cmp.Compare(rsReplicas(b), rsReplicas(a)); c != 0 {
		return c
	}
	return byCreation(b, a)
}

// byRevision: lowest revision first, then oldest.
func byRevision(log klog.Logger) func(a, b *appsv1.ReplicaSet) int {
	return func(a, b *appsv1.ReplicaSet) int {
		ra, err1 := revision(a)
		rb, err2 := revision(b)
		if err1 != nil || err2 != nil || ra == rb {
			return byCreation(a, b)
		}
		return cmp.Compare(ra, rb)
	}
}

// findNewReplicaSet is the oldest ReplicaSet running the Deployment's
// template (there may be several after a hash collision), or nil.
func findNewReplicaSet(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := slices.Clone(rss)
	slices.SortFunc(sorted, byCreation)
	for _, rs := range sorted {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

// oldReplicaSets are the Deployment's ReplicaSets other than the new one.
func oldReplicaSets(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	newRS := findNewReplicaSet(d, rss)
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if newRS == nil || rs.UID != newRS.UID {
			out = append(out, rs)
		}
	}
	return out
}

// active are the ReplicaSets that want pods.
func active(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rsReplicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// Sums over ReplicaSets (nil entries count as nothing).
func sumSpecReplicas(rss []*appsv1.ReplicaSet) int32 {
	return sum(rss, rsReplicas)
}
func sumStatusReplicas(rss []*appsv1.ReplicaSet) int32 {
	return sum(rss, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.Replicas })
}
func sumReady(rss []*appsv1.ReplicaSet) int32 {
	return sum(rss, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.ReadyReplicas })
}
func sumAvailable(rss []*appsv1.ReplicaSet) int32 {
	return sum(rss, func(rs *appsv1.ReplicaSet) int32 { return rs.Status.AvailableReplicas })
}

// sumTerminating is nil when no ReplicaSet reports terminating replicas.
func sumTerminating(rss []*appsv1.ReplicaSet) *int32 {
	var total *int32
	for _, rs := range rss {
		if rs == nil || rs.Status.TerminatingReplicas == nil {
			continue
		}
		if total == nil {
			total = new(int32)
		}
		*total += *rs.Status.TerminatingReplicas
	}
	return total
}

func sum(rss []*appsv1.ReplicaSet, f func(*appsv1.ReplicaSet) int32) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += f(rs)
		}
	}
	return n
}

// activeOrLatest is the one ReplicaSet that wants pods, or if none does,
// the new one or else the newest old one; nil if several want pods.
func activeOrLatest(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(olds) == 0 {
		return nil
	}
	sorted := slices.Clone(olds)
	slices.SortFunc(sorted, func(a, b *appsv1.ReplicaSet) int { return byCreation(b, a) })
	all := sorted
	if newRS != nil {
		all = append(slices.Clone(sorted), newRS)
	}
	switch act := active(all); len(act) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return sorted[0]
	case 1:
		return act[0]
	}
	return nil
}

// isSaturated: the ReplicaSet has exactly the Deployment's replicas, all
// available, sized for the Deployment's current replica count.
func isSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, err := strconv.Atoi(rs.Annotations[DesiredReplicasAnnotation])
	if err != nil {
		return false
	}
	return rsReplicas(rs) == replicas(d) && int32(desired) == replicas(d) && rs.Status.AvailableReplicas == replicas(d)
}

// newRSReplicas is what the new ReplicaSet may grow to now: under
// RollingUpdate, up to replicas+maxSurge pods in all and never past
// replicas; under Recreate, replicas.
func newRSReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	if !isRollingUpdate(d) {
		return replicas(d)
	}
	total := sumSpecReplicas(all)
	limit := replicas(d) + maxSurge(d)
	if total >= limit {
		return rsReplicas(newRS)
	}
	return rsReplicas(newRS) + min(limit-total, replicas(d)-rsReplicas(newRS))
}

// proportion is how many replicas to add to (or, negative, remove from)
// the ReplicaSet when the Deployment is scaled mid-rollout: its share of
// toAdd in proportion to its size, bounded by what remains to add (toAdd
// minus added so far).
func proportion(log klog.Logger, rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if rs == nil || rsReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	share := fraction(log, rs, d)
	allowed := toAdd - added
	if toAdd > 0 {
		return min(share, allowed)
	}
	return max(share, allowed)
}

// fraction is the ReplicaSet's size rescaled from the Deployment size it
// was made for (its max-replicas annotation) to the current one, minus its
// size: the change it should get.
func fraction(log klog.Logger, rs *appsv1.ReplicaSet, d *appsv1.Deployment) int32 {
	if replicas(d) == 0 {
		return -rsReplicas(rs)
	}
	target := replicas(d) + maxSurge(d)
	base, ok := int32Annotation(log, rs, MaxReplicasAnnotation)
	if !ok || base == 0 {
		// Without the annotation, assume the current size: the min/max
		// bounds in proportion still keep the total right.
		base = d.Status.Replicas
	}
	if base == 0 {
		return 0
	}
	scaled := float64(rsReplicas(rs)*target) / float64(base)
	return int32(math.Round(scaled)) - rsReplicas(rs)
}
