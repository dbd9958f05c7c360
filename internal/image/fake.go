package image

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Interface is what the agent needs of the image store; *Store and *Fake
// implement it.
type Interface interface {
	Get(ref string) (Image, error)
	List() ([]Image, error)
	Pull(ctx context.Context, ref string, policy PullPolicy, keychain authn.Keychain) (Image, error)
	Unpack(ctx context.Context, ref string) ([]string, error)
	EnsureBuiltins(ctx context.Context) error
}

var (
	_ Interface = (*Store)(nil)
	_ Interface = (*Fake)(nil)
)

// Fake is an in-memory Interface for the agent's unit tests. It follows
// the Store's rules (names normalized; policies; built-ins never pulled;
// the same error types) over images a test puts in place: Local ones are
// present, Remote ones are what a pull can fetch — a pull of anything
// else fails like an offline pull, with a *PullError. Unpack returns
// made-up directory names and touches no disk. Calls records what was
// asked; FailNext injects errors.
type Fake struct {
	mu     sync.Mutex
	local  map[string]Image
	remote map[string]Image
	calls  []string
	fail   map[string][]error
}

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{local: map[string]Image{}, remote: map[string]Image{}, fail: map[string][]error{}}
}

// AddLocal puts img in the fake store under ref.
func (f *Fake) AddLocal(ref string, img Image) { f.add(f.local, ref, img) }

// AddRemote makes img what a pull of ref fetches.
func (f *Fake) AddRemote(ref string, img Image) { f.add(f.remote, ref, img) }

func (f *Fake) add(m map[string]Image, ref string, img Image) {
	norm, err := Normalize(ref)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img.Name = norm
	if img.Digest == "" {
		img.Digest = fmt.Sprintf("sha256:%064x", len(f.local)+len(f.remote)+1)
	}
	if img.ID == "" {
		img.ID = img.Digest
	}
	m[norm] = img
}

// FailNext makes the next call of method ("Pull", "Unpack", …) return
// err. Several calls queue.
func (f *Fake) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], err)
}

// Calls returns the calls so far: "Pull busybox Always", "Unpack
// kite.dev/kuard:latest", "Get …", "EnsureBuiltins".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// call records a call and returns an injected error, if any. f.mu held.
func (f *Fake) call(method string, args ...any) error {
	s := method
	for _, a := range args {
		s += fmt.Sprint(" ", a)
	}
	f.calls = append(f.calls, s)
	if q := f.fail[method]; len(q) > 0 {
		f.fail[method] = q[1:]
		return q[0]
	}
	return nil
}

// Get returns a local image by name (IDs are not looked up).
func (f *Fake) Get(ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Get", ref); err != nil {
		return Image{}, err
	}
	return f.get(ref)
}

func (f *Fake) get(ref string) (Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return Image{}, err
	}
	img, ok := f.local[norm]
	if !ok {
		return Image{}, fmt.Errorf("%w: %s", ErrNotFound, norm)
	}
	return img, nil
}

// List returns the local images, one per name, sorted.
func (f *Fake) List() ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("List"); err != nil {
		return nil, err
	}
	var out []Image
	for _, n := range slices.Sorted(maps.Keys(f.local)) {
		out = append(out, f.local[n])
	}
	return out, nil
}

// Pull follows Store.Pull's policies over the local and remote images.
func (f *Fake) Pull(ctx context.Context, ref string, policy PullPolicy, keychain authn.Keychain) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Pull", ref, policy); err != nil {
		return Image{}, err
	}
	norm, err := Normalize(ref)
	if err != nil {
		return Image{}, err
	}
	local, err := f.get(norm)
	present := err == nil
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
		if present && local.Builtin != "" {
			return local, nil
		}
	default:
		return Image{}, fmt.Errorf("image %s: unknown pull policy %q", ref, policy)
	}
	img, ok := f.remote[norm]
	if !ok {
		return Image{}, &PullError{Ref: norm, Err: errors.New("fake registry: unreachable")}
	}
	img.Name = norm
	f.local[norm] = img
	img.Pulled = true
	return img, nil
}

// Unpack returns "/fake/images/layers/<diffID>" per layer (one made-up
// directory for an image without layers).
func (f *Fake) Unpack(ctx context.Context, ref string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Unpack", ref); err != nil {
		return nil, err
	}
	img, err := f.get(ref)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for i, l := range img.Layers {
		id := l.DiffID
		if id == "" {
			id = fmt.Sprint(i)
		}
		dirs = append(dirs, "/fake/images/layers/"+id)
	}
	if len(dirs) == 0 {
		dirs = []string{"/fake/images/layers/" + img.ID}
	}
	return dirs, nil
}

// EnsureBuiltins puts the built-in images in place, with the real ones'
// names and configs.
func (f *Fake) EnsureBuiltins(ctx context.Context) error {
	f.mu.Lock()
	if err := f.call("EnsureBuiltins"); err != nil {
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	for i, b := range builtins {
		img := Image{Builtin: b.kind, Description: b.description, Names: b.names,
			Digest: fmt.Sprintf("sha256:%064x", 0xb0+i),
			Config: ImageConfig{Entrypoint: b.config.Entrypoint, Cmd: b.config.Cmd, Env: b.config.Env,
				WorkingDir: b.config.WorkingDir, ExposedPorts: slices.Sorted(maps.Keys(b.config.ExposedPorts))}}
		for _, n := range b.names {
			f.AddLocal(n, img)
		}
	}
	return nil
}
