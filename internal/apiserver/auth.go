package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimachineryversion "k8s.io/apimachinery/pkg/version"

	"kite/internal/version"
)

// user is an authenticated client.
type user struct {
	name   string
	groups []string
}

// authenticate identifies the client: a client certificate verified by
// the TLS handshake against kite's CA (CN is the user, O its groups), a
// bootstrap token, or a service account token (see satoken.go). No
// credentials: nil user (anonymous); wrong credentials: 401.
func (s *Server) authenticate(r *http.Request) (*user, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		return &user{name: c.Subject.CommonName, groups: append(c.Subject.Organization, "system:authenticated")}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, apierrors.NewUnauthorized("Unauthorized")
		}
		tok = strings.TrimSpace(tok)
		if u := s.tokens[tok]; u != nil {
			return u, nil
		}
		u, err := s.serviceAccountUser(r.Context(), tok)
		if err != nil {
			s.log.V(2).Info("bearer token rejected", "reason", err.Error())
			return nil, apierrors.NewUnauthorized("Unauthorized")
		}
		return u, nil
	}
	return nil, nil
}

// serviceAccountUser authenticates a service account token: signed by our
// key, in date, for the API server's audience, and for an account (and
// pod, when bound to one) that still exists with the UID it was issued
// for — deleting either revokes the token.
func (s *Server) serviceAccountUser(ctx context.Context, token string) (*user, error) {
	c, err := s.signer.verify(token, time.Now())
	if err != nil {
		return nil, err
	}
	ns, name := c.Kube.Namespace, c.Kube.ServiceAccount.Name
	saRes := s.reg.lookup(coreV1, "serviceaccounts")
	sa := &corev1.ServiceAccount{}
	if err := s.store.Get(ctx, saRes.key(ns, name), sa); err != nil {
		return nil, fmt.Errorf("service account %s/%s: %w", ns, name, err)
	}
	if sa.UID != c.Kube.ServiceAccount.UID {
		return nil, fmt.Errorf("service account %s/%s was re-created (UID %s, token for %s)", ns, name, sa.UID, c.Kube.ServiceAccount.UID)
	}
	if p := c.Kube.Pod; p != nil {
		podRes := s.reg.lookup(coreV1, "pods")
		pod := &corev1.Pod{}
		if err := s.store.Get(ctx, podRes.key(ns, p.Name), pod); err != nil {
			return nil, fmt.Errorf("bound pod %s/%s: %w", ns, p.Name, err)
		}
		if pod.UID != p.UID {
			return nil, fmt.Errorf("bound pod %s/%s was re-created (UID %s, token for %s)", ns, p.Name, pod.UID, p.UID)
		}
	}
	return &user{name: c.Subject, groups: []string{serviceAccountsGroup, serviceAccountsNSGroupPf + ns, "system:authenticated"}}, nil
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	info := apimachineryversion.Info{
		Major: version.KubernetesMajor, Minor: version.KubernetesMinor,
		GitVersion: version.Kubernetes + "+kite-" + strings.TrimPrefix(version.Version, "v"),
		GoVersion:  runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(info)
}
