package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"kite/internal/image"
)

// storeImages is Images over the machine's image store: Pull as the
// policy says (built-in images are never asked of a registry), then
// Unpack for the layer directories. The built-in images are made (or
// found current) before the first pull.
type storeImages struct {
	store image.Interface

	mu       sync.Mutex
	builtins bool
	// sharedKite memoises the store's SharedKite by image digest: the
	// answer only changes when the built-ins are rebuilt, which this
	// agent does once (ensureBuiltins), and asking re-reads the binary's
	// status and the store's records — too much for every container start.
	sharedKite map[string]string
}

func newStoreImages(store image.Interface) *storeImages { return &storeImages{store: store} }

// defaultImages opens the image store at dir.
func defaultImages(dir string) (Images, error) {
	s, err := image.Open(image.Config{Root: dir})
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	return newStoreImages(s), nil
}

func (s *storeImages) ensureBuiltins(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.builtins {
		return nil
	}
	if err := s.store.EnsureBuiltins(ctx); err != nil {
		return fmt.Errorf("built-in images: %w", err)
	}
	s.builtins = true
	return nil
}

func (s *storeImages) Ensure(ctx context.Context, req ImageRequest) (Image, error) {
	if err := s.ensureBuiltins(ctx); err != nil {
		return Image{}, err
	}
	kc, err := image.SecretsKeychain(req.PullSecrets)
	if err != nil {
		return Image{}, err
	}
	img, err := s.store.Pull(ctx, req.Ref, image.PullPolicy(req.Policy), kc)
	switch {
	case errors.Is(err, image.ErrImageNeverPull):
		return Image{}, fmt.Errorf("%w: %v", ErrImageNeverPull, err)
	case errors.Is(err, image.ErrInvalidName):
		return Image{}, fmt.Errorf("%w: %v", ErrInvalidImageName, err)
	case err != nil:
		return Image{}, err
	}
	if mu, ok := s.store.(interface{ MarkUsed(string) error }); ok {
		// For image garbage collection: the image's last use.
		if err := mu.MarkUsed(img.Digest); err != nil {
			return Image{}, fmt.Errorf("image %s: %w", req.Ref, err)
		}
	}
	dirs, err := s.store.Unpack(ctx, img.Digest)
	if err != nil {
		return Image{}, fmt.Errorf("unpack %s: %w", req.Ref, err)
	}
	out := Image{Ref: img.Name, ID: img.ID, Pulled: img.Pulled, LowerDirs: dirs,
		Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env,
		WorkingDir: img.Config.WorkingDir, User: img.Config.User}
	if out.Ref == "" {
		out.Ref = req.Ref
	}
	if len(img.RepoDigests) > 0 {
		out.ID = img.RepoDigests[0]
	}
	out.SharedKite = s.sharedKiteOf(img.Digest)
	return out, nil
}

// sharedKiteOf is the store's SharedKite for digest, asked once.
func (s *storeImages) sharedKiteOf(digest string) string {
	sk, ok := s.store.(interface{ SharedKite(digest string) string })
	if !ok {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.sharedKite[digest]; ok {
		return p
	}
	if s.sharedKite == nil {
		s.sharedKite = map[string]string{}
	}
	p := sk.SharedKite(digest)
	s.sharedKite[digest] = p
	return p
}
