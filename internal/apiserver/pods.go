package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func podsResource(defaultToleration int64) *resource {
	return &resource{
		gvr: gvr("", "v1", "pods"), kind: "Pod", singular: "pod", shortNames: []string{"po"}, categories: []string{"all"},
		namespaced: true, status: true, subresources: []string{"binding", "log", "exec", "attach", "portforward"},
		newObj: func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
		prepareForCreate: func(obj runtime.Object) {
			pod := obj.(*corev1.Pod)
			pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&pod.Spec)}
			if len(pod.Spec.SchedulingGates) > 0 {
				pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
					Reason: corev1.PodReasonSchedulingGated, Message: "Scheduling is blocked due to non-empty scheduling gates"}}
			}
			addDefaultTolerations(&pod.Spec, defaultToleration)
		},
		fields:      podFields,
		gracePeriod: podGracePeriod,
	}
}

func podFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	hostNetwork := "false"
	if p.Spec.HostNetwork {
		hostNetwork = "true"
	}
	return fields.Set{
		"spec.nodeName": p.Spec.NodeName, "spec.restartPolicy": string(p.Spec.RestartPolicy),
		"spec.schedulerName": p.Spec.SchedulerName, "spec.serviceAccountName": p.Spec.ServiceAccountName,
		"spec.hostNetwork": hostNetwork, "status.phase": string(p.Status.Phase), "status.podIP": p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

// podGracePeriod: a pod on a node gets time to stop (the request's period,
// else its spec's); one that never ran, or has finished, goes at once.
func podGracePeriod(obj runtime.Object, requested *int64) int64 {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if requested != nil {
		return *requested
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// qosClass is the pod's quality-of-service class, from its containers'
// requests and limits.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	anySet, guaranteed := false, true
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				anySet = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !anySet:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// createSubresource serves POST to a subresource: pods/binding,
// serviceaccounts/token.
func (s *Server) createSubresource(w http.ResponseWriter, r *http.Request, t target, info *requestInfo, body []byte, dryRun bool) {
	if info.res.gvr.Resource == "serviceaccounts" && info.subresource == tokenSubresource {
		s.createToken(w, r, t, info, body, dryRun)
		return
	}
	if info.res.gvr.Resource != "pods" || info.subresource != "binding" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(info.res.groupResource(), "POST to "+info.subresource))
		return
	}
	binding := &corev1.Binding{}
	if _, _, err := s.codecs.UniversalDeserializer().Decode(body, nil, binding); err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	if binding.Name == "" {
		binding.Name = info.name
	}
	if err := s.bind(r.Context(), info, binding, dryRun); err != nil {
		s.writeError(w, r, err)
		return
	}
	st := &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
	s.write(w, http.StatusCreated, target{info: s.jsonInfo()}, st)
}

// bind assigns a pod to a node, once.
func (s *Server) bind(ctx context.Context, info *requestInfo, b *corev1.Binding, dryRun bool) error {
	if b.Name != info.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the binding (%s) does not match the pod (%s)", b.Name, info.name))
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return apierrors.NewInvalid(info.res.gvk().GroupKind(), info.name, fieldErrs("target.kind", b.Target.Kind, "must be empty or 'Node'"))
	}
	if b.Target.Name == "" {
		return apierrors.NewInvalid(info.res.gvk().GroupKind(), info.name, fieldErrs("target.name", "", "must be set"))
	}
	_, err := s.store.GuaranteedUpdate(ctx, info.res.key(info.namespace, info.name), info.res.newObj, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(info.res.groupResource(), info.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(info.res.groupResource(), info.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(info.res.groupResource(), info.name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now())})
		if dryRun {
			return nil, errDryRun{pod}
		}
		return pod, nil
	})
	if _, ok := err.(errDryRun); ok {
		return nil
	}
	if err != nil {
		return apiError(err, info.res.groupResource(), info.name)
	}
	return nil
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// addDefaultTolerations gives a pod seconds on a node that is not ready or
// unreachable before eviction, unless it says otherwise (upstream's
// DefaultTolerationSeconds admission).
func addDefaultTolerations(spec *corev1.PodSpec, seconds int64) {
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		has := false
		for _, t := range spec.Tolerations {
			if (t.Key == key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)) &&
				(t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute) {
				has = true
				break
			}
		}
		if !has {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(seconds)})
		}
	}
}
