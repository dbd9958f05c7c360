package agent

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kite/internal/testutil/apitest"
)

// TestServiceAccountVolumeOnANode: with real runc, a pod finds its token,
// the cluster CA and its namespace at the path client libraries read,
// read-only, and the token authenticates to the API server.
func TestServiceAccountVolumeOnANode(t *testing.T) {
	api := apitest.Start(t, apitest.Options{})
	node := newTestNode(t, api)
	node.createPod("sa", "sleep 1000")
	pod := node.waitPod("sa", "Ready", podReady)
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	if out, code := node.exec(pod, "cat", dir+"namespace"); code != 0 || out != "default" {
		t.Errorf("namespace file: %q (exit %d)", out, code)
	}
	if out, code := node.exec(pod, "grep", "-c", "BEGIN CERTIFICATE", dir+"ca.crt"); code != 0 || out != "1\n" {
		t.Errorf("ca.crt: %q (exit %d)", out, code)
	}
	if _, code := node.exec(pod, "touch", dir+"x"); code == 0 {
		t.Error("the volume is writable")
	}
	token, code := node.exec(pod, "cat", dir+"token")
	if code != 0 || token == "" {
		t.Fatalf("token file: %q (exit %d)", token, code)
	}
	cfg := rest.AnonymousClientConfig(api.Config)
	cfg.BearerToken = token
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Errorf("list pods with the pod's token: %v", err)
	}
}
