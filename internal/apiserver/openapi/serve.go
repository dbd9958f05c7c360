package openapi

import (
	"net/http"
	"strings"

	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Mux is where Install registers handlers; *http.ServeMux satisfies it. A
// pattern ending in "/" must match its whole subtree, as in ServeMux.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Paths Install serves.
const (
	PathV2 = "/openapi/v2"
	PathV3 = "/openapi/v3"
)

// Install serves the documents describing resources:
//
//   - PathV2: the v2 document, as JSON or, when the Accept header asks for
//     application/com.github.proto-openapi.spec.v2@v1.0+protobuf (as
//     kubectl does), protobuf; with ETag and gzip.
//   - PathV3: the index of v3 documents, each listed with a content hash.
//   - PathV3/<name>, e.g. /openapi/v3/apis/apps/v1: one v3 document; 404
//     for names not in the index.
//
// Install validates resources and returns an error naming the first it
// cannot describe; it takes a few milliseconds. Documents are built on
// first request and then kept.
func Install(mux Mux, resources []Resource) error {
	k, err := newKinds()
	if err != nil {
		return err
	}
	docs, err := plan(resources, k)
	if err != nil {
		return err
	}
	if err := checkModels(docs); err != nil {
		return err
	}

	// Etags of the built values are constants: each is built once, and the
	// handlers hash the serialized documents for the ETags they send.
	v2 := cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		s, err := buildV2(docs, k)
		return s, "v2", err
	}))
	handler.NewOpenAPIServiceLazy(v2).RegisterOpenAPIVersionedService(PathV2, mux)

	// All v3 documents share one build, which also keeps the builder's
	// writes to the shared definitions on one goroutine.
	v3 := cached.Once(cached.Func(func() (map[string]*spec3.OpenAPI, string, error) {
		all, err := buildV3(docs, k)
		return all, "v3", err
	}))
	service := handler3.NewOpenAPIService()
	known := map[string]bool{}
	for _, d := range docs {
		name := d.name
		known[name] = true
		service.UpdateGroupVersionLazy(name, cached.Transform(
			func(all map[string]*spec3.OpenAPI, etag string, err error) (*spec3.OpenAPI, string, error) {
				return all[name], etag, err
			}, v3))
	}

	mux.Handle(PathV3, http.HandlerFunc(service.HandleDiscovery))
	mux.Handle(PathV3+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known[strings.TrimPrefix(r.URL.Path, PathV3+"/")] {
			http.NotFound(w, r)
			return
		}
		// handler3 answers a failed build with an empty 200; say what
		// went wrong instead.
		if _, _, err := v3.Get(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		service.HandleGroupVersion(w, r)
	}))
	return nil
}
