package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
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

// Log rotation with runc: a container writing steadily has its log
// rotated (small limits, a fast check); the node keeps at most maxFiles
// files for it, older ones gzipped, and together they hold an unbroken
// run of its latest lines.
func TestLogRotationOnANode(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.stop()
	node.cfg.ContainerLogMaxSize, node.cfg.ContainerLogMaxFiles, node.cfg.LogMonitorPeriod = 16<<10, 3, 100*time.Millisecond
	node.start()
	node.createPod("chatty", `i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.1; done; echo end; sleep 1000`)
	p := node.waitPod("chatty", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	logPath := node.pods0LogPath(p)
	var files []string
	apitest.WaitFor(t, 60*time.Second, "the last line written and the log rotated", func() bool {
		data, _ := os.ReadFile(logPath)
		files, _ = filepath.Glob(logPath + "*")
		return strings.Contains(string(data), " end\n") && len(files) == 3
	})
	// The newest rotated file stays plain, the older one is gzipped.
	sort.Strings(files)
	if !strings.HasSuffix(files[1], ".gz") || strings.HasSuffix(files[2], ".gz") || files[0] != logPath {
		t.Fatalf("files %q", files)
	}
	var lines []string
	for _, f := range []string{files[1], files[2], logPath} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if l == "" {
				continue
			}
			e, err := runtime.ParseLogLine([]byte(l))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			lines = append(lines, string(e.Content))
		}
	}
	if lines[len(lines)-1] != "end" {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	var first int
	if _, err := fmt.Sscanf(lines[0], "line-%d-", &first); err != nil || first == 0 {
		t.Fatalf("first kept line %q: the oldest lines should be gone", lines[0])
	}
	for i, l := range lines[:len(lines)-1] {
		if want := fmt.Sprintf("line-%d-padding-padding-padding", first+i); l != want {
			t.Fatalf("line %d is %q, want %q (a line lost or repeated across a rotation)", i, l, want)
		}
	}
	if n := first + len(lines) - 1; n != 3000 {
		t.Errorf("lines up to %d, want 3000", n)
	}
}

// pods0LogPath is the log of a pod's first container's current instance.
func (n *testNode) pods0LogPath(p *corev1.Pod) string {
	n.t.Helper()
	st, err := n.rt.ContainerStatus(context.Background(), strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, containerIDPrefix))
	if err != nil {
		n.t.Fatal(err)
	}
	return st.LogPath
}
