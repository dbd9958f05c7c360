package image

import (
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The records image garbage collection reads: last use by digest, in-use
// sets of several owners (resolved by name, ID and digest, unknown refs
// skipped, a new set replacing the old), and the file system's usage.
func TestUsageRecords(t *testing.T) {
	s := newStore(t, nil)
	a := imageOf(t, v1.Config{Cmd: []string{"a"}}, layerOf(t, tarEntry{name: "a", body: "a"}))
	b := imageOf(t, v1.Config{Cmd: []string{"b"}}, layerOf(t, tarEntry{name: "b", body: "b"}))
	loadImage(t, s, "example.com/a:1", a)
	loadImage(t, s, "example.com/b:1", b)
	imgA, _ := s.Get("example.com/a:1")
	imgB, _ := s.Get("example.com/b:1")
	da, db := imgA.Digest, imgB.Digest

	if used, err := s.LastUsed(); err != nil || len(used) != 0 {
		t.Fatalf("last used before any use: %v %v", used, err)
	}
	before := time.Now().Add(-time.Second)
	if err := s.MarkUsed("example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkUsed("example.com/nope:1"); err == nil {
		t.Error("marked an absent image used")
	}
	used, err := s.LastUsed()
	if err != nil || len(used) != 1 || used[da].Before(before) {
		t.Errorf("last used %v %v", used, err)
	}

	if err := s.SetInUse("node1", []string{"example.com/a:1", "example.com/gone:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInUse("node2", []string{imgB.ID}); err != nil {
		t.Fatal(err)
	}
	inUse, err := s.InUse()
	if err != nil || len(inUse) != 2 || !inUse[da] || !inUse[db] {
		t.Errorf("in use %v %v", inUse, err)
	}
	s.SetInUse("node2", nil)
	if inUse, _ := s.InUse(); len(inUse) != 1 || !inUse[da] {
		t.Errorf("in use after node2 let go: %v", inUse)
	}
	if err := s.SetInUse("../escape", nil); err == nil {
		t.Error("owner with a slash accepted")
	}

	capacity, available, err := s.FSUsage()
	if err != nil || capacity <= 0 || available < 0 || available > capacity {
		t.Errorf("usage %d %d %v", capacity, available, err)
	}
}
