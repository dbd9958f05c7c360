package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/testutil/apitest"
)

// Kernel tier: a sidecar and lifecycle hooks with runc. The containers
// share a hostPath directory in which they (and their hooks) write what
// happens, in order: the sidecar's postStart has finished before the
// main container starts; on deletion the main container's preStop and
// SIGTERM come before the sidecar's.
func TestSidecarAndHooksOnANode(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	shared := t.TempDir()
	record := func(what string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo " + what + " >> /shared/log"}}}
	}
	loop := func(name string) string {
		return `trap "echo ` + name + `-term >> /shared/log; exit 0" TERM; while true; do sleep 1; done`
	}
	mount := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod := node.createPod("sidecar", "test -f /shared/sidecar-up || exit 3; echo main-start >> /shared/log; "+loop("main"), func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: shared}}}}
		p.Spec.Containers[0].VolumeMounts = mount
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: record("main-prestop")}
		p.Spec.InitContainers = []corev1.Container{{Name: "helper", Image: "busybox", Command: []string{"sh", "-c", loop("sidecar")},
			RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), VolumeMounts: mount,
			Lifecycle: &corev1.Lifecycle{
				PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 1; touch /shared/sidecar-up; echo sidecar-poststart >> /shared/log"}}},
				PreStop:   record("sidecar-prestop"),
			}}}
	})
	p := node.waitPod("sidecar", "Ready", podReady)
	if s := p.Status.InitContainerStatuses; len(s) != 1 || s[0].State.Running == nil || !s[0].Ready || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("statuses: init %+v, main %+v", s, p.Status.ContainerStatuses)
	}
	if err := api.Client.CoreV1().Pods("default").Delete(context.Background(), "sidecar", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 60*time.Second, "pod gone and cleaned up", func() bool {
		_, err := node.pods().Get(context.Background(), "sidecar", metav1.GetOptions{})
		return err != nil && len(node.leftovers(string(pod.UID))) == 0
	})
	log, _ := os.ReadFile(filepath.Join(shared, "log"))
	want := "sidecar-poststart\nmain-start\nmain-prestop\nmain-term\nsidecar-prestop\nsidecar-term\n"
	if string(log) != want {
		t.Errorf("log:\n%s\nwant:\n%s", log, want)
	}
}
