package agent

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// tokenServer answers TokenRequests on the harness's fake clientset with
// unsigned JWTs whose iat is the harness clock, and records the requests.
type tokenServer struct {
	mu       sync.Mutex
	requests []*authenticationv1.TokenRequest
	sa       []string
}

func (h *harness) serveTokens() *tokenServer {
	ts := &tokenServer{}
	h.client.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, k8sruntime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		ca := a.(clienttesting.CreateActionImpl)
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.requests = append(ts.requests, tr.DeepCopy())
		ts.sa = append(ts.sa, ca.Name)
		iat := h.now().Unix()
		claims := fmt.Sprintf(`{"iat":%d,"exp":%d,"n":%d}`, iat, iat+ptr.Deref(tr.Spec.ExpirationSeconds, 3600), len(ts.requests))
		tr.Status.Token = "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
		return true, tr, nil
	})
	return ts
}

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.requests)
}

func readVolumeFile(t *testing.T, h *harness, pod *corev1.Pod, vol, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.m.podDir(pod.UID), "volumes", vol, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func fileMode(t *testing.T, h *harness, pod *corev1.Pod, vol, file string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(filepath.Join(h.m.podDir(pod.UID), "volumes", vol, file))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestProjectedServiceAccountVolume: the volume admission gives every pod
// holds a token bound to the pod, the cluster CA and the namespace; the
// token is fetched once, kept while fresh and replaced once 80 % of its
// life has passed.
func TestProjectedServiceAccountVolume(t *testing.T) {
	h := newHarness(t)
	tokens := h.serveTokens()
	if _, err := h.client.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "PEM"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const mountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	pod := h.create(newPod("web", func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "robot"
		p.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To(int32(0o644)),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(3607))}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			}}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access-abcde", MountPath: mountPath, ReadOnly: true}}
	}))
	if st := h.status(pod); st.Phase != corev1.PodRunning {
		t.Fatalf("pod phase %s: %+v", st.Phase, st.ContainerStatuses)
	}
	cfg, _ := h.rt.ContainerConfig(containerID(pod.UID, "app", 0))
	var mounted bool
	for _, m := range cfg.Mounts {
		if m.Destination == mountPath && m.ReadOnly && m.Source == filepath.Join(h.m.podDir(pod.UID), "volumes", "kube-api-access-abcde") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("no read-only mount at %s: %+v", mountPath, cfg.Mounts)
	}
	if got := readVolumeFile(t, h, pod, "kube-api-access-abcde", "ca.crt"); got != "PEM" {
		t.Errorf("ca.crt = %q", got)
	}
	if got := readVolumeFile(t, h, pod, "kube-api-access-abcde", "namespace"); got != "default" {
		t.Errorf("namespace = %q", got)
	}
	if m := fileMode(t, h, pod, "kube-api-access-abcde", "token"); m != 0o644 {
		t.Errorf("token mode %o, want 644", m)
	}
	first := readVolumeFile(t, h, pod, "kube-api-access-abcde", "token")
	if tokens.count() != 1 {
		t.Fatalf("%d token requests, want 1", tokens.count())
	}
	req := tokens.requests[0]
	if tokens.sa[0] != "robot" || ptr.Deref(req.Spec.ExpirationSeconds, 0) != 3607 || len(req.Spec.Audiences) != 0 ||
		req.Spec.BoundObjectRef == nil || req.Spec.BoundObjectRef.Kind != "Pod" || req.Spec.BoundObjectRef.Name != "web" || req.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("token request for %s: %+v", tokens.sa[0], req.Spec)
	}

	// Fresh: kept, and the worker comes back when it falls due.
	h.advance(time.Hour / 2)
	next, _ := h.sync(pod)
	if tokens.count() != 1 {
		t.Errorf("a fresh token was fetched again")
	}
	if next > resyncPeriod {
		t.Errorf("next sync in %v", next)
	}
	// Past 80 % of 3607 s: replaced in place.
	h.advance(1100 * time.Second) // 1800 + 1100 s > 0.8 × 3607 s
	h.sync(pod)
	if tokens.count() != 2 {
		t.Fatalf("%d token requests after 80 %% of the lifetime, want 2", tokens.count())
	}
	if got := readVolumeFile(t, h, pod, "kube-api-access-abcde", "token"); got == first {
		t.Error("token file was not replaced")
	}
}

