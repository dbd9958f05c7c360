package validation

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	mirrorPodAnnotation       = corev1.MirrorPodAnnotationKey
	podDeletionCostAnnotation = corev1.PodDeletionCost
)

var specPath = field.NewPath("spec")

// ValidatePod validates a pod being created.
func ValidatePod(pod *corev1.Pod) field.ErrorList {
	errs := validatePodMetaAndSpec(pod)
	if len(pod.Spec.EphemeralContainers) > 0 {
		// They are added through the ephemeralcontainers subresource only.
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if pod.Spec.NodeName != "" && len(pod.Spec.SchedulingGates) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	return errs
}

// validatePodMetaAndSpec holds what a pod must satisfy on create and after
// every update.
func validatePodMetaAndSpec(pod *corev1.Pod) field.ErrorList {
	errs := objectMeta(&pod.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, podAnnotations(pod.Annotations, &pod.Spec, metaPath.Child("annotations"))...)
	errs = append(errs, validatePodSpec(&pod.Spec, &pod.ObjectMeta, specPath)...)
	if pod.Spec.ServiceAccountName == "" {
		for i, v := range pod.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for j, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					errs = append(errs, field.Forbidden(specPath.Child("volumes").Index(i).Child("projected", "sources").Index(j).Child("serviceAccountToken"),
						"must not be specified when serviceAccountName is not set"))
				}
			}
		}
	}
	// Whitespace around an image is tolerated in templates (some tools use
	// " " as a placeholder) but not in pods.
	for _, cs := range []struct {
		name string
		list []corev1.Container
	}{{"containers", pod.Spec.Containers}, {"initContainers", pod.Spec.InitContainers}} {
		for i, c := range cs.list {
			errs = append(errs, imageWhitespace(c.Image, specPath.Child(cs.name).Index(i).Child("image"))...)
		}
	}
	return errs
}

func imageWhitespace(image string, p *field.Path) field.ErrorList {
	if len(image) != len(strings.TrimSpace(image)) {
		return field.ErrorList{field.Invalid(p, image, "must not have leading or trailing whitespace")}
	}
	return nil
}

// podAnnotations checks the annotations with a meaning for pods.
func podAnnotations(ann map[string]string, spec *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if v, ok := ann[mirrorPodAnnotation]; ok && spec.NodeName == "" {
		errs = append(errs, field.Invalid(p.Key(mirrorPodAnnotation), v, "must set spec.nodeName if mirror pod annotation is set"))
	}
	if v, ok := ann[podDeletionCostAnnotation]; ok {
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			errs = append(errs, field.Invalid(p.Key(podDeletionCostAnnotation), v, "must be a 32bit integer"))
		}
	}
	return errs
}

// updatablePodSpecFields is what a pod update may change, as upstream
// lists it in its error.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

