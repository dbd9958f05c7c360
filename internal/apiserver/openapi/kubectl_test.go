package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// kubectlDir holds the kubectl releases kite must work with.
const kubectlDir = "/usr/lib/google-cloud-sdk/bin"

var kubectlVersions = []string{"1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"}

// stubServer serves the OpenAPI documents plus just enough of the rest of
// the API for kubectl: legacy discovery, and a create that echoes its body
// and records the query it was sent.
type stubServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
}

func newStubServer(t *testing.T) *stubServer {
	t.Helper()
	mux := http.NewServeMux()
	if err := Install(mux, servedResources()); err != nil {
		t.Fatal(err)
	}
	s := &stubServer{}
	addDiscovery(mux, servedResources())
	mux.HandleFunc("POST /apis/apps/v1/namespaces/{namespace}/deployments", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.RawQuery)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.Copy(w, r.Body)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// addDiscovery serves legacy (unaggregated) discovery for resources.
func addDiscovery(mux *http.ServeMux, resources []Resource) {
	lists := map[schema.GroupVersion]*metav1.APIResourceList{}
	groups := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, r := range resources {
		gv := r.GroupVersionKind.GroupVersion()
		list, ok := lists[gv]
		if !ok {
			list = &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			lists[gv] = list
			if gv.Group != "" {
				v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
				groups.Groups = append(groups.Groups, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
			}
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Resource, Namespaced: r.Namespaced, Kind: r.GroupVersionKind.Kind, Verbs: r.Verbs,
		})
		for _, sub := range r.Subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: r.GroupVersionKind.Kind, Verbs: []string{"get"},
			})
		}
	}
	serveJSON := func(pattern string, v interface{}) {
		mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		})
	}
	serveJSON("/api", &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}})
	serveJSON("/apis", groups)
	for gv, list := range lists {
		serveJSON("/"+gvDocument(gv), list)
	}
}

// kubectl runs one kubectl release against server with no kubeconfig.
func kubectl(t *testing.T, version, server, stdin string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(kubectlDir, "kubectl."+version),
		append([]string{"--server", server, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG="+filepath.Join(dir, "none"))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func requireKubectl(t *testing.T, version string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs kubectl binaries")
	}
	if _, err := os.Stat(filepath.Join(kubectlDir, "kubectl."+version)); err != nil {
		t.Skipf("kubectl %s not installed: %v", version, err)
	}
}

func TestKubectlExplain(t *testing.T) {
	srv := newStubServer(t)
	tests := []struct {
		args []string
		want []string
	}{
		// v3 is the default since 1.27.
		{[]string{"explain", "deployments.spec.replicas"}, []string{"Deployment", "replicas", "integer"}},
		{[]string{"explain", "services.spec.clusterIP"}, []string{"Service", "clusterIP", "string"}},
		{[]string{"explain", "leases.coordination.k8s.io.spec"}, []string{"Lease", "holderIdentity"}},
		{[]string{"explain", "--output=plaintext-openapiv2", "pods.spec.containers.ports"}, []string{"Pod", "containerPort"}},
	}
	for _, version := range kubectlVersions {
		t.Run(version, func(t *testing.T) {
			requireKubectl(t, version)
			for _, tc := range tests {
				out, err := kubectl(t, version, srv.URL, "", tc.args...)
				if err != nil {
					t.Errorf("kubectl %s: %v\n%s", strings.Join(tc.args, " "), err, out)
					continue
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("kubectl %s: output lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
					}
				}
			}
		})
	}
}

// With --validate=strict kubectl always sends fieldValidation=Strict, but
// checks the object itself, against the v2 schema, unless the OpenAPI
// documents say the server validates fields. The manifest has a field no
// schema knows: kubectl passes it on only if it trusts the server, and the
// stub, unlike kite, accepts it.
func TestKubectlDelegatesValidation(t *testing.T) {
	const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  notAField: true
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
`
	for _, version := range kubectlVersions {
		t.Run(version, func(t *testing.T) {
			requireKubectl(t, version)
			srv := newStubServer(t)
			out, err := kubectl(t, version, srv.URL, manifest,
				"create", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-")
			if err != nil {
				t.Fatalf("kubectl create: %v\n%s", err, out)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.queries) != 1 {
				t.Fatalf("server saw %d creates, want 1 (output: %s)", len(srv.queries), out)
			}
			q := srv.queries[0]
			if !strings.Contains(q, "fieldValidation=Strict") || !strings.Contains(q, "dryRun=All") {
				t.Errorf("create query %q, want fieldValidation=Strict and dryRun=All", q)
			}
		})
	}
}
