package defaults

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// defaultedContainer is what a container {name, image} becomes.
func defaultedContainer(name, image string, pull corev1.PullPolicy) corev1.Container {
	return corev1.Container{
		Name: name, Image: image, ImagePullPolicy: pull,
		TerminationMessagePath:   "/dev/termination-log",
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
}

func TestPodMinimal(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27"}}}}
	Pod(pod)
	want := corev1.PodSpec{
		Containers:                    []corev1.Container{defaultedContainer("c", "nginx:1.27", corev1.PullIfNotPresent)},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		DNSPolicy:                     corev1.DNSClusterFirst,
		TerminationGracePeriodSeconds: ptrTo(int64(30)),
		SchedulerName:                 "default-scheduler",
		SecurityContext:               &corev1.PodSecurityContext{},
		EnableServiceLinks:            ptrTo(true),
	}
	if d := cmp.Diff(want, pod.Spec); d != "" {
		t.Errorf("Pod defaults (-want +got):\n%s", d)
	}
	// Idempotent.
	again := pod.DeepCopy()
	Pod(again)
	if d := cmp.Diff(pod, again); d != "" {
		t.Errorf("second Pod() changed the pod:\n%s", d)
	}
}

func TestPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                         corev1.PullAlways,
		"nginx:latest":                  corev1.PullAlways,
		"nginx:1.27":                    corev1.PullIfNotPresent,
		"registry.local:5000/nginx":     corev1.PullAlways,
		"registry.local:5000/nginx:1.2": corev1.PullIfNotPresent,
		"nginx@sha256:0123abcd":         corev1.PullIfNotPresent,
		"nginx:latest@sha256:0123abcd":  corev1.PullAlways,
		"":                              corev1.PullIfNotPresent,
	} {
		if got := pullPolicyFor(image); got != want {
			t.Errorf("pullPolicyFor(%q) = %s, want %s", image, got, want)
		}
	}
}

func TestPodSpecOnlyDefaultsAreNotInTemplates(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
	}}}}
	PodSpec(spec)
	if spec.EnableServiceLinks != nil {
		t.Errorf("PodSpec set enableServiceLinks; upstream sets it on Pods only")
	}
	if spec.Containers[0].Resources.Requests != nil {
		t.Errorf("PodSpec copied limits to requests; upstream does that on Pods only")
	}
}

func TestPodContainerDefaults(t *testing.T) {
	probe := func() *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		HostNetwork: true,
		Containers: []corev1.Container{{
			Name: "c", Image: "x:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, HostPort: 5353, Protocol: corev1.ProtocolUDP}},
			Env: []corev1.EnvVar{{Name: "NODE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500u"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
			},
			LivenessProbe:  probe(),
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}, PeriodSeconds: 5},
			Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}},
		}},
	}}
	Pod(pod)
	c := pod.Spec.Containers[0]

	if got := c.Ports[0]; got.Protocol != corev1.ProtocolTCP || got.HostPort != 80 {
		t.Errorf("port 0 = %+v, want protocol TCP and hostPort 80 (hostNetwork)", got)
	}
	if got := c.Ports[1]; got.Protocol != corev1.ProtocolUDP || got.HostPort != 5353 {
		t.Errorf("port 1 = %+v, want it untouched", got)
	}
	if got := c.Env[0].ValueFrom.FieldRef.APIVersion; got != "v1" {
		t.Errorf("fieldRef.apiVersion = %q, want v1", got)
	}
	if got := c.Resources.Limits[corev1.ResourceCPU]; got.String() != "2m" {
		t.Errorf("cpu limit = %s, want 2m (rounded up to milli)", got.String())
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.String() != "2m" {
		t.Errorf("cpu request = %s, want 2m (copied from the limit)", got.String())
	}
	if got := c.Resources.Requests[corev1.ResourceMemory]; got.String() != "32Mi" {
		t.Errorf("memory request = %s, want the explicit 32Mi", got.String())
	}
	wantLiveness := &corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
	}
	if d := cmp.Diff(wantLiveness, c.LivenessProbe); d != "" {
		t.Errorf("liveness probe (-want +got):\n%s", d)
	}
	if got := c.ReadinessProbe; got.PeriodSeconds != 5 || got.GRPC.Service == nil || *got.GRPC.Service != "" {
		t.Errorf("readiness probe = %+v, want periodSeconds kept and grpc.service \"\"", got)
	}
	if got := c.Lifecycle.PreStop.HTTPGet; got.Path != "/" || got.Scheme != corev1.URISchemeHTTP {
		t.Errorf("preStop httpGet = %+v, want path / and scheme HTTP", got)
	}
}

func TestPodVolumeDefaults(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "bare"},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
	}}}
	Pod(pod)
	v := pod.Spec.Volumes
	if v[0].EmptyDir == nil {
		t.Errorf("volume without a source: want emptyDir, got %+v", v[0].VolumeSource)
	}
	if v[1].HostPath.Type == nil || *v[1].HostPath.Type != corev1.HostPathUnset {
		t.Errorf("hostPath.type = %v, want \"\"", v[1].HostPath.Type)
	}
	if m := v[2].Secret.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("secret.defaultMode = %v, want 0644", m)
	}
	if m := v[3].ConfigMap.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("configMap.defaultMode = %v, want 0644", m)
	}
	p := v[4].Projected
	if p.DefaultMode == nil || *p.DefaultMode != 0o644 {
		t.Errorf("projected.defaultMode = %v, want 0644", p.DefaultMode)
	}
	if e := p.Sources[0].ServiceAccountToken.ExpirationSeconds; e == nil || *e != 3600 {
		t.Errorf("serviceAccountToken.expirationSeconds = %v, want 3600", e)
	}
	if av := p.Sources[1].DownwardAPI.Items[0].FieldRef.APIVersion; av != "v1" {
		t.Errorf("downwardAPI fieldRef.apiVersion = %q, want v1", av)
	}
}
