package agent

import (
	"fmt"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kite/internal/runtime"
)

// Labels the agent stores with sandboxes and containers. The runtime keeps
// them on disk, and they are all the agent needs to adopt what runs after
// a restart: nothing about a pod's processes lives only in memory.
const (
	labelPodUID       = "kite.dev/pod-uid"
	labelPodName      = "kite.dev/pod-name"
	labelPodNamespace = "kite.dev/pod-namespace"
	// labelContainer is the container's name in the pod spec.
	labelContainer = "kite.dev/container"
	// labelInit is "true" on instances of init containers.
	labelInit = "kite.dev/init"
	// labelAttempt numbers the instances of one container from 0; the
	// latest one's is the container's restartCount.
	labelAttempt = "kite.dev/attempt"
	// labelBackoff is the crash-loop back-off step the instance started
	// with (see backoff.go), so back-off survives agent restarts.
	labelBackoff = "kite.dev/backoff-step"
	// labelHash is a hash of the container's spec: an instance whose spec
	// changed (a new image) is replaced.
	labelHash = "kite.dev/spec-hash"
	// labelImage and labelImageID are status.image and status.imageID.
	labelImage   = "kite.dev/image"
	labelImageID = "kite.dev/image-id"
)

// containerIDPrefix marks container IDs in pod status.
const containerIDPrefix = "kite://"

// sandboxID is the runtime ID of a pod's sandbox: the pod's UID, which
// also names the pod's CNI attachment.
func sandboxID(uid types.UID) string { return string(uid) }

// containerID is the runtime ID of one instance of a container: unique
// over the cluster (the pod UID) and deterministic, so a retried create
// of the same instance collides instead of duplicating it.
func containerID(uid types.UID, name string, attempt int) string {
	return fmt.Sprintf("%s-%s-%d", uid, name, attempt)
}

func podLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{labelPodUID: string(pod.UID), labelPodName: pod.Name, labelPodNamespace: pod.Namespace}
}

// attemptOf is an instance's attempt number (0 if unlabelled).
func attemptOf(c *runtime.ContainerStatus) int {
	n, _ := strconv.Atoi(c.Labels[labelAttempt])
	return n
}

func backoffStepOf(c *runtime.ContainerStatus) int {
	n, _ := strconv.Atoi(c.Labels[labelBackoff])
	return n
}

// Where a pod's files live on the node:
//
//	StateDir/pods/<uid>/etc/{hosts,hostname,resolv.conf}  bind-mounted into its containers
//	StateDir/pods/<uid>/network.json                      its CNI attachment (podNetRecord)
//	StateDir/pods/<uid>/volumes/<name>/                   emptyDir volumes
//	StateDir/logs/<ns>_<name>_<uid>/<container>/<attempt>.log  container logs (CRI format)
func (m *podManager) podDir(uid types.UID) string {
	return filepath.Join(m.cfg.StateDir, "pods", string(uid))
}

func (m *podManager) podLogDir(ns, name string, uid types.UID) string {
	return filepath.Join(m.cfg.StateDir, "logs", fmt.Sprintf("%s_%s_%s", ns, name, uid))
}

func (m *podManager) logPath(pod *corev1.Pod, container string, attempt int) string {
	return filepath.Join(m.podLogDir(pod.Namespace, pod.Name, pod.UID), container, fmt.Sprintf("%d.log", attempt))
}
