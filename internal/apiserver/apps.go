package apiserver

import (
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func deploymentsResource() *resource {
	return &resource{
		gvr: gvr("apps", "v1", "deployments"), kind: "Deployment", singular: "deployment", shortNames: []string{"deploy"},
		categories: []string{"all"}, namespaced: true, status: true, subresources: []string{"scale"}, statusKeepsAnnotations: true,
		newObj: func() runtime.Object { return &appsv1.Deployment{} }, newList: func() runtime.Object { return &appsv1.DeploymentList{} },
		prepareForCreate: func(obj runtime.Object) { obj.(*appsv1.Deployment).Status = appsv1.DeploymentStatus{} },
		prepareForUpdate: func(obj, old runtime.Object) {
			// Annotation changes count as a new generation too
			// (upstream, for the rollback annotations of old).
			d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
			if d.Generation == o.Generation && !equality.Semantic.DeepEqual(d.Annotations, o.Annotations) {
				d.Generation = o.Generation + 1
			}
		},
	}
}

func replicaSetsResource() *resource {
	return &resource{
		gvr: gvr("apps", "v1", "replicasets"), kind: "ReplicaSet", singular: "replicaset", shortNames: []string{"rs"},
		categories: []string{"all"}, namespaced: true, status: true, subresources: []string{"scale"}, statusKeepsAnnotations: true,
		newObj: func() runtime.Object { return &appsv1.ReplicaSet{} }, newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
		prepareForCreate: func(obj runtime.Object) { obj.(*appsv1.ReplicaSet).Status = appsv1.ReplicaSetStatus{} },
	}
}

// toScale is the autoscaling/v1 Scale view of a Deployment or ReplicaSet.
func toScale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	var replicas, current int32
	var sel *metav1.LabelSelector
	m := objectMeta(obj)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		replicas, current, sel = deref(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	case *appsv1.ReplicaSet:
		replicas, current, sel = deref(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("no scale for %T", obj))
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sc := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: current, Selector: selector.String()},
	}
	sc.APIVersion, sc.Kind = "autoscaling/v1", "Scale"
	return sc, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	}
}

// scaleTo updates spec.replicas from a Scale, honouring its
// resourceVersion as a precondition.
func (s *Server) scaleTo(w http.ResponseWriter, r *http.Request, info *requestInfo, dryRun bool, next func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error)) {
	var out runtime.Object
	mainInfo := *info
	mainInfo.subresource = ""
	out, _, err := s.updateObject(r.Context(), &mainInfo, func(cur runtime.Object) (runtime.Object, error) {
		curScale, err := toScale(cur)
		if err != nil {
			return nil, err
		}
		sc, err := next(curScale)
		if err != nil {
			return nil, err
		}
		if sc.Name != "" && sc.Name != info.name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, info.name))
		}
		if sc.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(schemaGK("autoscaling", "Scale"), info.name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
		}
		if sc.ResourceVersion != "" && sc.ResourceVersion != curScale.ResourceVersion {
			return nil, apierrors.NewConflict(info.res.groupResource(), info.name, fmt.Errorf("%s", conflictMsg))
		}
		setReplicas(cur, sc.Spec.Replicas)
		return cur, nil
	}, writeOpts{dryRun: dryRun, manager: managerName(r, "")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sc, err := toScale(out)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, _ := s.negotiate(r, false)
	if t.info.Serializer == nil {
		t = target{info: s.jsonInfo()}
	}
	s.write(w, http.StatusOK, t, sc)
}

func (s *Server) updateScale(w http.ResponseWriter, r *http.Request, info *requestInfo, body []byte, opts decodeOptions, dryRun bool) {
	sc := &autoscalingv1.Scale{}
	if _, _, err := s.codecs.UniversalDeserializer().Decode(body, nil, sc); err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	s.scaleTo(w, r, info, dryRun, func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error) { return sc, nil })
}

func (s *Server) patchScale(w http.ResponseWriter, r *http.Request, info *requestInfo, pt types.PatchType, body []byte, fieldValidation string, dryRun bool) {
	s.scaleTo(w, r, info, dryRun, func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
		patched, err := s.applyPatchTo(pt, cur, body, &autoscalingv1.Scale{})
		if err != nil {
			return nil, err
		}
		sc := &autoscalingv1.Scale{}
		if _, _, err := s.codecs.UniversalDeserializer().Decode(patched, nil, sc); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return sc, nil
	})
}
