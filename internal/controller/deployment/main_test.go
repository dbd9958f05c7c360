package deployment

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"kite/internal/controller/replicaset"
	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
	"kite/internal/testutil/nodesim"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

// wait is how long a test waits for the controllers to converge.
const wait = 30 * time.Second

const (
	imageV1 = "gcr.io/kuar-demo/kuard-amd64:1"
	imageV2 = "gcr.io/kuar-demo/kuard-amd64:2"
)

// env is a real API server with the Deployment and ReplicaSet controllers
// running against it, and a namespace of the test's own. The test plays
// the nodes: it marks pods ready (nodesim) when it wants them so.
type env struct {
	ctx        context.Context
	client     kubernetes.Interface
	ns         string
	kubeconfig string
}

func start(t *testing.T) *env {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{})
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	dc, err := New(Config{Client: srv.Client, Informers: factory, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	rsc, err := replicaset.New(replicaset.Config{Client: srv.Client, Informers: factory, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 2)
	go func() { done <- dc.Run(ctx) }()
	go func() { done <- rsc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		factory.Shutdown()
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "deploy-test"}}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, client: srv.Client, ns: ns.Name, kubeconfig: filepath.Join(srv.StateDir, "admin.kubeconfig")}
}

// newDeployment is what `kubectl create deployment name --image=kuard:1
// --replicas=n` makes.
func newDeployment(name string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kuard", Image: imageV1}}},
			},
		},
	}
}

