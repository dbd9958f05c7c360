package e2e

// Issue 4's remaining pod features through a lab and real kubectl: a
// sidecar (restartPolicy Always init container) whose postStart hook has
// finished before the main container starts, sharing a memory-backed
// emptyDir of sizeLimit with it, in a Never pod that completes once its
// main container has (the sidecar is stopped, its preStop run); and a
// failing postStart hook (FailedPostStartHook, the container killed).

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const sidecarPodYAML = `apiVersion: v1
kind: Pod
metadata:
  name: with-sidecar
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - name: shared
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
  initContainers:
  - name: helper
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: shared, mountPath: /shared}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "sleep 1; touch /shared/up"]}
      preStop:
        exec: {command: ["sh", "-c", "echo helper-prestop"]}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "test -f /shared/up || exit 3; df -k /shared | tail -1; echo done"]
    volumeMounts: [{name: shared, mountPath: /shared}]
---
apiVersion: v1
kind: Pod
metadata:
  name: bad-hook
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo nope; exit 1"]}
`

func TestPodLifecycle(t *testing.T) {
	l := startLab(t, 1)
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	if r := k.try(t, nil, sidecarPodYAML, "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply: %v\n%s", r.err, r.stderr)
	}
	phase := func(pod string) func() error {
		return func() error {
			got := k.run(t, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
			if got == "Succeeded" || got == "Failed" {
				return nil
			}
			return fmt.Errorf("phase %q", got)
		}
	}

	t.Run("a sidecar's pod completes with its main container", func(t *testing.T) {
		waitFor(t, 90*time.Second, "with-sidecar finished", phase("with-sidecar"))
		if got := k.run(t, "get", "pod", "with-sidecar", "-o", "jsonpath={.status.phase}"); got != "Succeeded" {
			t.Fatalf("phase %s\n%s", got, k.run(t, "describe", "pod", "with-sidecar"))
		}
		logs := k.run(t, "logs", "with-sidecar", "-c", "main")
		// The sidecar's postStart had finished (/shared/up), and the volume
		// is a tmpfs of sizeLimit (1024 KiB).
		wantMatch(t, logs, `(?m)^tmpfs\s+1024\s`, `(?m)^done$`)
		sidecar := k.run(t, "get", "pod", "with-sidecar", "-o",
			`jsonpath={.status.initContainerStatuses[0].state.terminated.reason} {.status.initContainerStatuses[0].restartCount}`)
		if f := strings.Fields(sidecar); len(f) != 2 || f[1] != "0" {
			t.Errorf("sidecar status %q: want terminated, no restart", sidecar)
		}
		wantMatch(t, k.run(t, "get", "pod", "with-sidecar"), `with-sidecar\s+\S+\s+Completed\s`)
	})

	t.Run("a failing postStart kills the container", func(t *testing.T) {
		waitFor(t, 90*time.Second, "bad-hook finished", phase("bad-hook"))
		if got := k.run(t, "get", "pod", "bad-hook", "-o", "jsonpath={.status.phase}"); got != "Failed" {
			t.Errorf("phase %s", got)
		}
		waitFor(t, 30*time.Second, "the FailedPostStartHook event", func() error {
			ev := k.run(t, "get", "events", "--field-selector", "involvedObject.name=bad-hook,reason=FailedPostStartHook", "-o", "jsonpath={.items[*].message}")
			if !strings.Contains(ev, `Exec lifecycle hook ([sh -c echo nope; exit 1]) for Container "main" in Pod "bad-hook_default(`) ||
				!strings.Contains(ev, `message: "nope\n"`) {
				return fmt.Errorf("events %q", ev)
			}
			return nil
		})
	})

	// Finished pods are deleted at once by the API server; the agent then
	// cleans up after them, unmounting the tmpfs.
	k.run(t, "delete", "pod", "with-sidecar", "bad-hook", "--wait=true", "--timeout=60s")
	waitFor(t, 60*time.Second, "the tmpfs volume unmounted on the node", func() error {
		if mounts := l.nodeShell(t, "kite-control-plane", "grep volumes/shared /proc/self/mountinfo || true"); strings.TrimSpace(mounts) != "" {
			return fmt.Errorf("still mounted: %s", mounts)
		}
		return nil
	})
}
