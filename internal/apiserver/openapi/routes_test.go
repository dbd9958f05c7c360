package openapi

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// operations renders a resource's routes one per line, sorted, as
// "METHOD path operationID action kind".
func operations(t *testing.T, r Resource) string {
	t.Helper()
	k, err := newKinds()
	if err != nil {
		t.Fatal(err)
	}
	routes, err := resourceRoutes(r, k)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, rt := range routes {
		kind := "-"
		if rt.gvk != nil {
			kind = rt.gvk.Kind
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s %s", rt.method, rt.path, rt.operationID, rt.action, kind))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestResourceRoutes(t *testing.T) {
	tests := []struct {
		name     string
		resource Resource
		want     string
	}{{
		name: "namespaced with scale",
		resource: Resource{
			GroupVersionKind: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			Resource:         "deployments", Namespaced: true,
			Subresources: []string{"scale"},
			Verbs:        []string{"get", "list", "patch"},
		},
		want: `GET /apis/apps/v1/deployments listAppsV1DeploymentForAllNamespaces list Deployment
GET /apis/apps/v1/namespaces/{namespace}/deployments listAppsV1NamespacedDeployment list Deployment
GET /apis/apps/v1/namespaces/{namespace}/deployments/{name} readAppsV1NamespacedDeployment get Deployment
GET /apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale readAppsV1NamespacedDeploymentScale get Scale
PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name} patchAppsV1NamespacedDeployment patch Deployment
PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale patchAppsV1NamespacedDeploymentScale patch Scale
PUT /apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale replaceAppsV1NamespacedDeploymentScale put Scale`,
	}, {
		name: "cluster-scoped with every verb",
		resource: Resource{
			GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Namespace"},
			Resource:         "namespaces",
			Subresources:     []string{"finalize"},
			Verbs:            []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		},
		want: `DELETE /api/v1/namespaces deleteCoreV1CollectionNamespace deletecollection Namespace
DELETE /api/v1/namespaces/{name} deleteCoreV1Namespace delete Namespace
GET /api/v1/namespaces listCoreV1Namespace list Namespace
GET /api/v1/namespaces/{name} readCoreV1Namespace get Namespace
GET /api/v1/watch/namespaces watchCoreV1NamespaceList watchlist Namespace
GET /api/v1/watch/namespaces/{name} watchCoreV1Namespace watch Namespace
PATCH /api/v1/namespaces/{name} patchCoreV1Namespace patch Namespace
POST /api/v1/namespaces createCoreV1Namespace post Namespace
PUT /api/v1/namespaces/{name} replaceCoreV1Namespace put Namespace
PUT /api/v1/namespaces/{name}/finalize replaceCoreV1NamespaceFinalize put Namespace`,
	}, {
		name: "pod streaming subresources",
		resource: Resource{
			GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:         "pods", Namespaced: true,
			Subresources: []string{"binding", "log", "exec", "portforward"},
		},
		want: `GET /api/v1/namespaces/{namespace}/pods/{name}/exec connectCoreV1GetNamespacedPodExec connect PodExecOptions
GET /api/v1/namespaces/{namespace}/pods/{name}/log readCoreV1NamespacedPodLog get Pod
GET /api/v1/namespaces/{namespace}/pods/{name}/portforward connectCoreV1GetNamespacedPodPortforward connect PodPortForwardOptions
POST /api/v1/namespaces/{namespace}/pods/{name}/binding createCoreV1NamespacedPodBinding post Binding
POST /api/v1/namespaces/{namespace}/pods/{name}/exec connectCoreV1PostNamespacedPodExec connect PodExecOptions
POST /api/v1/namespaces/{namespace}/pods/{name}/portforward connectCoreV1PostNamespacedPodPortforward connect PodPortForwardOptions`,
	}, {
		name: "dotted group",
		resource: Resource{
			GroupVersionKind: schema.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"},
			Resource:         "endpointslices", Namespaced: true,
			Verbs: []string{"create"},
		},
		want: `POST /apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices createDiscoveryV1NamespacedEndpointSlice post EndpointSlice`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := operations(t, tc.resource); got != tc.want {
				t.Errorf("routes:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestPlanRejects(t *testing.T) {
	pods := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	tests := []struct {
		name      string
		resources []Resource
		wantErr   string
	}{{
		name:      "unknown subresource",
		resources: []Resource{{GroupVersionKind: pods, Resource: "pods", Subresources: []string{"eviction"}}},
		wantErr:   `subresource "eviction" of Pod`,
	}, {
		name:      "unknown verb",
		resources: []Resource{{GroupVersionKind: pods, Resource: "pods", Verbs: []string{"proxy"}}},
		wantErr:   `unknown verb "proxy"`,
	}, {
		name:      "missing resource name",
		resources: []Resource{{GroupVersionKind: pods}},
		wantErr:   "resource name are required",
	}, {
		name: "kind without generated definitions",
		resources: []Resource{{
			GroupVersionKind: schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
			Resource:         "jobs", Verbs: []string{"get"},
		}},
		wantErr: "no OpenAPI definition for batch/v1, Kind=Job",
	}, {
		name: "registered twice",
		resources: []Resource{
			{GroupVersionKind: pods, Resource: "pods", Verbs: []string{"get"}},
			{GroupVersionKind: pods, Resource: "pods", Verbs: []string{"get"}},
		},
		wantErr: "registered twice",
	}}
	k, err := newKinds()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plan(tc.resources, k)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("plan() error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPlanDocuments(t *testing.T) {
	k, err := newKinds()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := plan(servedResources(), k)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.name)
	}
	want := "api api/v1 apis apis/apps apis/apps/v1 apis/coordination.k8s.io apis/coordination.k8s.io/v1 " +
		"apis/discovery.k8s.io apis/discovery.k8s.io/v1 apis/events.k8s.io apis/events.k8s.io/v1 version"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("documents:\n%s\nwant:\n%s", got, want)
	}
}

func TestCheckModels(t *testing.T) {
	k, err := newKinds()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := plan(servedResources(), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkModels(docs); err != nil {
		t.Errorf("served resources: %v", err)
	}

	// A kind the scheme knows but openapi-gen was not run over.
	docs = append(docs, document{name: "apis/example.com/v1", routes: []route{{
		method: "GET", path: "/apis/example.com/v1/widgets",
		responses: map[int]string{200: "com.example.v1.WidgetList"},
	}}})
	err = checkModels(docs)
	if err == nil || !strings.Contains(err.Error(), "com.example.v1.WidgetList") {
		t.Errorf("missing definition: error %v, want one naming com.example.v1.WidgetList", err)
	}
}
