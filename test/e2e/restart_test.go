package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestart stops kite server and starts it again on the same state dir
// and port: every object is still there with its uid and resourceVersion,
// new writes get larger resourceVersions, the Service allocations hold,
// and watches resume from a resourceVersion taken before the restart.
//
// A `kubectl get -w` running across the restart ends when its connection
// drops (kubectl does not re-establish it), so kubectl's watch is checked
// after the restart; an informer resuming across a restart is covered by
// internal/apiserver/watch_test.go (TestInformerAcrossRestart).
func TestRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	k := newKubectl(t, kubectlVersions(t)[0], s, "restart")
	a := newAPI(t, s, true)
	ns := k.ns

	k.run(t, "create", "namespace", ns)
	k.run(t, "create", "configmap", "one", "--from-literal=k=v")
	k.run(t, "create", "deployment", "kuard", "--image=gcr.io/kuar-demo/kuard-amd64:1", "--replicas=3")
	k.run(t, "expose", "deployment", "kuard", "--type=NodePort", "--port=80", "--target-port=8080")
	k.run(t, "apply", "-f", "testdata/nodes.yaml")

	objects := []string{"namespace/" + ns, "configmap/one", "deployment/kuard", "service/kuard", "node/node-a", "node/node-b"}
	identity := func(t *testing.T) map[string]string {
		got := map[string]string{}
		for _, o := range objects {
			got[o] = k.run(t, "get", o, "-o", "jsonpath={.metadata.uid} {.metadata.resourceVersion}")
		}
		return got
	}
	svcAlloc := `{.spec.clusterIP} {.spec.ports[0].nodePort}`
	before := identity(t)
	allocBefore := k.run(t, "get", "service", "kuard", "-o", "jsonpath="+svcAlloc)
	var list struct {
		Metadata struct{ ResourceVersion string }
	}
	a.must(t, 200, "GET", "/api/v1/namespaces/"+ns+"/configmaps", "", "").object(t, &list)
	listRV := list.Metadata.ResourceVersion
	caBefore, err := os.ReadFile(filepath.Join(s.stateDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	var maxRV int64
	for o, idrv := range before {
		_, rv, _ := strings.Cut(idrv, " ")
		maxRV = max(maxRV, parseRV(t, o, rv))
	}

	s.stop(t)
	if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the server stopped", s.addr)
	}
	s.start(t)

	t.Run("objects keep uid and resourceVersion", func(t *testing.T) {
		after := identity(t)
		for _, o := range objects {
			if after[o] != before[o] {
				t.Errorf("%s: uid and resourceVersion %q after restart, want %q", o, after[o], before[o])
			}
		}
		if got := k.run(t, "get", "service", "kuard", "-o", "jsonpath="+svcAlloc); got != allocBefore {
			t.Errorf("service kuard clusterIP and nodePort %q after restart, want %q", got, allocBefore)
		}
		caAfter, err := os.ReadFile(filepath.Join(s.stateDir, "pki", "ca.crt"))
		if err != nil || !bytes.Equal(caAfter, caBefore) {
			t.Errorf("pki/ca.crt changed across the restart (err %v); kubeconfigs issued before would stop working", err)
		}
	})

	t.Run("new writes get larger resourceVersions", func(t *testing.T) {
		k.run(t, "label", "configmap", "one", "restarted=yes")
		labelled := parseRV(t, "configmap/one", k.run(t, "get", "configmap", "one", "-o", "jsonpath={.metadata.resourceVersion}"))
		k.run(t, "create", "configmap", "two", "--from-literal=k=v")
		created := parseRV(t, "configmap/two", k.run(t, "get", "configmap", "two", "-o", "jsonpath={.metadata.resourceVersion}"))
		if labelled <= maxRV || created <= labelled {
			t.Errorf("resourceVersions after restart: label %d, create %d; want them increasing past %d", labelled, created, maxRV)
		}
	})

	t.Run("service allocations hold", func(t *testing.T) {
		ip, port, _ := strings.Cut(allocBefore, " ")
		for name, spec := range map[string]string{
			"same-ip":   fmt.Sprintf(`{"clusterIP":%q,"ports":[{"port":80}]}`, ip),
			"same-port": fmt.Sprintf(`{"type":"NodePort","ports":[{"port":80,"nodePort":%s}]}`, port),
		} {
			manifest := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q},"spec":%s}`, name, spec)
			r := k.try(t, nil, manifest, "create", "-f", "-")
			if r.err == nil {
				t.Errorf("service %s (%s) was created, want it refused: already allocated", name, spec)
				continue
			}
			wantMatch(t, r.stderr, `(?s)Invalid.*provided (IP|port) is already allocated`)
		}
	})

	t.Run("watch from before the restart resumes", func(t *testing.T) {
		evs := a.watch(t, "/api/v1/namespaces/"+ns+"/configmaps?watch=1&resourceVersion="+listRV, 2, 20*time.Second)
		got := []string{evs[0].Type + " " + evs[0].Object.Metadata.Name, evs[1].Type + " " + evs[1].Object.Metadata.Name}
		if want := []string{"MODIFIED one", "ADDED two"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("events since resourceVersion %s: %q, want %q", listRV, got, want)
		}
	})

	t.Run("kubectl get -w after the restart", func(t *testing.T) {
		w := k.watch(t, "get", "configmaps", "--watch", "--output-watch-events")
		w.next(t, 20*time.Second, "initial ADDED two", func(f []string) bool { return len(f) > 1 && f[0] == "ADDED" && f[1] == "two" })
		k.run(t, "label", "configmap", "two", "seen=yes")
		f := w.next(t, 20*time.Second, "event for two", func(f []string) bool { return len(f) > 1 && f[1] == "two" })
		if f[0] != "MODIFIED" {
			t.Errorf("event %q, want MODIFIED two", f)
		}
	})
}

// parseRV reads a resourceVersion as kite issues them (etcd revisions).
// Clients must treat them as opaque; this test checks kite's promise that
// they keep increasing across restarts.
func parseRV(t *testing.T, what, rv string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		t.Fatalf("%s: resourceVersion %q is not an etcd revision: %v", what, rv, err)
	}
	return n
}
