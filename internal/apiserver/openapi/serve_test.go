package openapi

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/util/proto"
)

const protobufV2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

// serve starts a server with only the OpenAPI handlers, for the served
// resources, and returns clients built the way kubectl builds them.
func serve(t *testing.T) (*httptest.Server, *discovery.DiscoveryClient, dynamic.Interface) {
	t.Helper()
	mux := http.NewServeMux()
	if err := Install(mux, servedResources()); err != nil {
		t.Fatalf("Install: %v", err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	cfg := &rest.Config{Host: srv.URL}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, disco, dyn
}

// servedKinds are the kinds kubectl may send with --validate=strict.
var servedKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Namespace"},
	{Version: "v1", Kind: "Node"},
	{Version: "v1", Kind: "Pod"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "Endpoints"},
	{Version: "v1", Kind: "Event"},
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "Secret"},
	{Version: "v1", Kind: "ServiceAccount"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"},
	{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"},
	{Group: "events.k8s.io", Version: "v1", Kind: "Event"},
}

// kubectl asks both verifiers whether the server validates fields itself;
// if not, it falls back to client-side validation or, with
// --validate=strict, refuses.
func TestFieldValidationSupported(t *testing.T) {
	_, disco, dyn := serve(t)
	v2 := resource.NewQueryParamVerifier(dyn, disco, resource.QueryParamFieldValidation)
	v3 := resource.NewQueryParamVerifierV3(dyn, disco.OpenAPIV3(), resource.QueryParamFieldValidation)
	for _, gvk := range servedKinds {
		if err := v2.HasSupport(gvk); err != nil {
			t.Errorf("v2 verifier: %v", err)
		}
		if err := v3.HasSupport(gvk); err != nil {
			t.Errorf("v3 verifier: %v", err)
		}
	}

	// A kind kite does not serve must not be reported as supported.
	unknown := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	if err := v3.HasSupport(unknown); !resource.IsParamUnsupportedError(err) {
		t.Errorf("v3 verifier for %s: got %v, want unsupported", unknown, err)
	}
}

func TestV2Protobuf(t *testing.T) {
	_, disco, _ := serve(t)
	doc, err := disco.OpenAPISchema() // asks for protobuf only, like kubectl
	if err != nil {
		t.Fatalf("fetching v2 as protobuf: %v", err)
	}
	models, err := proto.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("parsing v2 models: %v", err)
	}

	spec, ok := models.LookupModel("io.k8s.api.core.v1.ServiceSpec").(*proto.Kind)
	if !ok {
		t.Fatal("io.k8s.api.core.v1.ServiceSpec is missing or not an object")
	}
	if f := spec.Fields["clusterIP"]; f == nil || f.GetDescription() == "" {
		t.Errorf("ServiceSpec.clusterIP = %v, want a described field", f)
	}

	deployment := models.LookupModel("io.k8s.api.apps.v1.Deployment")
	if deployment == nil {
		t.Fatal("io.k8s.api.apps.v1.Deployment is missing")
	}
	gvks, _ := deployment.GetExtensions()[extensionGVK].([]interface{})
	if len(gvks) != 1 {
		t.Fatalf("Deployment %s = %v, want one entry", extensionGVK, deployment.GetExtensions()[extensionGVK])
	}
}

func TestV3ServiceSchema(t *testing.T) {
	_, disco, _ := serve(t)
	root := openapi3.NewRoot(disco.OpenAPIV3())
	doc, err := root.GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatalf("fetching api/v1: %v", err)
	}

	service := doc.Components.Schemas["io.k8s.api.core.v1.Service"]
	if service == nil {
		t.Fatal("api/v1 has no io.k8s.api.core.v1.Service")
	}
	var gvks []map[string]string
	if err := service.Extensions.GetObject(extensionGVK, &gvks); err != nil || len(gvks) != 1 ||
		gvks[0]["group"] != "" || gvks[0]["version"] != "v1" || gvks[0]["kind"] != "Service" {
		t.Errorf("Service %s = %v (%v), want [{ v1 Service}]", extensionGVK, gvks, err)
	}

	// Service.spec refers to ServiceSpec (wrapped in allOf, as v3 requires
	// when a reference has siblings such as a description).
	specRef := service.Properties["spec"]
	ref := specRef.Ref.String()
	if ref == "" && len(specRef.AllOf) == 1 {
		ref = specRef.AllOf[0].Ref.String()
	}
	if ref != "#/components/schemas/io.k8s.api.core.v1.ServiceSpec" {
		t.Fatalf("Service.spec refers to %q", ref)
	}
	clusterIP, ok := doc.Components.Schemas["io.k8s.api.core.v1.ServiceSpec"].Properties["clusterIP"]
	if !ok || clusterIP.Description == "" || !clusterIP.Type.Contains("string") {
		t.Errorf("ServiceSpec.clusterIP = %+v, want a described string", clusterIP.SchemaProps)
	}
}

func TestV3Index(t *testing.T) {
	srv, _, _ := serve(t)
	var index struct {
		Paths map[string]struct{ ServerRelativeURL string }
	}
	getJSON(t, srv.URL+PathV3, &index)
	for _, name := range []string{"api/v1", "apis/apps/v1", "apis/discovery.k8s.io/v1",
		"apis/coordination.k8s.io/v1", "apis/events.k8s.io/v1"} {
		url := index.Paths[name].ServerRelativeURL
		if !strings.HasPrefix(url, PathV3+"/"+name+"?hash=") {
			t.Errorf("index entry %s = %q, want a hashed URL", name, url)
			continue
		}
		resp := get(t, srv.URL+url, "application/json")
		if got := resp.Header.Get("Cache-Control"); got != "public, immutable" {
			t.Errorf("%s: Cache-Control %q, want immutable", url, got)
		}
	}

	if resp := get(t, srv.URL+PathV3+"/apis/batch/v1", "application/json"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown group-version: status %d, want 404", resp.StatusCode)
	}
}

func TestV2Negotiation(t *testing.T) {
	srv, _, _ := serve(t)
	tests := []struct {
		accept, wantType string
	}{
		{"application/json", "application/json"},
		{protobufV2, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"},
		{"", "application/json"},
	}
	for _, tc := range tests {
		resp := get(t, srv.URL+PathV2, tc.accept)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.wantType || resp.Header.Get("Etag") == "" {
			t.Errorf("Accept %q: status %d, type %q, etag %q; want 200, %q and an etag",
				tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Etag"), tc.wantType)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+PathV2, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]interface{}
	if err := json.NewDecoder(zr).Decode(&doc); err != nil || doc["swagger"] != "2.0" {
		t.Errorf("gzipped v2: swagger=%v, err=%v", doc["swagger"], err)
	}
}

func get(t *testing.T, url, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func getJSON(t *testing.T, url string, into interface{}) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Clients fetch v2 and several v3 documents at once right after start-up;
// the lazy builds must cope (run with -race).
func TestConcurrentFirstRequests(t *testing.T) {
	srv, _, _ := serve(t)
	paths := []string{PathV2, PathV3, PathV3 + "/api/v1", PathV3 + "/apis/apps/v1", PathV3 + "/apis/events.k8s.io/v1"}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(srv.URL + p)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: status %d", p, resp.StatusCode)
				}
			}()
		}
	}
	wg.Wait()
}
