package openapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// route is one operation as kite serves it, before the builders render it.
// Models are definition names; "string" stands for a plain-text body.
type route struct {
	method      string
	path        string
	operationID string
	tag         string
	description string
	// action is x-kubernetes-action; gvk is x-kubernetes-group-version-kind
	// (nil for discovery routes, which serve no kind).
	action string
	gvk    *schema.GroupVersionKind

	pathParams []param
	// query lists options models whose fields are query parameters.
	query     []string
	skipQuery []string // fields of those models that are not parameters here
	body      *body
	responses map[int]string
	consumes  []string
	produces  []string
}

type param struct{ name, description string }

type body struct {
	model    string
	required bool
}

// document is what one OpenAPI v3 document describes. Its name ("api/v1",
// "apis/apps/v1", "apis/apps", "api", "apis", "version") is both the v3
// index key and the path prefix of its routes.
type document struct {
	name   string
	routes []route
}

// x-kubernetes-action values, as kube-apiserver spells them (they are the
// handler actions, not the discovery verbs: "post", not "create").
const (
	actionGet              = "get"
	actionList             = "list"
	actionWatch            = "watch"
	actionWatchList        = "watchlist"
	actionPost             = "post"
	actionPut              = "put"
	actionPatch            = "patch"
	actionDelete           = "delete"
	actionDeleteCollection = "deletecollection"
	actionConnect          = "connect"
)

const plainText = "string"

// Models of the apimachinery types every group shares.
var (
	modelListOptions   = metav1.ListOptions{}.OpenAPIModelName()
	modelGetOptions    = metav1.GetOptions{}.OpenAPIModelName()
	modelCreateOptions = metav1.CreateOptions{}.OpenAPIModelName()
	modelUpdateOptions = metav1.UpdateOptions{}.OpenAPIModelName()
	modelPatchOptions  = metav1.PatchOptions{}.OpenAPIModelName()
	modelDeleteOptions = metav1.DeleteOptions{}.OpenAPIModelName()
	modelPatch         = metav1.Patch{}.OpenAPIModelName()
	modelStatus        = metav1.Status{}.OpenAPIModelName()
	modelWatchEvent    = metav1.WatchEvent{}.OpenAPIModelName()
)

// Content types. kite speaks JSON and YAML; protobuf is not advertised.
func objectTypes() []string { return []string{"application/json", "application/yaml"} }
func watchTypes() []string {
	return []string{"application/json", "application/yaml", "application/json;stream=watch"}
}
func patchTypes() []string {
	return []string{
		"application/json-patch+json",
		"application/merge-patch+json",
		"application/strategic-merge-patch+json",
		"application/apply-patch+yaml",
	}
}

// plan turns the resource list into documents: one per group-version with
// the resources' operations, plus the discovery documents kube-apiserver
// also describes. It validates resources and resolves every kind, so a
// mistake surfaces at Install, not at the first OpenAPI request.
func plan(resources []Resource, k *kinds) ([]document, error) {
	docs := map[string]*document{}
	add := func(name string, routes ...route) {
		d, ok := docs[name]
		if !ok {
			d = &document{name: name}
			docs[name] = d
		}
		d.routes = append(d.routes, routes...)
	}

	seen := map[string]bool{}
	for _, r := range resources {
		if err := r.validate(); err != nil {
			return nil, err
		}
		gv := r.GroupVersionKind.GroupVersion()
		key := gv.String() + "/" + r.Resource
		if seen[key] {
			return nil, fmt.Errorf("resource %s registered twice", key)
		}
		seen[key] = true

		routes, err := resourceRoutes(r, k)
		if err != nil {
			return nil, err
		}
		name := gvDocument(gv)
		if _, ok := docs[name]; !ok {
			add(name, discoveryRoute(name, "get"+gvID(gv)+"APIResources", gvTag(gv),
				metav1.APIResourceList{}.OpenAPIModelName(), "available resources"))
			if _, ok := docs["apis/"+gv.Group]; !ok && gv.Group != "" {
				add("apis/"+gv.Group, discoveryRoute("apis/"+gv.Group, "get"+groupID(gv.Group)+"APIGroup",
					lowerFirst(groupID(gv.Group)), metav1.APIGroup{}.OpenAPIModelName(), "information of a group"))
			}
		}
		add(name, routes...)
	}

	add("api", discoveryRoute("api", "getCoreAPIVersions", "core",
		metav1.APIVersions{}.OpenAPIModelName(), "available API versions"))
	add("apis", discoveryRoute("apis", "getAPIVersions", "apis",
		metav1.APIGroupList{}.OpenAPIModelName(), "available API groups"))
	add("version", discoveryRoute("version", "getCodeVersion", "version",
		version.Info{}.OpenAPIModelName(), "the server's version"))

	out := make([]document, 0, len(docs))
	for _, d := range docs {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// gvDocument is the v3 document name of gv, which kubectl derives the same
// way: "api/v1" for the core group, "apis/<group>/<version>" otherwise.
func gvDocument(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// discoveryRoute describes GET /<document>/, the discovery endpoint.
func discoveryRoute(doc, id, tag, model, what string) route {
	return route{
		method:      http.MethodGet,
		path:        "/" + doc + "/",
		operationID: id,
		tag:         tag,
		description: "get " + what,
		responses:   map[int]string{http.StatusOK: model},
		consumes:    objectTypes(),
		produces:    objectTypes(),
	}
}

// gvID is the group-version part of operation IDs: CoreV1, AppsV1,
// DiscoveryV1.
func gvID(gv schema.GroupVersion) string { return groupID(gv.Group) + upperFirst(gv.Version) }

// gvTag groups operations by group-version: core_v1, apps_v1.
func gvTag(gv schema.GroupVersion) string { return lowerFirst(groupID(gv.Group)) + "_" + gv.Version }

// groupID camel-cases a group without its ".k8s.io" suffix; the core group
// is "Core".
func groupID(group string) string {
	if group == "" {
		return "Core"
	}
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimSuffix(group, ".k8s.io"), ".") {
		b.WriteString(upperFirst(part))
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
