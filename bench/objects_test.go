package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Wire formats a client can speak.
const (
	contentJSON     = "application/json"
	contentProtobuf = "application/vnd.kubernetes.protobuf"
)

// newClients returns n admin clientsets speaking contentType, each over
// its own connection (as n separate programs would be), with client-side
// rate limiting off.
func newClients(b *testing.B, kubeconfig, contentType string, n int) []kubernetes.Interface {
	b.Helper()
	out := make([]kubernetes.Interface, n)
	for i := range out {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			b.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 1e6, 1e6
		cfg.ContentType = contentType
		cfg.AcceptContentTypes = contentType
		if contentType == contentProtobuf {
			cfg.AcceptContentTypes = contentProtobuf + "," + contentJSON
		}
		// A dialer of its own keeps client-go from sharing one cached
		// transport, and so one HTTP/2 connection, between the clients.
		cfg.Dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		if out[i], err = kubernetes.NewForConfig(cfg); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// negotiatedProto is the HTTP protocol client-go ends up speaking.
func negotiatedProto(b *testing.B, kubeconfig string) string {
	b.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(cfg.Host + "/version")
	if err != nil {
		b.Fatalf("GET /version: %v", err)
	}
	resp.Body.Close()
	return resp.Proto
}

// kind is a resource the benchmarks create, get and list.
type kind struct {
	name   string
	create func(ctx context.Context, c kubernetes.Interface, ns, name string) error
	get    func(ctx context.Context, c kubernetes.Interface, ns, name string) error
	// list returns the page's item count and continue token.
	list func(ctx context.Context, c kubernetes.Interface, ns string, opts metav1.ListOptions) (int, string, error)
}

var configMaps = kind{
	name: "configmaps",
	create: func(ctx context.Context, c kubernetes.Interface, ns, name string) error {
		_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, benchConfigMap(ns, name), metav1.CreateOptions{})
		return err
	},
	get: func(ctx context.Context, c kubernetes.Interface, ns, name string) error {
		_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		return err
	},
	list: func(ctx context.Context, c kubernetes.Interface, ns string, opts metav1.ListOptions) (int, string, error) {
		l, err := c.CoreV1().ConfigMaps(ns).List(ctx, opts)
		if err != nil {
			return 0, "", err
		}
		return len(l.Items), l.Continue, nil
	},
}

var pods = kind{
	name: "pods",
	create: func(ctx context.Context, c kubernetes.Interface, ns, name string) error {
		_, err := c.CoreV1().Pods(ns).Create(ctx, benchPod(ns, name), metav1.CreateOptions{})
		return err
	},
	get: func(ctx context.Context, c kubernetes.Interface, ns, name string) error {
		_, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err
	},
	list: func(ctx context.Context, c kubernetes.Interface, ns string, opts metav1.ListOptions) (int, string, error) {
		l, err := c.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return 0, "", err
		}
		return len(l.Items), l.Continue, nil
	},
}

// benchConfigMap is a small application config: three keys, about 600
// bytes of data.
func benchConfigMap(ns, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web", "bench": "kite"}},
		Data: map[string]string{
			"LOG_LEVEL":   "info",
			"FEATURES":    "search,checkout,recommendations",
			"config.yaml": "server:\n  listen: :8080\n  timeout: 30s\n" + strings.Repeat("upstreams:\n  - name: backend\n    url: http://backend.default.svc:8080\n", 6),
		},
	}
}

// benchPod is what a Deployment's pod looks like: one container with
// ports, env (plain and from the downward API), resources, liveness and
// readiness probes and a mounted ConfigMap.
func benchPod(ns, name string) *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"app": "web", "tier": "frontend", "pod-template-hash": "5d9c8b7f6b"},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "web"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "web",
				Image: "gcr.io/kuar-demo/kuard-amd64:1",
				Args:  []string{"--address=:8080", "--debug-address=:9090"},
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
				},
				Env: []corev1.EnvVar{
					{Name: "LOG_LEVEL", Value: "info"},
					{Name: "CACHE_SIZE", Value: "256Mi"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthy", Port: intstr.FromString("http")}},
					InitialDelaySeconds: 5, PeriodSeconds: 10, FailureThreshold: 3,
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 5,
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/web", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}},
			}}},
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

func objName(i int) string { return fmt.Sprintf("obj-%04d", i) }

func createNamespace(ctx context.Context, b *testing.B, c kubernetes.Interface, name string) {
	b.Helper()
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatalf("create namespace %s: %v", name, err)
	}
	// Every namespace gets the cluster CA's ConfigMap from the root CA
	// publisher, as upstream; wait for it so that it is there for the whole
	// measurement rather than arriving in the middle of it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.CoreV1().ConfigMaps(name).Get(ctx, rootCAConfigMap, metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("namespace %s: no %s ConfigMap within 30 s: %v", name, rootCAConfigMap, err)
		}
		time.Sleep(20 * time.Millisecond) // bounded by the deadline
	}
}

// rootCAConfigMap is the ConfigMap the root CA publisher keeps in every
// namespace.
const rootCAConfigMap = "kube-root-ca.crt"

// run performs ops 0..n-1, spread over the clients (one goroutine per
// client), and returns each op's latency and the wall time of the batch.
// The first error stops the batch.
func run(ctx context.Context, clients []kubernetes.Interface, n int, op func(ctx context.Context, c kubernetes.Interface, i int) error) (samples, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := make(samples, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s := time.Now()
				if err := op(ctx, c, i); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("op %d: %w", i, err); cancel() })
					return
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(t0), firstErr
}

// ensure makes ns hold objects obj-0000..obj-(n-1) of k, creating what is
// missing (untimed), so that get and list run alone still have their data.
func ensure(ctx context.Context, b *testing.B, c kubernetes.Interface, k kind, ns string, n int) {
	b.Helper()
	_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		createNamespace(ctx, b, c, ns)
	}
	have, _, err := k.list(ctx, c, ns, metav1.ListOptions{})
	if err != nil {
		b.Fatalf("list %s in %s: %v", k.name, ns, err)
	}
	if have == n {
		return
	}
	for i := range n {
		if err := k.create(ctx, c, ns, objName(i)); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatalf("create %s %s/%s: %v", k.name, ns, objName(i), err)
		}
	}
}
