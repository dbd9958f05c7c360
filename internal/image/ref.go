package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how names on Docker Hub are written in the store (and by
// kubelet in pod status): "docker.io/library/busybox:latest". go-
// containerregistry says "index.docker.io"; both are accepted as input.
const (
	dockerHub    = "docker.io"
	dockerHubAPI = "index.docker.io"
)

// Normalize returns the full form of an image reference, the key the
// store files images under: a registry, a repository, and a tag (default
// "latest") or a digest. "busybox" → "docker.io/library/busybox:latest";
// "gcr.io/kuar-demo/kuard-amd64:1" stays as it is; a reference with both a
// tag and a digest keeps the digest only. An unparsable reference is
// ErrInvalidName.
func Normalize(ref string) (string, error) {
	_, norm, err := parseRef(ref)
	return norm, err
}

// parseRef parses ref for go-containerregistry and gives its normal form.
func parseRef(ref string) (name.Reference, string, error) {
	if strings.TrimSpace(ref) != ref || ref == "" {
		return nil, "", fmt.Errorf("%w: %q", ErrInvalidName, ref)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %q: %v", ErrInvalidName, ref, err)
	}
	return r, normalName(r), nil
}

func normalName(r name.Reference) string {
	reg := r.Context().RegistryStr()
	if reg == dockerHubAPI {
		reg = dockerHub
	}
	repo := reg + "/" + r.Context().RepositoryStr()
	switch r := r.(type) {
	case name.Digest:
		return repo + "@" + r.DigestStr()
	case name.Tag:
		return repo + ":" + r.TagStr()
	}
	return repo + ":" + r.Identifier()
}

// repository is the name without its tag or digest.
func repository(norm string) string {
	if i := strings.LastIndex(norm, "@"); i >= 0 {
		return norm[:i]
	}
	if i := strings.LastIndex(norm, ":"); i > strings.LastIndex(norm, "/") {
		return norm[:i]
	}
	return norm
}

var hexID = regexp.MustCompile(`^(sha256:)?([0-9a-f]{64})$`)

// idOf returns "sha256:<hex>" when ref is an image ID or digest on its own
// (with or without the "sha256:" prefix), else "".
func idOf(ref string) string {
	m := hexID.FindStringSubmatch(ref)
	if m == nil {
		return ""
	}
	return "sha256:" + m[2]
}
