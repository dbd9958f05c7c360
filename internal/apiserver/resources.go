package apiserver

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// servedResources is every resource the server serves, with its strategy.
// The hooks of the richer kinds live in their own files (pods.go,
// namespaces.go, apps.go, ...).
func servedResources(cfg Config) []*resource {
	return []*resource{
		namespacesResource(),
		nodesResource(),
		podsResource(cfg.DefaultTolerationSeconds),
		servicesResource(),
		{
			gvr: gvr("", "v1", "endpoints"), kind: "Endpoints", listKind: "EndpointsList", singular: "endpoints", shortNames: []string{"ep"},
			namespaced: true, allowCreateOnUpdate: true,
			deprecated: "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
			newObj:     func() runtime.Object { return &corev1.Endpoints{} }, newList: func() runtime.Object { return &corev1.EndpointsList{} },
		},
		{
			gvr: gvr("", "v1", "events"), kind: "Event", singular: "event", shortNames: []string{"ev"}, namespaced: true, ttl: eventTTL,
			newObj: func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
			fields: coreEventFields,
		},
		{
			gvr: gvr("", "v1", "configmaps"), kind: "ConfigMap", singular: "configmap", shortNames: []string{"cm"}, namespaced: true,
			newObj: func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} },
		},
		{
			gvr: gvr("", "v1", "secrets"), kind: "Secret", singular: "secret", namespaced: true,
			newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
			fields: func(obj runtime.Object) fields.Set { return fields.Set{"type": string(obj.(*corev1.Secret).Type)} },
		},
		serviceAccountsResource(),
		deploymentsResource(),
		replicaSetsResource(),
		{
			gvr: gvr("discovery.k8s.io", "v1", "endpointslices"), kind: "EndpointSlice", singular: "endpointslice", namespaced: true,
			newObj: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, newList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
			fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"addressType": string(obj.(*discoveryv1.EndpointSlice).AddressType)}
			},
			// EndpointSlices have no spec but track generation (as
			// upstream): consumers use it to see changed endpoints.
			prepareForCreate: func(obj runtime.Object) { obj.(*discoveryv1.EndpointSlice).Generation = 1 },
			prepareForUpdate: func(obj, old runtime.Object) {
				es, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
				if !equality.Semantic.DeepEqual(es.Endpoints, o.Endpoints) || !equality.Semantic.DeepEqual(es.Ports, o.Ports) ||
					es.AddressType != o.AddressType || !equality.Semantic.DeepEqual(es.Labels, o.Labels) {
					es.Generation = o.Generation + 1
				}
			},
		},
		{
			gvr: gvr("coordination.k8s.io", "v1", "leases"), kind: "Lease", singular: "lease", namespaced: true,
			newObj: func() runtime.Object { return &coordinationv1.Lease{} }, newList: func() runtime.Object { return &coordinationv1.LeaseList{} },
		},
		{
			gvr: gvr("events.k8s.io", "v1", "events"), kind: "Event", singular: "event", shortNames: []string{"ev"}, namespaced: true, ttl: eventTTL,
			storage: "events", // shared with core/v1 events, see events.go
			newObj:  func() runtime.Object { return &eventsv1.Event{} }, newList: func() runtime.Object { return &eventsv1.EventList{} },
			fields: func(obj runtime.Object) fields.Set {
				e := obj.(*eventsv1.Event)
				return fields.Set{
					"reason": e.Reason, "type": e.Type, "reportingController": e.ReportingController,
					"regarding.kind": e.Regarding.Kind, "regarding.namespace": e.Regarding.Namespace, "regarding.name": e.Regarding.Name,
					"regarding.uid": string(e.Regarding.UID),
				}
			},
		},
	}
}

// eventTTL: events expire after an hour, as upstream's default.
const eventTTL = 3600

func coreEventFields(obj runtime.Object) fields.Set {
	e := obj.(*corev1.Event)
	source := e.Source.Component
	if source == "" {
		source = e.ReportingController
	}
	return fields.Set{
		"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.namespace": e.InvolvedObject.Namespace,
		"involvedObject.name": e.InvolvedObject.Name, "involvedObject.uid": string(e.InvolvedObject.UID),
		"involvedObject.apiVersion": e.InvolvedObject.APIVersion, "involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath": e.InvolvedObject.FieldPath, "reason": e.Reason, "reportingComponent": e.ReportingController,
		"source": source, "type": e.Type,
	}
}

func nodesResource() *resource {
	return &resource{
		gvr: gvr("", "v1", "nodes"), kind: "Node", singular: "node", shortNames: []string{"no"}, status: true, subresources: []string{"proxy"},
		newObj: func() runtime.Object { return &corev1.Node{} }, newList: func() runtime.Object { return &corev1.NodeList{} },
		fields: func(obj runtime.Object) fields.Set {
			n := obj.(*corev1.Node)
			u := "false"
			if n.Spec.Unschedulable {
				u = "true"
			}
			return fields.Set{"spec.unschedulable": u}
		},
		// The node's agent registers it with its status.
	}
}

func servicesResource() *resource {
	return &resource{
		gvr: gvr("", "v1", "services"), kind: "Service", singular: "service", shortNames: []string{"svc"}, categories: []string{"all"},
		namespaced: true, status: true,
		newObj: func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
		prepareForCreate: func(obj runtime.Object) { obj.(*corev1.Service).Status = corev1.ServiceStatus{} },
		prepareForUpdate: keepAllocated,
		fields: func(obj runtime.Object) fields.Set {
			svc := obj.(*corev1.Service)
			return fields.Set{"spec.clusterIP": svc.Spec.ClusterIP, "spec.type": string(svc.Spec.Type)}
		},
	}
}
