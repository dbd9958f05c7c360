package apiserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var coreV1 = schema.GroupVersion{Version: "v1"}

// subresourceInfo: how discovery describes a subresource.
type subresourceInfo struct {
	kind  schema.GroupVersionKind // empty Group/Version: the parent's
	verbs []string
}

var subresourceInfos = map[string]subresourceInfo{
	"status":      {verbs: []string{"get", "patch", "update"}},
	"scale":       {kind: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, verbs: []string{"get", "patch", "update"}},
	"binding":     {kind: schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, verbs: []string{"create"}},
	"log":         {verbs: []string{"get"}},
	"exec":        {kind: schema.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"}, verbs: []string{"create", "get"}},
	"attach":      {kind: schema.GroupVersionKind{Version: "v1", Kind: "PodAttachOptions"}, verbs: []string{"create", "get"}},
	"portforward": {kind: schema.GroupVersionKind{Version: "v1", Kind: "PodPortForwardOptions"}, verbs: []string{"create", "get"}},
	"finalize":    {verbs: []string{"update"}},
	"token":       {kind: tokenRequestGVK, verbs: []string{"create"}},
	"proxy":       {kind: schema.GroupVersionKind{Version: "v1", Kind: "NodeProxyOptions"}, verbs: []string{"create", "delete", "get", "patch", "update"}},
}

func (r *resource) subresourceNames() []string {
	var out []string
	if r.status {
		out = append(out, "status")
	}
	return append(out, r.subresources...)
}

func (r *resource) subresourceKind(sub string) schema.GroupVersionKind {
	k := subresourceInfos[sub].kind
	if k.Kind == "" {
		return r.gvk()
	}
	return k
}

// apiResources is the legacy discovery list of one group-version.
func (s *Server) apiResources(gv schema.GroupVersion) *metav1.APIResourceList {
	list := &metav1.APIResourceList{GroupVersion: gv.String()}
	list.Kind, list.APIVersion = "APIResourceList", "v1"
	for _, r := range s.reg.ordered {
		if r.gvr.GroupVersion() != gv {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.gvr.Resource, SingularName: r.singular, Namespaced: r.namespaced, Kind: r.kind,
			Verbs: r.verbs(), ShortNames: r.shortNames, Categories: r.categories,
		})
		for _, sub := range r.subresourceNames() {
			k := r.subresourceKind(sub)
			ar := metav1.APIResource{Name: r.gvr.Resource + "/" + sub, Namespaced: r.namespaced, Kind: k.Kind, Verbs: subresourceInfos[sub].verbs}
			if k.GroupVersion() != gv {
				ar.Group, ar.Version = k.Group, k.Version
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	return list
}

// aggregated builds the aggregated discovery document (v2) for the core
// group (/api) or the named groups (/apis).
func (s *Server) aggregated(core bool) *apidiscoveryv2.APIGroupDiscoveryList {
	out := &apidiscoveryv2.APIGroupDiscoveryList{}
	out.Kind, out.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
	gvs := s.reg.groups()
	if core {
		gvs = []schema.GroupVersion{coreV1}
	}
	for _, gv := range gvs {
		g := apidiscoveryv2.APIGroupDiscovery{}
		g.Name = gv.Group
		v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range s.reg.ordered {
			if r.gvr.GroupVersion() != gv {
				continue
			}
			scope := apidiscoveryv2.ScopeCluster
			if r.namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			k := r.gvk()
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource: r.gvr.Resource, ResponseKind: &metav1.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind},
				Scope: scope, SingularResource: r.singular, Verbs: r.verbs(), ShortNames: r.shortNames, Categories: r.categories,
			}
			for _, sub := range r.subresourceNames() {
				sk := r.subresourceKind(sub)
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource:  sub,
					ResponseKind: &metav1.GroupVersionKind{Group: sk.Group, Version: sk.Version, Kind: sk.Kind},
					Verbs:        subresourceInfos[sub].verbs,
				})
			}
			v.Resources = append(v.Resources, rd)
		}
		g.Versions = []apidiscoveryv2.APIVersionDiscovery{v}
		out.Items = append(out.Items, g)
	}
	return out
}

// toV2beta1 converts the aggregated document for clients that only know
// v2beta1 (kubectl 1.26–1.29). The two versions have the same shape.
func toV2beta1(in *apidiscoveryv2.APIGroupDiscoveryList) (*apidiscoveryv2beta1.APIGroupDiscoveryList, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out := &apidiscoveryv2beta1.APIGroupDiscoveryList{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	out.APIVersion = "apidiscovery.k8s.io/v2beta1"
	return out, nil
}

// aggregatedVersion reports which aggregated discovery version the client
// accepts first ("v2", "v2beta1"), or "" for the legacy documents.
func aggregatedVersion(accept string) string {
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" {
			if params["v"] == "v2" || params["v"] == "v2beta1" {
				return params["v"]
			}
			continue
		}
		if mt == "application/json" || mt == "*/*" || mt == "application/*" {
			return ""
		}
	}
	return ""
}

func (s *Server) serveRootDiscovery(w http.ResponseWriter, r *http.Request, path string) {
	core := path == "/api"
	if v := aggregatedVersion(r.Header.Get("Accept")); v != "" {
		var doc interface{} = s.aggregated(core)
		if v == "v2beta1" {
			b, err := toV2beta1(doc.(*apidiscoveryv2.APIGroupDiscoveryList))
			if err != nil {
				s.writeError(w, r, apierrors.NewInternalError(err))
				return
			}
			doc = b
		}
		w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v="+v+";as=APIGroupDiscoveryList")
		w.Header().Set("Vary", "Accept")
		_ = json.NewEncoder(w).Encode(doc)
		return
	}
	w.Header().Set("Vary", "Accept")
	if core {
		v := &metav1.APIVersions{Versions: []string{"v1"}, ServerAddressByClientCIDRs: s.serverAddresses()}
		v.Kind = "APIVersions"
		s.write(w, http.StatusOK, target{info: s.jsonInfo()}, v)
		return
	}
	list := &metav1.APIGroupList{}
	list.Kind, list.APIVersion = "APIGroupList", "v1"
	for _, gv := range s.reg.groups() {
		list.Groups = append(list.Groups, s.apiGroup(gv))
	}
	s.write(w, http.StatusOK, target{info: s.jsonInfo()}, list)
}

func (s *Server) apiGroup(gv schema.GroupVersion) metav1.APIGroup {
	gvd := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	return metav1.APIGroup{
		Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{gvd}, PreferredVersion: gvd,
		ServerAddressByClientCIDRs: s.serverAddresses(),
	}
}

func (s *Server) serverAddresses() []metav1.ServerAddressByClientCIDR {
	if s.cfg.AdvertiseAddress == "" {
		return nil
	}
	return []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.advertiseHostPort()}}
}

// serveGroup answers /apis/GROUP; false when the group is not served.
func (s *Server) serveGroup(w http.ResponseWriter, r *http.Request, group string) bool {
	for _, gv := range s.reg.groups() {
		if gv.Group == group {
			g := s.apiGroup(gv)
			g.Kind, g.APIVersion = "APIGroup", "v1"
			s.write(w, http.StatusOK, target{info: s.jsonInfo()}, &g)
			return true
		}
	}
	return false
}

func (s *Server) serveGroupVersion(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion) {
	s.write(w, http.StatusOK, target{info: s.jsonInfo()}, s.apiResources(gv))
}
