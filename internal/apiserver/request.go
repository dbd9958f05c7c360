package apiserver

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// requestInfo is what a resource URL names.
type requestInfo struct {
	gv          schema.GroupVersion
	res         *resource
	namespace   string
	name        string
	subresource string
	// proxyPath is what follows nodes/NAME/proxy/ in the path.
	proxyPath string
	// verb: get, list, watch, create, update, patch, delete,
	// deletecollection, or the subresource's own (connect).
	verb string
}

// parseResourcePath reads /api/v1/... and /apis/GROUP/VERSION/...:
//
//	[watch/][namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
//
// A namespace's own subresources (namespaces/NAME/status) are told apart
// from namespaced resources by looking the third segment up. The bool is
// false when the path names no resource of this server.
func (s *Server) parseResourcePath(r *http.Request) (*requestInfo, string, bool) {
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	var gv schema.GroupVersion
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		gv = schema.GroupVersion{Version: parts[1]}
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
		parts = parts[3:]
	default:
		return nil, "", false
	}
	if s.reg.byGV[gv] == nil {
		return nil, "", false
	}
	info := &requestInfo{gv: gv}
	watchPath := false
	if parts[0] == "watch" {
		// The deprecated /watch/ prefix.
		watchPath = true
		parts = parts[1:]
		if len(parts) == 0 {
			return nil, "", false
		}
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		if r := s.reg.lookup(gv, parts[2]); r != nil && r.namespaced {
			info.namespace = parts[1]
			parts = parts[2:]
		}
	}
	info.res = s.reg.lookup(gv, parts[0])
	if info.res == nil {
		return nil, "", false
	}
	if len(parts) > 1 {
		info.name = parts[1]
	}
	if len(parts) > 2 {
		info.subresource = strings.Join(parts[2:], "/")
	}
	if len(parts) > 3 {
		// Only proxy subresources take more path.
		if parts[2] != "proxy" {
			return info, "", false
		}
		info.subresource, info.proxyPath = "proxy", strings.Join(parts[3:], "/")
	}
	if info.subresource != "" && !info.res.hasSubresource(info.subresource) {
		return nil, "", false
	}

	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.name != "" && !watchPath:
			info.verb = "get"
		case watchPath || q.Get("watch") == "true" || q.Get("watch") == "1":
			info.verb = "watch"
		default:
			info.verb = "list"
		}
	case http.MethodPost:
		info.verb = "create"
	case http.MethodPut:
		info.verb = "update"
	case http.MethodPatch:
		info.verb = "patch"
	case http.MethodDelete:
		info.verb = "delete"
		if info.name == "" {
			info.verb = "deletecollection"
		}
	default:
		return info, "", true
	}
	return info, info.verb, true
}
