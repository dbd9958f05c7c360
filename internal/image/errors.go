package image

import (
	"errors"
	"fmt"
)

// Errors callers tell apart. Their texts are the reasons kubelet reports,
// so that the agent can put them in a container's waiting state as they
// are.
var (
	// ErrNotFound: no image of that name, ID or digest in the store.
	ErrNotFound = errors.New("image not found")
	// ErrImageNeverPull: the image is absent and imagePullPolicy is Never.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
	// ErrImagePull: pulling failed; the error is a *PullError carrying the
	// registry's error.
	ErrImagePull = errors.New("ErrImagePull")
	// ErrInvalidName: the reference does not parse.
	ErrInvalidName = errors.New("InvalidImageName")
)

// PullError is a failed pull: the registry could not be reached, refused
// the credentials, does not have the image, or the download broke off.
// errors.Is(err, ErrImagePull) holds for it; Err is the registry's (or the
// network's) error, for the message.
type PullError struct {
	Ref string
	Err error
}

func (e *PullError) Error() string { return fmt.Sprintf("pull %s: %v", e.Ref, e.Err) }

func (e *PullError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrImagePull) true for every PullError.
func (e *PullError) Is(target error) bool { return target == ErrImagePull }

// IsNotFound reports whether err says the image is not in the store.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsPullError reports whether err is a failed pull (ErrImagePull).
func IsPullError(err error) bool { return errors.Is(err, ErrImagePull) }
