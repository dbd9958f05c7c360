package apiserver

import (
	"reflect"
	"sort"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// resource is one served REST resource: its names, its Go types and the
// hooks (its strategy) that make its semantics. Adding a resource is adding
// one of these, in the file of its kind.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	listKind   string
	singular   string
	shortNames []string
	categories []string
	namespaced bool
	newObj     func() runtime.Object
	newList    func() runtime.Object
	// storage is the etcd key prefix under /registry (two resources may
	// share one, e.g. the events of two groups, through convert).
	storage string
	// ttl > 0: objects expire after ttl seconds (events).
	ttl int64
	// status: the object has a status subresource, so the main resource
	// ignores status changes and /status ignores everything else.
	status bool
	// deprecated, when set, is the warning every request of this
	// resource gets.
	deprecated string
	// statusKeepsAnnotations: /status also writes annotations (apps
	// kinds: the deployment controller records revisions that way).
	statusKeepsAnnotations bool
	// subresources beyond status: "scale", "binding", "log", ...
	subresources []string

	// Hooks; nil means "nothing to do". Defaults are per kind, in the
	// defaults package.
	prepareForCreate func(obj runtime.Object)
	prepareForUpdate func(obj, old runtime.Object)
	validate         func(obj runtime.Object) field.ErrorList
	validateUpdate   func(obj, old runtime.Object) field.ErrorList
	// fields returns the field-selector fields beyond metadata.name and
	// metadata.namespace.
	fields func(obj runtime.Object) fields.Set
	// gracePeriod decides a graceful deletion: the seconds to wait for
	// the object (0: delete now). Only pods have one.
	gracePeriod func(obj runtime.Object, requested *int64) int64
	// allowCreateOnUpdate: PUT of a missing object creates it.
	allowCreateOnUpdate bool
	// immediateCreate hooks that run against storage (allocation) live on
	// the server, see allocate.go.
}

func (r *resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }

func (r *resource) groupResource() schema.GroupResource { return r.gvr.GroupResource() }

func (r *resource) hasSubresource(name string) bool {
	if name == "status" {
		return r.status
	}
	for _, s := range r.subresources {
		if s == name {
			return true
		}
	}
	return false
}

// verbs served on the main resource, as discovery reports them.
func (r *resource) verbs() []string {
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// key is the etcd key of one object; prefix is the key prefix of a list
// (all namespaces when ns is empty).
func (r *resource) key(ns, name string) string {
	if r.namespaced {
		return "/registry/" + r.storage + "/" + ns + "/" + name
	}
	return "/registry/" + r.storage + "/" + name
}

func (r *resource) prefix(ns string) string {
	if r.namespaced && ns != "" {
		return "/registry/" + r.storage + "/" + ns + "/"
	}
	return "/registry/" + r.storage + "/"
}

// registry indexes the served resources.
type registry struct {
	byGV    map[schema.GroupVersion]map[string]*resource
	ordered []*resource
}

func newRegistry(rs []*resource) *registry {
	reg := &registry{byGV: map[schema.GroupVersion]map[string]*resource{}}
	for _, r := range rs {
		if r.listKind == "" {
			r.listKind = r.kind + "List"
		}
		if r.storage == "" {
			r.storage = r.gvr.Resource
			if r.gvr.Group != "" {
				r.storage = r.gvr.Group + "/" + r.gvr.Resource
			}
		}
		gv := r.gvr.GroupVersion()
		if reg.byGV[gv] == nil {
			reg.byGV[gv] = map[string]*resource{}
		}
		reg.byGV[gv][r.gvr.Resource] = r
		reg.ordered = append(reg.ordered, r)
	}
	return reg
}

func (reg *registry) lookup(gv schema.GroupVersion, name string) *resource {
	return reg.byGV[gv][name]
}

// groups lists the served API groups (without the core group), in a stable
// order, each with its versions.
func (reg *registry) groups() []schema.GroupVersion {
	var gvs []schema.GroupVersion
	for gv := range reg.byGV {
		if gv.Group != "" {
			gvs = append(gvs, gv)
		}
	}
	sort.Slice(gvs, func(i, j int) bool { return gvs[i].String() < gvs[j].String() })
	return gvs
}

// statusOf and specOf reach the Status and Spec fields of an API struct by
// name: every kind with a status subresource has both.
func structField(obj runtime.Object, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName(name)
	return f, f.IsValid()
}

// copyField sets dst.name = src.name.
func copyField(dst, src runtime.Object, name string) {
	d, ok1 := structField(dst, name)
	s, ok2 := structField(src, name)
	if ok1 && ok2 {
		d.Set(s)
	}
}

func clearField(obj runtime.Object, name string) {
	if f, ok := structField(obj, name); ok {
		f.Set(reflect.Zero(f.Type()))
	}
}

// specChanged reports whether anything but metadata and status changed:
// what bumps metadata.generation.
func specChanged(obj, old runtime.Object) bool {
	if s, ok := structField(obj, "Spec"); ok {
		o, _ := structField(old, "Spec")
		return !equality.Semantic.DeepEqual(s.Interface(), o.Interface())
	}
	// Kinds without a spec (ConfigMap, Endpoints, ...) do not track
	// generation.
	return false
}

func hasSpec(obj runtime.Object) bool {
	_, ok := structField(obj, "Spec")
	return ok
}

// objectMeta is a shorthand for meta.Accessor on known API objects.
func objectMeta(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic("object without metadata: " + reflect.TypeOf(obj).String())
	}
	return m
}
