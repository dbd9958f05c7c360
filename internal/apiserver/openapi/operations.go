package openapi

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// paths names one resource's paths and operations, e.g. for deployments:
// collection /apis/apps/v1/namespaces/{namespace}/deployments and IDs like
// patchAppsV1NamespacedDeployment.
type paths struct {
	root       string // /apis/apps/v1
	rel        string // namespaces/{namespace}/deployments
	plural     string // deployments
	gvID       string // AppsV1
	scope      string // Namespaced, or empty for cluster-scoped kinds
	kind       string
	tag        string
	pathParams []param
}

func (p paths) collection() string { return p.root + "/" + p.rel }
func (p paths) item() string       { return p.collection() + "/{name}" }

// id builds an operation ID from its verb, the kind and a suffix naming
// the subresource.
func (p paths) id(verb, suffix string) string { return verb + p.gvID + p.scope + p.kind + suffix }

func (p paths) itemParams(kind string) []param {
	return append(append([]param(nil), p.pathParams...), param{"name", "name of the " + kind})
}

func resourcePaths(r Resource) paths {
	gvk := r.GroupVersionKind
	gv := gvk.GroupVersion()
	p := paths{
		root:   "/" + gvDocument(gv),
		rel:    r.Resource,
		plural: r.Resource,
		gvID:   gvID(gv),
		kind:   gvk.Kind,
		tag:    gvTag(gv),
	}
	if r.Namespaced {
		p.rel = "namespaces/{namespace}/" + r.Resource
		p.scope = "Namespaced"
		p.pathParams = []param{{"namespace", "namespace the object belongs to"}}
	}
	return p
}

// resourceRoutes lists every operation on r and its subresources.
func resourceRoutes(r Resource, k *kinds) ([]route, error) {
	gvk := r.GroupVersionKind
	p := resourcePaths(r)
	kindModel, err := k.model(gvk)
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, v := range r.Verbs {
		has[v] = true
	}

	var routes []route
	if has[verbList] {
		listModel, err := k.model(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			return nil, err
		}
		routes = append(routes, listRoutes(p, gvk, listModel)...)
	}
	if has[verbWatch] {
		routes = append(routes, watchRoutes(p, gvk)...)
	}
	if has[verbDeleteCollection] {
		routes = append(routes, route{
			method:      http.MethodDelete,
			path:        p.collection(),
			operationID: "delete" + p.gvID + "Collection" + p.scope + p.kind,
			description: "delete a collection of " + gvk.Kind,
			action:      actionDeleteCollection,
			gvk:         &gvk,
			pathParams:  p.pathParams,
			query:       []string{modelDeleteOptions, modelListOptions},
			skipQuery:   []string{"watch", "allowWatchBookmarks"},
			body:        &body{model: modelDeleteOptions},
			responses:   map[int]string{http.StatusOK: modelStatus},
			consumes:    objectTypes(),
			produces:    objectTypes(),
		})
	}
	self := endpoint{collection: p.collection(), item: p.item(), gvk: gvk, model: kindModel}
	routes = append(routes, objectRoutes(p, self, r.Verbs)...)

	for _, name := range r.Subresources {
		sub, err := describeSubresource(name, gvk)
		if err != nil {
			return nil, err
		}
		srs, err := subresourceRoutes(p, name, sub, gvk, k)
		if err != nil {
			return nil, err
		}
		routes = append(routes, srs...)
	}
	for i := range routes {
		routes[i].tag = p.tag
	}
	return routes, nil
}

// listRoutes are the list operation and, for namespaced kinds, its
// across-all-namespaces twin. With ?watch=true a list streams events.
func listRoutes(p paths, gvk schema.GroupVersionKind, listModel string) []route {
	list := route{
		method:      http.MethodGet,
		path:        p.collection(),
		operationID: p.id("list", ""),
		description: "list or watch objects of kind " + gvk.Kind,
		action:      actionList,
		gvk:         &gvk,
		pathParams:  p.pathParams,
		query:       []string{modelListOptions},
		responses:   map[int]string{http.StatusOK: listModel},
		consumes:    objectTypes(),
		produces:    watchTypes(),
	}
	routes := []route{list}
	if p.scope != "" {
		all := list
		all.path = p.root + "/" + p.plural
		all.operationID = "list" + p.gvID + p.kind + "ForAllNamespaces"
		all.pathParams = nil
		routes = append(routes, all)
	}
	return routes
}

// watchRoutes are the legacy /watch/ paths, which kubectl no longer uses
// but kube-apiserver still documents.
func watchRoutes(p paths, gvk schema.GroupVersionKind) []route {
	w := route{
		method:      http.MethodGet,
		path:        p.root + "/watch/" + p.rel,
		operationID: p.id("watch", "List"),
		description: "watch changes to a list of " + gvk.Kind + " (deprecated: use ?watch=true on the list)",
		action:      actionWatchList,
		gvk:         &gvk,
		pathParams:  p.pathParams,
		query:       []string{modelListOptions},
		responses:   map[int]string{http.StatusOK: modelWatchEvent},
		consumes:    objectTypes(),
		produces:    watchTypes(),
	}
	one := w
	one.path += "/{name}"
	one.operationID = p.id("watch", "")
	one.description = "watch changes to one " + gvk.Kind + " (deprecated: use ?watch=true with a fieldSelector on the list)"
	one.action = actionWatch
	one.pathParams = p.itemParams(gvk.Kind)
	routes := []route{w, one}
	if p.scope != "" {
		all := w
		all.path = p.root + "/watch/" + p.plural
		all.operationID = "watch" + p.gvID + p.kind + "ListForAllNamespaces"
		all.pathParams = nil
		routes = append(routes, all)
	}
	return routes
}

