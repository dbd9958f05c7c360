package apiserver

import (
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ServeHTTP routes a request: health and version, discovery, OpenAPI, then
// resources. Authentication happens first (see auth.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if user == nil && !publicPath(r.URL.Path) {
		s.writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/healthz" || path == "/livez" || path == "/readyz" ||
		strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/") || strings.HasPrefix(path, "/readyz/"):
		s.serveHealth(w, r)
		return
	case path == "/version":
		s.serveVersion(w, r)
		return
	case strings.HasPrefix(path, "/openapi/"):
		s.openapi.ServeHTTP(w, r)
		return
	case path == "/api" || path == "/apis":
		s.serveRootDiscovery(w, r, path)
		return
	}
	if gv, ok := discoveryPath(path); ok {
		if s.reg.byGV[gv] != nil {
			s.serveGroupVersion(w, r, gv)
			return
		}
		if gv.Version == "" && gv.Group != "" && s.serveGroup(w, r, gv.Group) {
			return
		}
	}
	info, verb, ok := s.parseResourcePath(r)
	if !ok {
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	if info.res.deprecated != "" {
		warn(w, []string{info.res.deprecated})
	}
	if connectSubresource(info) {
		s.connect(w, r, info)
		return
	}
	switch verb {
	case "get":
		s.get(w, r, info)
	case "list":
		s.list(w, r, info)
	case "watch":
		s.watch(w, r, info)
	case "create":
		s.create(w, r, info)
	case "update":
		s.update(w, r, info)
	case "patch":
		s.patch(w, r, info)
	case "delete":
		s.delete(w, r, info)
	case "deletecollection":
		s.deleteCollection(w, r, info)
	default:
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), r.Method))
	}
}

// discoveryPath reads /api/v1, /apis/GROUP and /apis/GROUP/VERSION.
func discoveryPath(path string) (schema.GroupVersion, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "api":
		return schema.GroupVersion{Version: parts[1]}, true
	case len(parts) == 2 && parts[0] == "apis":
		return schema.GroupVersion{Group: parts[1]}, true
	case len(parts) == 3 && parts[0] == "apis":
		return schema.GroupVersion{Group: parts[1], Version: parts[2]}, true
	}
	return schema.GroupVersion{}, false
}

// publicPath: what anonymous clients may read (upstream's
// system:public-info-viewer).
func publicPath(path string) bool {
	p := strings.TrimSuffix(path, "/")
	for _, pub := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		if p == pub || strings.HasPrefix(p, pub+"/") {
			return true
		}
	}
	return false
}
