package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A container's stdin, stdinOnce and tty reach the runtime (kubectl run
// -it, kubectl attach).
func TestContainerStdinAndTTY(t *testing.T) {
	h := newHarness(t)
	pod := h.create(newPod("shell", func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Stdin, c.StdinOnce, c.TTY = true, true, true
	}))
	h.status(pod)
	cfg, ok := h.rt.ContainerConfig(containerID(pod.UID, "app", 0))
	if !ok || !cfg.Stdin || !cfg.StdinOnce || !cfg.TTY {
		t.Errorf("config: stdin %v, stdinOnce %v, tty %v; want all true", cfg.Stdin, cfg.StdinOnce, cfg.TTY)
	}
}
