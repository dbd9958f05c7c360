package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"kite/internal/image"
	"kite/internal/runtime"
)

// Image garbage collection, kubelet-style: every ImageGCPeriod, when the
// image store's file system is at least ImageGCHighThresholdPercent
// full, images no container uses are removed, least recently used first,
// until usage is down to ImageGCLowThresholdPercent (by the images'
// sizes). An image used or first seen less than ImageMinimumGCAge ago is
// kept, and so are the built-in images (kite's own pods need them, and
// they are made locally, not pulled).
//
// The store is shared by every node of a lab, so "in use" and "last
// used" are the store's (image.Store.SetInUse, InUse, MarkUsed,
// LastUsed): each agent records there the images its containers (of any
// state) run, and the images a pod starts with are marked used.

// Defaults of kubelet's imageGCHighThresholdPercent,
// imageGCLowThresholdPercent, image GC period and imageMinimumGCAge.
const (
	DefaultImageGCHighThreshold = 85
	DefaultImageGCLowThreshold  = 80
	defaultImageGCPeriod        = 5 * time.Minute
	DefaultImageMinimumGCAge    = 2 * time.Minute
)

// imageGCStore is what image garbage collection needs of the store;
// *image.Store has it.
type imageGCStore interface {
	List() ([]image.Image, error)
	Remove(ctx context.Context, ref string) ([]string, error)
	Prune(ctx context.Context, inUse []string) ([]string, error)
	SetInUse(owner string, refs []string) error
	InUse() (map[string]bool, error)
	LastUsed() (map[string]time.Time, error)
	FSUsage() (capacity, available int64, err error)
}

var _ imageGCStore = (*image.Store)(nil)

// imageGC collects one node's share of the store's garbage.
type imageGC struct {
	store imageGCStore
	rt    runtime.Interface
	// owner names this node's in-use record in the store.
	owner     string
	high, low int
	minAge    time.Duration
	now       func() time.Time
	// firstSeen is when this agent first listed each image (by digest),
	// as kubelet's firstDetected.
	firstSeen map[string]time.Time
}

func newImageGC(cfg Config, store imageGCStore, rt runtime.Interface) *imageGC {
	// The cgroup parent is unique per node and lab on a machine.
	owner := strings.ReplaceAll(strings.Trim(cfg.CgroupParent, "/"), "/", "_")
	return &imageGC{store: store, rt: rt, owner: owner, high: cfg.ImageGCHighThreshold, low: cfg.ImageGCLowThreshold,
		minAge: cfg.ImageMinimumGCAge, now: time.Now, firstSeen: map[string]time.Time{}}
}

// gcCandidate is an image garbage collection may remove.
type gcCandidate struct {
	Digest string
	Size   int64
	// LastUsed is zero for an image never used; FirstSeen when this
	// agent first saw it.
	LastUsed, FirstSeen time.Time
}

// bytesToFree is how much to free for usage to go from at least high
// percent down to low percent of capacity; 0 below high.
func bytesToFree(capacity, available int64, high, low int) int64 {
	if capacity <= 0 || high >= 100 {
		return 0
	}
	used := capacity - available
	if used*100 < int64(high)*capacity {
		return 0
	}
	return used - capacity*int64(low)/100
}

// chooseImages picks candidates to remove, least recently used first
// (never used before used; then first seen first), skipping those used or
// first seen within minAge, until their sizes reach toFree.
func chooseImages(cands []gcCandidate, toFree int64, now time.Time, minAge time.Duration) []gcCandidate {
	sorted := append([]gcCandidate(nil), cands...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		if !a.FirstSeen.Equal(b.FirstSeen) {
			return a.FirstSeen.Before(b.FirstSeen)
		}
		return a.Digest < b.Digest
	})
	var out []gcCandidate
	var freed int64
	for _, c := range sorted {
		if freed >= toFree {
			break
		}
		if now.Sub(c.LastUsed) < minAge || now.Sub(c.FirstSeen) < minAge {
			continue
		}
		out = append(out, c)
		freed += c.Size
	}
	return out
}

// collect records this node's in-use images and, above the high
// threshold, removes images down to the low one. It returns the digests
// removed.
func (g *imageGC) collect(ctx context.Context) ([]string, error) {
	now := g.now()
	cs, err := g.rt.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, c := range cs {
		for _, l := range []string{labelImageID, labelImage} {
			if r := c.Labels[l]; r != "" {
				refs = append(refs, r)
			}
		}
	}
	if err := g.store.SetInUse(g.owner, refs); err != nil {
		return nil, err
	}
	images, err := g.store.List()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, img := range images {
		seen[img.Digest] = true
		if _, ok := g.firstSeen[img.Digest]; !ok {
			g.firstSeen[img.Digest] = now
		}
	}
	for d := range g.firstSeen {
		if !seen[d] {
			delete(g.firstSeen, d)
		}
	}
	capacity, available, err := g.store.FSUsage()
	if err != nil {
		return nil, err
	}
	toFree := bytesToFree(capacity, available, g.high, g.low)
	if toFree <= 0 {
		return nil, nil
	}
	inUse, err := g.store.InUse()
	if err != nil {
		return nil, err
	}
	lastUsed, err := g.store.LastUsed()
	if err != nil {
		return nil, err
	}
	var cands []gcCandidate
	for _, img := range images {
		if img.Builtin != "" || inUse[img.Digest] {
			continue
		}
		cands = append(cands, gcCandidate{Digest: img.Digest, Size: img.Size, LastUsed: lastUsed[img.Digest], FirstSeen: g.firstSeen[img.Digest]})
	}
	chosen := chooseImages(cands, toFree, now, g.minAge)
	log := klog.FromContext(ctx).WithName("imagegc")
	var removed []string
	for _, c := range chosen {
		names, err := g.store.Remove(ctx, c.Digest)
		if err != nil {
			return removed, fmt.Errorf("remove image %s: %w", c.Digest, err)
		}
		log.Info("image removed", "digest", c.Digest, "names", strings.Join(names, ","), "size", c.Size)
		removed = append(removed, c.Digest)
	}
	if len(removed) > 0 {
		if _, err := g.store.Prune(ctx, nil); err != nil {
			return removed, err
		}
	}
	if freed := sizeOf(chosen); freed < toFree {
		return removed, fmt.Errorf("image garbage collection freed %d of the %d bytes wanted (the rest is in use, recent or built in)", freed, toFree)
	}
	return removed, nil
}

func sizeOf(cs []gcCandidate) int64 {
	var n int64
	for _, c := range cs {
		n += c.Size
	}
	return n
}
