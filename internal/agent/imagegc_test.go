package agent

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"kite/internal/image"
	"kite/internal/runtime"
)

func TestBytesToFree(t *testing.T) {
	for _, tc := range []struct {
		capacity, available int64
		high, low           int
		want                int64
	}{
		{1000, 200, 85, 80, 0},  // 80 % used: below high
		{1000, 150, 85, 80, 50}, // 85 %: down to 80 %
		{1000, 50, 85, 80, 150}, // 95 %
		{1000, 0, 100, 80, 0},   // high 100: never
		{0, 0, 85, 80, 0},       // no capacity
		{1000, 100, 90, 0, 900}, // low 0: everything
	} {
		if got := bytesToFree(tc.capacity, tc.available, tc.high, tc.low); got != tc.want {
			t.Errorf("capacity %d available %d high %d low %d: %d, want %d", tc.capacity, tc.available, tc.high, tc.low, got, tc.want)
		}
	}
}

func TestChooseImages(t *testing.T) {
	now := time.Unix(100000, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	old := ago(time.Hour)
	cands := []gcCandidate{
		{Digest: "recent", Size: 100, LastUsed: ago(time.Minute), FirstSeen: old},
		{Digest: "used-10m", Size: 100, LastUsed: ago(10 * time.Minute), FirstSeen: old},
		{Digest: "used-30m", Size: 100, LastUsed: ago(30 * time.Minute), FirstSeen: old},
		{Digest: "never-used", Size: 100, FirstSeen: old},
		{Digest: "new", Size: 100, FirstSeen: ago(time.Second)},
	}
	digests := func(cs []gcCandidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Digest)
		}
		return out
	}
	for _, tc := range []struct {
		toFree int64
		want   []string
	}{
		{0, nil},
		{1, []string{"never-used"}},
		{150, []string{"never-used", "used-30m"}},
		{10000, []string{"never-used", "used-30m", "used-10m"}}, // never the recent ones
	} {
		if got := digests(chooseImages(cands, tc.toFree, now, 2*time.Minute)); !slices.Equal(got, tc.want) {
			t.Errorf("to free %d: %q, want %q", tc.toFree, got, tc.want)
		}
	}
}

// fakeGCStore is an image store with a file system whose usage the test
// sets; removing an image frees its size.
type fakeGCStore struct {
	capacity, available int64
	images              map[string]image.Image
	lastUsed            map[string]time.Time
	inUse               map[string][]string
	removed             []string
	pruned              int
}

func (f *fakeGCStore) List() ([]image.Image, error) {
	return slices.Collect(maps.Values(f.images)), nil
}
func (f *fakeGCStore) Remove(_ context.Context, ref string) ([]string, error) {
	img, ok := f.images[ref]
	if !ok {
		return nil, image.ErrNotFound
	}
	delete(f.images, ref)
	f.available += img.Size
	f.removed = append(f.removed, ref)
	return img.Names, nil
}
func (f *fakeGCStore) Prune(context.Context, []string) ([]string, error) { f.pruned++; return nil, nil }
func (f *fakeGCStore) SetInUse(owner string, refs []string) error {
	f.inUse[owner] = refs
	return nil
}

// InUse resolves refs as the store does: by digest, ID, name or repo digest.
func (f *fakeGCStore) InUse() (map[string]bool, error) {
	out := map[string]bool{}
	for _, refs := range f.inUse {
		for _, r := range refs {
			for d, img := range f.images {
				if r == d || r == img.ID || slices.Contains(img.Names, r) || slices.Contains(img.RepoDigests, r) {
					out[d] = true
				}
			}
		}
	}
	return out, nil
}
func (f *fakeGCStore) LastUsed() (map[string]time.Time, error) { return maps.Clone(f.lastUsed), nil }
func (f *fakeGCStore) FSUsage() (capacity, available int64, err error) {
	return f.capacity, f.available, nil
}

