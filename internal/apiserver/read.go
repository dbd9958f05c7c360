package apiserver

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kite/internal/apiserver/printers"
	"kite/internal/storage"
)

// params decodes the query string into a meta options object
// (ListOptions, CreateOptions, ...).
func (s *Server) params(r *http.Request, into runtime.Object) error {
	q := r.URL.Query()
	if err := s.scheme.Convert(&q, into, nil); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid query parameters: %v", err))
	}
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	t, err := s.negotiate(r, true)
	if err != nil {
		s.writeError(w, r, notAcceptable(err.Error()))
		return
	}
	obj := info.res.newObj()
	if err := s.store.Get(r.Context(), info.res.key(info.namespace, info.name), obj); err != nil {
		s.writeError(w, r, apiError(err, info.res.groupResource(), info.name))
		return
	}
	if info.subresource == "scale" {
		scale, err := toScale(obj)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.write(w, http.StatusOK, target{info: t.info, pretty: t.pretty}, scale)
		return
	}
	s.respond(w, r, t, info.res, http.StatusOK, obj)
}

// respond writes one object of res, transformed as negotiated.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, t target, res *resource, code int, obj runtime.Object) {
	switch t.as {
	case "Table":
		table, err := s.toTable(res.groupResource(), []runtime.Object{s.withKind(obj)}, r.URL.Query().Get("includeObject"), time.Now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		table.ResourceVersion = objectMeta(obj).GetResourceVersion()
		s.write(w, code, t, s.tableKind(table, t))
		return
	case "PartialObjectMetadata":
		s.write(w, code, t, s.partial(obj, t))
		return
	case "PartialObjectMetadataList":
		s.writeError(w, r, notAcceptable("a single object cannot be returned as PartialObjectMetadataList"))
		return
	}
	s.write(w, code, t, obj)
}

func (s *Server) tableKind(table *metav1.Table, t target) *metav1.Table {
	table.APIVersion, table.Kind = "meta.k8s.io/"+t.version, "Table"
	return table
}

func (s *Server) partial(obj runtime.Object, t target) *metav1.PartialObjectMetadata {
	p := meta.AsPartialObjectMetadata(objectMeta(obj))
	p.APIVersion, p.Kind = "meta.k8s.io/"+t.version, "PartialObjectMetadata"
	return p
}

// selection is a parsed label and field selector.
type selection struct {
	labels labels.Selector
	fields fields.Selector
}

func (s *Server) selection(info *requestInfo, labelSel, fieldSel string) (selection, error) {
	sel := selection{labels: labels.Everything(), fields: fields.Everything()}
	var err error
	if labelSel != "" {
		if sel.labels, err = labels.Parse(labelSel); err != nil {
			return sel, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
	}
	if fieldSel != "" {
		if sel.fields, err = fields.ParseSelector(fieldSel); err != nil {
			return sel, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		// Only fields this resource indexes may be selected on.
		known := s.fieldSet(info.res, info.res.newObj())
		for _, req := range sel.fields.Requirements() {
			if _, ok := known[req.Field]; !ok {
				return sel, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	return sel, nil
}

func (s *Server) fieldSet(res *resource, obj runtime.Object) fields.Set {
	m := objectMeta(obj)
	set := fields.Set{"metadata.name": m.GetName()}
	if res.namespaced {
		set["metadata.namespace"] = m.GetNamespace()
	}
	if res.fields != nil {
		for k, v := range res.fields(obj) {
			set[k] = v
		}
	}
	return set
}

// match returns the filter for a selection, nil when it selects everything.
func (s *Server) match(res *resource, sel selection) func(runtime.Object) bool {
	if sel.labels.Empty() && sel.fields.Empty() {
		return nil
	}
	return func(obj runtime.Object) bool {
		return sel.labels.Matches(labels.Set(objectMeta(obj).GetLabels())) &&
			sel.fields.Matches(s.fieldSet(res, obj))
	}
}

func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", rv))
	}
	return n, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	t, err := s.negotiate(r, true)
	if err != nil {
		s.writeError(w, r, notAcceptable(err.Error()))
		return
	}
	var opts metav1.ListOptions
	if err := s.params(r, &opts); err != nil {
		s.writeError(w, r, err)
		return
	}
	sel, err := s.selection(info, opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if opts.ResourceVersionMatch != "" && opts.ResourceVersion == "" {
		s.writeError(w, r, apierrors.NewBadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided"))
		return
	}
	res, err := s.store.List(r.Context(), info.res.prefix(info.namespace), info.res.newObj, storage.ListOptions{
		Revision: rv,
		Exact:    opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact,
		Limit:    opts.Limit,
		Continue: opts.Continue,
		Match:    s.match(info.res, sel),
	})
	if err != nil {
		s.writeError(w, r, apiError(err, info.res.groupResource(), ""))
		return
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(res.Revision, 10), Continue: res.Continue, RemainingItemCount: res.Remaining}
	switch t.as {
	case "Table":
		table, err := s.toTable(info.res.groupResource(), s.withKinds(res.Items), r.URL.Query().Get("includeObject"), time.Now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		table.ListMeta = lm
		s.write(w, http.StatusOK, t, s.tableKind(table, t))
		return
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		pl := &metav1.PartialObjectMetadataList{ListMeta: lm}
		pl.APIVersion, pl.Kind = "meta.k8s.io/"+t.version, "PartialObjectMetadataList"
		for _, o := range res.Items {
			pl.Items = append(pl.Items, *s.partial(o, t))
		}
		s.write(w, http.StatusOK, t, pl)
		return
	}
	list := info.res.newList()
	if err := meta.SetList(list, res.Items); err != nil {
		s.writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	lma, _ := meta.ListAccessor(list)
	lma.SetResourceVersion(lm.ResourceVersion)
	lma.SetContinue(lm.Continue)
	lma.SetRemainingItemCount(lm.RemainingItemCount)
	s.write(w, http.StatusOK, t, list)
}

func (s *Server) withKinds(objs []runtime.Object) []runtime.Object {
	for _, o := range objs {
		s.withKind(o)
	}
	return objs
}

// toTable renders objects as a Table; a bad includeObject is the client's
// error.
func (s *Server) toTable(gr schema.GroupResource, objs []runtime.Object, includeObject string, now time.Time) (*metav1.Table, error) {
	t, err := printers.ToTable(gr, objs, includeObject, now)
	switch {
	case printers.IsUnknownIncludeObject(err):
		return nil, apierrors.NewBadRequest(err.Error())
	case err != nil:
		return nil, apierrors.NewInternalError(err)
	}
	return t, nil
}
