package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// createSA creates the service account ns/name.
func createSA(t *testing.T, client kubernetes.Interface, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := client.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
	return sa
}

// requestToken asks for a token of ns/sa.
func requestToken(t *testing.T, client kubernetes.Interface, ns, sa string, spec authenticationv1.TokenRequestSpec) (*authenticationv1.TokenRequest, error) {
	t.Helper()
	return client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
}

// jwtClaims decodes a token's claims without checking anything.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", token)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenRequest: serviceaccounts/token issues JWTs with upstream's
// claims, defaults and limits, optionally bound to a pod of the account.
func TestTokenRequest(t *testing.T) {
	ts := startServer(t)
	sa := createSA(t, ts.client, "default", "robot")

	before := time.Now().Truncate(time.Second)
	tr, err := requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(tr.Spec.ExpirationSeconds, 0); got != 3600 {
		t.Errorf("expirationSeconds defaulted to %d, want 3600", got)
	}
	if exp := tr.Status.ExpirationTimestamp.Time; exp.Before(before.Add(time.Hour)) || exp.After(time.Now().Add(time.Hour)) {
		t.Errorf("expirationTimestamp %v is not an hour from now", exp)
	}
	c := jwtClaims(t, tr.Status.Token)
	if c["iss"] != tokenIssuer || c["sub"] != "system:serviceaccount:default:robot" {
		t.Errorf("iss, sub = %v, %v", c["iss"], c["sub"])
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != tokenIssuer {
		t.Errorf("aud = %v, want the issuer", c["aud"])
	}
	if c["exp"].(float64)-c["iat"].(float64) != 3600 || c["nbf"] != c["iat"] {
		t.Errorf("exp, iat, nbf = %v, %v, %v", c["exp"], c["iat"], c["nbf"])
	}
	kube := c["kubernetes.io"].(map[string]any)
	if kube["namespace"] != "default" || kube["serviceaccount"].(map[string]any)["uid"] != string(sa.UID) || kube["pod"] != nil {
		t.Errorf("kubernetes.io claim = %v", kube)
	}

	// Audiences and lifetime as asked.
	tr, err = requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{
		Audiences: []string{"vault"}, ExpirationSeconds: ptr.To(int64(600))})
	if err != nil {
		t.Fatal(err)
	}
	if c := jwtClaims(t, tr.Status.Token); c["exp"].(float64)-c["iat"].(float64) != 600 || c["aud"].([]any)[0] != "vault" {
		t.Errorf("claims = %v, want aud vault, 600 s", c)
	}

	// Bound to a pod of the account.
	pod, err := ts.client.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err = requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("boundObjectRef.uid = %q, want the pod's %q", tr.Spec.BoundObjectRef.UID, pod.UID)
	}
	podClaim := jwtClaims(t, tr.Status.Token)["kubernetes.io"].(map[string]any)["pod"].(map[string]any)
	if podClaim["name"] != "p" || podClaim["uid"] != string(pod.UID) {
		t.Errorf("pod claim = %v", podClaim)
	}

	for _, tt := range []struct {
		name string
		sa   string
		spec authenticationv1.TokenRequestSpec
		want func(error) bool
	}{
		{"too short", "robot", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(599))}, apierrors.IsInvalid},
		{"no such account", "ghost", authenticationv1.TokenRequestSpec{}, apierrors.IsNotFound},
		{"no such pod", "robot", authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "nope"}}, apierrors.IsNotFound},
		{"pod UID differs", "robot", authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "p", UID: "other"}}, apierrors.IsConflict},
		{"pod of another account", "default", authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "p"}}, apierrors.IsBadRequest},
		{"bound to a node", "robot", authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Node", Name: "n"}}, apierrors.IsInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sa == "default" {
				if _, err := ts.client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{}); apierrors.IsNotFound(err) {
					createSA(t, ts.client, "default", "default")
				}
			}
			_, err := requestToken(t, ts.client, "default", tt.sa, tt.spec)
			if !tt.want(err) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestTokenSubresourceDiscovery: clients find serviceaccounts/token.
func TestTokenSubresourceDiscovery(t *testing.T) {
	ts := startServer(t)
	list, err := ts.client.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.APIResources {
		if r.Name == "serviceaccounts/token" {
			if r.Group != "authentication.k8s.io" || r.Version != "v1" || r.Kind != "TokenRequest" || strings.Join(r.Verbs, ",") != "create" {
				t.Errorf("serviceaccounts/token = %+v", r)
			}
			return
		}
	}
	t.Error("serviceaccounts/token is not in discovery")
}
