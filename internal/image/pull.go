package image

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"kite/internal/version"
)

// PullPolicy is a container's imagePullPolicy; the values are
// Kubernetes' (corev1.PullPolicy converts directly).
type PullPolicy string

const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// pullJobs is how many layers one pull downloads at a time.
const pullJobs = 3

// Pull makes sure the image ref names is in the store, as policy says,
// and returns it:
//
//   - Never: the stored image, or ErrImageNeverPull when there is none;
//   - IfNotPresent (and ""): the stored image, else a pull;
//   - Always: asks the registry for the name's digest and downloads only
//     if it differs from the stored one.
//
// Built-in images (EnsureBuiltins) are never pulled, whatever the policy:
// their names ("busybox", "gcr.io/kuar-demo/kuard-amd64:1", …) mean kite's
// own images, so that the same pod specs work offline. An image named by
// digest that is present is not asked for again either.
//
// A pull picks cfg.Platform from a multi-platform image, authenticates
// with keychain (nil: anonymous; see DockerConfigKeychain for pull
// secrets), tries once (the caller backs off, as kubelet does) and fails
// with a *PullError (errors.Is ErrImagePull) wrapping the registry's or
// the network's error. An unparsable ref is ErrInvalidName.
func (s *Store) Pull(ctx context.Context, ref string, policy PullPolicy, keychain authn.Keychain) (Image, error) {
	r, norm, err := parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	local, err := s.Get(norm)
	present := err == nil
	if err != nil && !IsNotFound(err) {
		return Image{}, err
	}
	_, byDigest := r.(name.Digest)
	switch policy {
	case PullNever:
		if present {
			return local, nil
		}
		return Image{}, fmt.Errorf("%w: container image %q is not present with pull policy of Never", ErrImageNeverPull, ref)
	case PullIfNotPresent, "":
		if present {
			return local, nil
		}
	case PullAlways:
		if present && (local.Builtin != "" || byDigest) {
			return local, nil
		}
	default:
		return Image{}, fmt.Errorf("image %s: unknown pull policy %q", ref, policy)
	}

	log := klog.FromContext(ctx).WithName("image")
	start := time.Now()
	desc, err := remote.Get(r, s.remoteOptions(ctx, keychain)...)
	if err != nil {
		return Image{}, &PullError{Ref: norm, Err: err}
	}
	if present && (desc.Digest.String() == local.Digest || hasRepoDigest(local, desc.Digest)) {
		log.V(2).Info("image up to date", "image", norm, "digest", desc.Digest.String())
		return local, nil
	}
	img, err := desc.Image()
	if err != nil {
		return Image{}, &PullError{Ref: norm, Err: err}
	}

	cl, err := s.lock(ctx, lockContent, unix.LOCK_SH)
	if err != nil {
		return Image{}, err
	}
	defer func() { cl.unlock() }()
	mdesc, err := s.writeImage(ctx, img)
	if err != nil {
		return Image{}, &PullError{Ref: norm, Err: err}
	}
	mdesc.Annotations = map[string]string{AnnotationSourceDigest: desc.Digest.String()}
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		setName(idx, norm, mdesc)
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	log.Info("image pulled", "image", norm, "digest", mdesc.Digest.String(), "took", time.Since(start))
	if present {
		// The name moved off an image, whose blobs may now be garbage.
		cl.unlock()
		cl = nil
		if err := s.tryCollectGarbage(ctx); err != nil {
			log.Error(err, "garbage collection after a pull", "image", norm)
		}
	}
	pulled, err := s.Get(norm)
	pulled.Pulled = err == nil
	return pulled, err
}

func hasRepoDigest(img Image, dig v1.Hash) bool {
	for _, rd := range img.RepoDigests {
		if repository(rd)+"@"+dig.String() == rd {
			return true
		}
	}
	return false
}

func (s *Store) remoteOptions(ctx context.Context, keychain authn.Keychain) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithPlatform(s.cfg.Platform),
		remote.WithUserAgent("kite/" + version.Version),
		// One attempt: the agent backs off between pulls (ImagePullBackOff).
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	if s.cfg.Transport != nil {
		opts = append(opts, remote.WithTransport(s.cfg.Transport))
	}
	if keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(keychain))
	}
	return opts
}

// writeImage stores img's blobs as they are (the manifest keeps its
// digest): layers not yet present, then the config, then the manifest, so
// that a manifest in the store implies its content. The caller holds the
// content lock shared. It returns the manifest's descriptor.
func (s *Store) writeImage(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		jobs     = make(chan v1.Layer)
	)
	for range min(pullJobs, len(layers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range jobs {
				if err := s.writeLayer(l); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, l := range layers {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		jobs <- l
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return v1.Descriptor{}, firstErr
	}

	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if !s.hasBlob(cfgName) {
		raw, err := img.RawConfigFile()
		if err != nil {
			return v1.Descriptor{}, err
		}
		if _, _, err := s.putBlob(bytes.NewReader(raw), cfgName); err != nil {
			return v1.Descriptor{}, err
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	dig, size, err := s.putBlob(bytes.NewReader(raw), v1.Hash{})
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: dig, Size: size}, nil
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

func (s *Store) writeLayer(l v1.Layer) error {
	dig, err := l.Digest()
	if err != nil {
		return err
	}
	if s.hasBlob(dig) {
		return nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", dig, err)
	}
	defer rc.Close()
	if _, _, err := s.putBlob(rc, dig); err != nil {
		return fmt.Errorf("layer %s: %w", dig, err)
	}
	return nil
}
