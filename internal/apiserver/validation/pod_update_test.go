package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidatePodUpdate(t *testing.T) {
	tests := []struct {
		name string
		edit func(pod, old *corev1.Pod)
		want []string
	}{
		{"unchanged", func(_, _ *corev1.Pod) {}, nil},
		{"image", func(p, _ *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, nil},
		{"labels", func(p, _ *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, nil},
		{"add toleration", func(p, _ *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: "Exists"})
		}, nil},
		{"remove toleration", func(p, old *corev1.Pod) {
			old.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: "Exists"}}
		}, []string{"Forbidden spec.tolerations"}},
		{"shorter deadline", func(p, old *corev1.Pod) {
			old.Spec.ActiveDeadlineSeconds = ptrTo(int64(100))
			p.Spec.ActiveDeadlineSeconds = ptrTo(int64(50))
		}, nil},
		{"longer deadline", func(p, old *corev1.Pod) {
			old.Spec.ActiveDeadlineSeconds = ptrTo(int64(100))
			p.Spec.ActiveDeadlineSeconds = ptrTo(int64(200))
		}, []string{"Invalid spec.activeDeadlineSeconds"}},
		{"remove deadline", func(p, old *corev1.Pod) { old.Spec.ActiveDeadlineSeconds = ptrTo(int64(100)) },
			[]string{"Invalid spec.activeDeadlineSeconds"}},
		{"remove gate", func(p, old *corev1.Pod) {
			old.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "a"}, {Name: "b"}}
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "b"}}
		}, nil},
		{"add gate", func(p, _ *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "a"}} },
			[]string{"Forbidden spec.schedulingGates[0].name"}},
		{"gated pod narrows node selector", func(p, old *corev1.Pod) {
			old.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "a"}}
			p.Spec.SchedulingGates = old.Spec.SchedulingGates
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
		}, nil},
		{"restart policy", func(p, _ *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, []string{"Forbidden spec"}},
		{"node name", func(p, _ *corev1.Pod) { p.Spec.NodeName = "n1" }, []string{"Forbidden spec"}},
		{"add container", func(p, _ *corev1.Pod) {
			c := p.Spec.Containers[0]
			c.Name = "two"
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, []string{"Forbidden spec.containers"}},
		{"empty image", func(p, _ *corev1.Pod) { p.Spec.Containers[0].Image = "" },
			[]string{"Required spec.containers[0].image", "Required spec.containers[0].image"}},
		{"add mirror annotation", func(p, _ *corev1.Pod) {
			p.Spec.NodeName = ""
			p.Annotations = map[string]string{"kubernetes.io/config.mirror": "x"}
		}, []string{"Forbidden metadata.annotations[kubernetes.io/config.mirror]", "Invalid metadata.annotations[kubernetes.io/config.mirror]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := validPod()
			pod := old.DeepCopy()
			tt.edit(pod, old)
			expectErrors(t, ValidatePodUpdate(pod, old), tt.want...)
		})
	}
}

func TestPodUpdateMessage(t *testing.T) {
	old := validPod()
	pod := old.DeepCopy()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	errs := ValidatePodUpdate(pod, old)
	if len(errs) != 1 {
		t.Fatalf("want one error, got:\n%s", render(errs))
	}
	const prefix = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
	if msg := errs[0].Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, "RestartPolicy") {
		t.Errorf("message:\n%s\nwant prefix:\n%s\nand a diff naming RestartPolicy", msg, prefix)
	}
}
