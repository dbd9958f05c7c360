package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// bearerClient is a client of ts that sends only token.
func bearerClient(t *testing.T, ts *testServer, token string) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(ts.cfg)
	cfg.BearerToken = token
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listPods lists default's pods as token's holder.
func listPods(t *testing.T, ts *testServer, token string) error {
	t.Helper()
	_, err := bearerClient(t, ts, token).CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	return err
}

// TestServiceAccountTokenAuthentication: a token from TokenRequest
// authenticates as its account until it expires or the account (or the
// pod it is bound to) goes; tokens of other keys, issuers or audiences
// never do.
func TestServiceAccountTokenAuthentication(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	sa := createSA(t, ts.client, "default", "robot")
	tr, err := requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := listPods(t, ts, tr.Status.Token); err != nil {
		t.Fatalf("list pods with a fresh token: %v", err)
	}
	u, err := ts.srv.serviceAccountUser(ctx, tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	wantGroups := []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}
	if u.name != "system:serviceaccount:default:robot" || !slices.Equal(u.groups, wantGroups) {
		t.Errorf("user = %q %q", u.name, u.groups)
	}

	now := time.Now()
	robot := objectRef{Name: "robot", UID: sa.UID}
	signed := func(s *tokenSigner, c tokenClaims) string {
		tok, err := s.sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := newTokenSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	wrongIssuer := claimsFor("default", robot, nil, []string{tokenIssuer}, now, 3600)
	wrongIssuer.Issuer = "https://elsewhere"
	for name, tok := range map[string]string{
		"expired":        signed(ts.srv.signer, claimsFor("default", robot, nil, []string{tokenIssuer}, now.Add(-2*time.Hour), 3600)),
		"foreign key":    signed(foreign, claimsFor("default", robot, nil, []string{tokenIssuer}, now, 3600)),
		"other audience": signed(ts.srv.signer, claimsFor("default", robot, nil, []string{"vault"}, now, 3600)),
		"other issuer":   signed(ts.srv.signer, wrongIssuer),
		"other UID":      signed(ts.srv.signer, claimsFor("default", objectRef{Name: "robot", UID: "old"}, nil, []string{tokenIssuer}, now, 3600)),
		"not a JWT":      "abc.def.ghi",
	} {
		if err := listPods(t, ts, tok); !apierrors.IsUnauthorized(err) {
			t.Errorf("%s: err = %v, want 401", name, err)
		}
	}

	// Bound to a pod: valid while the pod lives.
	if _, err := ts.client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound, err := requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := listPods(t, ts, bound.Status.Token); err != nil {
		t.Fatalf("pod-bound token: %v", err)
	}
	if err := ts.client.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := listPods(t, ts, bound.Status.Token); !apierrors.IsUnauthorized(err) {
		t.Errorf("token of a deleted pod: err = %v, want 401", err)
	}

	// Deleting the account revokes its tokens.
	if err := ts.client.CoreV1().ServiceAccounts("default").Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := listPods(t, ts, tr.Status.Token); !apierrors.IsUnauthorized(err) {
		t.Errorf("token of a deleted account: err = %v, want 401", err)
	}
}

// TestTokensSurviveRestart: the signing key is kept in the state dir, so
// a token stays good across a server restart.
func TestTokensSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServerAt(t, dir, "127.0.0.1:0")
	createSA(t, ts.client, "default", "robot")
	tr, err := requestToken(t, ts.client, "default", "robot", authenticationv1.TokenRequestSpec{})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()
	ts = startServerAt(t, dir, "127.0.0.1:0")
	if err := listPods(t, ts, tr.Status.Token); err != nil {
		t.Errorf("token after restart: %v", err)
	}
}
