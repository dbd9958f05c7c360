package openapi

import "k8s.io/apimachinery/pkg/runtime/schema"

// servedResources is the resource list kite's API server registers; tests
// describe it as the server will.
func servedResources() []Resource {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	core := func(kind, resource string, namespaced bool, subresources ...string) Resource {
		return Resource{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: kind},
			Resource: resource, Namespaced: namespaced, Subresources: subresources, Verbs: all}
	}
	gvk := func(group, kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	}
	return []Resource{
		core("Namespace", "namespaces", false, "status", "finalize"),
		core("Node", "nodes", false, "status"),
		core("Pod", "pods", true, "status", "binding", "log", "exec", "attach", "portforward"),
		core("Service", "services", true, "status"),
		core("Endpoints", "endpoints", true),
		core("Event", "events", true),
		core("ConfigMap", "configmaps", true),
		core("Secret", "secrets", true),
		core("ServiceAccount", "serviceaccounts", true),
		{GroupVersionKind: gvk("apps", "Deployment"), Resource: "deployments", Namespaced: true,
			Subresources: []string{"status", "scale"}, Verbs: all},
		{GroupVersionKind: gvk("apps", "ReplicaSet"), Resource: "replicasets", Namespaced: true,
			Subresources: []string{"status", "scale"}, Verbs: all},
		{GroupVersionKind: gvk("discovery.k8s.io", "EndpointSlice"), Resource: "endpointslices", Namespaced: true, Verbs: all},
		{GroupVersionKind: gvk("coordination.k8s.io", "Lease"), Resource: "leases", Namespaced: true, Verbs: all},
		{GroupVersionKind: gvk("events.k8s.io", "Event"), Resource: "events", Namespaced: true, Verbs: all},
	}
}
