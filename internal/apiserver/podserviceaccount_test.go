package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func twoContainerPod(name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
		Containers:     []corev1.Container{{Name: "a", Image: "busybox"}, {Name: "b", Image: "busybox"}},
	}}
	for _, f := range mutate {
		f(p)
	}
	return p
}

// apiAccessVolumes are the pod's kube-api-access volumes.
func apiAccessVolumes(p *corev1.Pod) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, apiAccessVolumePrefix) {
			out = append(out, v)
		}
	}
	return out
}

// TestPodServiceAccountAdmission: pods run as "default" unless they name
// an account, and get the kube-api-access volume mounted read-only in
// every container, unless the pod or its account opts out.
func TestPodServiceAccountAdmission(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	create := func(p *corev1.Pod) *corev1.Pod {
		t.Helper()
		out, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
		return out
	}

	// Before the ServiceAccount controller made "default": admitted.
	p := create(twoContainerPod("plain"))
	if p.Spec.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName = %q, want default", p.Spec.ServiceAccountName)
	}
	vols := apiAccessVolumes(p)
	if len(vols) != 1 || len(vols[0].Name) != len(apiAccessVolumePrefix)+5 {
		t.Fatalf("volumes: %+v", p.Spec.Volumes)
	}
	src := vols[0].Projected
	if src == nil || len(src.Sources) != 3 {
		t.Fatalf("volume %s: %+v", vols[0].Name, vols[0].VolumeSource)
	}
	if tok := src.Sources[0].ServiceAccountToken; tok == nil || tok.Path != "token" || ptr.Deref(tok.ExpirationSeconds, 0) != 3607 {
		t.Errorf("token source: %+v", src.Sources[0])
	}
	if cm := src.Sources[1].ConfigMap; cm == nil || cm.Name != "kube-root-ca.crt" || len(cm.Items) != 1 || cm.Items[0].Key != "ca.crt" || cm.Items[0].Path != "ca.crt" {
		t.Errorf("CA source: %+v", src.Sources[1])
	}
	if d := src.Sources[2].DownwardAPI; d == nil || len(d.Items) != 1 || d.Items[0].Path != "namespace" || d.Items[0].FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("namespace source: %+v", src.Sources[2])
	}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		want := []corev1.VolumeMount{{Name: vols[0].Name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
		if !equality.Semantic.DeepEqual(c.VolumeMounts, want) {
			t.Errorf("container %s mounts %+v", c.Name, c.VolumeMounts)
		}
	}
	for _, mf := range p.ManagedFields {
		if strings.Contains(string(mf.FieldsV1.Raw), apiAccessVolumePrefix) {
			t.Errorf("the admitted volume is owned by %s", mf.Manager)
		}
	}

	// Opting out: the pod, or its account.
	p = create(twoContainerPod("pod-opts-out", func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = ptr.To(false) }))
	if len(apiAccessVolumes(p)) != 0 || len(p.Spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("automountServiceAccountToken false on the pod: %+v", p.Spec)
	}
	if _, err := ts.client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "quiet"}, AutomountServiceAccountToken: ptr.To(false)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = create(twoContainerPod("sa-opts-out", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "quiet" }))
	if len(apiAccessVolumes(p)) != 0 {
		t.Errorf("automountServiceAccountToken false on the account: %+v", p.Spec.Volumes)
	}
	// ... which the pod overrides.
	p = create(twoContainerPod("pod-opts-in", func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "quiet"
		p.Spec.AutomountServiceAccountToken = ptr.To(true)
	}))
	if len(apiAccessVolumes(p)) != 1 {
		t.Errorf("automountServiceAccountToken true on the pod: %+v", p.Spec.Volumes)
	}

	// A container with its own volume at the path keeps it.
	p = create(twoContainerPod("own-mount", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "mine", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount/"}}
	}))
	if got := p.Spec.Containers[0].VolumeMounts; len(got) != 1 || got[0].Name != "mine" {
		t.Errorf("own mount replaced: %+v", got)
	}
	if got := p.Spec.Containers[1].VolumeMounts; len(got) != 1 || !strings.HasPrefix(got[0].Name, apiAccessVolumePrefix) {
		t.Errorf("second container mounts %+v", got)
	}

	// An account that does not exist: refused, as upstream.
	_, err := pods.Create(ctx, twoContainerPod("ghost", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "ghost" }), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("pod of a missing account: err = %v, want 403", err)
	}
}
