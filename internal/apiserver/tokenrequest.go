package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// tokenSubresource is serviceaccounts/token: TokenRequest.
const tokenSubresource = "token"

var tokenRequestGVK = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// serviceAccountsResource serves ServiceAccounts and their token
// subresource.
func serviceAccountsResource() *resource {
	return &resource{
		gvr: gvr("", "v1", "serviceaccounts"), kind: "ServiceAccount", singular: "serviceaccount", shortNames: []string{"sa"}, namespaced: true,
		subresources: []string{tokenSubresource},
		newObj:       func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} },
	}
}

// createToken serves POST serviceaccounts/NAME/token: a bound token for
// the account, optionally bound to a pod of it, as upstream's
// TokenRequest.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, t target, info *requestInfo, body []byte, dryRun bool) {
	tr := &authenticationv1.TokenRequest{}
	gvk := tokenRequestGVK
	if _, _, err := s.codecs.UniversalDeserializer().Decode(body, &gvk, tr); err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	out, err := s.issueToken(r.Context(), info.namespace, info.name, tr, dryRun, time.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out.SetGroupVersionKind(tokenRequestGVK)
	s.write(w, http.StatusCreated, t, out)
}

// issueToken defaults and validates a TokenRequest for the service account
// ns/name and fills in its status.
func (s *Server) issueToken(ctx context.Context, ns, name string, tr *authenticationv1.TokenRequest, dryRun bool, now time.Time) (*authenticationv1.TokenRequest, error) {
	saRes := s.reg.lookup(coreV1, "serviceaccounts")
	if tr.Name != "" && tr.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the token request (%s) does not match the service account (%s)", tr.Name, name))
	}
	if tr.Spec.ExpirationSeconds == nil {
		secs := int64(defaultTokenSeconds)
		tr.Spec.ExpirationSeconds = &secs
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = []string{tokenIssuer}
	}
	if errs := validateTokenRequest(tr); len(errs) > 0 {
		return nil, apierrors.NewInvalid(tokenRequestGVK.GroupKind(), name, errs)
	}
	sa := &corev1.ServiceAccount{}
	if err := s.store.Get(ctx, saRes.key(ns, name), sa); err != nil {
		return nil, apiError(err, saRes.groupResource(), name)
	}
	var pod *objectRef
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		p, err := s.boundPod(ctx, ns, sa.Name, ref)
		if err != nil {
			return nil, err
		}
		pod = &objectRef{Name: p.Name, UID: p.UID}
		ref.UID = p.UID
	}
	tr.Name, tr.Namespace = name, ns
	tr.CreationTimestamp = metav1.NewTime(now.Truncate(time.Second))
	if dryRun {
		return tr, nil
	}
	c := claimsFor(ns, objectRef{Name: sa.Name, UID: sa.UID}, pod, tr.Spec.Audiences, now, *tr.Spec.ExpirationSeconds)
	tok, err := s.signer.sign(c)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("token for service account %s/%s: %w", ns, name, err))
	}
	tr.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.Unix(c.Expiry, 0)}
	return tr, nil
}

func validateTokenRequest(tr *authenticationv1.TokenRequest) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	switch secs := *tr.Spec.ExpirationSeconds; {
	case secs < minTokenSeconds:
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), secs, "may not specify a duration less than 10 minutes"))
	case secs > maxTokenSeconds:
		errs = append(errs, field.TooLong(spec.Child("expirationSeconds"), secs, maxTokenSeconds))
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		p := spec.Child("boundObjectRef")
		if ref.Kind != "Pod" {
			errs = append(errs, field.NotSupported(p.Child("kind"), ref.Kind, []string{"Pod"}))
		}
		if ref.APIVersion != "" && ref.APIVersion != "v1" {
			errs = append(errs, field.NotSupported(p.Child("apiVersion"), ref.APIVersion, []string{"v1"}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
	}
	return errs
}

// boundPod is the pod a token is to be bound to: it must exist, have the
// UID asked for (if any) and run as the account.
func (s *Server) boundPod(ctx context.Context, ns, sa string, ref *authenticationv1.BoundObjectReference) (*corev1.Pod, error) {
	podRes := s.reg.lookup(coreV1, "pods")
	pod := &corev1.Pod{}
	if err := s.store.Get(ctx, podRes.key(ns, ref.Name), pod); err != nil {
		return nil, apiError(err, podRes.groupResource(), ref.Name)
	}
	if ref.UID != "" && ref.UID != pod.UID {
		return nil, apierrors.NewConflict(podRes.groupResource(), ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the pod's (%s)", ref.UID, pod.UID))
	}
	if pod.Spec.ServiceAccountName != sa {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind a token for service account %s/%s to pod %s, which runs as service account %q",
			ns, sa, pod.Name, pod.Spec.ServiceAccountName))
	}
	return pod, nil
}