// collect: nothing below the high threshold; above it, unused images go,
// least recently used first, down to the low threshold — never an image a
// container of this node or of another node sharing the store uses, never
// a built-in one, never one used within the minimum age.
func TestImageGCCollect(t *testing.T) {
	now := time.Unix(100000, 0)
	img := func(name string, size int64, builtin string) image.Image {
		d := "sha256:" + name
		return image.Image{Digest: d, ID: "sha256:cfg-" + name, Names: []string{"docker.io/library/" + name + ":latest"},
			RepoDigests: []string{"docker.io/library/" + name + "@" + d}, Size: size, Builtin: builtin}
	}
	store := &fakeGCStore{capacity: 1000, available: 300, inUse: map[string][]string{"other-node": {"docker.io/library/theirs:latest"}},
		images: map[string]image.Image{}, lastUsed: map[string]time.Time{
			"sha256:oldest": now.Add(-3 * time.Hour), "sha256:older": now.Add(-2 * time.Hour),
			"sha256:old": now.Add(-time.Hour), "sha256:fresh": now.Add(-time.Minute)}}
	for _, i := range []image.Image{img("oldest", 40, ""), img("older", 40, ""), img("old", 40, ""), img("fresh", 40, ""),
		img("mine", 40, ""), img("theirs", 40, ""), img("busybox", 40, "busybox")} {
		store.images[i.Digest] = i
	}
	rt := runtime.NewFake()
	if _, err := rt.CreateSandbox(context.Background(), runtime.SandboxConfig{ID: "pod", Hostname: "pod"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.CreateContainer(context.Background(), runtime.ContainerConfig{ID: "c", SandboxID: "pod", Args: []string{"sh"}, LowerDirs: []string{"/l"},
		Labels: map[string]string{labelImage: "docker.io/library/mine:latest", labelImageID: "docker.io/library/mine@sha256:mine"}}); err != nil {
		t.Fatal(err)
	}
	clock := now.Add(-time.Hour)
	g := &imageGC{store: store, rt: rt, owner: "this-node", high: 85, low: 80, minAge: 2 * time.Minute,
		now: func() time.Time { return clock }, firstSeen: map[string]time.Time{}}

	// 70 % used: nothing to do (and the images are first seen now).
	if removed, err := g.collect(context.Background()); err != nil || len(removed) != 0 {
		t.Fatalf("below the threshold: %q %v", removed, err)
	}
	if !slices.Equal(store.inUse["this-node"], []string{"docker.io/library/mine@sha256:mine", "docker.io/library/mine:latest"}) {
		t.Errorf("in-use record %q", store.inUse["this-node"])
	}

	// 90 % used: 100 bytes to free; the unused images go least recently
	// used first, 40 bytes each, so three of them.
	clock, store.available = now, 100
	removed, err := g.collect(context.Background())
	if want := []string{"sha256:oldest", "sha256:older", "sha256:old"}; err != nil || !slices.Equal(removed, want) {
		t.Fatalf("removed %q (%v), want %q", removed, err, want)
	}
	if store.pruned != 1 {
		t.Errorf("pruned %d times", store.pruned)
	}

	// 95 % used: nothing removable is left; an error says so.
	store.available = 50
	removed, err = g.collect(context.Background())
	if len(removed) != 0 || err == nil {
		t.Errorf("with only used, recent and built-in images: %q %v", removed, err)
	}
	for _, d := range []string{"sha256:fresh", "sha256:mine", "sha256:theirs", "sha256:busybox"} {
		if _, ok := store.images[d]; !ok {
			t.Errorf("%s removed", d)
		}
	}
}

// fullStore is the real store with a file system whose usage the test
// sets.
type fullStore struct {
	*image.Store
	capacity, available int64
}

func (f *fullStore) FSUsage() (int64, int64, error) { return f.capacity, f.available, nil }

// Over the real image store: above the threshold, the image no container
// uses is removed (names and blobs); the one this node's container runs,
// the one another node recorded and the one just used stay.
func TestImageGCRealStore(t *testing.T) {
	ctx := context.Background()
	st, err := image.Open(image.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"unused", "mine", "theirs", "fresh"} {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.NewTag("example.com/" + n + ":1")
		file := filepath.Join(t.TempDir(), n+".tar")
		if err := tarball.WriteToFile(file, ref, img); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(ctx, file); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetInUse("other-node", []string{"example.com/theirs:1"}); err != nil {
		t.Fatal(err)
	}
	rt := runtime.NewFake()
	rt.CreateSandbox(ctx, runtime.SandboxConfig{ID: "pod", Hostname: "pod"})
	rt.CreateContainer(ctx, runtime.ContainerConfig{ID: "c", SandboxID: "pod", Args: []string{"sh"}, LowerDirs: []string{"/l"},
		Labels: map[string]string{labelImage: "example.com/mine:1"}})
	store := &fullStore{Store: st, capacity: 1 << 30, available: 1 << 20}
	clock := time.Now().Add(-time.Hour)
	g := &imageGC{store: store, rt: rt, owner: "this-node", high: 85, low: 80, minAge: 2 * time.Minute,
		now: func() time.Time { return clock }, firstSeen: map[string]time.Time{}}
	if _, err := g.collect(ctx); err == nil {
		t.Fatal("nothing old enough to remove yet, and no error")
	}
	clock = time.Now()
	if err := st.MarkUsed("example.com/fresh:1"); err != nil {
		t.Fatal(err)
	}
	removed, err := g.collect(ctx)
	if len(removed) != 1 || err == nil { // the rest cannot be freed: an error says so
		t.Fatalf("removed %q, %v", removed, err)
	}
	if _, err := st.Get("example.com/unused:1"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("unused image still there: %v", err)
	}
	for _, name := range []string{"mine", "theirs", "fresh"} {
		if _, err := st.Get("example.com/" + name + ":1"); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
}