func (e *env) create(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	out, err := e.client.AppsV1().Deployments(e.ns).Create(e.ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) get(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.client.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// patch applies a strategic merge patch to the Deployment.
func (e *env) patch(t *testing.T, name, patch string) {
	t.Helper()
	if _, err := e.client.AppsV1().Deployments(e.ns).Patch(e.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// patchRS applies a strategic merge patch to a ReplicaSet.
func (e *env) patchRS(t *testing.T, name, patch string) {
	t.Helper()
	if _, err := e.client.AppsV1().ReplicaSets(e.ns).Patch(e.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// setImage is `kubectl set image deployment/name kuard=image`.
func (e *env) setImage(t *testing.T, name, image string) {
	t.Helper()
	e.patch(t, name, `{"spec":{"template":{"spec":{"containers":[{"name":"kuard","image":"`+image+`"}]}}}}`)
}

// scale is `kubectl scale deployment/name --replicas=n`.
func (e *env) scale(t *testing.T, name string, n int32) {
	t.Helper()
	s, err := e.client.AppsV1().Deployments(e.ns).GetScale(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas, s.ResourceVersion = n, ""
	if _, err := e.client.AppsV1().Deployments(e.ns).UpdateScale(e.ctx, name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// replicaSets are the ReplicaSets the Deployment controls, oldest first.
func (e *env) replicaSets(t *testing.T, d *appsv1.Deployment) []appsv1.ReplicaSet {
	t.Helper()
	list, err := e.client.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b appsv1.ReplicaSet) int { return byCreation(&a, &b) })
	return out
}

// pods are the namespace's pods, those being deleted included.
func (e *env) pods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// livePodsOf are the pods the ReplicaSet controls that are not being
// deleted.
func (e *env) livePodsOf(t *testing.T, rs *appsv1.ReplicaSet) []corev1.Pod {
	t.Helper()
	var out []corev1.Pod
	for _, p := range e.pods(t) {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// rolledOut: the Deployment's status says every replica is updated and
// available for its current generation.
func rolledOut(d *appsv1.Deployment) bool {
	n := *d.Spec.Replicas
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.Replicas == n && s.AvailableReplicas == n
}

// rollOut plays the node until the Deployment is rolled out: it marks
// every live pod of the Deployment ready as it appears.
func (e *env) rollOut(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	return e.rollOutOn(t, name, "")
}

// rollOutOn is rollOut, binding the pods to node first when node is set
// (bound pods are deleted gracefully: see reapTerminating).
func (e *env) rollOutOn(t *testing.T, name, node string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	apitest.WaitFor(t, wait, "deployment "+name+" rolled out", func() bool {
		d = e.get(t, name)
		if rolledOut(d) {
			return true
		}
		for _, rs := range e.replicaSets(t, d) {
			for _, p := range e.livePodsOf(t, &rs) {
				if podReady(&p) {
					continue
				}
				var err error
				if node != "" && p.Spec.NodeName == "" {
					err = nodesim.Bind(e.ctx, e.client, e.ns, p.Name, node)
				}
				if err == nil {
					err = nodesim.SetReady(e.ctx, e.client, e.ns, p.Name, true)
				}
				if err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
		}
		return false
	})
	return d
}

// reapTerminating plays the kubelet's last step: pods whose graceful
// deletion has begun are removed for good.
func (e *env) reapTerminating(t *testing.T) {
	t.Helper()
	for _, p := range e.pods(t) {
		if p.DeletionTimestamp == nil {
			continue
		}
		err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}

// waitReplicaSets waits until the Deployment's ReplicaSets, oldest first,
// want the given numbers of pods, and returns them.
func (e *env) waitReplicaSets(t *testing.T, d *appsv1.Deployment, want ...int32) []appsv1.ReplicaSet {
	t.Helper()
	var rss []appsv1.ReplicaSet
	apitest.WaitFor(t, wait, fmt.Sprintf("replica sets sized %v", want), func() bool {
		rss = e.replicaSets(t, d)
		if len(rss) != len(want) {
			return false
		}
		for i := range rss {
			if rsReplicas(&rss[i]) != want[i] {
				return false
			}
		}
		return true
	})
	return rss
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// events are the messages of the events about the named object, by reason.
func (e *env) events(t *testing.T, name string) map[string][]string {
	t.Helper()
	list, err := e.client.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ev := range list.Items {
		out[ev.Reason] = append(out[ev.Reason], ev.Message)
	}
	return out
}

// hasEvent waits for an event about the named object. After ten similar
// events the recorder aggregates them, as upstream's does, into one whose
// message is the latest prefixed "(combined from similar events): ".
func (e *env) hasEvent(t *testing.T, name, reason, message string) {
	t.Helper()
	apitest.WaitFor(t, wait, reason+" event "+message, func() bool {
		msgs := e.events(t, name)[reason]
		return slices.Contains(msgs, message) || slices.Contains(msgs, "(combined from similar events): "+message)
	})
}

func condition(d *appsv1.Deployment, ct appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	return getCondition(d.Status, ct)
}

// kubectlPath is the real kubectl the tests drive, if installed.
const kubectlPath = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"

// kubectl runs the real kubectl against the test's API server, in the
// test's namespace.
func (e *env) kubectl(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath, append([]string{"--namespace", e.ns}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kubectlInstalled() bool {
	_, err := os.Stat(kubectlPath)
	return err == nil
}

func needKubectl(t *testing.T) {
	t.Helper()
	if !kubectlInstalled() {
		t.Skipf("real kubectl not installed at %s", kubectlPath)
	}
}

// bgKubectl is a kubectl running in the background whose output lines the
// test can wait for.
type bgKubectl struct {
	lines chan string
	done  chan struct{}
	out   strings.Builder
	err   error
}

func (e *env) startKubectl(t *testing.T, args ...string) *bgKubectl {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	cmd := exec.CommandContext(ctx, kubectlPath, append([]string{"--namespace", e.ns}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &bgKubectl{lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			k.out.WriteString(sc.Text() + "\n")
			select {
			case k.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
		k.err = cmd.Wait()
	}()
	t.Cleanup(func() { cancel(); <-k.done })
	return k
}

// waitLine waits for kubectl to print line.
func (k *bgKubectl) waitLine(t *testing.T, line string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case l := <-k.lines:
			if l == line {
				return
			}
		case <-k.done:
			t.Fatalf("kubectl ended (%v) without printing %q:\n%s", k.err, line, k.out.String())
		case <-timeout:
			t.Fatalf("kubectl did not print %q within %v", line, wait)
		}
	}
}

// wait waits for kubectl to end and returns all it printed.
func (k *bgKubectl) wait() (string, error) {
	<-k.done
	return k.out.String(), k.err
}
