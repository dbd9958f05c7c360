package openapi

import (
	"fmt"
	"net/http"
	"slices"
	"sort"

	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// BuildV2 builds the OpenAPI v2 document describing resources.
func BuildV2(resources []Resource) (*spec.Swagger, error) {
	k, err := newKinds()
	if err != nil {
		return nil, err
	}
	docs, err := plan(resources, k)
	if err != nil {
		return nil, err
	}
	return buildV2(docs, k)
}

// BuildV3 builds the OpenAPI v3 documents describing resources, keyed by
// the names /openapi/v3 lists them under: "api/v1", "apis/apps/v1", and
// the discovery documents "api", "apis", "apis/<group>" and "version".
func BuildV3(resources []Resource) (map[string]*spec3.OpenAPI, error) {
	k, err := newKinds()
	if err != nil {
		return nil, err
	}
	docs, err := plan(resources, k)
	if err != nil {
		return nil, err
	}
	return buildV3(docs, k)
}

// Definitions returns the v2 schema of every generated type (not only the
// served ones), keyed by REST-friendly name, top-level kinds carrying
// x-kubernetes-group-version-kind. The shape is what
// managedfields.NewTypeConverter takes. Each call builds a fresh map
// (a few milliseconds), which the caller may keep and modify.
func Definitions() (map[string]*spec.Schema, error) {
	k, err := newKinds()
	if err != nil {
		return nil, err
	}
	defs := GetOpenAPIDefinitions(refTo("#/definitions/"))
	out := make(map[string]*spec.Schema, len(defs))
	for name, def := range defs {
		s := def.Schema
		// IntOrString and Quantity have a v3 schema with a v2 variant tucked
		// into an extension; v2 consumers need the variant.
		if v2, ok := s.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
			s = v2
		}
		if _, ext := k.definitionName(name); ext != nil {
			merged := spec.Extensions{}
			for key, v := range s.Extensions {
				merged[key] = v
			}
			for key, v := range ext {
				merged[key] = v
			}
			s.Extensions = merged
		}
		out[name] = &s
	}
	return out, nil
}

func buildV2(docs []document, k *kinds) (*spec.Swagger, error) {
	options := newOptionFields(GetOpenAPIDefinitions(refTo("#/definitions/")))
	var containers []common.RouteContainer
	for _, d := range docs {
		c, err := adapt(d, options)
		if err != nil {
			return nil, err
		}
		containers = append(containers, c)
	}
	swagger, err := builder.BuildOpenAPISpecFromRoutes(containers, &common.Config{
		Info:                           info(),
		GetDefinitions:                 GetOpenAPIDefinitions,
		GetDefinitionName:              k.definitionName,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		CommonResponses: map[int]spec.Response{
			http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: http.StatusText(http.StatusUnauthorized)}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building OpenAPI v2: %w", err)
	}
	return swagger, nil
}

func buildV3(docs []document, k *kinds) (map[string]*spec3.OpenAPI, error) {
	// One set of definitions serves every document. The builder writes
	// extensions into it as it goes, so documents are built one at a time.
	defs := GetOpenAPIDefinitions(refTo("#/components/schemas/"))
	options := newOptionFields(defs)
	unauthorized := &spec3.Response{ResponseProps: spec3.ResponseProps{Description: http.StatusText(http.StatusUnauthorized)}}

	out := make(map[string]*spec3.OpenAPI, len(docs))
	for _, d := range docs {
		c, err := adapt(d, options)
		if err != nil {
			return nil, err
		}
		doc, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{c}, &common.OpenAPIV3Config{
			Info:                           info(),
			Definitions:                    defs,
			GetDefinitionName:              k.definitionName,
			GetOperationIDAndTagsFromRoute: operationIDAndTags,
			CommonResponses:                map[int]*spec3.Response{http.StatusUnauthorized: unauthorized},
		})
		if err != nil {
			return nil, fmt.Errorf("building OpenAPI v3 document %s: %w", d.name, err)
		}
		out[d.name] = doc
	}
	return out, nil
}