// TestDownwardAPIVolume: pod fields, labels and annotations, container
// resources, with default and per-item modes; label changes reach the
// files.
func TestDownwardAPIVolume(t *testing.T) {
	h := newHarness(t)
	field := func(path, fp string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: path, FieldRef: &corev1.ObjectFieldSelector{FieldPath: fp}}
	}
	pod := h.create(newPod("web", func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": "web", "tier": "front"}
		p.Annotations = map[string]string{"note": `say "hi"`}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		p.Spec.Volumes = []corev1.Volume{{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			DefaultMode: ptr.To(int32(0o440)),
			Items: []corev1.DownwardAPIVolumeFile{
				field("name", "metadata.name"), field("uid", "metadata.uid"), field("labels", "metadata.labels"),
				field("annotations", "metadata.annotations"), field("node", "spec.nodeName"), field("ip", "status.podIP"),
				field("app", "metadata.labels['app']"),
				{Path: "mem/limit", Mode: ptr.To(int32(0o600)), ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app",
					Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			}}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "info", MountPath: "/etc/podinfo"}}
	}))
	if st := h.status(pod); st.Phase != corev1.PodRunning {
		t.Fatalf("pod phase %s: %+v", st.Phase, st.ContainerStatuses)
	}
	for file, want := range map[string]string{
		"name": "web", "uid": string(pod.UID), "labels": "app=\"web\"\ntier=\"front\"", "annotations": `note="say \"hi\""`,
		"node": "node1", "ip": "10.244.1.10", "app": "web", "mem/limit": "64",
	} {
		if got := readVolumeFile(t, h, pod, "info", file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if m := fileMode(t, h, pod, "info", "name"); m != 0o440 {
		t.Errorf("name mode %o, want 440", m)
	}
	if m := fileMode(t, h, pod, "info", "mem/limit"); m != 0o600 {
		t.Errorf("mem/limit mode %o, want 600", m)
	}

	cur := h.get(pod)
	cur.Labels["app"] = "web2"
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync(pod)
	if got := readVolumeFile(t, h, pod, "info", "app"); got != "web2" {
		t.Errorf("app after the label changed = %q", got)
	}
}

// TestProjectedVolumeSources: configMap and secret items with modes, an
// optional source that is missing; a missing required one keeps the
// container from starting.
func TestProjectedVolumeSources(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"a": "A", "b": "B"}}, metav1.CreateOptions{})
	h.client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		Data: map[string][]byte{"pw": []byte("hunter2")}}, metav1.CreateOptions{})
	projected := func(sources ...corev1.VolumeProjection) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "all", MountPath: "/all"}}
		}
	}
	pod := h.create(newPod("ok", projected(
		corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"},
			Items: []corev1.KeyToPath{{Key: "pw", Path: "creds/pw", Mode: ptr.To(int32(0o400))}}}},
		corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "none"},
			Optional: ptr.To(true)}},
	)))
	if st := h.status(pod); st.Phase != corev1.PodRunning {
		t.Fatalf("pod phase %s: %+v", st.Phase, st.ContainerStatuses)
	}
	for file, want := range map[string]string{"a": "A", "b": "B", "creds/pw": "hunter2"} {
		if got := readVolumeFile(t, h, pod, "all", file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if m := fileMode(t, h, pod, "all", "creds/pw"); m != 0o400 {
		t.Errorf("creds/pw mode %o, want 400", m)
	}

	missing := h.create(newPod("missing", projected(
		corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}})))
	st := h.status(missing)
	if st.Phase != corev1.PodPending || len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Waiting == nil {
		t.Errorf("pod with a missing secret: %+v", st)
	}
}