// endpoint is what objectRoutes describes: a resource, or a subresource
// that behaves like an object (status, scale, binding, finalize).
type endpoint struct {
	collection  string // where create posts
	item        string // where the other verbs go
	subresource string // empty for the resource itself
	gvk         schema.GroupVersionKind
	model       string
}

// objectRoutes are the operations on one object. list, watch and
// deletecollection act on whole collections and are described elsewhere.
func objectRoutes(p paths, e endpoint, verbs []string) []route {
	gvk, model := e.gvk, e.model
	suffix := upperFirst(e.subresource) // patchAppsV1NamespacedDeploymentStatus
	subject, created := "the specified "+gvk.Kind, "a "+gvk.Kind
	if e.subresource != "" {
		subject = e.subresource + " of the specified " + p.kind
		created = e.subresource + " of a " + p.kind
	}
	itemParams := p.itemParams(gvk.Kind)
	var routes []route
	for _, verb := range verbs {
		r := route{
			path:       e.item,
			gvk:        &gvk,
			pathParams: itemParams,
			consumes:   objectTypes(),
			produces:   objectTypes(),
		}
		switch verb {
		case verbGet:
			r.method, r.action = http.MethodGet, actionGet
			r.operationID = p.id("read", suffix)
			r.description = "read " + subject
			r.query = []string{modelGetOptions}
			r.responses = map[int]string{http.StatusOK: model}
		case verbCreate:
			r.method, r.action = http.MethodPost, actionPost
			r.path = e.collection
			if e.collection != e.item {
				r.pathParams = p.pathParams // a collection has no {name}
			}
			r.operationID = p.id("create", suffix)
			r.description = "create " + created
			r.query = []string{modelCreateOptions}
			r.body = &body{model: model, required: true}
			r.responses = map[int]string{http.StatusOK: model, http.StatusCreated: model, http.StatusAccepted: model}
		case verbUpdate:
			r.method, r.action = http.MethodPut, actionPut
			r.operationID = p.id("replace", suffix)
			r.description = "replace " + subject
			r.query = []string{modelUpdateOptions}
			r.body = &body{model: model, required: true}
			r.responses = map[int]string{http.StatusOK: model, http.StatusCreated: model}
		case verbPatch:
			r.method, r.action = http.MethodPatch, actionPatch
			r.operationID = p.id("patch", suffix)
			r.description = "partially update " + subject
			r.query = []string{modelPatchOptions}
			r.body = &body{model: modelPatch, required: true}
			r.responses = map[int]string{http.StatusOK: model, http.StatusCreated: model}
			r.consumes = patchTypes()
		case verbDelete:
			r.method, r.action = http.MethodDelete, actionDelete
			r.operationID = p.id("delete", suffix)
			r.description = "delete " + subject
			r.query = []string{modelDeleteOptions}
			r.body = &body{model: modelDeleteOptions}
			r.responses = map[int]string{http.StatusOK: modelStatus, http.StatusAccepted: modelStatus}
		default:
			continue
		}
		routes = append(routes, r)
	}
	return routes
}

// subresourceRoutes describes <item>/<name>.
func subresourceRoutes(p paths, name string, sub subresource, parent schema.GroupVersionKind, k *kinds) ([]route, error) {
	path := p.item() + "/" + name
	suffix := upperFirst(name)

	if sub.verbs != nil {
		model, err := k.model(sub.kind)
		if err != nil {
			return nil, err
		}
		// A subresource has no collection: create posts to its own path.
		e := endpoint{collection: path, item: path, subresource: name, gvk: sub.kind, model: model}
		return objectRoutes(p, e, sub.verbs), nil
	}

	options, err := k.model(sub.options)
	if err != nil {
		return nil, err
	}
	if !sub.connect {
		// log: a GET that streams text.
		return []route{{
			method:      http.MethodGet,
			path:        path,
			operationID: p.id("read", suffix),
			description: "read " + name + " of the specified " + parent.Kind,
			action:      actionGet,
			gvk:         &parent,
			pathParams:  p.itemParams(parent.Kind),
			query:       []string{options},
			responses:   map[int]string{http.StatusOK: plainText},
			consumes:    []string{"*/*"},
			produces:    append([]string{"text/plain"}, objectTypes()...),
		}}, nil
	}

	// exec, attach, portforward: the connection is upgraded to a stream on
	// GET or POST; the extension names the options kind, as upstream does.
	// proxy: any method, with or without a path after it.
	methods := []string{http.MethodGet, http.MethodPost}
	type variant struct{ path, suffix string }
	variants := []variant{{path, ""}}
	if sub.proxy {
		methods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodHead, http.MethodPatch}
		variants = append(variants, variant{path + "/{path}", "WithPath"})
	}
	var routes []route
	for _, v := range variants {
		for _, method := range methods {
			params := p.itemParams(parent.Kind)
			if v.suffix != "" {
				params = append(params, param{"path", "path to the resource"})
			}
			routes = append(routes, route{
				method:      method,
				path:        v.path,
				operationID: "connect" + p.gvID + upperFirst(strings.ToLower(method)) + p.scope + p.kind + suffix + v.suffix,
				description: "connect " + method + " requests to " + name + " of " + parent.Kind,
				action:      actionConnect,
				gvk:         &sub.options,
				pathParams:  params,
				query:       []string{options},
				responses:   map[int]string{http.StatusOK: plainText},
				consumes:    []string{"*/*"},
				produces:    []string{"*/*"},
			})
		}
	}
	return routes, nil
}