// checkModels makes sure every model the routes name, and every model
// those reach, has a generated definition, so that the lazy builds cannot
// fail for want of one. It costs a few milliseconds.
func checkModels(docs []document) error {
	defs := GetOpenAPIDefinitions(refTo("#/definitions/"))
	checked := map[string]bool{plainText: true}
	var reach func(name, from string) error
	reach = func(name, from string) error {
		if checked[name] {
			return nil
		}
		checked[name] = true
		def, ok := defs[name]
		if !ok {
			return fmt.Errorf("%s: no generated OpenAPI definition for %s; add its package to hack/update-openapi.sh", from, name)
		}
		for _, dep := range def.Dependencies {
			if err := reach(dep, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range docs {
		for _, r := range d.routes {
			models := append([]string(nil), r.query...)
			if r.body != nil {
				models = append(models, r.body.model)
			}
			for _, m := range r.responses {
				models = append(models, m)
			}
			for _, m := range models {
				if err := reach(m, r.method+" "+r.path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func info() *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: "kite", Version: "unversioned"}}
}

// refTo makes the reference callback of the generated definitions; names
// need no escaping as they contain neither "/" nor "~".
func refTo(prefix string) common.ReferenceCallback {
	return func(name string) spec.Ref { return spec.MustCreateRef(prefix + name) }
}

func operationIDAndTags(r common.Route) (string, []string, error) {
	a, ok := r.(*routeAdapter)
	if !ok {
		return "", nil, fmt.Errorf("route %s %s was not built by package openapi", r.Method(), r.Path())
	}
	return a.r.operationID, []string{a.r.tag}, nil
}

// The builders read routes through kube-openapi's common.Route family of
// interfaces (designed after go-restful); the types below present a
// document's routes that way.

// adapt presents one document's routes to the builders, resolving query
// parameters from the options definitions.
func adapt(d document, options *optionFields) (common.RouteContainer, error) {
	c := &container{root: "/" + d.name}
	for _, r := range d.routes {
		a := &routeAdapter{r: r}
		for _, p := range r.pathParams {
			a.params = append(a.params, &parameter{name: p.name, description: p.description,
				kind: common.PathParameterKind, dataType: "string", required: true})
		}
		seen := map[string]bool{}
		for _, model := range r.query {
			fields, err := options.of(model)
			if err != nil {
				return nil, fmt.Errorf("route %s %s: %w", r.method, r.path, err)
			}
			for _, f := range fields {
				if seen[f.name] || slices.Contains(r.skipQuery, f.name) {
					continue
				}
				seen[f.name] = true
				a.params = append(a.params, &parameter{name: f.name, description: f.description,
					kind: common.QueryParameterKind, dataType: f.dataType, multiple: f.multiple})
			}
		}
		if r.body != nil {
			// The builders take the body's schema from RequestPayloadSample.
			a.params = append(a.params, &parameter{name: "body", kind: common.BodyParameterKind,
				required: r.body.required})
		}
		c.routes = append(c.routes, a)
	}
	return c, nil
}

type container struct {
	root   string
	routes []common.Route
}

func (c *container) RootPath() string                   { return c.root }
func (c *container) PathParameters() []common.Parameter { return nil }
func (c *container) Routes() []common.Route             { return c.routes }

type routeAdapter struct {
	r      route
	params []common.Parameter
}

func (a *routeAdapter) Method() string                     { return a.r.method }
func (a *routeAdapter) Path() string                       { return a.r.path }
func (a *routeAdapter) OperationName() string              { return a.r.operationID }
func (a *routeAdapter) Parameters() []common.Parameter     { return a.params }
func (a *routeAdapter) Description() string                { return a.r.description }
func (a *routeAdapter) Consumes() []string                 { return a.r.consumes }
func (a *routeAdapter) Produces() []string                 { return a.r.produces }
func (a *routeAdapter) ResponsePayloadSample() interface{} { return nil }

func (a *routeAdapter) Metadata() map[string]interface{} {
	m := map[string]interface{}{}
	if a.r.action != "" {
		m["x-kubernetes-action"] = a.r.action
	}
	if a.r.gvk != nil {
		m[extensionGVK] = gvkObject(*a.r.gvk)
	}
	return m
}

func (a *routeAdapter) RequestPayloadSample() interface{} {
	if a.r.body == nil {
		return nil
	}
	return model(a.r.body.model)
}

func (a *routeAdapter) StatusCodeResponses() []common.StatusCodeResponse {
	codes := make([]int, 0, len(a.r.responses))
	for code := range a.r.responses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	out := make([]common.StatusCodeResponse, 0, len(codes))
	for _, code := range codes {
		out = append(out, response{code: code, model: model(a.r.responses[code])})
	}
	return out
}

// model stands in for a payload sample: the builders only ask samples for
// their OpenAPI model name (util.GetCanonicalTypeName), so a name will do.
// model("string") is a plain string, which the builders know as a type.
type model string

func (m model) OpenAPIModelName() string { return string(m) }

type response struct {
	code  int
	model model
}

func (r response) Code() int          { return r.code }
func (r response) Message() string    { return http.StatusText(r.code) }
func (r response) Model() interface{} { return r.model }

type parameter struct {
	name, description, dataType string
	kind                        common.ParameterKind
	required, multiple          bool
}

func (p *parameter) Name() string               { return p.name }
func (p *parameter) Description() string        { return p.description }
func (p *parameter) Required() bool             { return p.required }
func (p *parameter) Kind() common.ParameterKind { return p.kind }
func (p *parameter) DataType() string           { return p.dataType }
func (p *parameter) AllowMultiple() bool        { return p.multiple }
