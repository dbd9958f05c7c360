package agent

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
)

// Images gives the agent the images its containers run. The real one is
// the machine's image store (internal/image, adapted in imagestore.go);
// tests use a fake.
type Images interface {
	// Ensure makes the image present as the pull policy says (pulling
	// it if need be) and returns it. Errors tell their kind with
	// errors.Is: ErrImageNeverPull, ErrInvalidImageName; anything else
	// is a failed pull.
	Ensure(ctx context.Context, req ImageRequest) (Image, error)
}

// ImageRequest is one container's image.
type ImageRequest struct {
	Ref    string
	Policy corev1.PullPolicy
	// PullSecrets are the pod's imagePullSecrets
	// (kubernetes.io/dockerconfigjson or dockercfg).
	PullSecrets []corev1.Secret
}

// Image is an image ready to run.
type Image struct {
	// Ref is the image's name as status.image shows it
	// ("docker.io/library/busybox:latest"); ID is status.imageID (a
	// repo digest, or the config digest).
	Ref, ID string
	// Pulled is true when Ensure downloaded it (for the Pulled event).
	Pulled bool
	// LowerDirs are the unpacked layers, bottom first; never written.
	LowerDirs []string
	// The image config's process defaults.
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	// SharedKite is the host's kite binary when the image's /kite and
	// /kuard are byte for byte that file (a current built-in image): the
	// container gets it bound over them, so that its pages are shared
	// with every kite process of the machine instead of being a copy.
	SharedKite string
}

// Errors an Images implementation returns for images that will not be
// pulled; their texts are kubelet's waiting reasons.
var (
	ErrImageNeverPull   = errors.New("ErrImageNeverPull")
	ErrInvalidImageName = errors.New("InvalidImageName")
)
