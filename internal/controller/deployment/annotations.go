package deployment

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/klog/v2"
)

// Annotations the controller keeps on Deployments and their ReplicaSets.
const (
	// RevisionAnnotation numbers the templates a Deployment has run: on a
	// ReplicaSet, the revision it last was; on the Deployment, the current
	// one. kubectl rollout history and undo read it.
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// RevisionHistoryAnnotation lists, on a ReplicaSet brought back by a
	// rollback, the revisions it had before.
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	// DesiredReplicasAnnotation is the Deployment's replicas when it last
	// sized the ReplicaSet; a difference means the Deployment was scaled.
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	// MaxReplicasAnnotation is replicas + maxSurge at that time, the base
	// of proportional scaling.
	MaxReplicasAnnotation = "deployment.kubernetes.io/max-replicas"

	lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"
	rollbackToAnnotation  = "deprecated.deployment.rollback.to"

	// maxRevisionHistoryChars bounds RevisionHistoryAnnotation.
	maxRevisionHistoryChars = 2000
)

// notCopied are the Deployment annotations a ReplicaSet does not inherit.
var notCopied = map[string]bool{
	lastAppliedAnnotation:     true,
	RevisionAnnotation:        true,
	RevisionHistoryAnnotation: true,
	DesiredReplicasAnnotation: true,
	MaxReplicasAnnotation:     true,
	rollbackToAnnotation:      true,
}

// revision is the ReplicaSet's revision number (0 if it has none).
func revision(rs *appsv1.ReplicaSet) (int64, error) {
	v, ok := rs.Annotations[RevisionAnnotation]
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

// maxRevision is the highest revision among the ReplicaSets.
func maxRevision(log klog.Logger, rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		v, err := revision(rs)
		if err != nil {
			log.V(4).Info("Ignoring a bad revision annotation", "replicaSet", klog.KObj(rs), "err", err)
			continue
		}
		m = max(m, v)
	}
	return m
}

// copyDeploymentAnnotations copies the Deployment's own annotations onto
// the ReplicaSet; it reports whether anything changed.
func copyDeploymentAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	for k, v := range d.Annotations {
		if notCopied[k] {
			continue
		}
		if cur, ok := rs.Annotations[k]; ok && cur == v {
			continue
		}
		if rs.Annotations == nil {
			rs.Annotations = map[string]string{}
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// setNewReplicaSetAnnotations prepares the annotations of the Deployment's
// new ReplicaSet: the Deployment's own, the revision newRevision (never
// lowered; a raised one is remembered in the revision history — that is a
// rollback to this ReplicaSet), and for a ReplicaSet being created, the
// replica annotations. It reports whether anything changed.
func setNewReplicaSetAnnotations(log klog.Logger, d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := copyDeploymentAnnotations(d, rs)
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	oldRevision, had := rs.Annotations[RevisionAnnotation]
	oldN, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil {
		if oldRevision != "" {
			log.Info("Bad revision annotation on the new ReplicaSet; leaving it", "replicaSet", klog.KObj(rs), "revision", oldRevision)
			return false
		}
		oldN = 0
	}
	newN, err := strconv.ParseInt(newRevision, 10, 64)
	if err != nil {
		return false
	}
	if oldN < newN {
		rs.Annotations[RevisionAnnotation] = newRevision
		changed = true
		if had {
			appendRevisionHistory(log, rs, oldRevision)
		}
	}
	if !exists && setReplicasAnnotations(rs, replicas(d), replicas(d)+maxSurge(d)) {
		changed = true
	}
	return changed
}

// appendRevisionHistory adds old to the ReplicaSet's revision history,
// dropping the oldest entries to stay within maxRevisionHistoryChars.
func appendRevisionHistory(log klog.Logger, rs *appsv1.ReplicaSet, old string) {
	history := rs.Annotations[RevisionHistoryAnnotation]
	if history == "" {
		rs.Annotations[RevisionHistoryAnnotation] = old
		return
	}
	entries := strings.Split(history, ",")
	total := len(history) + len(old) + 1
	start := 0
	for total > maxRevisionHistoryChars && start < len(entries) {
		total -= len(entries[start]) + 1
		start++
	}
	if total > maxRevisionHistoryChars {
		log.Info("Revision history too long; not recording", "replicaSet", klog.KObj(rs), "revision", old)
		return
	}
	rs.Annotations[RevisionHistoryAnnotation] = strings.Join(append(entries[start:], old), ",")
}

// setDeploymentRevision sets the Deployment's revision annotation; it
// reports whether it changed.
func setDeploymentRevision(d *appsv1.Deployment, rev string) bool {
	if d.Annotations[RevisionAnnotation] == rev {
		return false
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = rev
	return true
}

// setReplicasAnnotations records desired and max replicas on the
// ReplicaSet; it reports whether they changed.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false
	}
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[DesiredReplicasAnnotation] = strconv.Itoa(int(desired))
	rs.Annotations[MaxReplicasAnnotation] = strconv.Itoa(int(maxReplicas))
	return true
}

func replicasAnnotationsNeedUpdate(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	return rs.Annotations[DesiredReplicasAnnotation] != strconv.Itoa(int(desired)) ||
		rs.Annotations[MaxReplicasAnnotation] != strconv.Itoa(int(maxReplicas))
}

// int32Annotation reads an int32 annotation of the ReplicaSet.
func int32Annotation(log klog.Logger, rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		log.V(2).Info("Bad annotation", "replicaSet", klog.KObj(rs), "annotation", key, "value", v)
		return 0, false
	}
	return int32(n), true
}
