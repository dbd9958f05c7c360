package agent

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// staticSource is an envSource over fixed objects.
type staticSource struct {
	svcs       []*corev1.Service
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func (s staticSource) services() ([]*corev1.Service, error) { return s.svcs, nil }
func (s staticSource) configMap(ns, name string) (*corev1.ConfigMap, error) {
	if cm, ok := s.configMaps[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}
func (s staticSource) secret(ns, name string) (*corev1.Secret, error) {
	if sec, ok := s.secrets[ns+"/"+name]; ok {
		return sec, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func svc(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
}

// The variables of the seed's S6, in upstream's exact format.
func TestServiceVars(t *testing.T) {
	for _, tc := range []struct {
		svc  *corev1.Service
		want [][2]string
	}{{
		svc: svc("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: "TCP"}),
		want: [][2]string{
			{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
			{"KUBERNETES_SERVICE_PORT", "443"},
			{"KUBERNETES_SERVICE_PORT_HTTPS", "443"},
			{"KUBERNETES_PORT", "tcp://10.96.0.1:443"},
			{"KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"},
			{"KUBERNETES_PORT_443_TCP_PROTO", "tcp"},
			{"KUBERNETES_PORT_443_TCP_PORT", "443"},
			{"KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"},
		},
	}, {
		svc: svc("default", "my-dns", "10.96.0.10", corev1.ServicePort{Port: 53, Protocol: "UDP"},
			corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: "TCP"}),
		want: [][2]string{
			{"MY_DNS_SERVICE_HOST", "10.96.0.10"},
			{"MY_DNS_SERVICE_PORT", "53"},
			{"MY_DNS_SERVICE_PORT_DNS_TCP", "53"},
			{"MY_DNS_PORT", "udp://10.96.0.10:53"},
			{"MY_DNS_PORT_53_UDP", "udp://10.96.0.10:53"},
			{"MY_DNS_PORT_53_UDP_PROTO", "udp"},
			{"MY_DNS_PORT_53_UDP_PORT", "53"},
			{"MY_DNS_PORT_53_UDP_ADDR", "10.96.0.10"},
			{"MY_DNS_PORT_53_TCP", "tcp://10.96.0.10:53"},
			{"MY_DNS_PORT_53_TCP_PROTO", "tcp"},
			{"MY_DNS_PORT_53_TCP_PORT", "53"},
			{"MY_DNS_PORT_53_TCP_ADDR", "10.96.0.10"},
		},
	}} {
		if diff := cmp.Diff(tc.want, serviceVars(tc.svc)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.svc.Name, diff)
		}
	}
}

// Which Services a pod sees: kubernetes always; its namespace's when
// enableServiceLinks; never headless or ExternalName ones.
func TestServiceEnvSelection(t *testing.T) {
	src := staticSource{svcs: []*corev1.Service{
		svc("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443}),
		svc("shop", "kuard", "10.96.5.5", corev1.ServicePort{Port: 80}),
		svc("shop", "headless", "None", corev1.ServicePort{Port: 80}),
		svc("shop", "external", "", corev1.ServicePort{Port: 80}),
		svc("other", "elsewhere", "10.96.6.6", corev1.ServicePort{Port: 80}),
	}}
	for _, tc := range []struct {
		links bool
		want  []string
	}{
		{true, []string{"KUARD_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"}},
		{false, []string{"KUBERNETES_SERVICE_HOST"}},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}, Spec: corev1.PodSpec{EnableServiceLinks: ptr.To(tc.links)}}
		env, err := serviceEnv(src, pod)
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for k := range env {
			if len(k) > 13 && k[len(k)-13:] == "_SERVICE_HOST" {
				hosts = append(hosts, k)
			}
		}
		slices.Sort(hosts)
		if !slices.Equal(hosts, tc.want) {
			t.Errorf("links=%v: %v, want %v", tc.links, hosts, tc.want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "EMPTY": "", "B": "$(A)"}
	mapping := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"plain":         "plain",
		"$(A)":          "a",
		"x$(A)y$(A)z":   "xayaz",
		"$(EMPTY)!":     "!",
		"$(MISSING)":    "$(MISSING)",
		"$$(A)":         "$(A)",
		"$$$(A)":        "$a",
		"$(A":           "$(A",
		"$A":            "$A",
		"$":             "$",
		"end$":          "end$",
		"$(B)":          "$(A)", // no recursion
		"$()":           "$()",
		"a $(A) $(A) b": "a a a b",
	} {
		if got := expand(in, mapping); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	src := staticSource{
		svcs:       []*corev1.Service{svc("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443})},
		configMaps: map[string]*corev1.ConfigMap{"default/cfg": {Data: map[string]string{"LEVEL": "debug", "COLOR": "blue"}}},
		secrets:    map[string]*corev1.Secret{"default/sec": {Data: map[string][]byte{"token": []byte("s3cret")}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
	}
	c := &corev1.Container{
		Name:    "c",
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		Env: []corev1.EnvVar{
			{Name: "HOME", Value: "/home/app"},
			{Name: "CFG_COLOR", Value: "red"},
			{Name: "URL", Value: "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)/$(NODE)"},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "LATER", Value: "$(NODE)"},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "IPS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
			{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: ptr.To(true)}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
	}
	env, podEnv, err := containerEnv(envInput{Pod: pod, Container: c, Hostname: "p", PodIPs: []string{"10.244.1.5", "fd00::5"}, HostIP: "10.9.0.2",
		Image: Image{Env: []string{"PATH=/bin", "HOME=/root", "IMG=1"}}, Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2500m")}, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PATH=/bin", "HOSTNAME=p", "HOME=/home/app", "IMG=1",
		"CFG_COLOR=red", "CFG_LEVEL=debug",
		"URL=https://10.96.0.1:443/$(NODE)", "NODE=n1", "LATER=n1", "APP=web", "IPS=10.244.1.5,fd00::5", "HOST_IP=10.9.0.2",
		"UID=u-1", "SA=sa", "TOKEN=s3cret", "MEM=64", "CPU=3",
		"KUBERNETES_PORT=tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1", "KUBERNETES_PORT_443_TCP_PORT=443", "KUBERNETES_PORT_443_TCP_PROTO=tcp",
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if podEnv["HOME"] != "/home/app" || podEnv["IMG"] != "" {
		t.Errorf("pod env: %v", podEnv)
	}
	// Missing sources that are not optional are errors.
	c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "nope"}}}}
	if _, _, err := containerEnv(envInput{Pod: pod, Container: c, Source: src}); err == nil {
		t.Error("missing secret key: no error")
	}
}

func TestCommandLine(t *testing.T) {
	img := Image{Entrypoint: []string{"/kuard"}, Cmd: []string{"--flag"}}
	env := map[string]string{"PORT": "8080"}
	for _, tc := range []struct {
		cmd, args, want []string
	}{
		{nil, nil, []string{"/kuard", "--flag"}},
		{nil, []string{"--port=$(PORT)"}, []string{"/kuard", "--port=8080"}},
		{[]string{"sh", "-c"}, nil, []string{"sh", "-c"}},
		{[]string{"sh", "-c"}, []string{"echo $(PORT) $$(PORT)"}, []string{"sh", "-c", "echo 8080 $(PORT)"}},
	} {
		got := commandLine(&corev1.Container{Command: tc.cmd, Args: tc.args}, img, env)
		if !slices.Equal(got, tc.want) {
			t.Errorf("command %q args %q: %q, want %q", tc.cmd, tc.args, got, tc.want)
		}
	}
}

func TestContainerUser(t *testing.T) {
	layer := t.TempDir()
	writeFile(t, layer+"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
	writeFile(t, layer+"/etc/group", "root:x:0:\nstaff:x:50:\n")
	img := func(user string) Image { return Image{User: user, LowerDirs: []string{layer}} }
	for _, tc := range []struct {
		user        string
		podUser     *int64
		ctrGroup    *int64
		uid, gid    uint32
		wantErr     bool
		supplements []int64
	}{
		{user: "", uid: 0, gid: 0},
		{user: "app", uid: 1000, gid: 1001},
		{user: "app:staff", uid: 1000, gid: 50},
		{user: "1000", uid: 1000, gid: 1001},
		{user: "42:43", uid: 42, gid: 43},
		{user: "ghost", wantErr: true},
		{user: "app", podUser: ptr.To(int64(7)), uid: 7, gid: 0},
		{user: "", podUser: ptr.To(int64(1000)), ctrGroup: ptr.To(int64(9)), uid: 1000, gid: 9, supplements: []int64{100}},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: tc.podUser, SupplementalGroups: tc.supplements}}}
		c := &corev1.Container{SecurityContext: &corev1.SecurityContext{RunAsGroup: tc.ctrGroup}}
		u, err := containerUser(pod, c, img(tc.user))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.user, err)
			continue
		}
		if !tc.wantErr && (u.UID != tc.uid || u.GID != tc.gid || len(u.Groups) != len(tc.supplements)) {
			t.Errorf("%q pod %v: %+v, want %d:%d", tc.user, tc.podUser, u, tc.uid, tc.gid)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := writeFileAtomic(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