// ValidatePodUpdate validates pod replacing old through the main resource.
// A pod's spec is immutable but for container images, a shorter
// activeDeadlineSeconds, added tolerations and removed scheduling gates
// (and, for gated pods, node selectors and affinity that only narrow).
// Status, ephemeral containers, resize and binding go through subresources
// and are not checked here.
func ValidatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	errs := metaUpdate(&pod.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validatePodMetaAndSpec(pod)...)
	errs = append(errs, mirrorAnnotationUpdate(pod.Annotations, old.Annotations)...)

	for _, cs := range []struct {
		name     string
		new, old []corev1.Container
	}{{"containers", pod.Spec.Containers, old.Spec.Containers}, {"initContainers", pod.Spec.InitContainers, old.Spec.InitContainers}} {
		p := specPath.Child(cs.name)
		if len(cs.new) != len(cs.old) {
			return append(errs, field.Forbidden(p, "pod updates may not add or remove containers"))
		}
		for i, c := range cs.new {
			if c.Image == "" {
				errs = append(errs, field.Required(p.Index(i).Child("image"), ""))
			}
		}
	}

	adsPath := specPath.Child("activeDeadlineSeconds")
	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
		if *ads < 0 || *ads > math.MaxInt32 {
			return append(errs, field.Invalid(adsPath, *ads, utilvalidation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if o := old.Spec.ActiveDeadlineSeconds; o != nil && *o < *ads {
			return append(errs, field.Invalid(adsPath, *ads, "must be less than or equal to previous value"))
		}
	} else if old.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(adsPath, pod.Spec.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
	}
	errs = append(errs, onlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)
	errs = append(errs, onlyRemovedSchedulingGates(pod.Spec.SchedulingGates, old.Spec.SchedulingGates, specPath.Child("schedulingGates"))...)

	if equality.Semantic.DeepEqual(pod.Spec, old.Spec) {
		return errs
	}
	// Put back what may change and compare the rest.
	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.SchedulingGates = old.Spec.SchedulingGates
	munged.Tolerations = old.Spec.Tolerations
	if o, n := old.Spec.TerminationGracePeriodSeconds, munged.TerminationGracePeriodSeconds; o != nil && *o < 0 && n != nil && *n == 1 {
		munged.TerminationGracePeriodSeconds = o
	}
	if len(old.Spec.SchedulingGates) > 0 {
		errs = append(errs, gatedPodSchedulingUpdate(munged, &old.Spec)...)
	}
	if !equality.Semantic.DeepEqual(*munged, old.Spec) {
		diff := cmp.Diff(old.Spec, *munged)
		errs = append(errs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v", strings.Join(updatablePodSpecFields, ","), diff)))
	}
	return errs
}

func mirrorAnnotationUpdate(ann, old map[string]string) field.ErrorList {
	p := metaPath.Child("annotations").Key(mirrorPodAnnotation)
	ov, hadIt := old[mirrorPodAnnotation]
	nv, hasIt := ann[mirrorPodAnnotation]
	switch {
	case hadIt && (!hasIt || nv != ov):
		return field.ErrorList{field.Forbidden(p, "may not remove or update mirror pod annotation")}
	case !hadIt && hasIt:
		return field.ErrorList{field.Forbidden(p, "may not add mirror pod annotation")}
	}
	return nil
}

// onlyAddedTolerations: every old toleration must still be there, possibly
// with a new tolerationSeconds.
func onlyAddedTolerations(ts, old []corev1.Toleration, p *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, t := range ts {
			o.TolerationSeconds = t.TolerationSeconds
			if equality.Semantic.DeepEqual(o, t) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return validateTolerations(ts, p)
}

func onlyRemovedSchedulingGates(gates, old []corev1.PodSchedulingGate, p *field.Path) field.ErrorList {
	had := map[string]bool{}
	for _, g := range old {
		had[g.Name] = true
	}
	var errs field.ErrorList
	for i, g := range gates {
		if !had[g.Name] {
			errs = append(errs, field.Forbidden(p.Index(i).Child("name"), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name)))
		}
	}
	return errs
}

// gatedPodSchedulingUpdate lets a pod that is not scheduled yet (it still
// has scheduling gates) add node selectors, and node affinity terms'
// requirements; it puts the allowed change back into munged.
func gatedPodSchedulingUpdate(munged, old *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(munged.NodeSelector, old.NodeSelector) {
		for k, v := range old.NodeSelector {
			if nv, ok := munged.NodeSelector[k]; !ok || nv != v {
				errs = append(errs, field.Invalid(specPath.Child("nodeSelector"), munged.NodeSelector, "only additions to spec.nodeSelector are allowed (no mutations or deletions)"))
				break
			}
		}
		munged.NodeSelector = old.NodeSelector
	}
	var oldNA, newNA *corev1.NodeAffinity
	if old.Affinity != nil {
		oldNA = old.Affinity.NodeAffinity
	}
	if munged.Affinity != nil {
		newNA = munged.Affinity.NodeAffinity
	}
	if equality.Semantic.DeepEqual(oldNA, newNA) {
		return errs
	}
	errs = append(errs, nodeAffinityOnlyNarrows(newNA, oldNA)...)
	switch {
	case munged.Affinity == nil && oldNA != nil:
		munged.Affinity = &corev1.Affinity{NodeAffinity: oldNA}
	case munged.Affinity != nil && old.Affinity == nil && munged.Affinity.PodAffinity == nil && munged.Affinity.PodAntiAffinity == nil:
		munged.Affinity = nil
	case munged.Affinity != nil:
		munged.Affinity.NodeAffinity = oldNA
	}
	return errs
}

func nodeAffinityOnlyNarrows(na, old *corev1.NodeAffinity) field.ErrorList {
	if old == nil || old.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	p := specPath.Child("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
	oldTerms := old.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	var terms []corev1.NodeSelectorTerm
	if na != nil && na.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms = na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	}
	if len(oldTerms) > 0 && len(oldTerms) != len(terms) {
		return field.ErrorList{field.Invalid(p, terms, "no additions/deletions to non-empty NodeSelectorTerms list are allowed")}
	}
	var errs field.ErrorList
	for i := range oldTerms {
		if !termOnlyAdds(terms[i], oldTerms[i]) {
			errs = append(errs, field.Invalid(p.Index(i), terms[i], "only additions are allowed (no mutations or deletions)"))
		}
	}
	return errs
}

func termOnlyAdds(t, old corev1.NodeSelectorTerm) bool {
	if len(old.MatchExpressions) == 0 && len(old.MatchFields) == 0 && (len(t.MatchExpressions) > 0 || len(t.MatchFields) > 0) {
		return false
	}
	if l := len(old.MatchExpressions); l > 0 && (len(t.MatchExpressions) < l || !equality.Semantic.DeepEqual(t.MatchExpressions[:l], old.MatchExpressions)) {
		return false
	}
	if l := len(old.MatchFields); l > 0 && (len(t.MatchFields) < l || !equality.Semantic.DeepEqual(t.MatchFields[:l], old.MatchFields)) {
		return false
	}
	return true
}
