package e2e

// Pods talk to the API server as their service account, as on upstream
// Kubernetes: the kube-api-access volume (a token bound to the pod, the
// cluster CA from kube-root-ca.crt, the namespace) at the path
// client-go's rest.InClusterConfig reads.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func TestServiceAccount(t *testing.T) {
	l := startLab(t, 2)
	k := l.kubectl(t, kubectlVersions(t)[0], "default")
	k.run(t, "run", "kuard", "--image="+kuardImage1)
	k.run(t, "run", "quiet", "--image=busybox", "--overrides", `{"spec":{"automountServiceAccountToken":false}}`, "--", "sleep", "1000")
	k.run(t, "wait", "--for=condition=Ready", "pod/kuard", "pod/quiet", "--timeout=60s")

	t.Run("volume", func(t *testing.T) {
		wantLines(t, k.run(t, "get", "pod", "kuard", "-o", "jsonpath={.spec.serviceAccountName}"), "default")
		wantMatch(t, k.run(t, "get", "pod", "kuard", "-o", "jsonpath={.spec.volumes[*].name}"), `^kube-api-access-[a-z0-9]{5}$`)
		wantLines(t, k.run(t, "exec", "kuard", "--", "cat", serviceAccountDir+"/namespace"), "default")
		caInPod := k.run(t, "exec", "kuard", "--", "cat", serviceAccountDir+"/ca.crt")
		published := k.run(t, "get", "configmap", "kube-root-ca.crt", "-o", `jsonpath={.data.ca\.crt}`)
		if !strings.Contains(caInPod, "BEGIN CERTIFICATE") || strings.TrimSpace(caInPod) != strings.TrimSpace(published) {
			t.Errorf("ca.crt in the pod %q, published %q", caInPod, published)
		}
		if r := k.try(t, nil, "", "exec", "kuard", "--", "touch", serviceAccountDir+"/x"); r.err == nil {
			t.Error("the service account volume is writable")
		}
		if r := k.try(t, nil, "", "exec", "quiet", "--", "ls", serviceAccountDir); r.err == nil {
			t.Errorf("automountServiceAccountToken false: %s exists: %s", serviceAccountDir, r.stdout)
		}
	})

	t.Run("token authenticates", func(t *testing.T) {
		token := strings.TrimSpace(k.run(t, "exec", "kuard", "--", "cat", serviceAccountDir+"/token"))
		if code, body := apiGet(t, l, token, "/api/v1/namespaces/default/pods"); code != http.StatusOK {
			t.Errorf("GET pods with the pod's token: %d %s", code, body)
		}
		if code, _ := apiGet(t, l, token[:len(token)-4]+"AAAA", "/api/v1/namespaces/default/pods"); code != http.StatusUnauthorized {
			t.Errorf("GET pods with a forged token: %d, want 401", code)
		}
		// From inside the pod: the kuard image carries kite, whose
		// kubectl without a kubeconfig takes client-go's in-cluster
		// configuration — KUBERNETES_SERVICE_HOST (the kubernetes
		// Service, through the node's proxy), the token, ca.crt to
		// verify the server, the namespace.
		out := k.run(t, "exec", "kuard", "--", "/kite", "kubectl", "get", "pods", "-o", "name")
		wantMatch(t, out, `(?m)^pod/kuard$`, `(?m)^pod/quiet$`)
	})

	t.Run("deleting the pod revokes its token", func(t *testing.T) {
		token := strings.TrimSpace(k.run(t, "exec", "kuard", "--", "cat", serviceAccountDir+"/token"))
		k.run(t, "delete", "pod", "kuard", "--wait=true", "--timeout=60s")
		// kubectl returned once the pod object is gone: the next
		// request with its token is refused.
		if code, _ := apiGet(t, l, token, "/api/v1/namespaces/default/pods"); code != http.StatusUnauthorized {
			t.Errorf("token of a deleted pod: %d, want 401", code)
		}
	})
}

// apiGet sends GET path to the lab's API server with a bearer token only,
// verifying the server with the lab's CA.
func apiGet(t *testing.T, l *lab, token, path string) (int, string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", l.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg = rest.AnonymousClientConfig(cfg)
	cfg.BearerToken, cfg.Timeout = token, 10*time.Second
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(cfg.Host + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
