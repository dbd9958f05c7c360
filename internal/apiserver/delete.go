package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// deleteOptions reads DeleteOptions from the body (kubectl sends them
// there) or else from the query.
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if _, _, err := s.codecs.UniversalDeserializer().Decode(body, nil, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("decoding DeleteOptions: %v", err))
		}
	} else if err := s.params(r, opts); err != nil {
		return nil, err
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		// Negative means "now", as upstream treats it.
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q", *opts.PropagationPolicy))
		}
		if opts.OrphanDependents != nil {
			return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set")
		}
	}
	if _, err := isDryRun(opts.DryRun); err != nil {
		return nil, err
	}
	return opts, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	t, err := s.negotiate(r, true)
	if err != nil {
		s.writeError(w, r, notAcceptable(err.Error()))
		return
	}
	if info.subresource != "" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), "DELETE of "+info.subresource))
		return
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, _, err := s.deleteObject(r.Context(), info.res, info.namespace, info.name, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	code := http.StatusOK
	if m := objectMeta(out); m.GetDeletionTimestamp() != nil && opts.OrphanDependents != nil && !*opts.OrphanDependents {
		code = http.StatusAccepted
	}
	s.respond(w, r, t, info.res, code, out)
}

var errDeleteNow = errors.New("delete now")

// blocksDeletion: namespaces wait for their spec finalizers (the namespace
// controller empties them) besides metadata finalizers.
func (s *Server) blocksDeletion(res *resource, obj runtime.Object) bool {
	if f, ok := structField(obj, "Spec"); ok && res.gvr.Resource == "namespaces" {
		if fin := f.FieldByName("Finalizers"); fin.IsValid() && fin.Len() > 0 {
			return true
		}
	}
	return false
}

// deleteObject deletes one object: at once when nothing holds it, or by
// marking it (deletionTimestamp) when finalizers or a grace period hold it.
// The bool reports whether it is gone.
func (s *Server) deleteObject(ctx context.Context, res *resource, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	dryRun := len(opts.DryRun) > 0
	key := res.key(ns, name)
	if res.gvr.Resource == "namespaces" && immortalNamespace(name) {
		return nil, false, apierrors.NewForbidden(res.groupResource(), name, errors.New("this namespace may not be deleted"))
	}
	check := func(cur runtime.Object) error {
		m := objectMeta(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return apierrors.NewConflict(res.groupResource(), name,
					fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return apierrors.NewConflict(res.groupResource(), name,
					fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		return nil
	}
	out, err := s.store.GuaranteedUpdate(ctx, key, res.newObj, func(cur runtime.Object) (runtime.Object, error) {
		if err := check(cur); err != nil {
			return nil, err
		}
		obj := cur.DeepCopyObject()
		m := objectMeta(obj)
		var grace int64
		if res.gracePeriod != nil {
			grace = res.gracePeriod(obj, opts.GracePeriodSeconds)
		}
		finalizers := propagationFinalizers(m.GetFinalizers(), opts)
		if len(finalizers) == 0 && grace == 0 && !s.blocksDeletion(res, obj) {
			return nil, errDeleteNow
		}
		now := time.Now()
		if dt := m.GetDeletionTimestamp(); dt != nil {
			// Already being deleted: a delete may only shorten the
			// grace period.
			if old := m.GetDeletionGracePeriodSeconds(); old == nil || grace >= *old {
				if dryRun {
					return nil, errDryRun{obj}
				}
				return cur, nil
			}
		}
		m.SetFinalizers(finalizers)
		when := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		m.SetDeletionTimestamp(&when)
		m.SetDeletionGracePeriodSeconds(&grace)
		if m.GetGeneration() > 0 {
			m.SetGeneration(m.GetGeneration() + 1)
		}
		if res.gvr.Resource == "namespaces" {
			setNamespaceTerminating(obj)
		}
		if dryRun {
			return nil, errDryRun{obj}
		}
		return obj, nil
	})
	var dr errDryRun
	switch {
	case errors.As(err, &dr):
		return dr.obj, false, nil
	case errors.Is(err, errDeleteNow):
		deleted := res.newObj()
		if dryRun {
			if err := s.store.Get(ctx, key, deleted); err != nil {
				return nil, false, apiError(err, res.groupResource(), name)
			}
			return deleted, true, nil
		}
		if err := s.store.Delete(ctx, key, deleted, check); err != nil {
			return nil, false, apiError(err, res.groupResource(), name)
		}
		s.release(ctx, res, deleted)
		return deleted, true, nil
	case err != nil:
		return nil, false, apiError(err, res.groupResource(), name)
	}
	return out, false, nil
}

// propagationFinalizers adds the garbage collector's finalizers that a
// propagation policy asks for (orphan, foregroundDeletion).
func propagationFinalizers(fin []string, opts *metav1.DeleteOptions) []string {
	out := append([]string(nil), fin...)
	policy := metav1.DeletionPropagation("")
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	} else if opts.OrphanDependents != nil {
		policy = metav1.DeletePropagationBackground
		if *opts.OrphanDependents {
			policy = metav1.DeletePropagationOrphan
		}
	}
	add := func(f string) {
		if !contains(out, f) {
			out = append(out, f)
		}
	}
	remove := func(f string) {
		kept := out[:0]
		for _, x := range out {
			if x != f {
				kept = append(kept, x)
			}
		}
		out = kept
	}
	switch policy {
	case metav1.DeletePropagationOrphan:
		add(metav1.FinalizerOrphanDependents)
		remove(metav1.FinalizerDeleteDependents)
	case metav1.DeletePropagationForeground:
		add(metav1.FinalizerDeleteDependents)
		remove(metav1.FinalizerOrphanDependents)
	case metav1.DeletePropagationBackground:
		remove(metav1.FinalizerOrphanDependents)
		remove(metav1.FinalizerDeleteDependents)
	}
	return out
}

func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	t, err := s.negotiate(r, false)
	if err != nil {
		s.writeError(w, r, notAcceptable(err.Error()))
		return
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var lopts metav1.ListOptions
	if err := s.params(r, &lopts); err != nil {
		s.writeError(w, r, err)
		return
	}
	sel, err := s.selection(info, lopts.LabelSelector, lopts.FieldSelector)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.store.List(r.Context(), info.res.prefix(info.namespace), info.res.newObj, storageListAll(s.match(info.res, sel)))
	if err != nil {
		s.writeError(w, r, apiError(err, info.res.groupResource(), ""))
		return
	}
	var items []runtime.Object
	for _, o := range res.Items {
		m := objectMeta(o)
		out, _, err := s.deleteObject(r.Context(), info.res, m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		items = append(items, out)
	}
	list := info.res.newList()
	if err := meta.SetList(list, items); err != nil {
		s.writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	s.write(w, http.StatusOK, t, list)
}
