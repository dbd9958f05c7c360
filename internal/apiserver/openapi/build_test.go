package openapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

func buildBoth(t *testing.T) (*spec.Swagger, map[string]*spec3.OpenAPI) {
	t.Helper()
	v2, err := BuildV2(servedResources())
	if err != nil {
		t.Fatalf("BuildV2: %v", err)
	}
	v3, err := BuildV3(servedResources())
	if err != nil {
		t.Fatalf("BuildV3: %v", err)
	}
	return v2, v3
}

// Every PATCH must carry its kind and its own fieldValidation parameter:
// kubectl stops at the first PATCH with the kind it looks for, in whatever
// order it walks the paths.
func TestEveryPatchAdvertisesFieldValidation(t *testing.T) {
	v2, v3 := buildBoth(t)

	patches := 0
	for path, item := range v2.Paths.Paths {
		op := item.Patch
		if op == nil {
			continue
		}
		patches++
		if _, ok := op.Extensions[extensionGVK]; !ok {
			t.Errorf("v2 PATCH %s has no %s", path, extensionGVK)
		}
		if !hasQueryParam(op.Parameters, v2.Parameters, "fieldValidation") {
			t.Errorf("v2 PATCH %s has no fieldValidation parameter of its own", path)
		}
	}
	// 14 resources plus 6 status and 2 scale subresources.
	if patches != 22 {
		t.Errorf("v2 has %d PATCH operations, want 22", patches)
	}

	for name, doc := range v3 {
		for path, item := range doc.Paths.Paths {
			op := item.Patch
			if op == nil {
				continue
			}
			if _, ok := op.Extensions[extensionGVK]; !ok {
				t.Errorf("v3 %s: PATCH %s has no %s", name, path, extensionGVK)
			}
			found := false
			for _, p := range op.Parameters {
				found = found || (p.Name == "fieldValidation" && p.In == "query")
			}
			if !found {
				t.Errorf("v3 %s: PATCH %s has no fieldValidation parameter", name, path)
			}
		}
	}
}

func hasQueryParam(params []spec.Parameter, shared map[string]spec.Parameter, name string) bool {
	for _, p := range params {
		if ref := p.Ref.String(); ref != "" {
			p = shared[strings.TrimPrefix(ref, "#/parameters/")]
		}
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

// Each group-version document lists the meta kinds under its own group too,
// as kube-apiserver's do.
func TestGroupVersionKindExtensions(t *testing.T) {
	_, v3 := buildBoth(t)
	tests := []struct {
		doc, definition string
		want            schema.GroupVersionKind
	}{
		{"apis/apps/v1", "io.k8s.api.apps.v1.Deployment", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}},
		{"apis/apps/v1", "io.k8s.api.autoscaling.v1.Scale", schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}},
		{"apis/apps/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DeleteOptions"}},
		{"apis/apps/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "WatchEvent"}},
		{"apis/events.k8s.io/v1", "io.k8s.api.events.v1.Event", schema.GroupVersionKind{Group: "events.k8s.io", Version: "v1", Kind: "Event"}},
		{"api/v1", "io.k8s.api.core.v1.Event", schema.GroupVersionKind{Version: "v1", Kind: "Event"}},
		{"api/v1", "io.k8s.apimachinery.pkg.apis.meta.v1.Status", schema.GroupVersionKind{Version: "v1", Kind: "Status"}},
	}
	for _, tc := range tests {
		s := v3[tc.doc].Components.Schemas[tc.definition]
		if s == nil {
			t.Errorf("%s: no %s", tc.doc, tc.definition)
			continue
		}
		var gvks []schema.GroupVersionKind
		if err := s.Extensions.GetObject(extensionGVK, &gvks); err != nil {
			t.Errorf("%s %s: %v", tc.doc, tc.definition, err)
		}
		found := false
		for _, gvk := range gvks {
			found = found || gvk == tc.want
		}
		if !found {
			t.Errorf("%s %s: %s = %v, want it to include %v", tc.doc, tc.definition, extensionGVK, gvks, tc.want)
		}
	}
}

// The generated file must hold every type the served types reach; a
// missing package in hack/update-openapi.sh shows up as a dangling $ref.
func TestNoDanglingReferences(t *testing.T) {
	v2, v3 := buildBoth(t)
	check := func(doc string, raw interface{}, prefix string, has func(string) bool) {
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		var tree interface{}
		if err := json.Unmarshal(b, &tree); err != nil {
			t.Fatal(err)
		}
		walkRefs(tree, func(ref string) {
			if !strings.HasPrefix(ref, prefix) && !strings.HasPrefix(ref, "#/parameters/") {
				t.Errorf("%s: unexpected reference %q", doc, ref)
			} else if strings.HasPrefix(ref, prefix) && !has(strings.TrimPrefix(ref, prefix)) {
				t.Errorf("%s: dangling reference %q", doc, ref)
			}
		})
	}
	check("v2", v2, "#/definitions/", func(n string) bool { _, ok := v2.Definitions[n]; return ok })
	for name, doc := range v3 {
		check(name, doc, "#/components/schemas/", func(n string) bool { _, ok := doc.Components.Schemas[n]; return ok })
	}
}

func walkRefs(node interface{}, visit func(string)) {
	switch n := node.(type) {
	case map[string]interface{}:
		for k, v := range n {
			if s, ok := v.(string); ok && k == "$ref" {
				visit(s)
			}
			walkRefs(v, visit)
		}
	case []interface{}:
		for _, v := range n {
			walkRefs(v, visit)
		}
	}
}

// Definitions feeds server-side apply: the type converter must accept it
// and type served objects, including int-or-string and quantity fields.
func TestDefinitionsTypeConverter(t *testing.T) {
	defs, err := Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]; !ok {
		t.Fatal("Definitions lacks ObjectMeta")
	}
	tc, err := managedfields.NewTypeConverter(defs, false)
	if err != nil {
		t.Fatalf("NewTypeConverter: %v", err)
	}

	maxSurge := intstr.FromString("25%")
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Strategy: appsv1.DeploymentStrategy{RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &maxSurge}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name:  "web",
				Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
			}}}},
		},
	}
	if _, err := tc.ObjectToTyped(deployment); err != nil {
		t.Errorf("typing a Deployment: %v", err)
	}
}

// The documents are built on first request; this keeps an eye on what
// that costs (run with -v to see it, or use the benchmark).
func TestBuildCost(t *testing.T) {
	start := time.Now()
	if _, err := BuildV2(servedResources()); err != nil {
		t.Fatal(err)
	}
	v2 := time.Since(start)
	start = time.Now()
	if _, err := BuildV3(servedResources()); err != nil {
		t.Fatal(err)
	}
	t.Logf("building v2 took %v, all v3 documents %v", v2, time.Since(start))
}

func BenchmarkBuildV2(b *testing.B) {
	for b.Loop() {
		if _, err := BuildV2(servedResources()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildV3(b *testing.B) {
	for b.Loop() {
		if _, err := BuildV3(servedResources()); err != nil {
			b.Fatal(err)
		}
	}
}
