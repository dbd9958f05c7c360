package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"kite/internal/runtime"
)

// fakeNet is a PodNetwork that hands out 10.244.1.10, .11, … and records
// its calls ("ADD <sandbox>", "CHECK …", "DEL …").
type fakeNet struct {
	mu       sync.Mutex
	next     int
	attached map[string]string
	calls    []string
	failAdd  error
}

func newFakeNet() *fakeNet { return &fakeNet{attached: map[string]string{}} }

func (f *fakeNet) Add(_ context.Context, att Attachment) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "ADD "+att.SandboxID)
	if err := f.failAdd; err != nil {
		f.failAdd = nil
		return nil, err
	}
	ip := fmt.Sprintf("10.244.1.%d", 10+f.next)
	f.next++
	f.attached[att.SandboxID] = ip
	return []string{ip}, nil
}

func (f *fakeNet) Check(_ context.Context, att Attachment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "CHECK "+att.SandboxID)
	return nil
}

func (f *fakeNet) Del(_ context.Context, att Attachment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "DEL "+att.SandboxID)
	delete(f.attached, att.SandboxID)
	return nil
}

func (f *fakeNet) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeImages knows the images put in it; anything else fails like an
// offline pull.
type fakeImages struct {
	mu     sync.Mutex
	images map[string]Image
	calls  []string
}

func (f *fakeImages) Ensure(_ context.Context, req ImageRequest) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req.Ref)
	if req.Ref == "" || strings.ContainsAny(req.Ref, " A") {
		return Image{}, fmt.Errorf("%w: %q", ErrInvalidImageName, req.Ref)
	}
	img, ok := f.images[req.Ref]
	if !ok {
		if req.Policy == corev1.PullNever {
			return Image{}, ErrImageNeverPull
		}
		return Image{}, fmt.Errorf("pull %s: dial tcp: lookup registry: no such host", req.Ref)
	}
	return img, nil
}

// busyboxImage is the image config of a busybox image over layer.
func busyboxImage(layer string) Image {
	return Image{Ref: "docker.io/library/busybox:latest", ID: "docker.io/library/busybox@sha256:0123", LowerDirs: []string{layer},
		Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
}

// harness is a pod manager over fakes: a fake clientset, runtime.Fake,
// fakeNet, fakeImages and a clock the test moves. Its informer is an
// indexer the harness refreshes from the clientset before each sync.
type harness struct {
	t       *testing.T
	m       *podManager
	rt      *runtime.Fake
	net     *fakeNet
	images  *fakeImages
	client  *fake.Clientset
	svcs    cache.Indexer
	events  *record.FakeRecorder
	mu      sync.Mutex
	clock   time.Time
	workers map[types.UID]*podWorker
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, rt: runtime.NewFake(), net: newFakeNet(), client: fake.NewClientset(),
		events: record.NewFakeRecorder(1000), clock: time.Now().Truncate(time.Second), workers: map[types.UID]*podWorker{}}
	h.images = &fakeImages{images: map[string]Image{"busybox": busyboxImage("/layers/busybox")}}
	h.rt.Now = h.now
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch example.org\n"), 0o644)
	cfg := Config{NodeName: "node1", NodeIP: "10.9.0.2", Port: -1, StateDir: filepath.Join(dir, "state"), ClusterDomain: "cluster.local", ResolvConf: resolv}
	h.m = newPodManager(cfg, h.client, h.rt, h.images, h.net, h.events, corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")})
	h.m.ctx = context.Background()
	h.m.now = h.now
	h.m.podIndexer = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{uidIndex: func(obj any) ([]string, error) {
		return []string{string(obj.(*corev1.Pod).UID)}, nil
	}})
	h.svcs = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	h.m.svcLister = corelisters.NewServiceLister(h.svcs)
	h.addService("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP})
	t.Cleanup(func() {
		for _, w := range h.workers {
			w.stopProbers(nil)
		}
	})
	return h
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock = h.clock.Add(d)
}

func (h *harness) addService(ns, name, ip string, ports ...corev1.ServicePort) {
	h.svcs.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}})
}

var podSeq int

// newPod is a pod bound to node1 with one container "app" running busybox.
func newPod(name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	podSeq++
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(fmt.Sprintf("0000000%d-aaaa-bbbb-cccc-dddddddddddd", podSeq))},
		Spec: corev1.PodSpec{NodeName: "node1", RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
			EnableServiceLinks: ptr.To(true), TerminationGracePeriodSeconds: ptr.To(int64(30)),
			Containers: []corev1.Container{{Name: "app", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "sleep 1000"}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, f := range mutate {
		f(pod)
	}
	return pod
}

// create stores the pod through the clientset and in the informer.
func (h *harness) create(pod *corev1.Pod) *corev1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.m.podIndexer.Add(p)
	return p
}

// get reads the pod from the clientset; nil when it is gone.
func (h *harness) get(pod *corev1.Pod) *corev1.Pod {
	p, err := h.client.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

// sync refreshes the informer from the clientset, relists the runtime
// and runs one sync of the pod's worker.
func (h *harness) sync(pod *corev1.Pod) (time.Duration, bool) {
	h.t.Helper()
	if cur := h.get(pod); cur != nil {
		h.m.podIndexer.Update(cur)
	} else if old, ok, _ := h.m.podIndexer.Get(pod); ok {
		h.m.podIndexer.Delete(old)
	}
	if err := h.m.relist(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	w := h.workers[pod.UID]
	if w == nil {
		w = newPodWorker(h.m, pod.UID)
		h.workers[pod.UID] = w
	}
	return w.sync(context.Background(), h.m.pod(pod.UID))
}

// status syncs and returns the pod's status as written.
func (h *harness) status(pod *corev1.Pod) corev1.PodStatus {
	h.t.Helper()
	h.sync(pod)
	return h.get(pod).Status
}

func (h *harness) eventList() []string {
	var out []string
	for {
		select {
		case e := <-h.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func callsWith(calls []string, prefix string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
