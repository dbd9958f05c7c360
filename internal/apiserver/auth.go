package apiserver

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"

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
// the TLS handshake against kite's CA (CN is the user, O its groups), or a
// bearer token kite issued. No credentials: nil user (anonymous); wrong
// credentials: 401.
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
		if u := s.tokens[strings.TrimSpace(tok)]; u != nil {
			return u, nil
		}
		return nil, apierrors.NewUnauthorized("Unauthorized")
	}
	return nil, nil
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
