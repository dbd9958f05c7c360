package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// An emptyDir of medium Memory is a tmpfs of sizeLimit (a real mount, in
// the test's private mount namespace), mounted once across syncs, and
// unmounted when the pod is removed.
func TestMemoryEmptyDir(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("ram", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("3Mi"))}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
	}))
	h.sync(pod)
	dir := filepath.Join(h.m.podDir(pod.UID), "volumes", "cache")
	mps, err := runtime.MountPointsUnder(h.m.podDir(pod.UID))
	if err != nil || len(mps) != 1 || mps[0] != dir {
		t.Fatalf("mounts under the pod dir: %q %v", mps, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.TMPFS_MAGIC || fs.Blocks*uint64(fs.Bsize) != 3<<20 {
		t.Errorf("statfs: type %#x, %d bytes", fs.Type, fs.Blocks*uint64(fs.Bsize))
	}
	os.WriteFile(filepath.Join(dir, "kept"), []byte("x"), 0o644)
	h.rt.Exit(containerID(pod.UID, "app", 0), 1, false)
	h.sync(pod) // a restart mounts nothing again
	if mps, _ := runtime.MountPointsUnder(h.m.podDir(pod.UID)); len(mps) != 1 {
		t.Errorf("mounts after a restart: %q", mps)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept")); err != nil {
		t.Errorf("volume content lost across a restart: %v", err)
	}

	cur := h.get(pod)
	cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds = ptr.To(metav1.Now()), ptr.To(int64(1))
	h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{})
	h.sync(pod)
	if mps, _ := runtime.MountPointsUnder(filepath.Dir(h.m.podDir(pod.UID))); len(mps) != 0 {
		t.Errorf("mounts left: %q", mps)
	}
	if _, err := os.Stat(h.m.podDir(pod.UID)); !os.IsNotExist(err) {
		t.Errorf("pod dir left: %v", err)
	}
}
