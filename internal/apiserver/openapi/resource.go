package openapi

import (
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is one REST resource as the API server registers it.
type Resource struct {
	// GroupVersionKind is the kind stored and served by the resource.
	GroupVersionKind schema.GroupVersionKind
	// Resource is the plural path segment, e.g. "deployments".
	Resource string
	// Namespaced resources live under /namespaces/{namespace}/.
	Namespaced bool
	// Subresources are bare names such as "status" or "scale". Each must be
	// one this package knows how to describe (see describeSubresource).
	Subresources []string
	// Verbs are the discovery verbs of the resource itself: get, list,
	// watch, create, update, patch, delete, deletecollection.
	Verbs []string
}

// The discovery verbs, which are also the x-kubernetes-action of most
// operations.
const (
	verbGet              = "get"
	verbList             = "list"
	verbWatch            = "watch"
	verbCreate           = "create"
	verbUpdate           = "update"
	verbPatch            = "patch"
	verbDelete           = "delete"
	verbDeleteCollection = "deletecollection"
)

func knownVerb(v string) bool {
	switch v {
	case verbGet, verbList, verbWatch, verbCreate, verbUpdate, verbPatch, verbDelete, verbDeleteCollection:
		return true
	}
	return false
}

// subresource says what a subresource's operations take and return.
type subresource struct {
	// verbs are the standard verbs it supports, for subresources that
	// behave like a single object (status, scale, binding, finalize).
	verbs []string
	// kind is the GVK of the request and response bodies of those verbs.
	kind schema.GroupVersionKind

	// log and connect subresources stream plain text. options names the
	// options kind whose fields are their query parameters.
	options schema.GroupVersionKind
	// connect subresources (exec, attach, portforward) upgrade the
	// connection on GET and POST.
	connect bool
	// proxy: a connect subresource taking any method, at its own path
	// and at <path>/{path} (nodes/proxy).
	proxy bool
}

// describeSubresource knows the subresources kite serves. Adding one to the
// API server without teaching it here makes Install fail, rather than
// publishing a document that leaves it out.
func describeSubresource(name string, parent schema.GroupVersionKind) (subresource, error) {
	core := corev1.SchemeGroupVersion
	switch name {
	case "status":
		return subresource{verbs: []string{verbGet, verbUpdate, verbPatch}, kind: parent}, nil
	case "scale":
		return subresource{
			verbs: []string{verbGet, verbUpdate, verbPatch},
			kind:  autoscalingv1.SchemeGroupVersion.WithKind("Scale"),
		}, nil
	case "binding":
		return subresource{verbs: []string{verbCreate}, kind: core.WithKind("Binding")}, nil
	case "token":
		return subresource{verbs: []string{verbCreate}, kind: authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")}, nil
	case "finalize":
		return subresource{verbs: []string{verbUpdate}, kind: parent}, nil
	case "log":
		return subresource{options: core.WithKind("PodLogOptions")}, nil
	case "exec":
		return subresource{options: core.WithKind("PodExecOptions"), connect: true}, nil
	case "attach":
		return subresource{options: core.WithKind("PodAttachOptions"), connect: true}, nil
	case "portforward":
		return subresource{options: core.WithKind("PodPortForwardOptions"), connect: true}, nil
	case "proxy":
		return subresource{options: core.WithKind(parent.Kind + "ProxyOptions"), connect: true, proxy: true}, nil
	}
	return subresource{}, fmt.Errorf("subresource %q of %s is not described by package openapi", name, parent.Kind)
}

// validate reports the first thing about r that the documents cannot
// describe.
func (r Resource) validate() error {
	gvk := r.GroupVersionKind
	if gvk.Version == "" || gvk.Kind == "" || r.Resource == "" {
		return fmt.Errorf("resource %q (%s): version, kind and resource name are required", r.Resource, gvk)
	}
	for _, v := range r.Verbs {
		if !knownVerb(v) {
			return fmt.Errorf("resource %s: unknown verb %q", r.Resource, v)
		}
	}
	for _, s := range r.Subresources {
		if _, err := describeSubresource(s, gvk); err != nil {
			return fmt.Errorf("resource %s: %w", r.Resource, err)
		}
	}
	return nil
}
