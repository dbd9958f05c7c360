package controlplane

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kite/internal/apiserver"
	"kite/internal/storage"
	"kite/internal/testutil"
	"kite/internal/testutil/apitest"
)

func TestMain(m *testing.M) { testutil.MainInNetns(m) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs a control plane; the returned func stops it and waits.
func start(t *testing.T, etcd []string) (kubernetes.Interface, *ControlPlane, func()) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := New(ctx, Config{API: apiserver.Config{StateDir: dir, Listen: freeAddr(t), EtcdEndpoints: etcd},
		LeaderElection: true, LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("control plane did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, cp, stop
}

func holder(client kubernetes.Interface) string {
	l, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kite-controller-manager", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// Two servers on one etcd: one runs the loops; when it stops, the other
// takes over within seconds and its loops work.
func TestLeaderElectionTakeover(t *testing.T) {
	ctx := context.Background()
	etcdDir := t.TempDir()
	e, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{Dir: etcdDir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	etcd := []string{"unix://" + etcdDir + "/client.sock"}
	a, cpA, stopA := start(t, etcd)
	b, cpB, stopB := start(t, etcd)
	apitest.WaitFor(t, 30*time.Second, "a leader", func() bool { return holder(a) != "" })
	leader := holder(a)
	// Stop whichever leads; the other must take over.
	survivor, stopLeader := b, stopA
	switch leader {
	case cpA.Identity():
	case cpB.Identity():
		survivor, stopLeader = a, stopB
	default:
		t.Fatalf("leader %q is neither server", leader)
	}
	stopLeader()
	apitest.WaitFor(t, 30*time.Second, "a new leader", func() bool { h := holder(survivor); return h != "" && h != leader })
	// The new leader's loops run: deleting a namespace completes.
	if _, err := survivor.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "one"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := survivor.CoreV1().Namespaces().Delete(ctx, "one", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	apitest.WaitFor(t, 30*time.Second, "namespace deleted by the new leader", func() bool {
		_, err := survivor.CoreV1().Namespaces().Get(ctx, "one", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
