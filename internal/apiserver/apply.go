package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/yaml"

	"kite/internal/apiserver/defaults"
	"kite/internal/apiserver/openapi"
)

// Server-side apply and managedFields, through apimachinery's field
// manager: every write records which manager owns which fields, and an
// apply patch merges the applied configuration, failing with 409 on fields
// another manager owns unless forced. The field manager types objects with
// the OpenAPI schemas kite serves.

// fieldManagers builds the type converter once (it parses every OpenAPI
// definition) and one field manager per resource and subresource.
type fieldManagers struct {
	s    *Server
	once sync.Once
	tc   managedfields.TypeConverter
	err  error
	mu   sync.Mutex
	fms  map[string]*managedfields.FieldManager
}

// objectDefaulter applies kite's defaults to objects the field manager
// builds.
type objectDefaulter struct{}

func (objectDefaulter) Default(obj runtime.Object) { defaults.Object(obj) }

func (f *fieldManagers) typeConverter() (managedfields.TypeConverter, error) {
	f.once.Do(func() {
		defs, err := openapi.Definitions()
		if err != nil {
			f.err = err
			return
		}
		f.tc, f.err = managedfields.NewTypeConverter(defs, false)
	})
	return f.tc, f.err
}

// get returns the field manager of res (and subresource: "" or "status").
func (f *fieldManagers) get(res *resource, subresource string) (*managedfields.FieldManager, error) {
	if subresource != "status" {
		subresource = ""
	}
	key := res.gvr.String() + "/" + subresource
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm := f.fms[key]; fm != nil {
		return fm, nil
	}
	tc, err := f.typeConverter()
	if err != nil {
		return nil, err
	}
	// The main resource does not own status, /status owns nothing else.
	var reset map[fieldpath.APIVersion]fieldpath.Filter
	if res.status {
		path := "status"
		if subresource == "status" {
			path = "spec"
		}
		reset = map[fieldpath.APIVersion]fieldpath.Filter{
			fieldpath.APIVersion(res.gvr.GroupVersion().String()): fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie(path))),
		}
	}
	gvk := res.gvk()
	fm, err := managedfields.NewDefaultFieldManager(tc, f.s.scheme, objectDefaulter{}, f.s.scheme, gvk, gvk.GroupVersion(), subresource, reset)
	if err != nil {
		return nil, err
	}
	if f.fms == nil {
		f.fms = map[string]*managedfields.FieldManager{}
	}
	f.fms[key] = fm
	return fm, nil
}

// track records a non-apply write by manager in obj's managedFields. It
// never fails the write: without a field manager, managedFields stay as
// they were.
func (s *Server) track(res *resource, subresource string, live, obj runtime.Object, manager string) runtime.Object {
	fm, err := s.fieldManagers.get(res, subresource)
	if err != nil {
		s.log.Error(err, "field manager", "resource", res.gvr.String())
		return obj
	}
	if live == nil {
		live = res.newObj()
	}
	return fm.UpdateNoErrors(live, obj, manager)
}

// apply merges an apply patch (YAML or JSON) into live.
func (s *Server) apply(res *resource, subresource string, live runtime.Object, patch []byte, manager string, force bool) (runtime.Object, error) {
	if manager == "" {
		return nil, apierrors.NewBadRequest("fieldManager is required for apply requests")
	}
	applied := &unstructured.Unstructured{Object: map[string]interface{}{}}
	if err := yaml.Unmarshal(patch, &applied.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if applied.GetAPIVersion() != res.gvr.GroupVersion().String() || applied.GetKind() != res.kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("apply patch is for %s %s, this endpoint serves %s %s",
			applied.GetAPIVersion(), applied.GetKind(), res.gvr.GroupVersion(), res.kind))
	}
	fm, err := s.fieldManagers.get(res, subresource)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if live == nil {
		live = res.newObj()
	}
	out, err := fm.Apply(live, applied, manager, force)
	if err != nil {
		if _, ok := err.(apierrors.APIStatus); ok {
			return nil, err
		}
		return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", res.groupResource(), applied.GetName(), err.Error(), 0, false)
	}
	return out, nil
}

// managerName is the field manager of a request: the fieldManager
// parameter, else the client's name from its User-Agent (as upstream).
func managerName(r *http.Request, param string) string {
	if param != "" {
		return param
	}
	ua := r.Header.Get("User-Agent")
	if i := strings.Index(ua, "/"); i > 0 {
		ua = ua[:i]
	}
	if ua == "" {
		return "unknown"
	}
	return ua
}
