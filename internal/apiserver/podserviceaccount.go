package apiserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"kite/internal/storage"
)

// The service account admission of pods, as upstream's ServiceAccount
// admission plugin: every pod runs as a service account ("default" unless
// it names one) and, unless it or its account opts out, gets the
// kube-api-access volume — a token for the account bound to the pod, the
// cluster CA and the namespace — at the path client libraries read
// (client-go's rest.InClusterConfig).
const (
	defaultServiceAccount = "default"
	// serviceAccountMountPath is where every container finds the volume.
	serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// apiAccessVolumePrefix starts the volume's name; five random
	// characters follow.
	apiAccessVolumePrefix = "kube-api-access-"
	// apiAccessTokenSeconds: upstream asks for an hour and seven seconds,
	// an odd number that tells its tokens apart from users' requests.
	apiAccessTokenSeconds = 3607
	// rootCAConfigMap is published in every namespace by the root CA
	// publisher (internal/controller/rootcacertpublisher).
	rootCAConfigMap = "kube-root-ca.crt"
	rootCAKey       = "ca.crt"
	// mirrorPodAnnotation marks static pods' mirrors, which admission
	// leaves alone.
	mirrorPodAnnotation = "kubernetes.io/config.mirror"
)

// admitPodServiceAccount sets the pod's service account and adds the API
// access volume and its mounts. A pod naming an account that does not
// exist is refused, as upstream; one running as "default" is admitted
// even before the ServiceAccount controller made that account (upstream
// waits a moment for it instead): the agent cannot get the token until
// the account exists, and retries.
func (s *Server) admitPodServiceAccount(ctx context.Context, pod *corev1.Pod) error {
	if _, ok := pod.Annotations[mirrorPodAnnotation]; ok {
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultServiceAccount
	}
	name := pod.Spec.ServiceAccountName
	saRes := s.reg.lookup(coreV1, "serviceaccounts")
	sa := &corev1.ServiceAccount{}
	err := s.store.Get(ctx, saRes.key(pod.Namespace, name), sa)
	switch {
	case errors.Is(err, storage.ErrNotFound) && name == defaultServiceAccount:
		sa = nil
	case err != nil:
		return apierrors.NewForbidden(s.reg.lookup(coreV1, "pods").groupResource(), pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, name, apiError(err, saRes.groupResource(), name)))
	}
	automount := true
	switch {
	case pod.Spec.AutomountServiceAccountToken != nil:
		automount = *pod.Spec.AutomountServiceAccountToken
	case sa != nil && sa.AutomountServiceAccountToken != nil:
		automount = *sa.AutomountServiceAccountToken
	}
	if automount {
		addAPIAccessVolume(&pod.Spec)
	}
	return nil
}

// addAPIAccessVolume adds the volume and mounts it read-only in every
// container and init container that has nothing mounted at the path yet.
func addAPIAccessVolume(spec *corev1.PodSpec) {
	var needs []*corev1.Container
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if !mountsAt(&list[i], serviceAccountMountPath) {
				needs = append(needs, &list[i])
			}
		}
	}
	if len(needs) == 0 {
		return
	}
	taken := map[string]bool{}
	for _, v := range spec.Volumes {
		taken[v.Name] = true
	}
	name := apiAccessVolumePrefix + utilrand.String(5)
	for taken[name] {
		name = apiAccessVolumePrefix + utilrand.String(5)
	}
	spec.Volumes = append(spec.Volumes, apiAccessVolume(name))
	for _, c := range needs {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: serviceAccountMountPath})
	}
}

func mountsAt(c *corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == path {
			return true
		}
	}
	return false
}

// apiAccessVolume is the projected volume, fully defaulted (admission
// runs after defaulting).
func apiAccessVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To(corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(apiAccessTokenSeconds))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: rootCAKey, Path: rootCAKey}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}
